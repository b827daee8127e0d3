//! `pennyblack ticketd` on loopback with its embedded books (issue 20): buying with work and
//! with a grant, cancel and its idempotent retry, a second use refused, refund once, a
//! stranger's refund refused, an expired ticket refused, a lifted ticket refused, hostile
//! requests that change nothing, and SIGKILL during cancels losing no acknowledged one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pennyblack::ticket::{Carried, Ticket};
use serde_json::{Value, json};

use crate::support::pennyblack;

pub const ISSUER: &str = "tickets.example.org";
pub const PRICE: u32 = 8;
/// Message bindings (canonical `bind=` values) of five different messages.
const B_1: &str = "_AAAAAAAAAAAAAAAAAAAAAQ";
const B_2: &str = "_AAAAAAAAAAAAAAAAAAAAAg";
const B_3: &str = "_AAAAAAAAAAAAAAAAAAAAAw";
const B_A: &str = "_AAAAAAAAAAAAAAAAAAAABA";
const B_B: &str = "_AAAAAAAAAAAAAAAAAAAABQ";

pub struct Ticketd {
    child: Child,
    pub url: String,
    pub dir: PathBuf,
    port: u16,
    lifetime: String,
    /// A PostgreSQL URL, or `None` for the embedded books in `dir`.
    pg: Option<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Ticketd {
    /// ticketd on a free port. The port is free when picked, but another test's server may
    /// take it before ticketd binds it: ticketd then exits at once, and another port is tried.
    pub fn start(dir: &Path, lifetime: &str) -> Ticketd {
        for _ in 0..4 {
            if let Some(t) = Ticketd::try_start_on(dir, lifetime, free_port(), None) {
                return t;
            }
        }
        Ticketd::start_on(dir, lifetime, free_port(), None)
    }

    fn start_on(dir: &Path, lifetime: &str, port: u16, pg: Option<&str>) -> Ticketd {
        Ticketd::try_start_on(dir, lifetime, port, pg)
            .unwrap_or_else(|| panic!("ticketd exited at start (port {port} taken?)"))
    }

    /// `None` when ticketd exited before it answered (its port taken).
    fn try_start_on(dir: &Path, lifetime: &str, port: u16, pg: Option<&str>) -> Option<Ticketd> {
        let mut cmd = pennyblack();
        cmd.args(["ticketd", "serve", "--issuer", ISSUER])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--key")
            .arg(dir.join("ticket.key"));
        match pg {
            Some(url) => cmd.args(["--books", url]),
            None => cmd
                .arg("--books")
                .arg(dir.join("books.redb"))
                .arg("--spent")
                .arg(dir.join("spent.redb")),
        };
        let child = cmd
            .arg("--admin-token-file")
            .arg(dir.join("admin.token"))
            .args(["--price-bits", &PRICE.to_string(), "--lifetime", lifetime])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut t = Ticketd {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_owned(),
            port,
            lifetime: lifetime.to_owned(),
            pg: pg.map(str::to_owned),
        };
        // Answering on its port, its admin token written, and still running (something else
        // may answer on a port ticketd could not bind).
        let started = Instant::now();
        loop {
            if t.child.try_wait().unwrap().is_some() {
                return None;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && dir.join("admin.token").exists()
            {
                std::thread::sleep(Duration::from_millis(100));
                if t.child.try_wait().unwrap().is_some() {
                    return None;
                }
                return Some(t);
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "ticketd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn admin(&self, args: &[&str]) -> String {
        let out = pennyblack()
            .arg("ticketd")
            .args(args)
            .args(["--url", &self.url, "--admin-token-file"])
            .arg(self.dir.join("admin.token"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn account(&self, name: &str, role: &str) -> String {
        self.admin(&["account", name, "--role", role])
    }

    /// A receiver account that cancels for recipients at `domains`.
    pub fn receiver(&self, name: &str, domains: &[&str]) -> String {
        let mut args = vec!["account", name, "--role", "receiver"];
        for d in domains {
            args.extend(["--domain", d]);
        }
        self.admin(&args)
    }

    /// (status, JSON answer) of a request with `token`.
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(
            method,
            path,
            token,
            body.map(|b| b.to_string().into_bytes()),
        )
    }

    fn raw(&self, method: &str, path: &str, token: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let auth = format!("Bearer {token}");
        let resp = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            (_, Some(b)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(&b[..]),
            (_, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
        };
        let mut resp = match resp {
            Ok(r) => r,
            // The server may answer 413 and close before a too large body is all sent.
            Err(ureq::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return (413, Value::String(format!("connection closed: {e}")));
            }
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn balance(&self, token: &str) -> u64 {
        let (code, v) = self.call("GET", "/v1/balance", token, None);
        assert_eq!(code, 200, "{v}");
        v["balance"].as_u64().unwrap()
    }

    /// Buys `count` tickets paying with `stamps`; the (ticket, secret) pairs.
    fn buy(&self, token: &str, count: u64, stamps: &[String]) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/buy",
            token,
            Some(json!({ "count": count, "stamps": stamps })),
        )
    }

    /// Cancels `c` for `rcpt` and the message whose binding is `binding`, as `token`.
    fn cancel(&self, token: &str, c: &Carried, rcpt: &str, binding: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/cancel",
            token,
            Some(cancel_body(c, rcpt, binding)),
        )
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.kill();
        let dir = self.dir.clone();
        let lifetime = self.lifetime.clone();
        let pg = self.pg.clone();
        *self = Ticketd::start_on(&dir, &lifetime, self.port, pg.as_deref());
    }
}

impl Drop for Ticketd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Stamps paying for `account`'s tickets at the price.
fn stamps(account: &str, n: usize) -> Vec<String> {
    let resources: Vec<String> = (0..n).map(|_| format!("{account}@{ISSUER}")).collect();
    let out = pennyblack()
        .args(["mint", "--bits", &PRICE.to_string()])
        .args(&resources)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The bought tickets as (ticket, secret).
fn tickets(v: &Value) -> Vec<(Ticket, [u8; 32])> {
    use base64::Engine as _;
    v["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let ticket = Ticket::parse(t["ticket"].as_str().unwrap()).unwrap();
            let secret: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t["secret"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            (ticket, secret)
        })
        .collect()
}

fn cancel_body(c: &Carried, rcpt: &str, binding: &str) -> Value {
    json!({ "ticket": c.to_string(), "rcpt": rcpt, "binding": binding })
}

#[test]
fn buy_cancel_retry_refund_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&Ticketd::start(dir.path(), "30d"));
}

#[test]
#[ignore = "needs PostgreSQL: run `bash .ci/run`, which installs it"]
fn buy_cancel_retry_refund_and_refusals_on_postgresql() {
    let pg = crate::pg::Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    scenario(&Ticketd::start_on(
        dir.path(),
        "30d",
        free_port(),
        Some(&pg.url()),
    ));
}

/// Two instances on one PostgreSQL, each asked to cancel every ticket at once (for different
/// messages): exactly one of the two succeeds for each ticket; a stamp paid at one is refused
/// at the other.
#[test]
#[ignore = "needs PostgreSQL: run `bash .ci/run`, which installs it"]
fn two_instances_on_one_postgresql_race_and_one_wins() {
    let pg = crate::pg::Postgres::start();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Ticketd::start_on(d1.path(), "30d", free_port(), Some(&pg.url()));
    // The same issuer key on both instances.
    std::fs::copy(d1.path().join("ticket.key"), d2.path().join("ticket.key")).unwrap();
    let b = Ticketd::start_on(d2.path(), "30d", free_port(), Some(&pg.url()));
    let alice = a.account("alice", "sender");
    let mx1 = a.receiver("mx1", &["example.net"]);
    let paid = stamps("alice", 1);
    let (code, v) = a.buy(&alice, 1, &paid);
    assert_eq!(code, 200, "{v}");
    let (code, v) = b.buy(&alice, 1, &paid);
    assert_eq!(
        code, 409,
        "a stamp paid at one instance, again at the other: {v}"
    );
    a.admin(&["grant", "alice", "100"]);
    let (code, v) = b.buy(&alice, 100, &[]);
    assert_eq!(code, 200, "{v}");
    let bought = tickets(&v);
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for (t, secret) in &bought {
            for (d, binding) in [(&a, B_A), (&b, B_B)] {
                let (mx1, wins) = (&mx1, &wins);
                sc.spawn(move || {
                    let c = Carried::new(t.clone(), secret, "bob@example.net", binding).unwrap();
                    let (code, v) = d.cancel(mx1, &c, "bob@example.net", binding);
                    match code {
                        200 => {
                            wins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        409 => {}
                        _ => panic!("{code} {v}"),
                    }
                });
            }
        }
    });
    assert_eq!(
        wins.into_inner(),
        bought.len(),
        "exactly one cancel per ticket"
    );
}

fn scenario(d: &Ticketd) {
    let alice = d.account("alice", "sender");
    let mx1 = d.receiver("mx1", &["example.net"]);
    let mx2 = d.receiver("mx2", &["example.com"]);

    // Buy with work: two stamps pay for two tickets.
    let (code, v) = d.buy(&alice, 2, &stamps("alice", 2));
    assert_eq!(code, 200, "{v}");
    let bought = tickets(&v);
    assert_eq!(bought.len(), 2);
    assert_eq!(v["balance"], 0);
    // The tickets verify offline with the published key.
    let (_, wk) = d.call("GET", "/.well-known/pennyblack-tickets", "", None);
    let mut trusted = pennyblack::ticket::TrustedKeys::new();
    trusted
        .add_record(ISSUER, wk["keys"][0].as_str().unwrap())
        .unwrap();
    for (t, _) in &bought {
        t.verify(&trusted, pennyblack::unix_now()).unwrap();
    }
    // The same stamps again: refused, nothing issued.
    let again = stamps("alice", 1);
    let (code, _) = d.buy(&alice, 1, &again);
    assert_eq!(code, 200);
    let (code, v) = d.buy(&alice, 1, &again);
    assert_eq!(code, 409, "{v}");
    assert_eq!(d.balance(&alice), 0);
    // Stamps for another account, or too cheap: refused, nothing spent or issued.
    let (code, v) = d.buy(&alice, 1, &stamps("bob", 1));
    assert_eq!(code, 400, "{v}");
    // No payment and no balance: 402.
    let (code, v) = d.buy(&alice, 1, &[]);
    assert_eq!(code, 402, "{v}");

    // Cancel for bob and a message; a retry is answered the same; another use is refused.
    let (t, secret) = bought[0].clone();
    let c = Carried::new(t, &secret, "bob@example.net", B_1).unwrap();
    let (code, v) = d.cancel(&mx1, &c, "bob@example.net", B_1);
    assert_eq!((code, &v["repeat"]), (200, &json!(false)), "{v}");
    let (code, v) = d.cancel(&mx1, &c, "bob@example.net", B_1);
    assert_eq!((code, &v["repeat"]), (200, &json!(true)), "{v}");
    // The same ticket lifted into another message, or cancelled by another receiver: refused.
    let lifted = Carried::new(c.ticket.clone(), &secret, "bob@example.net", B_2).unwrap();
    let (code, v) = d.cancel(&mx1, &lifted, "bob@example.net", B_2);
    assert_eq!(code, 409, "{v}");
    // Another receiver (a co-recipient's, which reads the same ticket fields) cannot cancel
    // for a recipient outside its domains, used or not.
    let (code, v) = d.cancel(&mx2, &c, "bob@example.net", B_1);
    assert_eq!(code, 403, "{v}");
    let (t_fresh, s_fresh) = bought[1].clone();
    let fresh = Carried::new(t_fresh, &s_fresh, "bob@example.net", B_2).unwrap();
    let (code, v) = d.cancel(&mx2, &fresh, "bob@example.net", B_2);
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("domain"), "{v}");
    // A domain has one receiver: giving example.net to mx2 too is refused.
    let out = pennyblack()
        .args(["ticketd", "domain", "mx2", "example.net", "--url", &d.url])
        .arg("--admin-token-file")
        .arg(d.dir.join("admin.token"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another receiver"));

    // A ticket lifted from a Cc copy (proof for carol) cannot be cancelled for dave, nor for
    // another message, and a rewritten rcpt tag does not help.
    let (t2, secret2) = bought[1].clone();
    let cc = Carried::new(t2.clone(), &secret2, "carol@example.net", B_3).unwrap();
    let (code, v) = d.cancel(&mx1, &cc, "dave@example.net", B_3);
    assert_eq!(code, 403, "{v}");
    let (code, v) = d.cancel(&mx1, &cc, "carol@example.net", "bind-4");
    assert_eq!(code, 403, "{v}");
    let relabelled = Carried::parse(
        &cc.to_string()
            .replace("rcpt=carol@example.net", "rcpt=dave@example.net"),
    )
    .unwrap();
    let (code, v) = d.cancel(&mx1, &relabelled, "dave@example.net", B_3);
    assert_eq!(code, 403, "{v}");
    // A sender cannot cancel.
    let (code, _) = d.cancel(&alice, &cc, "carol@example.net", B_3);
    assert_eq!(code, 403);

    // Refund: a stranger refused, the canceller once.
    let serial = json!({ "serial": c.ticket.serial_text() });
    let (code, v) = d.call("POST", "/v1/refund", &mx2, Some(serial.clone()));
    assert_eq!(code, 403, "{v}");
    assert_eq!(d.balance(&alice), 0);
    let (code, v) = d.call("POST", "/v1/refund", &mx1, Some(serial.clone()));
    assert_eq!(code, 200, "{v}");
    assert_eq!(d.balance(&alice), 1);
    let (code, v) = d.call("POST", "/v1/refund", &mx1, Some(serial));
    assert_eq!(code, 409, "{v}");
    assert_eq!(d.balance(&alice), 1);
    // A refunded ticket is not cancelled again.
    let (code, _) = d.cancel(&mx1, &c, "bob@example.net", B_1);
    assert_eq!(code, 409);

    // A grant, then a purchase from the balance; the statement lists it all.
    assert_eq!(d.admin(&["grant", "alice", "3"]), "balance 4");
    let (code, v) = d.buy(&alice, 4, &[]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(d.balance(&alice), 0);
    let (_, st) = d.call("GET", "/v1/statement?limit=10", &alice, None);
    let kinds: Vec<&str> = st["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "issued", "grant", "refunded", "issued", "paid", "issued", "paid"
        ]
    );
    let (_, metrics) = d.raw("GET", "/metrics", "", None);
    let m = metrics.as_str().unwrap();
    assert!(m.contains("pennyblack_ticketd_cancels_total 1"), "{m}");
    assert!(m.contains("pennyblack_ticketd_refunds_total 1"), "{m}");
}

#[test]
fn hostile_requests_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Ticketd::start(dir.path(), "30d");
    let alice = d.account("alice", "sender");
    let mx1 = d.receiver("mx1", &["example.net"]);
    let (code, v) = d.buy(&alice, 1, &stamps("alice", 1));
    assert_eq!(code, 200, "{v}");
    let (t, secret) = tickets(&v).remove(0);
    let before = d.call("GET", "/v1/statement", &alice, None).1;
    let c = Carried::new(t.clone(), &secret, "bob@example.net", B_1).unwrap();
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("no token", "", b"{}".to_vec(), 401),
        ("bad token", "nope", b"{}".to_vec(), 401),
        ("malformed JSON", &mx1, b"{\"ticket\": ".to_vec(), 400),
        (
            "unknown field",
            &mx1,
            json!({"ticket": c.to_string(), "rcpt": "bob@example.net", "binding": B_1, "x": 1})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "not a ticket",
            &mx1,
            json!({"ticket": "v=PT1; nonsense", "rcpt": "bob@example.net", "binding": B_1})
                .to_string()
                .into_bytes(),
            400,
        ),
        ("oversized", &mx1, vec![b' '; 2 << 20], 413),
    ];
    for (what, token, body, want) in cases {
        let (code, v) = d.raw("POST", "/v1/cancel", token, Some(body));
        assert_eq!(code, want, "{what}: {v}");
        // The server may close before a too large body is all sent; an answer that arrived is
        // JSON like any other refusal.
        if !v
            .as_str()
            .is_some_and(|t| t.starts_with("connection closed"))
        {
            assert!(
                v["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: {v}"
            );
        }
    }
    // A statement query that does not parse (found by fuzz/fuzz_targets/ticket_requests.rs: it
    // was answered in plain text): 400 as JSON, after the token is checked.
    for q in [
        "limit",
        "limit=",
        "limit=abc",
        "limit=-1",
        "limit=99999999999999999999999",
    ] {
        let path = format!("/v1/statement?{q}");
        let (code, v) = d.call("GET", &path, &alice, None);
        assert_eq!(code, 400, "{q}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{q}: {v}"
        );
        let (code, v) = d.call("GET", &path, "nope", None);
        assert_eq!(code, 401, "{q}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{q}: {v}"
        );
    }
    // A ticket whose signature is not the issuer's: a forged expiry, another key.
    let forged = Carried::parse(&c.to_string().replacen(
        &format!("exp={}", t.expires),
        &format!("exp={}", t.expires + 1),
        1,
    ))
    .unwrap();
    let (code, v) = d.cancel(&mx1, &forged, "bob@example.net", B_1);
    assert_eq!(code, 403, "{v}");
    let other = pennyblack::ticket::Issuer::new(ISSUER, &t.kid, [7; 32], [7; 32]).unwrap();
    let (t2, s2) = other.issue(t.serial, t.expires);
    let fake = Carried::new(t2, &s2, "bob@example.net", B_1).unwrap();
    let (code, v) = d.cancel(&mx1, &fake, "bob@example.net", B_1);
    assert_eq!(code, 403, "{v}");
    // Buy with a malformed body or too many tickets.
    let (code, _) = d.raw("POST", "/v1/buy", &alice, Some(b"[1,2]".to_vec()));
    assert_eq!(code, 400);
    let (code, _) = d.buy(&alice, 1_000_000, &[]);
    assert_eq!(code, 400);
    // More tickets than the balance (0) and the stamps cover (found with the invariant of
    // fuzz/fuzz_targets/ticket_requests.rs: the stamp was spent and credited, then 402).
    let paid = stamps("alice", 1);
    let (code, v) = d.buy(&alice, 2, &paid);
    assert_eq!(code, 402, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert_eq!(d.balance(&alice), 0);
    // Nothing changed: the statement is the same and the ticket is still unused.
    assert_eq!(d.call("GET", "/v1/statement", &alice, None).1, before);
    let (code, v) = d.cancel(&mx1, &c, "bob@example.net", B_1);
    assert_eq!((code, &v["repeat"]), (200, &json!(false)), "{v}");
    // The stamp of the refused purchase was not spent: it still pays for a ticket.
    let (code, v) = d.buy(&alice, 1, &paid);
    assert_eq!(code, 200, "{v}");
}

#[test]
fn an_expired_ticket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = Ticketd::start(dir.path(), "1s");
    let alice = d.account("alice", "sender");
    let mx1 = d.receiver("mx1", &["example.net"]);
    let (code, v) = d.buy(&alice, 1, &stamps("alice", 1));
    assert_eq!(code, 200, "{v}");
    let (t, secret) = tickets(&v).remove(0);
    // Wait (not time) until the ticket's expiry has passed.
    while pennyblack::unix_now() <= t.expires {
        std::thread::sleep(Duration::from_millis(200));
    }
    let c = Carried::new(t, &secret, "bob@example.net", B_1).unwrap();
    let (code, v) = d.cancel(&mx1, &c, "bob@example.net", B_1);
    assert_eq!(code, 410, "{v}");
}

/// Cancels acknowledged before a SIGKILL are still there after a restart: each retried gets
/// `repeat: true`, and none can be used again.
#[test]
fn sigkill_during_cancels_loses_no_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Ticketd::start(dir.path(), "30d");
    let alice = d.account("alice", "sender");
    let mx1 = d.receiver("mx1", &["example.net"]);
    d.admin(&["grant", "alice", "200"]);
    let (code, v) = d.buy(&alice, 200, &[]);
    assert_eq!(code, 200, "{v}");
    let carried: Vec<Carried> = tickets(&v)
        .into_iter()
        .map(|(t, s)| Carried::new(t, &s, "bob@example.net", B_1).unwrap())
        .collect();
    // Cancels from 4 threads; the service is killed while they run.
    let acknowledged = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for chunk in carried.chunks(50) {
            let (d, mx1, ack) = (&d, &mx1, &acknowledged);
            sc.spawn(move || {
                for c in chunk {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let r = agent
                        .post(&format!("{}/v1/cancel", d.url))
                        .header("Authorization", &format!("Bearer {mx1}"))
                        .send_json(cancel_body(c, "bob@example.net", B_1));
                    match r {
                        Ok(resp) if resp.status() == 200 => ack.lock().unwrap().push(c.clone()),
                        _ => return, // the service is gone
                    }
                }
            });
        }
        // Kill once some cancels were acknowledged.
        while acknowledged.lock().unwrap().len() < 20 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let pid = d.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() >= 20);
    d.restart();
    for c in &acknowledged {
        let (code, v) = d.cancel(&mx1, c, "bob@example.net", B_1);
        assert_eq!((code, &v["repeat"]), (200, &json!(true)), "{v}");
        let (code, _) = d.cancel(&mx1, c, "carol@example.net", B_1);
        assert_ne!(code, 200);
    }
}
