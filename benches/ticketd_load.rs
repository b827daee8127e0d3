//! Load test of the ticket service on loopback (bounded): cancels per second and latency
//! percentiles at 1, 8 and 64 concurrent clients, for the embedded books and, when
//! `PENNYBLACK_LOAD_PG` names a PostgreSQL database (`postgres://USER@127.0.0.1:PORT/DB`), for
//! PostgreSQL. Each client is a thread with its own HTTP connection; every cancel is a real
//! request with its proof checked and its transaction committed.
//!
//! `cargo bench --bench ticketd_load` (`PENNYBLACK_LOAD_CANCELS`, default 1000 per level).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pennyblack::ticket::server::{Metrics, Service, token_hash};
use pennyblack::ticket::store::{OperationKind, Role, TicketStore};
use pennyblack::ticket::{Carried, Issuer};

fn main() {
    let cancels: usize = std::env::var("PENNYBLACK_LOAD_CANCELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, Arc<dyn TicketStore>)> = vec![(
        "embedded (redb)",
        Arc::new(
            pennyblack::ticket::store::FileTicketStore::open(&dir.path().join("books.redb"))
                .unwrap(),
        ),
    )];
    if let Ok(url) = std::env::var("PENNYBLACK_LOAD_PG") {
        let pg = pennyblack::ticket::postgres::PgTicketStore::open(&url).unwrap();
        stores.push(("PostgreSQL", Arc::new(pg)));
    }
    println!("| store | clients | cancels | cancels/s | p50 | p90 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (si, (name, books)) in stores.into_iter().enumerate() {
        for clients in [1usize, 8, 64] {
            let (rate, lat) = run(&books, si, clients, cancels);
            let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
            println!(
                "| {name} | {clients} | {} | {rate:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                lat.len(),
                ms(pct(0.50)),
                ms(pct(0.90)),
                ms(pct(0.99)),
                ms(*lat.last().unwrap())
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One level: a fresh sender and receiver, `cancels` tickets bought, then cancelled by
/// `clients` threads over HTTP. Returns cancels per second and the sorted latencies.
fn run(
    books: &Arc<dyn TicketStore>,
    store_index: usize,
    clients: usize,
    cancels: usize,
) -> (f64, Vec<Duration>) {
    let issuer = Issuer::new("tickets.example.org", "k1", [1; 32], [2; 32]).unwrap();
    let tag = format!("{store_index}-{clients}-{}", pennyblack::unix_now());
    let (sender, receiver) = (format!("alice-{tag}"), format!("mx-{tag}"));
    let token = format!("token-{tag}");
    books
        .create_account(&sender, Role::Sender, token_hash(&format!("s{token}")))
        .unwrap();
    books
        .create_account(&receiver, Role::Receiver, token_hash(&token))
        .unwrap();
    // The receiver cancels for its own recipient domain only.
    let rcpt = format!("bob@{receiver}.example");
    books
        .add_domain(&receiver, &format!("{receiver}.example"))
        .unwrap();
    books
        .credit(&sender, cancels as u64, OperationKind::Grant, 0)
        .unwrap();
    let serials: Vec<[u8; 16]> = (0..cancels)
        .map(|_| {
            let mut s = [0u8; 16];
            getrandom::fill(&mut s).unwrap();
            s
        })
        .collect();
    let expires = pennyblack::unix_now() + 3600;
    for chunk in serials.chunks(500) {
        books
            .issue(&sender, chunk, expires, pennyblack::unix_now())
            .unwrap();
    }
    let bodies: Vec<String> = serials
        .iter()
        .map(|s| {
            let (t, secret) = issuer.issue(*s, expires);
            let c = Carried::new(t, &secret, &rcpt, "_AAAAAAAAAAAAAAAAAAAAAQ").unwrap();
            serde_json::json!({ "ticket": c.to_string(), "rcpt": rcpt, "binding": "_AAAAAAAAAAAAAAAAAAAAAQ" })
                .to_string()
        })
        .collect();
    let service = Arc::new(Service {
        issuer,
        books: Arc::clone(books),
        spent: Arc::new(pennyblack::MemoryStore::new()),
        price_bits: 20,
        lifetime: Duration::from_secs(3600),
        admin_token_hash: None,
        metrics: Metrics::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(pennyblack::ticket::server::serve(
        listener,
        service,
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}/v1/cancel");
    let started = Instant::now();
    let mut lat: Vec<Duration> = std::thread::scope(|sc| {
        let per = bodies.len().div_ceil(clients);
        let handles: Vec<_> = bodies
            .chunks(per)
            .map(|chunk| {
                let (url, token) = (&url, &token);
                sc.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    chunk
                        .iter()
                        .map(|body| {
                            let t = Instant::now();
                            let resp = agent
                                .post(url)
                                .header("Authorization", &format!("Bearer {token}"))
                                .header("Content-Type", "application/json")
                                .send(body.as_bytes())
                                .unwrap();
                            assert_eq!(resp.status(), 200);
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();
    lat.sort();
    (lat.len() as f64 / elapsed.as_secs_f64(), lat)
}
