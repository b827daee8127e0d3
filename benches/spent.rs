//! Spent-store throughput: stamps recorded per second, one at a time and in batches of 1000,
//! for the memory, embedded (redb, fsync per commit) and Redis stores: one server, one server
//! over TLS (a test CA made with `openssl`), and a 3-primary cluster (formed with `redis-cli`).
//! The Redis groups need `redis-server` (and `openssl`, `redis-cli`) on PATH; each is left out,
//! with a note, without them. Run with `cargo bench --bench spent`.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pennyblack::{FileStore, MemoryStore, SpentStore};

static NEXT: AtomicU64 = AtomicU64::new(0);

fn fresh_keys(n: usize, expires: i64) -> Vec<pennyblack::spent::Spend> {
    (0..n)
        .map(|_| {
            let i = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_be_bytes());
            (k, expires).into()
        })
        .collect()
}

fn bench_store(c: &mut Criterion, name: &str, store: &dyn SpentStore) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut g = c.benchmark_group(format!("spent/{name}"));
    for batch in [1usize, 1000] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch-{batch}"), |b| {
            b.iter_batched(
                || fresh_keys(batch, now + 3600),
                |items| store.spend_many(&items, now).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stores(c: &mut Criterion) {
    bench_store(c, "memory", &MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    bench_store(
        c,
        "file",
        &FileStore::open(dir.path().join("spent.redb")).unwrap(),
    );
    match redis_server(&[]) {
        Some((_server, port)) => {
            let url = format!("redis://127.0.0.1:{port}/0");
            let store = pennyblack::spent::RedisStore::open(&url, Duration::from_secs(2)).unwrap();
            bench_store(c, "redis", &store);
        }
        None => eprintln!("note: no redis-server; the Redis groups are left out"),
    }
    if let Some(dir) = test_ca() {
        let p = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
        let args = [
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            "PORT".to_owned(),
            "--tls-cert-file".to_owned(),
            p("server.pem"),
            "--tls-key-file".to_owned(),
            p("server.key"),
            "--tls-ca-cert-file".to_owned(),
            p("ca.pem"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        if let Some((_server, port)) = redis_server(&args) {
            let options = pennyblack::spent::RedisOptions {
                timeout: Duration::from_secs(2),
                ca_file: Some(dir.path().join("ca.pem")),
                ..Default::default()
            };
            let url = format!("rediss://127.0.0.1:{port}/0");
            let store = pennyblack::spent::RedisStore::open_with(&url, &options).unwrap();
            bench_store(c, "redis-tls", &store);
        }
    }
    let cluster_dir = tempfile::tempdir().unwrap();
    let d = cluster_dir.path().to_str().unwrap().to_owned();
    let nodes: Vec<(Server, u16)> = (0..3)
        .filter_map(|i| {
            redis_server(&[
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                format!("{d}/nodes-{i}.conf"),
                "--dir".to_owned(),
                d.clone(),
            ])
        })
        .collect();
    if nodes.len() == 3 {
        let addrs: Vec<String> = nodes
            .iter()
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output();
        if created.is_ok_and(|o| o.status.success()) {
            std::thread::sleep(Duration::from_secs(2));
            let url = format!("redis+cluster://{}", addrs.join(","));
            match pennyblack::spent::RedisStore::open(&url, Duration::from_secs(2)) {
                Ok(store) => bench_store(c, "redis-cluster", &store),
                Err(e) => eprintln!("note: the cluster did not form ({e})"),
            }
        }
    }
}

/// A redis-server on a free loopback port (`PORT` in `args` is replaced by it), in a folder of
/// its own; `None` without redis-server.
fn redis_server(args: &[String]) -> Option<(Server, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = std::env::temp_dir();
    let child = Command::new("redis-server")
        .current_dir(dir)
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--port", &port.to_string()])
        .args(args.iter().map(|a| {
            if a == "PORT" {
                port.to_string()
            } else {
                a.clone()
            }
        }))
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    Some((Server(child), port))
}

#[path = "../tests/it/pki.rs"]
mod pki;

/// A test CA and a server certificate for 127.0.0.1, made with openssl; `None` without it.
fn test_ca() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().ok()?;
    match pki::make(dir.path()) {
        Ok(()) => Some(dir),
        Err(e) => {
            eprintln!("note: no test CA ({e}); the TLS group is left out");
            None
        }
    }
}

criterion_group!(benches, stores);
criterion_main!(benches);
