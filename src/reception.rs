//! Reception: one message judged once, by one function, for every receiving path.
//!
//! [`judge`] takes the message as it arrived, its SMTP envelope ([`Envelope`]) and the
//! receiver's configuration with its services ([`Inbound`]: the spent store, DKIM keys, DNS,
//! the ticket service, postage challenges) and returns one [`Decision`]: deliver (with the
//! `Authentication-Results` fields to add, perhaps held or with recipients taken off), refuse,
//! tempfail, or discard, each with its reason and a log line. The milter translates a decision
//! into the milter protocol and `pennyblack check` prints it; neither judges anything itself.
//!
//! What the receiver spends on one message is bounded here: the message is parsed once (its
//! size capped by the caller), DKIM verifies at most [`dkim::VerifyOptions::max_signatures`]
//! signatures, the binding of every stamp and ticket is compared through one
//! [`BindingView`](crate::postage::BindingView) (the header canonicalized once; a version-2
//! stamp then costs a constant, a version-1 stamp one hash of its covered fields per distinct
//! mask, at most 64), and the stamps' work is counted against [`Policy::max_work`] per
//! recipient and [`Policy::max_message_work`] per message before it is done.
//!
//! The order of the verdicts is the order of [`judge`]'s code: size, parsing, DKIM and stamps
//! (with DMARC inside the acceptance test, so a message refused for DMARC burns no stamp),
//! tickets, the rejection policy (postage required, or a replay, which has its own reply), then
//! DMARC enforcement, then retries of messages an answer to our challenge delivered already.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::SpentStore;
use crate::dkim::{self, KeyLookup};
use crate::error::VerifyError;
use crate::mail::{Eol, Message};
use crate::policy::{Family, Requirement};
use crate::postage::{CheckLimits, MessageVerdict, Outcome, check_message_if};
use crate::ticket::message::{
    RecipientTicket, TicketOutcome, cancel_tickets, offline_tickets, outcome_with_tickets,
    record_tickets, unpaid_with_tickets,
};
use crate::verify::{Policy, ResourcePattern, Verifier};

/// What a receiver does when a message does not pay (or cannot be checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectWith {
    /// A permanent failure (550 5.7.1): the sender gets a bounce.
    Reject,
    /// A temporary failure (451 4.7.1): the sender retries later.
    Tempfail,
}

/// A receiver's ticket service: the keys of the issuer it trusts, and the service that cancels
/// the tickets it accepts.
pub struct InboundTickets {
    /// The issuer's keys (from its well-known URL).
    pub trusted: crate::ticket::TrustedKeys,
    /// Cancels tickets (the receiver's account at the issuer).
    pub service: Arc<dyn crate::ticket::message::Canceller>,
    /// The time a message's cancels may take in all (each request has its own timeout too).
    pub timeout: Duration,
}

/// SPF (RFC 7208) and DMARC (RFC 7489) checks of inbound mail.
#[cfg(feature = "dns")]
pub struct SenderAuth {
    /// The resolver (the DKIM key lookups' own, unless keys come from a file).
    pub dns: Arc<crate::dkim::DnsLookup>,
    /// Act on a DMARC fail: refuse (550 5.7.1) under `p=reject`, quarantine (the MTA's hold
    /// queue) under `p=quarantine`, each one step milder under `t=y`. A temperror never
    /// refuses. Off: the result is only reported.
    pub enforce_dmarc: bool,
}

/// A receiver's configuration and services: everything [`judge`] needs besides the message.
pub struct Inbound {
    /// The `authserv-id` of the Authentication-Results fields (usually this host's name).
    /// Fields already in the message that claim this id are removed as forgeries (by the
    /// caller, which knows where they are).
    pub authserv_id: String,
    /// The least bits a stamp must show to be valid; `None` accepts any honest claim (and such a
    /// stamp is then reported neutral, never pass).
    pub bits: Option<u32>,
    /// Validity, grace, binding rule and cost limits of stamps. Its `min_bits` is replaced by
    /// `bits`; its `resources` are the operator's patterns, to which the envelope recipients
    /// are added (each an address, matched literally, each paid on its own).
    pub policy: Policy,
    /// Check as if it were this time (Unix seconds) instead of the system clock: for tests.
    pub now: Option<i64>,
    /// The spent-stamp store; `None` does not record stamps.
    pub store: Option<Arc<dyn SpentStore>>,
    /// Accept stamps when the store fails (and say so in the verdict) instead of failing.
    pub fail_open: bool,
    /// Where DKIM keys come from.
    pub keys: Arc<dyn KeyLookup>,
    /// DKIM options (`now` is replaced by the time of each check).
    pub dkim: dkim::VerifyOptions,
    /// Limits on stamps examined per message.
    pub limits: CheckLimits,
    /// Refuse messages without a valid stamp of at least this many bits for every recipient.
    pub reject_below: Option<u32>,
    /// How to refuse them (and messages that cannot be checked).
    pub reject_with: RejectWith,
    /// How to refuse a replay: a message whose every unpaid recipient's stamp or ticket was
    /// spent before (default [`RejectWith::Reject`]: retrying cannot help it).
    pub replay_with: RejectWith,
    /// SPF and DMARC, from the SMTP session; `None` checks neither.
    #[cfg(feature = "dns")]
    pub sender_auth: Option<SenderAuth>,
    /// Postage challenges to authenticated senders of messages refused for postage (with
    /// `reject_below`), and the deliveries their answers made; `None` sends none.
    #[cfg(feature = "milter")]
    pub challenges: Option<Arc<crate::milter::challenge::Challenger>>,
    /// Tickets pay for the recipients no stamp pays: checked offline, cancelled online, and
    /// reported (`x-postage-ticket`); `None` ignores tickets.
    pub tickets: Option<InboundTickets>,
}

impl Inbound {
    /// A receiver that checks DKIM signatures with `keys` and stamps against `policy`, with
    /// nothing else configured (no store, no rejection, no sender checks, tickets or
    /// challenges).
    pub fn new(authserv_id: &str, keys: Arc<dyn KeyLookup>, policy: Policy) -> Inbound {
        Inbound {
            authserv_id: authserv_id.to_owned(),
            bits: policy.min_bits,
            policy,
            now: None,
            store: None,
            fail_open: false,
            keys,
            dkim: dkim::VerifyOptions::default(),
            limits: CheckLimits::default(),
            reject_below: None,
            reject_with: RejectWith::Tempfail,
            replay_with: RejectWith::Reject,
            #[cfg(feature = "dns")]
            sender_auth: None,
            #[cfg(feature = "milter")]
            challenges: None,
            tickets: None,
        }
    }

    fn enforces_dmarc(&self) -> bool {
        #[cfg(feature = "dns")]
        {
            self.sender_auth.as_ref().is_some_and(|a| a.enforce_dmarc)
        }
        #[cfg(not(feature = "dns"))]
        {
            false
        }
    }
}

/// The SMTP facts of one message.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The SMTP client's address (none for a local pickup: then no SPF).
    pub client: Option<IpAddr>,
    /// The HELO/EHLO name.
    pub helo: String,
    /// The envelope sender (MAIL FROM), without angle brackets; empty for the null sender.
    pub sender: String,
    /// The envelope recipients (RCPT TO), each paid on its own.
    pub recipients: Vec<String>,
    /// The MTA's queue id, for the log line.
    pub queue_id: String,
    /// Whether the caller can take recipients off the message (the milter's SMTP DELRCPT):
    /// without it, a retry of a message an answer delivered is only discarded when it reaches
    /// no one else.
    pub can_remove_recipients: bool,
}

/// The message as it arrived.
#[derive(Debug)]
pub enum Content {
    /// The whole message (header and body), as the MTA delivers it.
    Message(Vec<u8>),
    /// Larger than the caller's limit of this many bytes: not read, so not checked.
    TooLarge(usize),
}

/// An SMTP reply: code, enhanced status code (RFC 3463) and text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reply {
    /// The reply code, e.g. 451.
    pub code: u16,
    /// The enhanced status code, e.g. `[4, 7, 1]`.
    pub status: [u8; 3],
    /// The text.
    pub text: String,
}

impl Reply {
    fn new(code: u16, status: [u8; 3], text: impl Into<String>) -> Reply {
        Reply {
            code,
            status,
            text: text.into(),
        }
    }

    fn by(with: RejectWith, text: impl Into<String>) -> Reply {
        match with {
            RejectWith::Reject => Reply::new(550, [5, 7, 1], text),
            RejectWith::Tempfail => Reply::new(451, [4, 7, 1], text),
        }
    }

    /// Whether this is a temporary failure (4xx).
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c] = self.status;
        write!(f, "{} {a}.{b}.{c} {}", self.code, self.text)
    }
}

/// What is done with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delivered, with [`Decision::fields`] on top.
    Deliver {
        /// Put on hold (the MTA's quarantine) for this reason.
        hold: Option<String>,
        /// Envelope recipients who have the message already (through an answer to our
        /// challenge), taken off this copy.
        remove: Vec<String>,
    },
    /// Refused with this reply: a permanent (5xx) or temporary (4xx) refusal, as configured.
    Refuse(Reply),
    /// Not checked for now (a store, DNS or ticket service failure): try again later (4xx).
    Tempfail(Reply),
    /// Accepted and dropped: every recipient has the message already.
    Discard,
}

/// Why the decision is what it is: one word each, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Checked, and every check the configuration enforces passed (or nothing is enforced).
    Checked,
    /// Some recipient is not paid (under `reject_below`), or the message has no recipient.
    PostageRequired,
    /// Every unpaid recipient's stamp or ticket was spent before: the message is a replay.
    Replayed,
    /// Larger than the caller's limit.
    TooLarge,
    /// Not a message that can be read.
    Unreadable,
    /// A check failed for now (the spent store, the ticket service).
    NotCheckedNow,
    /// The author domain's DMARC policy refuses it.
    DmarcReject,
    /// The author domain's DMARC policy quarantines it.
    DmarcQuarantine,
    /// A retry of a message an answer to our challenge delivered: its recipients have it.
    DeliveredBefore,
}

impl Reason {
    /// The word.
    pub fn keyword(self) -> &'static str {
        match self {
            Reason::Checked => "checked",
            Reason::PostageRequired => "postage_required",
            Reason::Replayed => "replayed",
            Reason::TooLarge => "too_large",
            Reason::Unreadable => "unreadable",
            Reason::NotCheckedNow => "not_checked_now",
            Reason::DmarcReject => "dmarc_reject",
            Reason::DmarcQuarantine => "dmarc_quarantine",
            Reason::DeliveredBefore => "delivered_before",
        }
    }
}

/// What the checks found, for reports (`check --json`).
#[derive(Debug)]
pub struct Findings {
    /// The stamps and signatures.
    pub verdict: MessageVerdict,
    /// The tickets of the recipients no stamp pays (empty without a ticket service).
    pub tickets: Vec<RecipientTicket>,
    /// The message's outcome with its tickets.
    pub outcome: Outcome,
    /// Each recipient's reason when unpaid (at `reject_below`, else at `bits`): address and
    /// word (`spent`, `insufficient_work`, `wrong_message`, `no_stamp`, `ticket`, ...).
    pub unpaid: Vec<(String, &'static str)>,
    /// SPF, when checked.
    #[cfg(feature = "dns")]
    pub spf: Option<crate::sender::SpfVerdict>,
    /// DMARC, when checked.
    #[cfg(feature = "dns")]
    pub dmarc: Option<crate::sender::DmarcVerdict>,
}

/// The judgement of one message.
#[derive(Debug)]
pub struct Decision {
    /// What is done with it.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// The fields to put on top of the message when it is delivered (our
    /// `Authentication-Results`), each folded and ending in the message's line ending.
    pub fields: Vec<String>,
    /// The requirement a postage refusal states (the postage policy syntax).
    pub requirement: Option<String>,
    /// What the checks found; `None` when the message was not checked.
    pub findings: Option<Findings>,
    /// Why the message was not checked, when it was not.
    pub not_checked: Option<String>,
    /// One line for the log: the sender, client, verdicts, each unpaid recipient's reason and
    /// the decision (without the queue id, which the caller's log prefix carries).
    pub log: String,
    /// A postage challenge to consider sending (the caller sends it: it owns the relay).
    #[cfg(feature = "milter")]
    pub challenge: Option<(crate::milter::challenge::Facts, Requirement)>,
}

impl Decision {
    fn new(action: Action, reason: Reason, fields: Vec<String>, log: String) -> Decision {
        Decision {
            action,
            reason,
            fields,
            requirement: None,
            findings: None,
            not_checked: None,
            log,
            #[cfg(feature = "milter")]
            challenge: None,
        }
    }

    /// The decision in a few words: `deliver`, `hold`, `refuse 451 4.7.1`, `discard`.
    pub fn summary(&self) -> String {
        match &self.action {
            Action::Deliver { hold: Some(_), .. } => "hold".into(),
            Action::Deliver { remove, .. } if !remove.is_empty() => {
                format!("deliver, {} recipient(s) taken off", remove.len())
            }
            Action::Deliver { .. } => "deliver".into(),
            Action::Refuse(r) | Action::Tempfail(r) => {
                let [a, b, c] = r.status;
                format!("refuse {} {a}.{b}.{c}", r.code)
            }
            Action::Discard => "discard".into(),
        }
    }
}

/// Judges one message: see the module's documentation.
pub fn judge(inb: &Inbound, env: &Envelope, content: Content) -> Decision {
    let who = who(env);
    let raw = match content {
        Content::Message(raw) => raw,
        Content::TooLarge(limit) => {
            let why = format!("larger than {limit} bytes, not checked");
            let (action, reason) = if inb.reject_below.is_some() {
                let r = Reply::by(inb.reject_with, "message too large to check its postage");
                (Action::Refuse(r), Reason::TooLarge)
            } else if inb.enforces_dmarc() {
                let text = "message too large to check its sender's DMARC policy";
                let r = Reply::by(inb.reject_with, text);
                (Action::Refuse(r), Reason::TooLarge)
            } else {
                (deliver(), Reason::TooLarge)
            };
            let fields = unchecked(inb, "permerror", &format!("message {why}"), Eol::Crlf);
            let mut d = Decision::new(action, reason, fields, format!("{who}: {why}"));
            d.not_checked = Some(format!("message {why}"));
            return finish(d);
        }
    };
    match examine(inb, env, raw) {
        Ok(e) => decide(inb, env, e),
        Err((result, why)) => {
            let reason = if result == "temperror" {
                Reason::NotCheckedNow
            } else {
                Reason::Unreadable
            };
            let action = match inb.reject_below {
                Some(_) if reason == Reason::NotCheckedNow => Action::Tempfail(Reply::new(
                    451,
                    [4, 7, 1],
                    "postage could not be checked now, try again later",
                )),
                Some(_) => Action::Refuse(Reply::by(
                    inb.reject_with,
                    "the message could not be read to check its postage",
                )),
                None if inb.enforces_dmarc() && reason == Reason::Unreadable => {
                    Action::Refuse(Reply::by(
                        inb.reject_with,
                        "the message could not be read to check its sender's DMARC policy",
                    ))
                }
                None => deliver(),
            };
            let fields = unchecked(inb, result, &format!("not checked: {why}"), Eol::Crlf);
            let log = format!("{who}: not checked ({result}): {why}");
            let mut d = Decision::new(action, reason, fields, log);
            d.not_checked = Some(why);
            finish(d)
        }
    }
}

fn deliver() -> Action {
    Action::Deliver {
        hold: None,
        remove: Vec::new(),
    }
}

/// The log line's words for the decision, appended.
fn finish(mut d: Decision) -> Decision {
    let summary = d.summary();
    d.log = format!("{} -> {summary} ({})", d.log, d.reason.keyword());
    if let Action::Refuse(r) | Action::Tempfail(r) = &d.action {
        d.log.push_str(&format!(": {}", r.text));
    }
    d
}

fn who(env: &Envelope) -> String {
    let client = env
        .client
        .map_or_else(|| "local".to_owned(), |ip| ip.to_string());
    format!("from <{}> client {client}", escaped(&env.sender))
}

/// At most this many recipients' reasons are named in a log line.
const MAX_LOGGED: usize = 20;

/// An envelope address as a log line shows it: printable ASCII but for `<`, `>` and `\`, the
/// rest (white space included) as `\xNN`, at most 256 octets, so a sender cannot write words
/// of ours into the log.
fn escaped(addr: &str) -> String {
    let mut out = String::new();
    for b in addr.bytes().take(256) {
        if b.is_ascii_graphic() && !b"<>\\".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if addr.len() > 256 {
        out.push_str("...");
    }
    out
}

fn unchecked(inb: &Inbound, result: &str, why: &str, eol: Eol) -> Vec<String> {
    crate::authres::unchecked_fields(&inb.authserv_id, result, why, eol).into()
}

/// What [`examine`] found of a message it could check.
struct Examined {
    fields: Vec<String>,
    findings: Findings,
    recipients: usize,
    /// Unpaid recipients at `reject_below` (tickets and earlier deliveries counted).
    unpaid: Vec<String>,
    paid: bool,
    /// The unpaid recipients whose only stamps or tickets were spent before.
    replayed: usize,
    #[cfg(feature = "dns")]
    dmarc_action: Option<(crate::sender::DmarcPolicy, String)>,
    #[cfg(feature = "milter")]
    facts: Option<crate::milter::challenge::Facts>,
    /// Recipients who have the message already (an answer to our challenge delivered it, or a
    /// verbatim copy under another envelope spent their stamps), taken off or discarded.
    done: Vec<String>,
    /// How many of `done` got it through another copy (a replay).
    replay_removed: usize,
    words: String,
}

/// The checks: DKIM, stamps (recorded only when the message will be accepted), tickets,
/// SPF and DMARC. `Err((result, why))`: not checked (`permerror`: unreadable; `temperror`: a
/// store or ticket service failure, try again).
fn examine(
    inb: &Inbound,
    env: &Envelope,
    raw: Vec<u8>,
) -> Result<Examined, (&'static str, String)> {
    let msg = Message::parse(raw).map_err(|e| ("permerror", e.to_string()))?;
    let rcpts = &env.recipients;
    #[cfg(feature = "dns")]
    let sender_auth = inb.sender_auth.as_ref();
    // SPF needs the client's address: a session without one (a local pickup) gets none.
    #[cfg(feature = "dns")]
    let spf = match (sender_auth, env.client) {
        (Some(a), Some(ip)) => Some(crate::sender::check_spf(
            &a.dns,
            &crate::sender::SpfRequest {
                client_ip: ip,
                helo: env.helo.clone(),
                mail_from: env.sender.clone(),
                receiver: inb.authserv_id.clone(),
            },
        )),
        _ => None,
    };
    // DMARC needs the DKIM results: it runs inside the acceptance test, before any stamp is
    // recorded, so a message refused for DMARC burns no stamp.
    #[cfg(feature = "dns")]
    let dmarc = std::sync::OnceLock::new();
    // Envelope recipients are addresses, never patterns: `RCPT TO:<*>` names only `*`.
    let resources: Vec<ResourcePattern> = rcpts
        .iter()
        .map(|r| ResourcePattern::address(r.as_str()))
        .chain(inb.policy.resources.iter().cloned())
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
    let now = inb.now.unwrap_or_else(crate::clock::unix_now);
    let opts = dkim::VerifyOptions { now, ..inb.dkim };
    let done = delivered_before(inb, env, &msg);
    // A recipient whose fully bound stamp was spent by another delivery of this very message
    // (the same body and every field a reader sees: a co-recipient's relay of her copy, or an
    // earlier delivery of it) has the message: it is taken off this copy where the caller can,
    // so the others are still delivered; never all of them. With those an answer to our
    // challenge paid: the recipients that have the message already, for a verdict, in one pass
    // over its stamps and recipients (it is asked for each verdict the acceptance test sees).
    let gone_of = |v: &MessageVerdict| -> HashSet<String> {
        let mut gone: HashSet<String> = done.iter().cloned().collect();
        if !env.can_remove_recipients || inb.reject_below.is_none() {
            return gone;
        }
        let spent = spent_copies(v);
        let removable: Vec<&str> = v
            .recipients
            .iter()
            .enumerate()
            .filter(|(i, r)| spent.contains(i) && plain_address(&r.address))
            .map(|(_, r)| r.address.as_str())
            .collect();
        let removable_set: HashSet<&str> = removable.iter().copied().collect();
        let others_left = rcpts
            .iter()
            .any(|r| !gone.contains(r) && !removable_set.contains(r.as_str()));
        if others_left {
            gone.extend(removable.into_iter().map(str::to_owned));
        }
        gone
    };
    // The recipients no stamp pays at `bits`, but for those that have the message already.
    let unpaid_here = |v: &MessageVerdict, bits: u32| -> Vec<String> {
        let gone = gone_of(v);
        v.unpaid_recipients(bits)
            .into_iter()
            .filter(|r| !gone.contains(r))
            .collect()
    };
    // Tickets pay for the recipients no stamp pays (at reject_below, else bits): checked
    // offline and cancelled online once, when the stamps' verdict is known.
    let ticket_bits = inb.reject_below.or(inb.bits).unwrap_or(0);
    let tickets = std::sync::Mutex::new(None::<Vec<RecipientTicket>>);
    let tickets_of = |v: &MessageVerdict| -> Vec<RecipientTicket> {
        tickets
            .lock()
            .expect("not poisoned")
            .get_or_insert_with(|| match &inb.tickets {
                Some(t) => {
                    let mut list = offline_tickets(
                        &msg,
                        &unpaid_here(v, ticket_bits),
                        &v.dkim,
                        &t.trusted,
                        now,
                    );
                    if inb.policy.require_full_binding {
                        crate::ticket::message::refuse_partly_bound(&mut list);
                    }
                    list
                }
                None => Vec::new(),
            })
            .clone()
    };
    let unpaid_of = |v: &MessageVerdict, min: u32| -> Vec<String> {
        let gone = gone_of(v);
        unpaid_with_tickets(v, min, &tickets_of(v))
            .into_iter()
            .filter(|r| !gone.contains(r))
            .collect()
    };
    // Nothing is recorded as spent unless the message is going to be accepted (and a message
    // with no recipient is not, under a rejection policy).
    let paid_enough = |v: &MessageVerdict| {
        inb.reject_below
            .is_none_or(|min| !rcpts.is_empty() && unpaid_of(v, min).is_empty())
    };
    // Tickets are cancelled only when the message would be accepted with them (every recipient
    // a stamp does not pay has a ticket valid offline), within the service's timeout for the
    // whole message: a refused message burns none of its tickets, and a hung service cannot
    // hold the message past the MTA's timeout.
    let deadline = inb
        .tickets
        .as_ref()
        .map(|t| std::time::Instant::now() + t.timeout);
    let cancelled = std::sync::atomic::AtomicBool::new(false);
    let cancel_if_accepted = |v: &MessageVerdict| {
        let Some(t) = &inb.tickets else {
            return;
        };
        if cancelled.swap(true, Ordering::Relaxed) {
            return;
        }
        tickets_of(v);
        let mut guard = tickets.lock().expect("not poisoned");
        let list = guard.as_mut().expect("looked at above");
        let would = inb.reject_below.is_none_or(|min| {
            unpaid_here(v, min).iter().all(|r| {
                list.iter()
                    .any(|x| &x.address == r && x.outcome == TicketOutcome::Valid)
            })
        });
        if would {
            cancel_tickets(list, t.service.as_ref(), deadline);
        }
    };
    #[cfg(feature = "dns")]
    let dmarc_of = |v: &MessageVerdict| match (sender_auth, &spf) {
        (Some(a), Some(spf)) => Some(
            dmarc
                .get_or_init(|| crate::sender::check_dmarc(&a.dns, &msg, &v.dkim, spf))
                .clone(),
        ),
        _ => None,
    };
    let dmarc_refuses = |_v: &MessageVerdict| {
        #[cfg(feature = "dns")]
        {
            inb.enforces_dmarc()
                && dmarc_of(_v).is_some_and(|d| d.action() == crate::sender::DmarcPolicy::Reject)
        }
        #[cfg(not(feature = "dns"))]
        {
            false
        }
    };
    let (v, accepted) = check_message_if(
        &msg,
        &verifier,
        inb.keys.as_ref(),
        &opts,
        &inb.limits,
        |v| {
            if dmarc_refuses(v) {
                return false;
            }
            cancel_if_accepted(v);
            paid_enough(v)
        },
    )
    .map_err(|e| ("temperror", e.to_string()))?;
    // The accepted message's tickets are recorded in the spent store, after its stamps: the
    // same message again is a replay, while a retry of a refused one passes (the service
    // repeats its cancel). A store that fails is a temperror, as for stamps.
    if accepted
        && let (Some(store), Some(list)) =
            (&inb.store, tickets.lock().expect("not poisoned").as_mut())
        && let Err(e) = record_tickets(store.as_ref(), list, now)
        && !inb.fail_open
    {
        return Err(("temperror", format!("recording the tickets: {e}")));
    }
    // A message accepted with an answer to one of our challenges: its MTA's retries of the
    // original are recognised for the recipients the answer paid.
    #[cfg(feature = "milter")]
    if accepted && let Some(ch) = &inb.challenges {
        let answer_now = crate::clock::unix_now();
        if let Some(d) = crate::milter::challenge::answered_delivery(
            &msg,
            &env.sender,
            rcpts,
            ch.key(),
            answer_now,
        ) {
            ch.record_delivery(d, answer_now);
        }
    }
    #[cfg(feature = "dns")]
    let dmarc = dmarc_of(&v);
    let eol = msg.eol();
    #[cfg(feature = "dns")]
    let sender_fields = match (&spf, &dmarc) {
        (Some(spf), Some(dmarc)) => Some([
            crate::authres::sender_field(&inb.authserv_id, &v, spf, dmarc, eol),
            crate::authres::hashcash_field_aligned(
                &inb.authserv_id,
                &v,
                inb.bits,
                Some(&dmarc.aligned_signers),
                eol,
            ),
        ]),
        _ => None,
    };
    #[cfg(not(feature = "dns"))]
    let sender_fields: Option<[String; 2]> = None;
    let mut fields: Vec<String> = sender_fields
        .unwrap_or_else(|| {
            [
                crate::authres::dkim_field(&inb.authserv_id, &v, eol),
                crate::authres::hashcash_field(&inb.authserv_id, &v, inb.bits, eol),
            ]
        })
        .into();
    let paid = paid_enough(&v);
    let carried = tickets
        .lock()
        .expect("not poisoned")
        .clone()
        .unwrap_or_default();
    // Unpaid because the ticket service could not answer: try again later (451), never a
    // permanent refusal.
    if !paid
        && inb.reject_below.is_some()
        && let Some(why) = carried.iter().find_map(|t| match &t.outcome {
            TicketOutcome::TempError(w) => Some(w.clone()),
            _ => None,
        })
    {
        return Err(("temperror", format!("ticket service: {why}")));
    }
    if inb.tickets.is_some() {
        fields.push(crate::authres::ticket_field(
            &inb.authserv_id,
            &carried,
            eol,
        ));
    }
    let unpaid = match inb.reject_below {
        Some(min) => unpaid_of(&v, min),
        None => Vec::new(),
    };
    let reasons: Vec<(String, &'static str)> = unpaid_of(&v, ticket_bits)
        .into_iter()
        .map(|r| {
            let why = unpaid_reason(&v, &carried, &r);
            (r, why)
        })
        .collect();
    let replayed = unpaid
        .iter()
        .filter(|r| reasons.iter().any(|(a, w)| a == *r && *w == "spent"))
        .count();
    let gone = gone_of(&v);
    let removed: Vec<String> = rcpts
        .iter()
        .filter(|r| gone.contains(*r))
        .cloned()
        .collect();
    // What a postage challenge needs to know of a message refused for postage.
    #[cfg(feature = "milter")]
    let facts = match (&inb.challenges, inb.reject_below) {
        (Some(ch), Some(_)) if !paid => Some(crate::milter::challenge::Facts::of(
            &msg,
            &env.sender,
            {
                #[cfg(feature = "dns")]
                {
                    spf.as_ref().is_some_and(|s| {
                        s.result == crate::sender::SpfResult::Pass
                            && s.identity == crate::sender::SpfIdentity::MailFrom
                    })
                }
                #[cfg(not(feature = "dns"))]
                {
                    false
                }
            },
            &v.dkim,
            unpaid.clone(),
            ch.key(),
            crate::clock::unix_now(),
        )),
        _ => None,
    };
    #[cfg(feature = "dns")]
    let dmarc_action = match &dmarc {
        Some(d) if inb.enforces_dmarc() => Some((d.action(), d.from_domain.clone())),
        _ => None,
    };
    let outcome = outcome_with_tickets(&v, &carried);
    let mut words = format!(
        "x-hashcash={} dkim={} overall={}",
        v.hashcash().keyword(),
        dkim_word(&v.dkim),
        outcome.keyword()
    );
    #[cfg(feature = "dns")]
    if let (Some(s), Some(d)) = (&spf, &dmarc) {
        words.push_str(&format!(
            " spf={} dmarc={}",
            s.result.keyword(),
            d.result.keyword()
        ));
    }
    if inb.tickets.is_some() {
        let paid = carried.iter().filter(|t| t.paid()).count();
        words.push_str(&format!(" tickets={paid}/{} cancelled", carried.len()));
    }
    words.push_str(&format!(
        " recipients={} unpaid={}",
        v.recipients.len(),
        unpaid.len()
    ));
    if !reasons.is_empty() {
        let mut list: Vec<String> = reasons
            .iter()
            .take(MAX_LOGGED)
            .map(|(a, w)| format!("<{}> {w}", escaped(a)))
            .collect();
        if reasons.len() > MAX_LOGGED {
            list.push(format!("and {} more", reasons.len() - MAX_LOGGED));
        }
        words.push_str(&format!(" [{}]", list.join(", ")));
    }
    Ok(Examined {
        fields,
        recipients: v.recipients.len(),
        paid,
        replayed,
        #[cfg(feature = "dns")]
        dmarc_action,
        #[cfg(feature = "milter")]
        facts,
        replay_removed: removed.iter().filter(|r| !done.contains(r)).count(),
        done: if paid { removed } else { Vec::new() },
        words,
        unpaid,
        findings: Findings {
            verdict: v,
            tickets: carried,
            outcome,
            unpaid: reasons,
            #[cfg(feature = "dns")]
            spf,
            #[cfg(feature = "dns")]
            dmarc,
        },
    })
}

/// The recipients of this message (a retry of an original we refused) that an answer to our
/// challenge delivered it to already: this copy need not pay for them, and they are taken off
/// it (never delivered to twice, never unpaid). Only when the caller can remove recipients
/// (else only a copy with none left, which is discarded), only for plain addresses (the MTA
/// removes a recipient by its exact text), and never for a copy that carries an answer itself
/// (the answer's own retry, if a later filter refused it, must be delivered, not dropped).
fn delivered_before(inb: &Inbound, env: &Envelope, msg: &Message) -> Vec<String> {
    #[cfg(feature = "milter")]
    {
        let now = crate::clock::unix_now();
        let done: Vec<String> = match &inb.challenges {
            Some(ch)
                if inb.reject_below.is_some()
                    && ch.has_deliveries()
                    && !crate::milter::challenge::carries_our_answer(
                        msg,
                        &env.sender,
                        ch.key(),
                        now,
                    ) =>
            {
                let had = ch.delivered_to(
                    &env.sender,
                    &crate::bind::body_digest(msg.body()),
                    crate::sent::message_id_of(msg).as_deref(),
                    now,
                );
                env.recipients
                    .iter()
                    .filter(|r| plain_address(r) && had.iter().any(|d| d.eq_ignore_ascii_case(r)))
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
        if !env.can_remove_recipients && done.len() < env.recipients.len() {
            return Vec::new();
        }
        done
    }
    #[cfg(not(feature = "milter"))]
    {
        let _ = (inb, env, msg);
        Vec::new()
    }
}

/// Whether the MTA can take `r` off a message by its text: an address without quotes, brackets,
/// separators or white space.
fn plain_address(r: &str) -> bool {
    r.bytes()
        .all(|b| b.is_ascii_graphic() && !b"\"()<>[]:;,\\".contains(&b))
}

/// Why `rcpt` is not paid: the failure of the stamps naming it (`spent` when one was spent
/// before, the first one's reason otherwise; `insufficient_work` for a valid stamp worth too
/// little), its ticket's (`ticket_spent` for a replayed ticket, else `ticket`), or `no_stamp`.
fn unpaid_reason(v: &MessageVerdict, tickets: &[RecipientTicket], rcpt: &str) -> &'static str {
    let Some(i) = v.recipients.iter().position(|r| r.address == rcpt) else {
        return "no_stamp";
    };
    let naming: Vec<_> = v.stamps.iter().filter(|s| s.pays == Some(i)).collect();
    let ticket = tickets
        .iter()
        .find(|t| t.address == rcpt && t.ticket.is_some());
    if let Some(t) = ticket
        && let TicketOutcome::Fail(why) = &t.outcome
        && naming.is_empty()
    {
        return if why.starts_with("a replay") {
            "spent"
        } else {
            "ticket"
        };
    }
    if naming
        .iter()
        .any(|s| matches!(s.verdict.result(), Err(VerifyError::Spent)))
    {
        return "spent";
    }
    if let Some(e) = naming.iter().find_map(|s| s.verdict.result().err()) {
        return e.keyword();
    }
    if naming.is_empty() {
        if ticket.is_some() {
            return "ticket";
        }
        return "no_stamp";
    }
    "insufficient_work"
}

/// The recipients (indexes into the verdict's) a stamp spent before pays, a stamp bound to this
/// message with a full binding (so what was delivered with it is this message as its reader
/// sees it).
fn spent_copies(v: &MessageVerdict) -> HashSet<usize> {
    v.stamps
        .iter()
        .filter(|s| {
            matches!(s.verdict.result(), Err(VerifyError::Spent))
                && s.verdict.parsed().is_some_and(|p| {
                    crate::bind::binding_of_ext(p.ext())
                        .is_ok_and(|b| b.is_some_and(|b| b.is_full()))
                })
        })
        .filter_map(|s| s.pays)
        .collect()
}

fn dkim_word(dkim: &[dkim::DkimResult]) -> &'static str {
    if dkim.iter().any(|d| d.status == dkim::DkimStatus::Pass) {
        return "pass";
    }
    dkim.first().map_or("none", |d| d.status.keyword())
}

/// The rejection policy, DMARC enforcement and earlier deliveries, on what [`examine`] found.
fn decide(inb: &Inbound, env: &Envelope, e: Examined) -> Decision {
    let log = format!("{}: {}", who(env), e.words);
    let mut d = Decision::new(deliver(), Reason::Checked, e.fields, log);
    let recipients = e.recipients;
    // Every envelope recipient pays on its own: one unpaid recipient refuses the message, so
    // no unpaid recipient is ever delivered to (and a message without any is refused). The
    // reply states the requirement in the policy syntax, for software to read
    // (`policy::requirement_in_reply`); an authenticated sender may get a challenge. A replay
    // (every unpaid recipient's postage spent before) has its own reply and no challenge:
    // retrying it, or answering for it, cannot make it deliverable.
    if let Some(min) = inb.reject_below
        && (!e.paid || recipients == 0)
    {
        let req = requirement(min, &inb.policy.min_value, inb.policy.min_memory_kib);
        let unpaid = e.unpaid.len();
        if e.replayed > 0 && e.replayed == unpaid {
            d.action = Action::Refuse(Reply::by(
                inb.replay_with,
                format!(
                    "postage already spent: a replay of a message delivered before, for {unpaid} of {recipients} recipient(s)"
                ),
            ));
            d.reason = Reason::Replayed;
        } else {
            d.action = Action::Refuse(Reply::by(
                inb.reject_with,
                format!("postage required [{req}] for {unpaid} of {recipients} recipient(s)"),
            ));
            d.reason = Reason::PostageRequired;
            #[cfg(feature = "milter")]
            {
                d.challenge = e.facts.map(|f| (f, req.clone()));
            }
        }
        d.requirement = Some(req.to_string());
        d.findings = Some(e.findings);
        return finish(d);
    }
    d.findings = Some(e.findings);
    // Enforced DMARC: the author domain's policy for a DMARC fail (never a temperror).
    #[cfg(feature = "dns")]
    match e.dmarc_action {
        Some((crate::sender::DmarcPolicy::Reject, domain)) => {
            d.action = Action::Refuse(Reply::new(
                550,
                [5, 7, 1],
                format!("DMARC policy of {domain} refuses this message (p=reject)"),
            ));
            d.reason = Reason::DmarcReject;
            return finish(d);
        }
        Some((crate::sender::DmarcPolicy::Quarantine, domain)) => {
            d.reason = Reason::DmarcQuarantine;
            if e.done.len() < recipients {
                d.action = Action::Deliver {
                    hold: Some(format!("DMARC policy of {domain}: quarantine")),
                    remove: e.done,
                };
                return finish(d);
            }
        }
        _ => {}
    }
    if !e.done.is_empty() {
        d.reason = Reason::DeliveredBefore;
        let why = if e.replay_removed == e.done.len() {
            "another copy of this message, its postage spent, reached"
        } else if e.replay_removed == 0 {
            "a retry of a message an answer to our challenge delivered"
        } else {
            "an answer to our challenge or another copy of this message reached"
        };
        d.log.push_str(&format!(
            "; {why}: {} of {recipients} recipient(s) have it",
            e.done.len()
        ));
        d.action = if e.done.len() == recipients {
            Action::Discard
        } else {
            Action::Deliver {
                hold: None,
                remove: e.done,
            }
        };
    }
    finish(d)
}

/// The requirement the filter states in its refusals and challenges: `bits` for the hash
/// families, each `--min-value` as a value of its family, and with Argon2id among them the
/// least memory the verifier takes (`mem=`, else a sender following the statement exactly
/// would still be refused).
pub fn requirement(
    bits: u32,
    min_value: &[(crate::Algorithm, u32)],
    min_memory_kib: u32,
) -> Requirement {
    let mut req = Requirement::bits(bits);
    req.algs = vec![Family::Sha256, Family::Blake3, Family::Sha1];
    for &(alg, v) in min_value {
        let f = Family::of(alg);
        if !req.family_bits.iter().any(|(g, _)| *g == f) {
            req.family_bits.push((f, v));
        }
        if !req.algs.contains(&f) {
            req.algs.push(f);
        }
    }
    if req.algs.contains(&Family::Argon2id) {
        req.memory_kib = Some(min_memory_kib.clamp(8, crate::Argon2Params::MAX_MEMORY_KIB));
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spent::Spend;
    use crate::{MemoryStore, MintRequest, Minter};

    const MSG: &str = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nHi.\r\n";

    /// A store that is down.
    struct Down;
    impl SpentStore for Down {
        fn spend_many(&self, _: &[Spend], _: i64) -> Result<Vec<bool>, crate::Error> {
            Err(crate::Error::Io(std::io::Error::other("the store is down")))
        }
        fn purge(&self, _: i64) -> Result<u64, crate::Error> {
            Ok(0)
        }
        fn len(&self) -> Result<u64, crate::Error> {
            Ok(0)
        }
    }

    fn receiver(reject_below: Option<u32>) -> Inbound {
        let mut inb = Inbound::new(
            "mx.example.net",
            Arc::new(dkim::KeyFile::default()),
            Policy {
                min_bits: Some(8),
                ..Policy::default()
            },
        );
        inb.store = Some(Arc::new(MemoryStore::new()));
        inb.reject_below = reject_below;
        inb
    }

    fn env(rcpts: &[&str]) -> Envelope {
        Envelope {
            sender: "alice@example.org".into(),
            recipients: rcpts.iter().map(|r| r.to_string()).collect(),
            client: Some("192.0.2.9".parse().unwrap()),
            queue_id: "Q".into(),
            ..Envelope::default()
        }
    }

    /// `MSG` with a bound stamp of `bits` for each of `rcpts` on top.
    fn stamped(rcpts: &[&str], bits: u32) -> Vec<u8> {
        let msg = Message::parse(MSG.as_bytes().to_vec()).unwrap();
        let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
        let req = MintRequest::new("-").bits(bits).parts(1);
        let fields =
            crate::postage::stamp_fields(&msg, &rcpts, &req, &Minter::new().threads(1), &[])
                .unwrap();
        msg.with_fields_on_top(&fields)
    }

    fn reply(d: &Decision) -> &Reply {
        match &d.action {
            Action::Refuse(r) | Action::Tempfail(r) => r,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_paid_message_is_delivered_with_our_verdicts_once() {
        let inb = receiver(Some(8));
        let d = judge(
            &inb,
            &env(&["bob@example.net"]),
            Content::Message(stamped(&["bob@example.net"], 8)),
        );
        assert_eq!(d.action, deliver(), "{d:?}");
        assert_eq!(d.reason, Reason::Checked);
        assert_eq!(d.fields.len(), 2, "{:?}", d.fields);
        assert!(d.fields[1].contains("x-hashcash=pass"), "{:?}", d.fields);
        assert!(d.log.ends_with("-> deliver (checked)"), "{}", d.log);
        assert!(
            d.log.contains("from <alice@example.org> client 192.0.2.9"),
            "{}",
            d.log
        );
        assert!(!d.log.contains("dkim/overall"), "{}", d.log);
        // Without a rejection policy a message with nothing is delivered too, with its verdict.
        let inb = receiver(None);
        let d = judge(
            &inb,
            &env(&["bob@example.net"]),
            Content::Message(MSG.into()),
        );
        assert_eq!(d.action, deliver(), "{d:?}");
        assert!(d.fields[1].contains("x-hashcash=none"), "{:?}", d.fields);
    }

    #[test]
    fn unpaid_replayed_and_empty_envelopes_are_refused_each_with_its_reply() {
        let inb = receiver(Some(8));
        let one = env(&["bob@example.net"]);
        // Too little work: postage required, the requirement stated, and no stamp recorded.
        let d = judge(
            &inb,
            &one,
            Content::Message(stamped(&["bob@example.net"], 4)),
        );
        assert_eq!(d.reason, Reason::PostageRequired, "{d:?}");
        let r = reply(&d);
        assert_eq!((r.code, r.status), (451, [4, 7, 1]));
        assert!(
            r.text.starts_with("postage required [v=PB1; bits=8;"),
            "{r}"
        );
        assert_eq!(
            d.requirement.as_deref(),
            Some(&r.text[18..r.text.find(']').unwrap()])
        );
        assert!(
            d.log.contains("<bob@example.net> insufficient_work"),
            "{}",
            d.log
        );
        // Paid, then the same again: a replay, 550 by default, 451 when configured so.
        let paid = stamped(&["bob@example.net"], 8);
        let d = judge(&inb, &one, Content::Message(paid.clone()));
        assert_eq!(d.reason, Reason::Checked, "{d:?}");
        let d = judge(&inb, &one, Content::Message(paid.clone()));
        assert_eq!(d.reason, Reason::Replayed, "{d:?}");
        assert_eq!((reply(&d).code, reply(&d).status), (550, [5, 7, 1]));
        assert!(reply(&d).text.starts_with("postage already spent"), "{d:?}");
        let mut lenient = receiver(Some(8));
        lenient.store = inb.store.clone();
        lenient.replay_with = RejectWith::Tempfail;
        assert_eq!(
            reply(&judge(&lenient, &one, Content::Message(paid.clone()))).code,
            451
        );
        // A replayed recipient beside an unpaid one: postage required (the message is refused
        // for Carol before the store is asked about Bob's stamp).
        let two = env(&["bob@example.net", "carol@example.net"]);
        let d = judge(&inb, &two, Content::Message(paid));
        assert_eq!(d.reason, Reason::PostageRequired, "{d:?}");
        assert!(
            d.log.contains("unpaid=1 [<carol@example.net> no_stamp]"),
            "{}",
            d.log
        );
        // No recipient at all: refused (nothing pays for no one).
        let d = judge(&inb, &env(&[]), Content::Message(MSG.into()));
        assert_eq!(d.reason, Reason::PostageRequired, "{d:?}");
        // --reject-with reject makes postage refusals permanent.
        let mut strict = receiver(Some(8));
        strict.reject_with = RejectWith::Reject;
        let d = judge(&strict, &one, Content::Message(MSG.into()));
        assert_eq!(reply(&d).code, 550);
    }

    #[test]
    fn what_cannot_be_checked_is_refused_under_a_policy_and_reported_otherwise() {
        let one = env(&["bob@example.net"]);
        for reject_below in [Some(8), None] {
            let inb = receiver(reject_below);
            let big = judge(&inb, &one, Content::TooLarge(1000));
            let bad = judge(&inb, &one, Content::Message(b"no header here".to_vec()));
            assert_eq!(big.reason, Reason::TooLarge);
            assert_eq!(bad.reason, Reason::Unreadable);
            for d in [&big, &bad] {
                assert!(d.findings.is_none() && d.not_checked.is_some(), "{d:?}");
                match reject_below {
                    Some(_) => assert_eq!(reply(d).code, 451, "{d:?}"),
                    None => {
                        assert_eq!(d.action, deliver(), "{d:?}");
                        assert!(d.fields[0].contains("permerror"), "{:?}", d.fields);
                    }
                }
            }
        }
    }

    #[test]
    fn a_store_that_fails_tempfails_under_a_policy_unless_fail_open() {
        let one = env(&["bob@example.net"]);
        let paid = stamped(&["bob@example.net"], 8);
        let mut inb = receiver(Some(8));
        inb.store = Some(Arc::new(Down));
        let d = judge(&inb, &one, Content::Message(paid.clone()));
        assert_eq!(d.reason, Reason::NotCheckedNow, "{d:?}");
        assert!(
            matches!(&d.action, Action::Tempfail(r) if r.code == 451),
            "{d:?}"
        );
        assert!(d.log.contains("the store is down"), "{}", d.log);
        // Without a policy the message goes on, marked temperror.
        inb.reject_below = None;
        let d = judge(&inb, &one, Content::Message(paid.clone()));
        assert_eq!(d.action, deliver());
        assert!(d.fields[0].contains("temperror"), "{:?}", d.fields);
        // Failing open: accepted, the verdict saying the store was not asked.
        inb.reject_below = Some(8);
        inb.fail_open = true;
        let d = judge(&inb, &one, Content::Message(paid));
        assert_eq!(d.action, deliver(), "{d:?}");
    }

    #[test]
    fn recipients_a_verbatim_copy_reached_are_taken_off_and_the_others_delivered() {
        let inb = receiver(Some(8));
        let both = stamped(&["bob@example.net", "dave@example.net"], 8);
        // A copy to Bob alone first (Carol relaying her copy, or an earlier delivery).
        let d = judge(
            &inb,
            &env(&["bob@example.net"]),
            Content::Message(both.clone()),
        );
        assert_eq!(d.reason, Reason::Checked, "{d:?}");
        // Then the message to Bob and Dave, on an MTA that lets us remove recipients: Bob has
        // it, Dave gets it (his stamp spent now), nobody twice.
        let mut two = env(&["bob@example.net", "dave@example.net"]);
        two.can_remove_recipients = true;
        let d = judge(&inb, &two, Content::Message(both.clone()));
        assert_eq!(
            d.action,
            Action::Deliver {
                hold: None,
                remove: vec!["bob@example.net".to_owned()]
            },
            "{d:?}"
        );
        assert_eq!(d.reason, Reason::DeliveredBefore);
        assert!(d.log.contains("another copy of this message"), "{}", d.log);
        // Everyone has it now: a replay, refused.
        let d = judge(&inb, &two, Content::Message(both.clone()));
        assert_eq!(d.reason, Reason::Replayed, "{d:?}");
        // Without recipient removal the mixed copy is refused whole, burning nothing.
        let inb = receiver(Some(8));
        judge(
            &inb,
            &env(&["bob@example.net"]),
            Content::Message(both.clone()),
        );
        let mut fixed = two.clone();
        fixed.can_remove_recipients = false;
        let d = judge(&inb, &fixed, Content::Message(both.clone()));
        assert_eq!(d.reason, Reason::Replayed, "{d:?}");
        let d = judge(&inb, &env(&["dave@example.net"]), Content::Message(both));
        assert_eq!(d.reason, Reason::Checked, "Dave's stamp was burnt: {d:?}");
    }

    #[test]
    fn no_recipient_burns_nothing_and_a_sender_writes_nothing_of_ours_in_the_log() {
        let inb = receiver(Some(8));
        let paid = stamped(&["bob@example.net"], 8);
        let d = judge(&inb, &env(&[]), Content::Message(paid.clone()));
        assert_eq!(d.reason, Reason::PostageRequired, "{d:?}");
        let d = judge(&inb, &env(&["bob@example.net"]), Content::Message(paid));
        assert_eq!(d.reason, Reason::Checked, "burnt by a refusal: {d:?}");
        let mut forged = env(&["bob@example.net"]);
        forged.sender =
            "\"x> client 192.0.2.1: x-hashcash=pass -> deliver (checked)\"@evil.example".into();
        let d = judge(&inb, &forged, Content::Message(MSG.into()));
        assert!(!d.log.contains("x> client 192.0.2.1"), "{}", d.log);
        assert!(d.log.contains("\\x20client"), "{}", d.log);
        let many: Vec<String> = (0..100).map(|i| format!("r{i}@example.net")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let d = judge(&inb, &env(&refs), Content::Message(MSG.into()));
        assert!(d.log.contains("and 80 more"), "{}", d.log);
        assert!(d.log.len() < 2000, "{}", d.log.len());
    }

    /// A ticket service that answers `ok` (cancelled) or is down.
    struct Service(bool);
    impl crate::ticket::message::Canceller for Service {
        fn cancel(
            &self,
            _: &crate::ticket::Carried,
            _: &str,
            _: &str,
        ) -> Result<crate::ticket::client::Cancelled, crate::ticket::client::ClientError> {
            if self.0 {
                Ok(crate::ticket::client::Cancelled { repeat: true })
            } else {
                Err(crate::ticket::client::ClientError::Unreachable {
                    url: "http://127.0.0.1:1".into(),
                    error: "timed out".into(),
                })
            }
        }
    }

    #[test]
    fn tickets_pay_a_recipient_and_a_service_down_tempfails_burning_nothing() {
        let issuer =
            crate::ticket::Issuer::new("tickets.example.org", "k1", [1; 32], [2; 32]).unwrap();
        let mut trusted = crate::ticket::TrustedKeys::new();
        trusted
            .add_record("tickets.example.org", &issuer.key_record())
            .unwrap();
        let plain = Message::parse(MSG.as_bytes().to_vec()).unwrap();
        let bought = vec![(
            "bob@example.net".to_owned(),
            issuer.issue([3; 16], 4_000_000_000),
        )];
        let fields = crate::ticket::message::attach_fields(&plain, &bought).unwrap();
        let paid = plain.with_fields_on_top(&fields);
        let one = env(&["bob@example.net"]);
        let with = |up: bool, store: Arc<dyn SpentStore>| {
            let mut inb = receiver(Some(8));
            inb.store = Some(store);
            inb.tickets = Some(InboundTickets {
                trusted: trusted.clone(),
                service: Arc::new(Service(up)),
                timeout: Duration::from_secs(5),
            });
            inb
        };
        let store: Arc<dyn SpentStore> = Arc::new(MemoryStore::new());
        let d = judge(
            &with(false, store.clone()),
            &one,
            Content::Message(paid.clone()),
        );
        assert_eq!(d.reason, Reason::NotCheckedNow, "{d:?}");
        assert!(
            matches!(&d.action, Action::Tempfail(r) if r.code == 451),
            "{d:?}"
        );
        let d = judge(
            &with(true, store.clone()),
            &one,
            Content::Message(paid.clone()),
        );
        assert_eq!(d.action, deliver(), "{d:?}");
        assert!(
            d.fields.iter().any(|f| f.contains("x-postage-ticket=pass")),
            "{:?}",
            d.fields
        );
        assert!(d.log.contains("tickets=1/1 cancelled"), "{}", d.log);
        // The same message again: its ticket is spent here, a replay.
        let d = judge(&with(true, store), &one, Content::Message(paid));
        assert_eq!(d.reason, Reason::Replayed, "{d:?}");
    }
}
