//! The ticket service's requests (`ticketd`, src/ticket/server.rs) through its real router and
//! handlers, on real books (a redb file) and a memory spent store, set up once.
//!
//! Input: byte 0 picks the route (and its method), byte 1 the credential, the rest is the body
//! (for `/v1/statement`, the query string). Placeholders in the body are replaced by what the
//! fuzzer cannot forge: `$S` a fresh stamp paying for the current sender's tickets, `$P` a stamp
//! spent already, `$T` a fresh ticket (issued now) carried for `bob@example.net` and binding `$B`,
//! `$0`..`$3` the same for four tickets issued at the start (used up as the run goes on), `$4` an
//! expired one, `$a`..`$e` their serials, `$U` the serial of a fresh ticket `mx1` cancelled,
//! `$A` the current sender's name.
//!
//! Asserted for every input: no panic; no 5xx; every non-2xx answer is 4xx with the JSON body
//! `{"error": TEXT}` (TEXT not empty) and nothing else; every 2xx answer of the API is JSON; and a
//! refused request changes nothing: the balance and latest statement lines of every account it
//! could touch, and the number of spent stamps, are the same before and after it.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use pennyblack::ticket::server::{Metrics, Service, router, token_hash};
use pennyblack::ticket::store::{FileTicketStore, OperationKind, Role, TicketStore};
use pennyblack::ticket::{Carried, Issuer};
use pennyblack::{MemoryStore, MintRequest, Minter, SpentStore};
use tower::ServiceExt as _;

const ISSUER: &str = "tickets.example.org";
const PRICE: u32 = 4;
const RCPT: &str = "bob@example.net";
const BINDING: &str = "_AAAAAAAAAAAAAAAAAAAAAQ";
const ADMIN: &str = "admin-token";
const RECEIVERS: [(&str, &str); 2] = [("mx1", "mx1-token"), ("mx2", "mx2-token")];
/// The sender whose tickets `$0`..`$4` are.
const FIRST_SENDER: &str = "alice";
/// A sender whose balance passed this is replaced by a fresh one, so that a purchase larger
/// than the balance stays within reach of the fuzzer's counts.
const ROTATE_ABOVE: u64 = 20;
/// Fresh stamps and tickets made for one input, at most.
const MAX_FRESH: usize = 4;

const ROUTES: [(&Method, &str); 11] = [
    (&Method::POST, "/v1/buy"),
    (&Method::POST, "/v1/cancel"),
    (&Method::POST, "/v1/refund"),
    (&Method::GET, "/v1/balance"),
    (&Method::GET, "/v1/statement"),
    (&Method::POST, "/v1/admin/account"),
    (&Method::POST, "/v1/admin/grant"),
    (&Method::POST, "/v1/admin/purge"),
    (&Method::GET, "/.well-known/pennyblack-tickets"),
    (&Method::GET, "/metrics"),
    (&Method::POST, "/v1/admin/domain"),
];

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    issuer: Issuer,
    books: Arc<dyn TicketStore>,
    spent: Arc<MemoryStore>,
    minter: Minter,
    /// Carried tickets `$0`..`$4` and their serials.
    fixed: Vec<(String, [u8; 16])>,
    /// A stamp spent at the start.
    spent_stamp: String,
    /// The current sender: (name, token, number).
    sender: Mutex<(String, String, u64)>,
}

fn now() -> i64 {
    pennyblack::unix_now()
}

fn serial() -> [u8; 16] {
    let mut s = [0u8; 16];
    getrandom::fill(&mut s).unwrap();
    s
}

impl World {
    fn new() -> World {
        // The books in a file unlinked at once (redb keeps it open): nothing is left behind.
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!(
            "pennyblack-fuzz-ticket-requests-{}.redb",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let books: Arc<dyn TicketStore> = Arc::new(FileTicketStore::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let spent = Arc::new(MemoryStore::new());
        let issuer = Issuer::new(ISSUER, "k1", [1; 32], [2; 32]).unwrap();
        let minter = Minter::new().threads(1);
        books
            .create_account(FIRST_SENDER, Role::Sender, token_hash("sender-token-0"))
            .unwrap();
        for ((name, token), domain) in RECEIVERS.into_iter().zip(["example.net", "example.com"]) {
            books
                .create_account(name, Role::Receiver, token_hash(token))
                .unwrap();
            books.add_domain(name, domain).unwrap();
        }
        books
            .credit(FIRST_SENDER, 7, OperationKind::Grant, now())
            .unwrap();
        let mut fixed = Vec::new();
        for i in 0..5 {
            let s = serial();
            // The last one expired a minute ago.
            let expires = if i == 4 { now() - 60 } else { now() + 86400 };
            books.issue(FIRST_SENDER, &[s], expires, now()).unwrap();
            let (t, secret) = issuer.issue(s, expires);
            fixed.push((
                Carried::new(t, &secret, RCPT, BINDING).unwrap().to_string(),
                s,
            ));
        }
        let service = Arc::new(Service {
            issuer: Issuer::new(ISSUER, "k1", [1; 32], [2; 32]).unwrap(),
            books: Arc::clone(&books),
            spent: Arc::clone(&spent) as Arc<dyn SpentStore>,
            price_bits: PRICE,
            lifetime: Duration::from_secs(86400),
            admin_token_hash: Some(token_hash(ADMIN)),
            metrics: Metrics::default(),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut w = World {
            rt,
            app: router(service),
            issuer,
            books,
            spent,
            minter,
            fixed,
            spent_stamp: String::new(),
            sender: Mutex::new((FIRST_SENDER.to_owned(), "sender-token-0".to_owned(), 0)),
        };
        // A stamp spent on a purchase through the service.
        let stamp = w.stamp(FIRST_SENDER);
        let body = format!(r#"{{"count": 1, "stamps": ["{stamp}"]}}"#);
        let (status, _) = w.call(
            Method::POST,
            "/v1/buy",
            Some("Bearer sender-token-0"),
            body.into_bytes(),
        );
        assert_eq!(status, 200);
        w.spent_stamp = stamp;
        w
    }

    fn stamp(&self, account: &str) -> String {
        let req = MintRequest::new(format!("{account}@{ISSUER}")).bits(PRICE);
        self.minter.mint(&req).unwrap().to_string()
    }

    /// The current sender, replaced by a fresh one when its balance grew past [`ROTATE_ABOVE`].
    fn sender(&self) -> (String, String) {
        let mut s = self.sender.lock().unwrap();
        let balance = self.books.account(&s.0).unwrap().unwrap().balance;
        if balance > ROTATE_ABOVE {
            s.2 += 1;
            let (name, token) = (
                format!("{FIRST_SENDER}-{}", s.2),
                format!("sender-token-{}", s.2),
            );
            self.books
                .create_account(&name, Role::Sender, token_hash(&token))
                .unwrap();
            self.books
                .credit(&name, 2, OperationKind::Grant, now())
                .unwrap();
            *s = (name, token, s.2);
        }
        (s.0.clone(), s.1.clone())
    }

    /// A ticket issued now to `sender` (paid with a grant): its carried form and serial.
    fn fresh_ticket(&self, sender: &str) -> (String, [u8; 16]) {
        let s = serial();
        let expires = now() + 86400;
        self.books
            .credit(sender, 1, OperationKind::Grant, now())
            .unwrap();
        self.books.issue(sender, &[s], expires, now()).unwrap();
        let (t, secret) = self.issuer.issue(s, expires);
        (
            Carried::new(t, &secret, RCPT, BINDING).unwrap().to_string(),
            s,
        )
    }

    /// (status, body) of one request.
    fn call(&self, method: Method, uri: &str, auth: Option<&str>, body: Vec<u8>) -> (u16, Vec<u8>) {
        self.call_with(method, uri, auth.map(|a| a.as_bytes().to_vec()), body)
            .unwrap()
    }

    fn call_with(
        &self,
        method: Method,
        uri: &str,
        auth: Option<Vec<u8>>,
        body: Vec<u8>,
    ) -> Option<(u16, Vec<u8>)> {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            req = req.header(
                header::AUTHORIZATION,
                header::HeaderValue::from_bytes(&a).ok()?,
            );
        }
        let req = req.body(Body::from(body)).ok()?;
        let app = self.app.clone();
        Some(self.rt.block_on(async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, body.to_vec())
        }))
    }

    /// What a refused request must leave as it was.
    fn snapshot(&self, senders: &[&str]) -> String {
        let mut out = format!("spent {}\n", self.spent.len().unwrap());
        for name in senders.iter().copied().chain(RECEIVERS.iter().map(|r| r.0)) {
            let acct = self.books.account(name).unwrap();
            let ops = self.books.statement(name, 3).unwrap();
            out.push_str(&format!("{name}: {acct:?} {ops:?}\n"));
        }
        out
    }
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(World::new)
}

fuzz_target!(|data: &[u8]| {
    let [route, cred, body @ ..] = data else {
        return;
    };
    let w = world();
    let (method, path) = ROUTES[*route as usize % ROUTES.len()];
    let (sender, sender_token) = w.sender();
    let auth: Option<Vec<u8>> = match cred % 8 {
        0 => None,
        1 => Some(format!("Bearer {sender_token}").into_bytes()),
        2 => Some(format!("Bearer {}", RECEIVERS[0].1).into_bytes()),
        3 => Some(format!("Bearer {}", RECEIVERS[1].1).into_bytes()),
        4 => Some(format!("Bearer {ADMIN}").into_bytes()),
        5 => Some(b"Bearer not-a-token".to_vec()),
        6 => Some(format!("Basic {sender_token}").into_bytes()),
        _ => Some(b"Bearer \xff\xfe".to_vec()),
    };

    // The placeholders.
    let mut expanded = Vec::with_capacity(body.len());
    let mut fresh = 0;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        let next = body.get(i + 1).copied();
        i += 2;
        let text = match (b, next) {
            (b'$', Some(c @ (b'S' | b'T' | b'U'))) => {
                if fresh == MAX_FRESH {
                    continue;
                }
                fresh += 1;
                match c {
                    b'S' => w.stamp(&sender),
                    b'T' => w.fresh_ticket(&sender).0,
                    _ => {
                        let (_, s) = w.fresh_ticket(&sender);
                        let key = pennyblack::ticket::server::use_key(RCPT, BINDING);
                        w.books.cancel(RECEIVERS[0].0, &s, &key, now()).unwrap();
                        B64.encode(s)
                    }
                }
            }
            (b'$', Some(c @ b'0'..=b'4')) => w.fixed[(c - b'0') as usize].0.clone(),
            (b'$', Some(c @ b'a'..=b'e')) => B64.encode(w.fixed[(c - b'a') as usize].1),
            (b'$', Some(b'P')) => w.spent_stamp.clone(),
            (b'$', Some(b'A')) => sender.clone(),
            _ => {
                expanded.push(b);
                i -= 1;
                continue;
            }
        };
        expanded.extend_from_slice(text.as_bytes());
    }

    let (uri, body) = if *path == *"/v1/statement" && !expanded.is_empty() {
        // The body is the query string.
        let Ok(q) = std::str::from_utf8(&expanded) else {
            return;
        };
        (format!("{path}?{q}"), Vec::new())
    } else {
        (path.to_owned(), expanded)
    };
    let before = w.snapshot(&[FIRST_SENDER, &sender]);
    let Some((status, answer)) = w.call_with(method.clone(), &uri, auth, body) else {
        return; // not a request http can carry (a URI or header value it refuses)
    };
    let text = String::from_utf8_lossy(&answer);
    assert!(status < 500, "{method} {uri}: status {status}: {text}");
    if (200..300).contains(&status) {
        if *path != *"/metrics" {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&answer).is_ok(),
                "{method} {uri}: {status} with a body that is not JSON: {text}"
            );
        }
        return;
    }
    assert!(
        (400..500).contains(&status),
        "{method} {uri}: status {status}: {text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_else(|e| {
        panic!("{method} {uri}: {status} with a body that is not JSON ({e}): {text}")
    });
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{method} {uri}: {status}: {text}"));
    assert!(
        obj.len() == 1
            && obj
                .get("error")
                .and_then(|e| e.as_str())
                .is_some_and(|e| !e.is_empty()),
        "{method} {uri}: {status}: not {{\"error\": TEXT}}: {text}"
    );
    let after = w.snapshot(&[FIRST_SENDER, &sender]);
    assert_eq!(
        before, after,
        "{method} {uri}: refused with {status} ({text}) but the books or spent stamps changed"
    );
});
