//! A mail filter for Postfix and Sendmail (the milter protocol, spoken by `miltr-server`).
//!
//! Per message the filter either stamps and signs (outbound: an authenticated sender, a
//! connection to an MTA daemon named as originating, or a client in an internal network) or
//! checks (everything else), with the same library calls as the `stamp` and `check` commands:
//! [`message::stamp_fields`](crate::message::stamp_fields) and
//! [`message::check_message`](crate::message::check_message).
//!
//! Failure policy: a stamp that cannot be minted within [`Outbound::timeout`] (slots busy, or the
//! work too slow) lets the message through unstamped (still signed) and says so in the log;
//! the filter never holds mail back for its own sake. A failure while checking adds no verdict
//! and, with a rejection policy, tempfails (the sender retries) rather than rejecting.

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
    /// Clients in these networks send outbound mail.
    pub internal: Vec<IpNet>,
    /// MTA daemons (the `{daemon_name}` macro, Postfix `milter_macro_daemon_name`) whose
    /// mail is outbound, e.g. `ORIGINATING` on the submission port.
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
            msg: Msg::default(),
        }
    }

    fn macro_value(&self, name: &str) -> &str {
        self.macros.get(name).map_or("", String::as_str)
    }

    fn is_outbound(&self) -> Option<&'static str> {
        let c = &self.shared.config;
        c.outbound.as_ref()?;
        if !self.macro_value("{auth_authen}").is_empty() {
            return Some("authenticated sender");
        }
        let daemon = self.macro_value("{daemon_name}");
        if !daemon.is_empty() && c.originating.iter().any(|d| d == daemon) {
            return Some("originating daemon");
        }
        if let Some(ip) = self.client
            && c.internal.iter().any(|n| n.contains(&ip))
        {
            return Some("internal client");
        }
        None
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
                    resource: rcpts.join(","),
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
                None => ModificationResponse::empty_continue(),
            });
        }
        let raw = self.raw_message();
        let rcpts = std::mem::take(&mut self.msg.rcpts);
        // Forged verdicts in our name: the fields' positions among those of the same name.
        let forged: Vec<u32> = self
            .msg
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Authentication-Results"))
            .enumerate()
            .filter(|(_, (_, v))| authserv_id_of(v).eq_ignore_ascii_case(&inb.authserv_id))
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let worker_shared = Arc::clone(&shared);
        let checked = tokio::task::spawn_blocking(move || {
            let inb = &worker_shared.config.inbound;
            let msg = Message::parse(raw).map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?;
            let fields = [
                crate::authres::dkim_field(&inb.authserv_id, &v, Eol::Lf),
                crate::authres::hashcash_field(&inb.authserv_id, &v, inb.bits, Eol::Lf),
            ];
            let paid = paid_enough(&v);
            let unpaid = v
                .recipients
                .iter()
                .filter(|r| {
                    !inb.reject_below
                        .is_none_or(|min| r.value + 1e-9 >= f64::from(min))
                })
                .count();
            let summary = (v.recipients.len(), unpaid, paid);
            Ok::<_, String>((fields, v.hashcash(), v.outcome(), summary))
        })
        .await
        .map_err(|e| SessionError::Worker(e.to_string()))?;
        let (fields, hashcash, outcome, (recipients, unpaid, paid)) = match checked {
            Ok(c) => c,
            Err(e) => {
                shared.log(&qid, format_args!("inbound: not checked: {e}"));
                return Ok(match inb.reject_below {
                    Some(_) => ModificationResponse::builder().build(Replycode::new(
                        [4, 5, 1],
                        [4, 7, 1],
                        "postage could not be checked now, try again later",
                    )),
                    None => ModificationResponse::empty_continue(),
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
        // so no unpaid recipient is ever delivered to.
        if let Some(min) = inb.reject_below
            && !paid
        {
            return Ok(refuse(&format!(
                "no valid postage stamp of at least {min} bits for {unpaid} of {recipients} recipient(s)"
            )));
        }
        let mut mods = ModificationResponse::builder();
        for idx in forged {
            mods.push(ChangeHeader::new(idx, b"Authentication-Results", b""));
        }
        self.insert_on_top(&mut mods, &fields);
        Ok(mods.contin())
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

/// The authserv-id of an Authentication-Results value: the first token, before `;`, comments
/// and a version number.
fn authserv_id_of(value: &str) -> &str {
    let head = value.split(';').next().unwrap_or("").trim();
    head.split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
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
        for (k, v) in m.macros() {
            self.macros.insert(
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            );
        }
        Ok(())
    }

    async fn connect(&mut self, c: Connect) -> Result<Action, Self::Error> {
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
        if !addr.is_empty()
            && !self
                .msg
                .rcpts
                .iter()
                .any(|x| crate::bind::same_address(x, &addr))
        {
            self.msg.rcpts.push(addr);
        }
        Ok(Continue.into())
    }

    async fn header(&mut self, h: Header) -> Result<Action, Self::Error> {
        let (name, value) = (h.name().into_owned(), h.value().into_owned());
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
        self.msg = Msg::default();
        result
    }

    async fn abort(&mut self) -> Result<(), Self::Error> {
        self.msg = Msg::default();
        // Message-scoped macros go; connection-scoped ones ({daemon_name}, j) stay.
        for k in ["i", "{auth_authen}", "{auth_type}", "{auth_author}"] {
            self.macros.remove(k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_ids_and_envelope_addresses() {
        assert_eq!(
            authserv_id_of(" mx.example.net; dkim=pass"),
            "mx.example.net"
        );
        assert_eq!(authserv_id_of("mx.example.net 1; none"), "mx.example.net");
        assert_eq!(authserv_id_of("mx(comment); none"), "mx");
        assert_eq!(envelope_address(" <Bob@Example.org> "), "Bob@Example.org");
        assert_eq!(envelope_address("bob@example.org"), "bob@example.org");
        assert_eq!(envelope_address("<>"), "");
    }
}
