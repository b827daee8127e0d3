//! A mail filter for Postfix and Sendmail (the milter protocol, spoken by `miltr-server`).
//!
//! Per message the filter either stamps and signs (outbound: a SASL-authenticated sender or a
//! client in an internal network, optionally narrowed to the MTA daemons named as originating)
//! or checks (everything else), with the same library calls as the `stamp` and `check` commands:
//! [`message::stamp_fields`](crate::message::stamp_fields) and
//! [`message::check_message`](crate::message::check_message).
//!
//! Failure policy: a stamp that cannot be minted within [`Outbound::timeout`] (slots busy, or the
//! work too slow) lets the message through unstamped (still signed) and says so in the log;
//! the filter never holds mail back for its own sake. Inbound, every `Authentication-Results`
//! field claiming our authserv-id is removed on every path, and our verdict fields are always
//! added: `permerror` for a message too large or unreadable, `temperror` when a check failed
//! (with a rejection policy such a message is refused or tempfailed instead).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ipnet::IpNet;
use miltr_common::actions::{Action, Continue, Replycode};
use miltr_common::commands::{Body, Connect, Header, Macro, Mail, Recipient};
use miltr_common::modifications::headers::{ChangeHeader, InsertHeader};
use miltr_common::modifications::{ModificationResponse, ModificationResponseBuilder};
use miltr_common::optneg::{Capability, OptNeg, Protocol};
use tokio::sync::Semaphore;

use crate::dkim::{self, Canon, KeyLookup, SignRequest, SigningKey};
use crate::mail::{Eol, Message};
use crate::message::{CheckLimits, Outcome, check_message_if, sign_fields, stamp_fields};
use crate::verify::{Policy, ResourcePattern, Verifier};
use crate::{MintRequest, Minter, SpentStore};

mod serve;
pub use serve::{Listen, serve};

/// What the filter does with outbound mail.
pub struct Outbound {
    /// The cost of each stamp (its resource is replaced by each envelope recipient).
    pub request: MintRequest,
    /// Worker threads per message (each stamp uses all of them).
    pub threads: usize,
    /// At most this many messages are minted at once; others wait for a slot.
    pub max_mints: usize,
    /// Time allowed for the stamps of one message, waiting for a slot included. Beyond it the
    /// message passes unstamped. Keep it well below the MTA's content timeout
    /// (Postfix `milter_content_timeout`, 300 s by default).
    pub timeout: Duration,
    /// DKIM signing domain (`d=`).
    pub domain: String,
    /// DKIM keys with their selectors; one signature each. Empty: stamps only.
    pub keys: Vec<(String, SigningKey)>,
    /// Header and body canonicalization of the signatures.
    pub canon: (Canon, Canon),
}

/// What the filter does when a check finds no good enough stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectWith {
    /// A permanent failure (550 5.7.1): the sender gets a bounce.
    Reject,
    /// A temporary failure (451 4.7.1): the sender retries later.
    Tempfail,
}

/// What the filter does with inbound mail.
pub struct Inbound {
    /// The `authserv-id` of the Authentication-Results fields (usually this host's name).
    /// Fields already in the message that claim this id are removed as forgeries.
    pub authserv_id: String,
    /// The least bits a stamp must show to be valid; `None` accepts any honest claim (and such a
    /// stamp is then reported neutral, never pass).
    pub bits: Option<u32>,
    /// Validity, grace and binding rule of stamps (its `min_bits` and `resources` are ignored:
    /// the resources are the envelope recipients, each matched literally, each paid on its own).
    pub policy: Policy,
    /// Check as if it were this time (Unix seconds) instead of the system clock: for tests.
    pub now: Option<i64>,
    /// The spent-stamp store shared by every connection; `None` does not record stamps.
    pub store: Option<Arc<dyn SpentStore>>,
    /// Accept stamps when the store fails (and say so in the verdict) instead of failing.
    pub fail_open: bool,
    /// Where DKIM keys come from.
    pub keys: Arc<dyn KeyLookup>,
    /// DKIM options (`now` is replaced by the time of each check).
    pub dkim: dkim::VerifyOptions,
    /// Limits on stamps examined per message.
    pub limits: CheckLimits,
    /// Refuse messages without a valid stamp of at least this many bits.
    pub reject_below: Option<u32>,
    /// How to refuse them.
    pub reject_with: RejectWith,
}

/// The whole filter configuration, shared by every connection.
pub struct Config {
    /// Stamp and sign outbound mail; `None` treats every message as inbound.
    pub outbound: Option<Outbound>,
    /// Check inbound mail.
    pub inbound: Inbound,
    /// Clients in these networks send outbound mail (as SASL-authenticated senders do).
    pub internal: Vec<IpNet>,
    /// When not empty, only mail received by these MTA daemons (the `{daemon_name}` macro,
    /// Postfix `milter_macro_daemon_name`) can be outbound: it narrows the two rules above and
    /// never makes mail outbound by itself.
    pub originating: Vec<String>,
    /// Messages larger than this (header and body) are passed on unchanged, or refused under
    /// a rejection policy.
    pub max_size: usize,
    /// Log one line per message to standard error.
    pub log: bool,
    /// Permissions of a Unix socket (the MTA's user must be able to write to it).
    pub socket_mode: u32,
}

impl Config {
    /// Starts the shared state: the slots for concurrent mints.
    pub fn into_shared(self) -> Arc<Shared> {
        let slots = self.outbound.as_ref().map_or(1, |o| o.max_mints.max(1));
        Arc::new(Shared {
            slots: Arc::new(Semaphore::new(slots)),
            config: self,
        })
    }
}

/// The state every connection shares.
pub struct Shared {
    config: Config,
    slots: Arc<Semaphore>,
}

impl Shared {
    fn log(&self, queue_id: &str, text: std::fmt::Arguments<'_>) {
        if self.config.log {
            let id = if queue_id.is_empty() { "-" } else { queue_id };
            eprintln!("pennyblack milter: {id}: {text}");
        }
    }
}

/// One connection from the MTA: the state of the SMTP session and of the current message.
pub struct Session {
    shared: Arc<Shared>,
    leading_space: bool,
    client: Option<IpAddr>,
    macros: HashMap<String, String>,
    /// Set when connect-stage macros arrived for the connect that follows.
    connect_macros: bool,
    msg: Msg,
}

#[derive(Default)]
struct Msg {
    sender: String,
    rcpts: Vec<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    size: usize,
    too_big: bool,
    /// How many `Authentication-Results` fields arrived so far, and the positions (1-based
    /// among those) of the ones claiming our authserv-id: kept whatever the message's size, so
    /// forgeries are removed on every path.
    authres_seen: u32,
    forged: Vec<u32>,
    /// The envelope recipients as a set, for constant-time duplicate checks.
    rcpt_set: std::collections::HashSet<String>,
}

/// Errors end the connection (the MTA then applies its default action, e.g. tempfail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A worker thread died.
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

impl Session {
    /// A new connection.
    pub fn new(shared: Arc<Shared>) -> Self {
        Session {
            shared,
            leading_space: false,
            client: None,
            macros: HashMap::new(),
            connect_macros: false,
            msg: Msg::default(),
        }
    }

    fn macro_value(&self, name: &str) -> &str {
        self.macros.get(name).map_or("", String::as_str)
    }

    /// Outbound only for a SASL-authenticated sender or an internal client; `--originating`
    /// may narrow that to some MTA daemons, never widen it.
    fn is_outbound(&self) -> Option<&'static str> {
        let c = &self.shared.config;
        c.outbound.as_ref()?;
        let why = if !self.macro_value("{auth_authen}").is_empty() {
            "authenticated sender"
        } else if self
            .client
            .is_some_and(|ip| c.internal.iter().any(|n| n.contains(&ip)))
        {
            "internal client"
        } else {
            return None;
        };
        let daemon = self.macro_value("{daemon_name}");
        if !c.originating.is_empty() && !c.originating.iter().any(|d| d == daemon) {
            return None;
        }
        Some(why)
    }

    /// Forgets everything of the SMTP session: a reused connection (QUIT_NC) or a new one
    /// starts with no macro, client or message of an earlier session.
    fn reset_session(&mut self) {
        self.macros.clear();
        self.client = None;
        self.msg = Msg::default();
    }

    /// Forgets the message and the macros that belong to it (queue id, SASL login: the MTA
    /// sends them again with the next MAIL FROM), keeping the connection's.
    fn reset_message(&mut self) {
        self.msg = Msg::default();
        for k in [
            "i",
            "{auth_authen}",
            "{auth_type}",
            "{auth_author}",
            "{mail_addr}",
            "{rcpt_addr}",
        ] {
            self.macros.remove(k);
        }
    }

    /// The message as the MTA will deliver it: fields as received, CRLF line endings.
    fn raw_message(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(self.msg.size + 64);
        for (name, value) in &self.msg.headers {
            raw.extend_from_slice(name.as_bytes());
            raw.push(b':');
            if !self.leading_space {
                raw.push(b' ');
            }
            // Folded values arrive with bare LF (Postfix) or CRLF (Sendmail).
            let v = value.replace("\r\n", "\n").replace('\n', "\r\n");
            raw.extend_from_slice(v.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&self.msg.body);
        raw
    }

    /// A formatted field (`Name: value` folded, with line endings) as the milter protocol wants
    /// it: the value after the colon (with its leading space only if negotiated), LF folding.
    fn field_for_mta(&self, field: &str) -> (String, String) {
        let (name, value) = field.split_once(':').unwrap_or((field, ""));
        let value = value.trim_end_matches(['\r', '\n']).replace("\r\n", "\n");
        let value = if self.leading_space {
            value
        } else {
            value.strip_prefix(' ').unwrap_or(&value).to_owned()
        };
        (name.to_owned(), value)
    }

    /// Inserts `fields` at the top of the header, in their order.
    fn insert_on_top(&self, mods: &mut ModificationResponseBuilder, fields: &[String]) {
        for (i, f) in fields.iter().enumerate() {
            let (name, value) = self.field_for_mta(f);
            mods.push(InsertHeader::new(
                i as u32,
                name.as_bytes(),
                value.as_bytes(),
            ));
        }
    }

    async fn outbound(&mut self, why: &str) -> Result<ModificationResponse, SessionError> {
        let shared = Arc::clone(&self.shared);
        let out = shared
            .config
            .outbound
            .as_ref()
            .expect("outbound configured");
        let qid = self.macro_value("i").to_owned();
        let started = Instant::now();
        let raw = self.raw_message();
        let msg = match Message::parse(raw) {
            Ok(m) => m,
            Err(e) => {
                shared.log(&qid, format_args!("outbound ({why}): not stamped: {e}"));
                return Ok(ModificationResponse::empty_continue());
            }
        };
        let rcpts = std::mem::take(&mut self.msg.rcpts);
        shared.log(
            &qid,
            format_args!(
                "outbound ({why}) from <{}>: minting {} stamp(s)",
                self.msg.sender,
                rcpts.len()
            ),
        );
        let permit = match tokio::time::timeout(
            out.timeout,
            Arc::clone(&shared.slots).acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Some(p),
            _ => None,
        };
        let minter = Minter::new().threads(out.threads);
        let cancel = minter.cancel_flag();
        let left = out.timeout.saturating_sub(started.elapsed());
        let worker_shared = Arc::clone(&shared);
        let work = tokio::task::spawn_blocking(move || {
            let out = worker_shared.config.outbound.as_ref().expect("outbound");
            let now = unix_now();
            let signers: Vec<SignRequest<'_>> = out
                .keys
                .iter()
                .map(|(sel, key)| SignRequest {
                    domain: &out.domain,
                    selector: sel,
                    key,
                    canon: out.canon,
                    time: now,
                })
                .collect();
            let stamped = match permit {
                Some(_permit) => stamp_fields(&msg, &rcpts, &out.request, &minter, &signers)
                    .map(|f| (f, rcpts.len())),
                None => Err(crate::message::StampError::Mint {
                    // Never the addresses: some may be Bcc recipients, and this reaches the log.
                    resource: format!("{} recipient(s)", rcpts.len()),
                    error: crate::MintError::DeadlineExceeded(out.timeout),
                }),
            };
            match stamped {
                Ok(fields) => (Ok(fields), None),
                Err(e) => (sign_fields(&msg, &signers).map(|f| (f, 0)), Some(e)),
            }
        });
        tokio::pin!(work);
        let (fields, mint_error) = tokio::select! {
            r = &mut work => r,
            () = tokio::time::sleep(left) => {
                cancel.store(true, Ordering::Relaxed);
                (&mut work).await
            }
        }
        .map_err(|e| SessionError::Worker(e.to_string()))?;
        let elapsed = started.elapsed().as_secs_f64();
        let mut mods = ModificationResponse::builder();
        match fields {
            Ok((fields, stamps)) => {
                let signed = fields.len() - stamps;
                match &mint_error {
                    None => shared.log(
                        &qid,
                        format_args!(
                            "outbound ({why}): {stamps} stamp(s), {signed} signature(s) in {elapsed:.2}s"
                        ),
                    ),
                    Some(e) => shared.log(
                        &qid,
                        format_args!(
                            "outbound ({why}): passed UNSTAMPED after {elapsed:.2}s ({e}); {signed} signature(s)"
                        ),
                    ),
                }
                self.insert_on_top(&mut mods, &fields);
            }
            Err(e) => shared.log(
                &qid,
                format_args!("outbound ({why}): passed unstamped and unsigned: {e}"),
            ),
        }
        Ok(mods.contin())
    }

    async fn inbound(&mut self) -> Result<ModificationResponse, SessionError> {
        let shared = Arc::clone(&self.shared);
        let inb = &shared.config.inbound;
        let qid = self.macro_value("i").to_owned();
        let refuse = |why: &str| -> ModificationResponse {
            let code = match inb.reject_with {
                RejectWith::Reject => Replycode::new([5, 5, 0], [5, 7, 1], why),
                RejectWith::Tempfail => Replycode::new([4, 5, 1], [4, 7, 1], why),
            };
            ModificationResponse::builder().build(code)
        };
        // Forged verdicts in our name go on every path that delivers the message, and ours
        // are always added: the unchecked ones say why.
        let forged = std::mem::take(&mut self.msg.forged);
        let deliver = |session: &Self, fields: &[String]| -> ModificationResponse {
            let mut mods = ModificationResponse::builder();
            // Highest position first: the MTA renumbers the fields after each removal.
            for &idx in forged.iter().rev() {
                mods.push(ChangeHeader::new(idx, b"Authentication-Results", b""));
            }
            session.insert_on_top(&mut mods, fields);
            mods.contin()
        };
        let unchecked = |result: &str, why: &str| {
            crate::authres::unchecked_fields(&inb.authserv_id, result, why, Eol::Lf)
        };
        if self.msg.too_big {
            shared.log(
                &qid,
                format_args!(
                    "inbound: larger than {} bytes, not checked",
                    shared.config.max_size
                ),
            );
            return Ok(match inb.reject_below {
                Some(_) => refuse("message too large to check its postage"),
                None => deliver(
                    self,
                    &unchecked(
                        "permerror",
                        &format!(
                            "message larger than {} bytes, not checked",
                            shared.config.max_size
                        ),
                    ),
                ),
            });
        }
        let raw = self.raw_message();
        let rcpts = std::mem::take(&mut self.msg.rcpts);
        let worker_shared = Arc::clone(&shared);
        let checked = tokio::task::spawn_blocking(move || {
            let inb = &worker_shared.config.inbound;
            let msg = Message::parse(raw).map_err(|e| ("permerror", e.to_string()))?;
            // Envelope recipients are addresses, never patterns: `RCPT TO:<*>` names only `*`.
            let resources: Vec<ResourcePattern> = rcpts
                .iter()
                .map(|r| ResourcePattern::address(r.as_str()))
                .collect();
            let policy = Policy {
                min_bits: inb.bits,
                resources,
                ..inb.policy.clone()
            };
            let mut verifier = Verifier::new(policy).fail_open(inb.fail_open);
            if let Some(now) = inb.now {
                verifier = verifier.with_clock(crate::FixedClock(now));
            }
            if let Some(store) = &inb.store {
                verifier = verifier.with_store(Arc::clone(store));
            }
            let opts = dkim::VerifyOptions {
                now: inb.now.unwrap_or_else(unix_now),
                ..inb.dkim
            };
            // Nothing is recorded as spent unless the message is going to be accepted.
            let paid_enough = |v: &crate::message::MessageVerdict| {
                inb.reject_below.is_none_or(|min| v.paid_at_least(min))
            };
            let (v, _) = check_message_if(
                &msg,
                &verifier,
                inb.keys.as_ref(),
                &opts,
                &inb.limits,
                paid_enough,
            )
            .map_err(|e| ("temperror", e.to_string()))?;
            let fields = [
                crate::authres::dkim_field(&inb.authserv_id, &v, Eol::Lf),
                crate::authres::hashcash_field(&inb.authserv_id, &v, inb.bits, Eol::Lf),
            ];
            let paid = paid_enough(&v);
            let unpaid = inb.reject_below.map_or(0, |min| v.unpaid_at(min));
            let summary = (v.recipients.len(), unpaid, paid);
            Ok::<_, (&'static str, String)>((fields, v.hashcash(), v.outcome(), summary))
        })
        .await
        .map_err(|e| SessionError::Worker(e.to_string()))?;
        let (fields, hashcash, outcome, (recipients, unpaid, paid)) = match checked {
            Ok(c) => c,
            Err((result, e)) => {
                shared.log(&qid, format_args!("inbound: not checked ({result}): {e}"));
                return Ok(match inb.reject_below {
                    Some(_) if result == "temperror" => {
                        ModificationResponse::builder().build(Replycode::new(
                            [4, 5, 1],
                            [4, 7, 1],
                            "postage could not be checked now, try again later",
                        ))
                    }
                    Some(_) => refuse("the message could not be read to check its postage"),
                    None => deliver(self, &unchecked(result, &format!("not checked: {e}"))),
                });
            }
        };
        shared.log(
            &qid,
            format_args!(
                "inbound: x-hashcash={} dkim/overall={} recipients={recipients} unpaid={unpaid}",
                word(hashcash),
                word(outcome),
            ),
        );
        // Every envelope recipient pays on its own: one unpaid recipient refuses the message,
        // so no unpaid recipient is ever delivered to (and a message without any is refused).
        if let Some(min) = inb.reject_below
            && (!paid || recipients == 0)
        {
            return Ok(refuse(&format!(
                "no valid postage stamp of at least {min} bits for {unpaid} of {recipients} recipient(s)"
            )));
        }
        Ok(deliver(self, &fields))
    }
}

fn word(o: Outcome) -> &'static str {
    o.keyword()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The authserv-id of an Authentication-Results value, read with RFC 8601's grammar: after
/// any comments and white space (CFWS, comments nested, with quoted-pairs), a token or a quoted
/// string (its quoted-pairs undone). `None` when the value does not start that way.
fn authserv_id_of(value: &str) -> Option<String> {
    let b = value.as_bytes();
    let mut i = 0;
    // CFWS
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'(' {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if depth > 0 {
                return None;
            }
            continue;
        }
        break;
    }
    if i < b.len() && b[i] == b'"' {
        let mut out = Vec::new();
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' if i + 1 < b.len() => {
                    out.push(b[i + 1]);
                    i += 2;
                }
                b'"' => return String::from_utf8(out).ok(),
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        return None;
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b[i]) {
        i += 1;
    }
    (i > start).then(|| value[start..i].to_owned())
}

/// Strips `<...>` and surrounding white space from an envelope address.
fn envelope_address(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
        .to_owned()
}

#[async_trait]
impl miltr_server::Milter for Session {
    type Error = SessionError;

    async fn option_negotiation(
        &mut self,
        theirs: OptNeg,
    ) -> Result<OptNeg, miltr_server::Error<Self::Error>> {
        let ours = OptNeg {
            capabilities: Capability::SMFIF_ADDHDRS | Capability::SMFIF_CHGHDRS,
            protocol: Protocol::SMFIP_HDR_LEADSPC,
            ..OptNeg::default()
        };
        let agreed = ours
            .merge_compatible(&theirs)
            .map_err(miltr_common::ProtocolError::CompatibilityError)?;
        self.leading_space = agreed.protocol.contains(Protocol::SMFIP_HDR_LEADSPC);
        Ok(agreed)
    }

    async fn macro_(&mut self, m: Macro) -> Result<(), Self::Error> {
        if m.code == b'C' {
            // The macros of a new SMTP session's connect: the earlier session's all go.
            self.reset_session();
            self.connect_macros = true;
        }
        for (k, v) in m.macros() {
            self.macros.insert(
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            );
        }
        Ok(())
    }

    async fn connect(&mut self, c: Connect) -> Result<Action, Self::Error> {
        // A new SMTP session: nothing of an earlier one on this milter connection survives.
        // The connect-stage macros came just before, and were kept only if they started
        // afresh (see `macro_`).
        if !std::mem::take(&mut self.connect_macros) {
            self.reset_session();
        }
        self.msg = Msg::default();
        self.client = c.address().trim_matches(['[', ']']).parse().ok();
        Ok(Continue.into())
    }

    async fn mail(&mut self, m: Mail) -> Result<Action, Self::Error> {
        self.msg = Msg {
            sender: envelope_address(&m.sender()),
            ..Msg::default()
        };
        Ok(Continue.into())
    }

    async fn rcpt(&mut self, r: Recipient) -> Result<Action, Self::Error> {
        let addr = envelope_address(&r.recipient());
        // Distinct texts are distinct recipients, each paid on its own (two spellings of one
        // mailbox that the MTA delivers twice need two stamps).
        if !addr.is_empty() && self.msg.rcpt_set.insert(addr.clone()) {
            self.msg.rcpts.push(addr);
        }
        Ok(Continue.into())
    }

    async fn header(&mut self, h: Header) -> Result<Action, Self::Error> {
        let (name, value) = (h.name().into_owned(), h.value().into_owned());
        if name.eq_ignore_ascii_case("Authentication-Results") {
            self.msg.authres_seen += 1;
            let ours = &self.shared.config.inbound.authserv_id;
            if authserv_id_of(&value).is_some_and(|id| id.eq_ignore_ascii_case(ours)) {
                self.msg.forged.push(self.msg.authres_seen);
            }
        }
        self.msg.size += name.len() + value.len() + 4;
        if self.msg.size > self.shared.config.max_size {
            self.msg.too_big = true;
        }
        if !self.msg.too_big {
            self.msg.headers.push((name, value));
        }
        Ok(Continue.into())
    }

    async fn body(&mut self, b: Body) -> Result<Action, Self::Error> {
        self.msg.size += b.as_bytes().len();
        if self.msg.size > self.shared.config.max_size {
            self.msg.too_big = true;
            self.msg.body = Vec::new();
        }
        if !self.msg.too_big {
            self.msg.body.extend_from_slice(b.as_bytes());
        }
        Ok(Continue.into())
    }

    async fn end_of_body(&mut self) -> Result<ModificationResponse, Self::Error> {
        let result = match self.is_outbound() {
            Some(_) if self.msg.too_big => {
                let qid = self.macro_value("i").to_owned();
                self.shared.log(
                    &qid,
                    format_args!("outbound: larger than --max-size, passed unstamped"),
                );
                Ok(ModificationResponse::empty_continue())
            }
            Some(why) => self.outbound(why).await,
            None => self.inbound().await,
        };
        self.reset_message();
        result
    }

    async fn abort(&mut self) -> Result<(), Self::Error> {
        // Message-scoped macros go; connection-scoped ones ({daemon_name}, j) stay.
        self.reset_message();
        Ok(())
    }

    async fn quit_nc(&mut self) -> Result<(), Self::Error> {
        // The MTA reuses this connection for another SMTP session: forget this one whole.
        self.reset_session();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_ids_and_envelope_addresses() {
        let id = |v: &str| authserv_id_of(v).unwrap_or_default();
        assert_eq!(id(" mx.example.net; dkim=pass"), "mx.example.net");
        assert_eq!(id("mx.example.net 1; none"), "mx.example.net");
        assert_eq!(id("mx(comment); none"), "mx");
        // RFC 8601 spellings of the same id: comments before it (nested, with quoted-pairs),
        // a quoted string.
        assert_eq!(id("(relayed) mx.example.org; x=pass"), "mx.example.org");
        assert_eq!(id(" (a (b) \\) c)\t MX.example.org ; x"), "MX.example.org");
        assert_eq!(id("\"mx.example.org\"; x=pass"), "mx.example.org");
        assert_eq!(id("\"mx.exa\\mple.org\"; x=pass"), "mx.example.org");
        assert_eq!(authserv_id_of("(unclosed mx.example.org; x"), None);
        assert_eq!(envelope_address(" <Bob@Example.org> "), "Bob@Example.org");
        assert_eq!(envelope_address("bob@example.org"), "bob@example.org");
        assert_eq!(envelope_address("<>"), "");
    }
}
