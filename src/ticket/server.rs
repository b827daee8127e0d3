//! `ticketd`, the ticket service (issue 20): HTTP with JSON bodies (axum on tokio), behind a
//! TLS-terminating proxy or on loopback. Senders buy tickets with proof of work (stamps minted
//! for `ACCOUNT@ISSUER` at the announced price, each spent once in the server's own spent
//! store) or from credits an operator granted; receivers cancel the tickets of the mail they
//! receive (bound to the recipient and the message by the ticket's proof) and refund the
//! wanted ones. Every request is authenticated with a bearer token that an admin command made;
//! the books keep only the token's SHA-256.
//!
//! | method and path | who | body | answer |
//! | --- | --- | --- | --- |
//! | `GET /.well-known/pennyblack-tickets` | anyone | | issuer, key records, price |
//! | `POST /v1/buy` | sender | `{"count": N, "stamps": [...]}` | `{"tickets": [{"ticket", "secret"}], "balance"}` |
//! | `POST /v1/cancel` | receiver | `{"ticket": CARRIED, "rcpt", "binding"}` | `{"result": "cancelled", "repeat": bool}` |
//! | `POST /v1/refund` | receiver | `{"serial"}` | `{"result": "refunded"}` |
//! | `GET /v1/balance` | any account | | `{"account", "role", "balance"}` |
//! | `GET /v1/statement?limit=N` | any account | | `{"operations": [...]}` |
//! | `GET /metrics` | anyone | | Prometheus text |
//! | `POST /v1/admin/account` | admin | `{"name", "role"}` | `{"token"}` (shown once) |
//! | `POST /v1/admin/grant` | admin | `{"account", "count"}` | `{"balance"}` |
//! | `POST /v1/admin/domain` | admin | `{"account", "domain"}` | `{"account", "domain"}` (the receiver cancelling for it) |
//! | `POST /v1/admin/purge` | admin | | `{"purged"}` (unused expired tickets) |
//!
//! Errors are `{"error": TEXT}` with a status: 400 malformed, 401 no or unknown token, 402
//! balance too low, 403 wrong role or a proof that does not bind, 404 unknown ticket, 409
//! already used (or a replayed stamp), 410 expired, 413 too large, 500 the books failed. A
//! refused request changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;

use super::store::{Cancel, OperationKind, Refund, Role, TicketStore};
use super::{Carried, Issuer, TicketError, TrustedKeys};
use crate::{Policy, SpentStore, Verifier};

/// The largest request body read: 1 MiB (a purchase of [`MAX_BUY`] stamps fits).
pub const MAX_BODY: usize = 1 << 20;
/// The most tickets one purchase may ask for.
pub const MAX_BUY: u64 = 1000;
/// The most operations a statement returns.
pub const MAX_STATEMENT: usize = 1000;

/// What the service needs.
pub struct Service {
    /// The signing side: name, key, ticket secret.
    pub issuer: Issuer,
    /// The books.
    pub books: Arc<dyn TicketStore>,
    /// The stamps paid with, each spent once.
    pub spent: Arc<dyn SpentStore>,
    /// The price of one ticket in bits of a hash-family stamp (`check --min-bits`).
    pub price_bits: u32,
    /// How long a ticket is valid after its purchase.
    pub lifetime: Duration,
    /// SHA-256 of the admin token (`/v1/admin/...`); `None` turns the admin routes off.
    pub admin_token_hash: Option<[u8; 32]>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
}

/// Counters served at `/metrics`.
#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    refused: AtomicU64,
    issued: AtomicU64,
    paid_stamps: AtomicU64,
    cancelled: AtomicU64,
    cancel_repeats: AtomicU64,
    refunded: AtomicU64,
}

type Shared = Arc<Service>;

/// The service's routes.
pub fn router(service: Shared) -> Router {
    Router::new()
        .route("/.well-known/pennyblack-tickets", get(well_known))
        .route("/v1/buy", post(buy))
        .route("/v1/cancel", post(cancel))
        .route("/v1/refund", post(refund))
        .route("/v1/balance", get(balance))
        .route("/v1/statement", get(statement))
        .route("/metrics", get(metrics))
        .route("/v1/admin/account", post(admin_account))
        .route("/v1/admin/grant", post(admin_grant))
        .route("/v1/admin/domain", post(admin_domain))
        .route("/v1/admin/purge", post(admin_purge))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(service)
}

/// Serves `service` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A refusal: status and text, as JSON.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

fn refuse(code: StatusCode, text: impl Into<String>) -> Refusal {
    Refusal(code, text.into())
}

type Answer = Result<Response, Refusal>;

fn ok(v: serde_json::Value) -> Answer {
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}

/// SHA-256 of a bearer token: what the books keep.
pub fn token_hash(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// A new random bearer token (32 bytes, base64url).
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's random source");
    B64.encode(b)
}

fn now() -> i64 {
    crate::clock::unix_now()
}

/// Runs a blocking books operation off the async workers.
async fn books<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, super::store::BooksError> + Send + 'static,
) -> Result<T, Refusal> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(super::store::BooksError::NoAccount { .. })) => {
            Err(refuse(StatusCode::FORBIDDEN, "no account of that role"))
        }
        Ok(Err(super::store::BooksError::Insufficient { balance, asked })) => Err(refuse(
            StatusCode::PAYMENT_REQUIRED,
            format!("balance {balance} does not cover {asked} ticket(s)"),
        )),
        Ok(Err(e)) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The account behind the request's bearer token, of `role` when given.
async fn account(
    s: &Shared,
    headers: &HeaderMap,
    role: Option<Role>,
) -> Result<super::store::Account, Refusal> {
    s.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "no bearer token"))?;
    let hash = token_hash(token.trim());
    let b = Arc::clone(&s.books);
    let acct = books(move || b.account_by_token(&hash))
        .await?
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "unknown token"))?;
    if role.is_some_and(|r| r != acct.role) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("a {:?} account cannot do this", acct.role),
        ));
    }
    Ok(acct)
}

/// A request body as read: axum's refusals (too large, unreadable) are answered as JSON too.
type Body = Result<Bytes, BytesRejection>;

fn parse_json<T: for<'de> Deserialize<'de>>(body: &Body) -> Result<T, Refusal> {
    let body = body
        .as_ref()
        .map_err(|e| refuse(e.status(), e.body_text()))?;
    serde_json::from_slice(body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("malformed request: {e}")))
}

fn counted<T>(s: &Shared, r: Result<T, Refusal>) -> Result<T, Refusal> {
    if r.is_err() {
        s.metrics.refused.fetch_add(1, Ordering::Relaxed);
    }
    r
}

async fn well_known(State(s): State<Shared>) -> Response {
    axum::Json(json!({
        "issuer": s.issuer.name,
        "keys": [s.issuer.key_record()],
        "price": {
            "bits": s.price_bits,
            "resource": format!("ACCOUNT@{}", s.issuer.name),
            "algorithms": ["sha256", "blake3", "sha1"],
        },
        "lifetime_seconds": s.lifetime.as_secs(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuyRequest {
    count: u64,
    #[serde(default)]
    stamps: Vec<String>,
}

async fn buy(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let r = buy_inner(&s, &headers, &body).await;
    counted(&s, r)
}

async fn buy_inner(s: &Shared, headers: &HeaderMap, body: &Body) -> Answer {
    let acct = account(s, headers, Some(Role::Sender)).await?;
    let req: BuyRequest = parse_json(body)?;
    if req.count == 0 || req.count > MAX_BUY || req.stamps.len() as u64 > MAX_BUY {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("count and stamps must be 1 to {MAX_BUY}"),
        ));
    }
    // A purchase the balance and the stamps cannot cover is refused before any stamp is spent
    // (a refused request changes nothing). Only a purchase racing another by the same sender
    // can still pass this and be refused below, its stamps then kept as credit.
    let covered = acct.balance.saturating_add(req.stamps.len() as u64);
    if covered < req.count {
        return Err(refuse(
            StatusCode::PAYMENT_REQUIRED,
            format!(
                "balance {} and {} stamp(s) do not cover {} ticket(s)",
                acct.balance,
                req.stamps.len(),
                req.count
            ),
        ));
    }
    // Every stamp checked before any is spent; then all spent at once or none.
    let resource = format!("{}@{}", acct.name, s.issuer.name);
    let spent = Arc::clone(&s.spent);
    let bits = s.price_bits;
    let stamps = req.stamps;
    let paid = tokio::task::spawn_blocking(move || -> Result<u64, Refusal> {
        if stamps.is_empty() {
            return Ok(0);
        }
        let policy = Policy::new(bits, [resource.clone()]);
        let verifier = Verifier::new(policy).with_store(spent);
        let pending: Vec<_> = stamps
            .iter()
            .map(|t| verifier.check_pending(t, None))
            .collect();
        for (i, p) in pending.iter().enumerate() {
            if let Err(e) = p.verdict().result() {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("stamp {i}: {e} (the price is {bits} bits for {resource})"),
                ));
            }
        }
        let (verdicts, recorded) = verifier
            .record_if_all_fresh(pending)
            .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if !recorded {
            let i = verdicts.iter().position(|v| !v.is_valid()).unwrap_or(0);
            return Err(refuse(
                StatusCode::CONFLICT,
                format!("stamp {i} was spent before; nothing was spent"),
            ));
        }
        Ok(verdicts.len() as u64)
    })
    .await
    .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let now = now();
    if paid > 0 {
        s.metrics.paid_stamps.fetch_add(paid, Ordering::Relaxed);
        let (b, name) = (Arc::clone(&s.books), acct.name.clone());
        books(move || b.credit(&name, paid, OperationKind::Paid, now)).await?;
    }
    let mut serials = Vec::with_capacity(req.count as usize);
    for _ in 0..req.count {
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).expect("the system's random source");
        serials.push(serial);
    }
    let expires = now + s.lifetime.as_secs() as i64;
    let (b, name, ser) = (Arc::clone(&s.books), acct.name.clone(), serials.clone());
    let balance = books(move || b.issue(&name, &ser, expires, now)).await?;
    s.metrics.issued.fetch_add(req.count, Ordering::Relaxed);
    let tickets: Vec<_> = serials
        .iter()
        .map(|serial| {
            let (t, secret) = s.issuer.issue(*serial, expires);
            json!({ "ticket": t.to_string(), "secret": B64.encode(secret) })
        })
        .collect();
    ok(json!({ "tickets": tickets, "balance": balance }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    ticket: String,
    rcpt: String,
    binding: String,
}

/// The key under which a cancel is recorded: the recipient and the message.
pub fn use_key(rcpt: &str, binding: &str) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(crate::bind::normalize_address(rcpt).as_bytes());
    h.update([0]);
    h.update(binding.as_bytes());
    h.finalize().into()
}

async fn cancel(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let r = cancel_inner(&s, &headers, &body).await;
    counted(&s, r)
}

async fn cancel_inner(s: &Shared, headers: &HeaderMap, body: &Body) -> Answer {
    let acct = account(s, headers, Some(Role::Receiver)).await?;
    let req: CancelRequest = parse_json(body)?;
    if req.binding.len() > 512 {
        return Err(refuse(StatusCode::BAD_REQUEST, "binding too long"));
    }
    let carried =
        Carried::parse(&req.ticket).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let mut mine = TrustedKeys::new();
    mine.add(&s.issuer.name, &s.issuer.kid, s.issuer.public_key());
    let now = now();
    match carried.ticket.verify(&mine, now) {
        Ok(()) => {}
        Err(TicketError::Expired(t)) => {
            return Err(refuse(
                StatusCode::GONE,
                format!("the ticket expired at {t}"),
            ));
        }
        Err(e) => return Err(refuse(StatusCode::FORBIDDEN, e.to_string())),
    }
    // Only the receiver of the recipient's domain cancels: every recipient of a message reads
    // every ticket field on it, so any other receiver could otherwise cancel a co-recipient's
    // ticket first and have the message refused (review 20).
    let domain = req.rcpt.rsplit_once('@').map_or("", |(_, d)| d).to_owned();
    let b = Arc::clone(&s.books);
    let owner = books(move || b.domain_owner(&domain)).await?;
    if owner.as_deref() != Some(acct.name.as_str()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "this account does not receive mail for the recipient's domain",
        ));
    }
    let secret = s.issuer.ticket_secret(&carried.ticket.serial);
    carried
        .check_proof(&secret, &req.rcpt, &req.binding)
        .map_err(|e| refuse(StatusCode::FORBIDDEN, e.to_string()))?;
    let key = use_key(&req.rcpt, &req.binding);
    let (b, name, serial) = (Arc::clone(&s.books), acct.name, carried.ticket.serial);
    let outcome = books(move || b.cancel(&name, &serial, &key, now)).await?;
    match outcome {
        Cancel::Cancelled => {
            s.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            ok(json!({ "result": "cancelled", "repeat": false, "serial": B64.encode(serial) }))
        }
        Cancel::AlreadyCancelledSame => {
            s.metrics.cancel_repeats.fetch_add(1, Ordering::Relaxed);
            ok(json!({ "result": "cancelled", "repeat": true, "serial": B64.encode(serial) }))
        }
        Cancel::Used => Err(refuse(StatusCode::CONFLICT, "the ticket was used already")),
        Cancel::Expired => Err(refuse(StatusCode::GONE, "the ticket expired")),
        _ => Err(refuse(StatusCode::NOT_FOUND, "no such ticket")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    serial: String,
}

async fn refund(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let r = refund_inner(&s, &headers, &body).await;
    counted(&s, r)
}

async fn refund_inner(s: &Shared, headers: &HeaderMap, body: &Body) -> Answer {
    let acct = account(s, headers, Some(Role::Receiver)).await?;
    let req: RefundRequest = parse_json(body)?;
    let serial: [u8; 16] = B64
        .decode(&req.serial)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "not a serial"))?;
    let (b, name) = (Arc::clone(&s.books), acct.name);
    match books(move || b.refund(&name, &serial, now())).await? {
        Refund::Refunded => {
            s.metrics.refunded.fetch_add(1, Ordering::Relaxed);
            ok(json!({ "result": "refunded" }))
        }
        Refund::AlreadyRefunded => Err(refuse(StatusCode::CONFLICT, "refunded already")),
        Refund::NotYours => Err(refuse(
            StatusCode::FORBIDDEN,
            "only the receiver that cancelled the ticket may refund it",
        )),
        _ => Err(refuse(StatusCode::NOT_FOUND, "no such ticket")),
    }
}

async fn balance(State(s): State<Shared>, headers: HeaderMap) -> Answer {
    let r = async {
        let acct = account(&s, &headers, None).await?;
        ok(json!({
            "account": acct.name,
            "role": format!("{:?}", acct.role).to_lowercase(),
            "balance": acct.balance,
        }))
    }
    .await;
    counted(&s, r)
}

#[derive(Deserialize)]
struct StatementQuery {
    limit: Option<usize>,
}

async fn statement(
    State(s): State<Shared>,
    headers: HeaderMap,
    q: Result<Query<StatementQuery>, QueryRejection>,
) -> Answer {
    let r = async {
        let acct = account(&s, &headers, None).await?;
        // A query string that does not parse is refused as JSON, as every other refusal is
        // (axum's own rejection is plain text).
        let Query(q) = q.map_err(|e| refuse(StatusCode::BAD_REQUEST, e.body_text()))?;
        let limit = q.limit.unwrap_or(100).min(MAX_STATEMENT);
        let (b, name) = (Arc::clone(&s.books), acct.name);
        let ops = books(move || b.statement(&name, limit)).await?;
        let ops: Vec<_> = ops
            .iter()
            .map(|o| {
                json!({
                    "seq": o.seq,
                    "at": o.at,
                    "kind": format!("{:?}", o.kind).to_lowercase(),
                    "count": o.count,
                    "serial": o.serial.map(|s| B64.encode(s)),
                })
            })
            .collect();
        ok(json!({ "operations": ops }))
    }
    .await;
    counted(&s, r)
}

async fn metrics(State(s): State<Shared>) -> Response {
    let m = &s.metrics;
    let line = |name: &str, help: &str, v: &AtomicU64| {
        format!(
            "# HELP pennyblack_ticketd_{name} {help}\n# TYPE pennyblack_ticketd_{name} counter\npennyblack_ticketd_{name} {}\n",
            v.load(Ordering::Relaxed)
        )
    };
    let text = [
        line("requests_total", "Authenticated API requests.", &m.requests),
        line(
            "refused_total",
            "Requests refused (any 4xx or 5xx).",
            &m.refused,
        ),
        line("tickets_issued_total", "Tickets issued.", &m.issued),
        line(
            "stamps_paid_total",
            "Stamps accepted as payment.",
            &m.paid_stamps,
        ),
        line("cancels_total", "Tickets cancelled.", &m.cancelled),
        line(
            "cancel_repeats_total",
            "Cancels retried (answered again).",
            &m.cancel_repeats,
        ),
        line("refunds_total", "Tickets refunded.", &m.refunded),
    ]
    .concat();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Checks the admin bearer token (in constant time).
fn admin(s: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    s.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let Some(want) = s.admin_token_hash else {
        return Err(refuse(StatusCode::NOT_FOUND, "no admin token configured"));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "no bearer token"))?;
    let got = token_hash(token.trim());
    if bool::from(subtle::ConstantTimeEq::ct_eq(&got[..], &want[..])) {
        Ok(())
    } else {
        Err(refuse(StatusCode::UNAUTHORIZED, "not the admin token"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountRequest {
    name: String,
    role: String,
}

async fn admin_account(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let r = async {
        admin(&s, &headers)?;
        let req: AccountRequest = parse_json(&body)?;
        let role = match req.role.as_str() {
            "sender" => Role::Sender,
            "receiver" => Role::Receiver,
            _ => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "role is sender or receiver",
                ));
            }
        };
        if !account_name_ok(&req.name) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "an account name is 1 to 64 letters, digits, '.', '-' or '_'",
            ));
        }
        let token = new_token();
        let hash = token_hash(&token);
        let b = Arc::clone(&s.books);
        let name = req.name.clone();
        match tokio::task::spawn_blocking(move || b.create_account(&name, role, hash)).await {
            Ok(Ok(())) => ok(json!({ "account": req.name, "token": token })),
            Ok(Err(super::store::BooksError::Exists(n))) => Err(refuse(
                StatusCode::CONFLICT,
                format!("account {n:?} exists already"),
            )),
            Ok(Err(e)) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            Err(e) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    }
    .await;
    counted(&s, r)
}

/// Account names: what a stamp's resource (`ACCOUNT@ISSUER`) can carry.
pub fn account_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainRequest {
    account: String,
    domain: String,
}

async fn admin_domain(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let r = async {
        admin(&s, &headers)?;
        let req: DomainRequest = parse_json(&body)?;
        let Some(domain) = super::store::domain_key(&req.domain) else {
            return Err(refuse(StatusCode::BAD_REQUEST, "not a domain name"));
        };
        let (b, name, d) = (Arc::clone(&s.books), req.account.clone(), domain.clone());
        match tokio::task::spawn_blocking(move || b.add_domain(&name, &d)).await {
            Ok(Ok(())) => ok(json!({ "account": req.account, "domain": domain })),
            Ok(Err(super::store::BooksError::Exists(d))) => Err(refuse(
                StatusCode::CONFLICT,
                format!("{d} is another receiver's domain"),
            )),
            Ok(Err(super::store::BooksError::NoAccount { .. })) => Err(refuse(
                StatusCode::NOT_FOUND,
                "no receiver account of that name",
            )),
            Ok(Err(e)) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            Err(e) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    }
    .await;
    counted(&s, r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    account: String,
    count: u64,
}

async fn admin_grant(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let r = async {
        admin(&s, &headers)?;
        let req: GrantRequest = parse_json(&body)?;
        if req.count == 0 || req.count > 1_000_000 {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "count must be 1 to 1000000",
            ));
        }
        let b = Arc::clone(&s.books);
        let balance =
            books(move || b.credit(&req.account, req.count, OperationKind::Grant, now())).await?;
        ok(json!({ "balance": balance }))
    }
    .await;
    counted(&s, r)
}

async fn admin_purge(State(s): State<Shared>, headers: HeaderMap) -> Answer {
    let r = async {
        admin(&s, &headers)?;
        let b = Arc::clone(&s.books);
        let purged = books(move || b.purge_expired(now())).await?;
        ok(json!({ "purged": purged }))
    }
    .await;
    counted(&s, r)
}
