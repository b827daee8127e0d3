//! Postage challenges: when the inbound filter refuses a message for postage, it may tell an
//! authenticated sender what it asks, in a message of its own (RFC 3834: an automatic reply,
//! null return path) carrying a `Postage-Challenge:` field ([`crate::challenge`]) that the
//! sender's software answers by re-sending the message with stamps (`pennyblack answer`).
//!
//! A challenge is sent only when every condition holds ([`Challenger::consider`]): the sender
//! is not the null sender and is authenticated ([`authenticated`]: SPF pass for MAIL FROM, or a
//! passing DKIM signature of its domain or a parent of it), so no challenge goes to a forged
//! address (backscatter); the message is not automatic mail ([`auto_submitted`]); it does not
//! carry an answer to one of our own challenges ([`carries_our_answer`]); no challenge went for
//! the same (sender, body digest) lately (the MTA's retries); the sender's rate
//! ([`RateTable`]) and the hourly cap allow it. Every bound fails safe: a full table sends none.
//! The challenge is composed, DKIM-signed and handed to the relay on a blocking thread after
//! the reply to the MTA, never delaying it; one log line says what happened to each.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::challenge::{ANSWER_FIELD, CHALLENGE_FIELD, Challenge, MAX_RCPTS};
use crate::dkim::{self, Canon, SignRequest, SigningKey};
use crate::mail::{Eol, Message, format_field};
use crate::policy::Requirement;

use super::Shared;

/// The least length of a challenge key file, in bytes.
pub const MIN_KEY_FILE_LEN: usize = 32;

/// What the filter's challenges are and how often they may go.
pub struct ChallengeConfig {
    /// The SMTP relay that takes challenges on (`HOST:PORT`, plain SMTP: loopback or the
    /// local network; TLS onwards is the relay's job).
    pub relay: String,
    /// The challenge's `From:` address (default `postmaster@` the signing domain).
    pub from: String,
    /// The name this host gives in EHLO to the relay.
    pub helo: String,
    /// The MAC key (at least [`MIN_KEY_FILE_LEN`] bytes).
    pub key: Vec<u8>,
    /// How long a challenge is valid.
    pub ttl: Duration,
    /// At most this many challenges per sender per [`ChallengeConfig::period`].
    pub per_sender: u32,
    /// At most this many challenges per sender domain per [`ChallengeConfig::period`], so that
    /// one domain's senders (any local part passes its SPF) cannot use up the hourly cap.
    pub per_domain: u32,
    /// The period of the per-sender and per-domain rates.
    pub period: Duration,
    /// The most senders the rate table tracks; when it is full of senders within their period,
    /// no challenge goes to a new one.
    pub max_senders: usize,
    /// At most this many challenges an hour, all senders together.
    pub per_hour: u32,
    /// The most (sender, message) pairs remembered so that a retry gets no second challenge.
    pub max_recent: usize,
    /// The DKIM signing domain of challenges (`d=`).
    pub domain: String,
    /// The DKIM keys with their selectors (at least one).
    pub keys: Vec<(String, SigningKey)>,
    /// Canonicalization of the signatures.
    pub canon: (Canon, Canon),
    /// Time allowed per SMTP command to the relay.
    pub timeout: Duration,
}

/// Why no challenge was sent (the log says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoChallenge {
    /// The null sender: a bounce or an automatic reply.
    NullSender,
    /// The sender is not authenticated: no SPF pass, no aligned DKIM pass.
    NotAuthenticated,
    /// Automatic mail (RFC 3834), a list's, or a challenge itself.
    AutoSubmitted(&'static str),
    /// It carries an answer to one of our challenges.
    Answered,
    /// A challenge for this sender and message went already.
    Repeated,
    /// The sender had its share of challenges.
    SenderRate,
    /// The sender's domain had its share of challenges.
    DomainRate,
    /// The rate table is full.
    TableFull,
    /// The hourly cap is reached.
    HourlyCap,
    /// More unpaid recipients than a challenge names, or none, or one it cannot carry.
    Recipients,
}

impl std::fmt::Display for NoChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoChallenge::NullSender => f.write_str("null sender"),
            NoChallenge::NotAuthenticated => {
                f.write_str("sender not authenticated (no SPF pass, no aligned DKIM pass)")
            }
            NoChallenge::AutoSubmitted(why) => write!(f, "automatic mail ({why})"),
            NoChallenge::Answered => f.write_str("it answers one of our challenges"),
            NoChallenge::Repeated => f.write_str("already challenged (a retry)"),
            NoChallenge::SenderRate => f.write_str("sender rate limit"),
            NoChallenge::DomainRate => f.write_str("sender domain rate limit"),
            NoChallenge::TableFull => f.write_str("rate table full"),
            NoChallenge::HourlyCap => f.write_str("hourly cap reached"),
            NoChallenge::Recipients => write!(
                f,
                "the unpaid recipients cannot be named in one challenge (at most {MAX_RCPTS})"
            ),
        }
    }
}

/// Whether `id` (without brackets) is `dot-atom-text "@" dot-atom-text` of RFC 5322 3.6.4.
pub fn strict_msg_id(id: &str) -> bool {
    let atoms = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|a| {
                !a.is_empty()
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
            })
    };
    id.len() <= 250
        && id
            .split_once('@')
            .is_some_and(|(l, r)| atoms(l) && atoms(r))
}

/// The address of the message's one From field naming one mailbox; `None` otherwise.
pub fn single_from(msg: &Message) -> Option<String> {
    let mut fields = msg.fields_named("From");
    let v = fields.next()?.value();
    if fields.next().is_some() {
        return None;
    }
    let addr = match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].trim(),
        _ => v.trim(),
    };
    if addr.is_empty() || addr.contains([',', ' ', '\t', '<', '>', ';']) || !addr.contains('@') {
        return None;
    }
    Some(addr.to_owned())
}

/// What the inbound check learnt of a refused message, for [`Challenger::consider`].
#[derive(Debug, Clone)]
pub struct Facts {
    /// The envelope sender.
    pub sender: String,
    /// Whether SPF passed for MAIL FROM.
    pub spf_pass: bool,
    /// The `d=` of each passing DKIM signature.
    pub dkim_pass: Vec<String>,
    /// Why the message is automatic mail, if it is ([`auto_submitted`]).
    pub auto: Option<&'static str>,
    /// Whether it carries an answer to one of our challenges ([`carries_our_answer`]).
    pub answered: bool,
    /// [`crate::bind::body_digest`] of its body.
    pub digest: [u8; 32],
    /// Its Message-ID ([`crate::sent::message_id_of`]).
    pub message_id: Option<String>,
    /// The envelope recipients not paid for.
    pub unpaid: Vec<String>,
}

impl Facts {
    /// The facts of `msg`, refused for postage, from the check's findings.
    pub fn of(
        msg: &Message,
        sender: &str,
        spf_pass: bool,
        dkim: &[dkim::DkimResult],
        unpaid: Vec<String>,
        key: &[u8],
        now: i64,
    ) -> Facts {
        Facts {
            sender: sender.to_owned(),
            spf_pass,
            // A DKIM signature vouches for the envelope sender only when that sender is the
            // message's one From address and the signature covers From: else anyone holding one
            // signed message of a large provider could replay it under any address there and
            // have us challenge that address (review 19: backscatter).
            dkim_pass: match single_from(msg) {
                Some(from) if crate::bind::same_address(&from, sender) => dkim
                    .iter()
                    .filter(|d| d.status == dkim::DkimStatus::Pass && d.covers("from") > 0)
                    .map(|d| d.domain.clone())
                    .collect(),
                _ => Vec::new(),
            },
            auto: auto_submitted(msg, sender),
            answered: carries_our_answer(msg, sender, key, now),
            digest: crate::bind::body_digest(msg.body()),
            message_id: crate::sent::message_id_of(msg),
            unpaid,
        }
    }
}

/// Whether the envelope sender is authenticated: SPF passed for MAIL FROM, or a DKIM signature
/// passed whose `d=` is the sender's domain or a parent of it (with at least two labels: a
/// top-level domain's signature vouches for no one).
pub fn authenticated(sender: &str, spf_pass: bool, dkim_pass: &[String]) -> bool {
    let Some((_, domain)) = sender.rsplit_once('@') else {
        return false;
    };
    if domain.is_empty() {
        return false;
    }
    if spf_pass {
        return true;
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    dkim_pass.iter().any(|d| {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        d.contains('.')
            && (domain == d
                || domain
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.')))
    })
}

/// Why `msg` from `sender` is automatic mail that must get no automatic reply (RFC 3834 2 and
/// 5): `Auto-Submitted` other than `no`, `Precedence: bulk, list or junk`, a mailing list's
/// `List-Id`, a postage challenge itself, or a sender such as `MAILER-DAEMON`, `owner-*`,
/// `*-request`. `None`: a person's mail.
pub fn auto_submitted(msg: &Message, sender: &str) -> Option<&'static str> {
    for f in msg.fields_named("Auto-Submitted") {
        let v = f.value();
        let token = v.split(';').next().unwrap_or("").trim();
        if !token.eq_ignore_ascii_case("no") {
            return Some("Auto-Submitted");
        }
    }
    for f in msg.fields_named("Precedence") {
        let v = f.value().to_ascii_lowercase();
        if ["bulk", "list", "junk"].contains(&v.trim()) {
            return Some("Precedence");
        }
    }
    if msg.fields_named("List-Id").next().is_some() {
        return Some("List-Id");
    }
    if msg.fields_named(CHALLENGE_FIELD).next().is_some() {
        return Some("a postage challenge");
    }
    let local = sender
        .rsplit_once('@')
        .map_or(sender, |(l, _)| l)
        .to_ascii_lowercase();
    if local == "mailer-daemon"
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.starts_with("bounce")
    {
        return Some("a list or system sender");
    }
    None
}

/// The most `Postage-Answer` fields read from one message.
const MAX_ANSWER_FIELDS: usize = 4;

/// Whether `msg`, from the envelope sender `sender`, carries a `Postage-Answer` field whose MAC
/// verifies under `key` (expired or not: the MAC says it is an answer to our own challenge) and
/// that challenged this sender.
pub fn carries_our_answer(msg: &Message, sender: &str, key: &[u8], now: i64) -> bool {
    msg.fields_named(ANSWER_FIELD)
        .take(MAX_ANSWER_FIELDS)
        .any(|f| match Challenge::parse(&f.value()) {
            Ok(c) => ours(&c, sender, key, now),
            Err(_) => false,
        })
}

/// Whether `c` is a challenge of ours (its MAC under `key`, expired or not) to `sender`.
fn ours(c: &Challenge, sender: &str, key: &[u8], now: i64) -> bool {
    !sender.is_empty()
        && c.from.eq_ignore_ascii_case(sender)
        && matches!(
            c.verify(key, now),
            Ok(()) | Err(crate::challenge::ChallengeError::Expired(_))
        )
}

/// How long the filter remembers a message delivered through an answer to one of its
/// challenges: the original still waits in the sender's queue under the 451 and is retried
/// until the sender's MTA gives up (Postfix's `maximal_queue_lifetime` is 5 days by default).
pub const ANSWERED_KEEP: Duration = Duration::from_secs(5 * 86_400);

/// A message accepted with an answer to one of our challenges: its envelope sender, body
/// digest, Message-ID, and the envelope recipients the answer paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The envelope sender, lower case.
    pub sender: String,
    /// [`crate::bind::body_digest`] of the body.
    pub digest: [u8; 32],
    /// The Message-ID without brackets.
    pub message_id: Option<String>,
    /// The envelope recipients the challenge named, lower case.
    pub rcpts: Vec<String>,
}

/// The delivery `msg` makes through an answer to one of our challenges: a `Postage-Answer`
/// field whose MAC verifies under `key` (expired or not) and whose challenge names this very
/// message (the same body digest and Message-ID) and this envelope sender, for the envelope
/// recipients it names. `None` for any other message: an answer copied into another message,
/// or sent under another sender, proves nothing of it (else a co-recipient who knows the body
/// could answer his own challenge under the sender's address and have its retries dropped).
pub fn answered_delivery(
    msg: &Message,
    sender: &str,
    rcpts: &[String],
    key: &[u8],
    now: i64,
) -> Option<Delivered> {
    if sender.is_empty() {
        return None;
    }
    let digest = crate::bind::body_digest(msg.body());
    let message_id = crate::sent::message_id_of(msg);
    let c = msg
        .fields_named(ANSWER_FIELD)
        .take(MAX_ANSWER_FIELDS)
        .filter_map(|f| Challenge::parse(&f.value()).ok())
        .find(|c| ours(c, sender, key, now) && c.digest == digest && c.message_id == message_id)?;
    let rcpts: Vec<String> = rcpts
        .iter()
        .filter(|r| c.rcpts.iter().any(|x| x.eq_ignore_ascii_case(r)))
        .map(|r| r.to_ascii_lowercase())
        .collect();
    (!rcpts.is_empty()).then(|| Delivered {
        sender: sender.to_ascii_lowercase(),
        digest,
        message_id,
        rcpts,
    })
}

pub use crate::reception::requirement;

/// A per-key rate limit: at most `per` events in any `period` (seconds) per key, for at most
/// `max_keys` keys at once. When the table is full of keys still within their period, a new key
/// is refused (fail safe).
pub struct RateTable {
    per: u32,
    period: i64,
    max_keys: usize,
    keys: HashMap<String, VecDeque<i64>>,
}

impl RateTable {
    /// An empty table.
    pub fn new(per: u32, period: i64, max_keys: usize) -> RateTable {
        RateTable {
            per,
            period: period.max(1),
            max_keys,
            keys: HashMap::new(),
        }
    }

    /// How many keys it tracks.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it tracks none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `key` may have one more event at `now`; if so it is counted.
    pub fn allow(&mut self, key: &str, now: i64) -> Result<(), NoChallenge> {
        self.check(key, now)?;
        self.record(key, now);
        Ok(())
    }

    /// Whether `key` may have one more event at `now`, counting nothing.
    pub fn check(&mut self, key: &str, now: i64) -> Result<(), NoChallenge> {
        let since = now - self.period;
        if let Some(times) = self.keys.get_mut(key) {
            while times.front().is_some_and(|&t| t <= since) {
                times.pop_front();
            }
            if times.len() >= self.per as usize {
                return Err(NoChallenge::SenderRate);
            }
            return Ok(());
        }
        if self.keys.len() >= self.max_keys {
            // Only when full: forget the keys whose events are all past.
            self.keys
                .retain(|_, times| times.back().is_some_and(|&t| t > since));
            if self.keys.len() >= self.max_keys {
                return Err(NoChallenge::TableFull);
            }
        }
        if self.per == 0 {
            return Err(NoChallenge::SenderRate);
        }
        Ok(())
    }

    /// Counts one event of `key` at `now` (after [`RateTable::check`] allowed it).
    pub fn record(&mut self, key: &str, now: i64) {
        self.keys.entry(key.to_owned()).or_default().push_back(now);
    }
}

/// A bounded set remembering the most recent items (the oldest forgotten first).
struct Recent {
    max: usize,
    set: HashSet<(String, [u8; 32])>,
    order: VecDeque<(String, [u8; 32])>,
}

impl Recent {
    fn insert(&mut self, item: (String, [u8; 32])) -> bool {
        if self.max == 0 || self.set.contains(&item) {
            return false;
        }
        if self.order.len() >= self.max
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(item.clone());
        self.order.push_back(item);
        true
    }
}

/// The messages delivered through answers lately, bounded: (sender, digest) to the
/// Message-ID, the recipients and until when; the oldest forgotten first.
/// A message delivered through an answer: its Message-ID, recipients, and until when.
type AnsweredEntry = (Option<String>, HashSet<String>, i64);

struct Answered {
    max: usize,
    map: HashMap<(String, [u8; 32]), AnsweredEntry>,
    order: VecDeque<(String, [u8; 32])>,
}

struct State {
    rates: RateTable,
    domain_rates: RateTable,
    recent: Recent,
    answered: Answered,
    hour: i64,
    this_hour: u32,
}

/// The challenge sender of the inbound filter: its configuration and its bounded memory.
pub struct Challenger {
    config: ChallengeConfig,
    state: Mutex<State>,
}

impl Challenger {
    /// A challenger with empty tables.
    pub fn new(config: ChallengeConfig) -> Challenger {
        let state = State {
            rates: RateTable::new(
                config.per_sender,
                config.period.as_secs() as i64,
                config.max_senders,
            ),
            domain_rates: RateTable::new(
                config.per_domain,
                config.period.as_secs() as i64,
                config.max_senders,
            ),
            recent: Recent {
                max: config.max_recent,
                set: HashSet::new(),
                order: VecDeque::new(),
            },
            answered: Answered {
                max: config.max_recent,
                map: HashMap::new(),
                order: VecDeque::new(),
            },
            hour: 0,
            this_hour: 0,
        };
        Challenger {
            config,
            state: Mutex::new(state),
        }
    }

    /// The MAC key.
    pub fn key(&self) -> &[u8] {
        &self.config.key
    }

    /// Remembers a message delivered through an answer (until [`ANSWERED_KEEP`] from `now`),
    /// so that the MTA's retries of the refused original are not refused again for the
    /// recipients the answer paid ([`Challenger::delivered_to`]).
    pub fn record_delivery(&self, d: Delivered, now: i64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let a = &mut st.answered;
        if a.max == 0 {
            return;
        }
        let until = now.saturating_add(ANSWERED_KEEP.as_secs() as i64);
        let key = (d.sender, d.digest);
        if let Some(entry) = a.map.get_mut(&key) {
            // Recipients added, the first expiry kept: copies of the answer cannot keep the
            // entry alive past ANSWERED_KEEP (review).
            if entry.0 == d.message_id {
                entry.1.extend(d.rcpts);
                return;
            }
            a.order.retain(|k| k != &key);
        }
        while a.order.len() >= a.max {
            match a.order.pop_front() {
                Some(old) => {
                    a.map.remove(&old);
                }
                None => break,
            }
        }
        a.map.insert(
            key.clone(),
            (d.message_id, d.rcpts.into_iter().collect(), until),
        );
        a.order.push_back(key);
    }

    /// Whether any delivery through an answer is remembered (the filter then reads the digest
    /// of each refused message to look it up).
    pub fn has_deliveries(&self) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !st.answered.map.is_empty()
    }

    /// The recipients (lower case) to whom a message from `sender` with this body digest and
    /// Message-ID was delivered through an answer, within [`ANSWERED_KEEP`]: a message that is
    /// the same again is the MTA retrying the original, and those recipients have it.
    pub fn delivered_to(
        &self,
        sender: &str,
        digest: &[u8; 32],
        message_id: Option<&str>,
        now: i64,
    ) -> Vec<String> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.answered.map.get(&(sender.to_ascii_lowercase(), *digest)) {
            Some((id, rcpts, until)) if id.as_deref() == message_id && now <= *until => {
                let mut v: Vec<String> = rcpts.iter().cloned().collect();
                v.sort();
                v
            }
            _ => Vec::new(),
        }
    }

    /// Decides whether a challenge goes for these facts at `now`, and if so counts it; the
    /// conditions are checked cheapest first, and only a challenge that will go is counted.
    pub fn decide(&self, facts: &Facts, now: i64) -> Result<(), NoChallenge> {
        if facts.sender.is_empty() {
            return Err(NoChallenge::NullSender);
        }
        if let Some(why) = facts.auto {
            return Err(NoChallenge::AutoSubmitted(why));
        }
        if facts.answered {
            return Err(NoChallenge::Answered);
        }
        if !authenticated(&facts.sender, facts.spf_pass, &facts.dkim_pass) {
            return Err(NoChallenge::NotAuthenticated);
        }
        if facts.unpaid.is_empty() || facts.unpaid.len() > MAX_RCPTS {
            return Err(NoChallenge::Recipients);
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let sender = facts.sender.to_ascii_lowercase();
        let pair = (sender.clone(), facts.digest);
        if st.recent.set.contains(&pair) {
            return Err(NoChallenge::Repeated);
        }
        let hour = now.div_euclid(3600);
        if st.hour != hour {
            st.hour = hour;
            st.this_hour = 0;
        }
        if st.this_hour >= self.config.per_hour {
            return Err(NoChallenge::HourlyCap);
        }
        // Both rates are checked before either is counted: a challenge that does not go
        // spends neither the sender's nor its domain's share (review).
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        st.domain_rates.check(domain, now).map_err(|e| match e {
            NoChallenge::SenderRate => NoChallenge::DomainRate,
            other => other,
        })?;
        st.rates.check(&sender, now)?;
        st.domain_rates.record(domain, now);
        st.rates.record(&sender, now);
        st.recent.insert(pair);
        st.this_hour += 1;
        Ok(())
    }

    /// The challenge message for `facts` (asking `req`), signed: (its bytes, its Message-ID).
    pub fn compose(
        &self,
        facts: &Facts,
        req: &Requirement,
        now: i64,
    ) -> Result<(Vec<u8>, String), String> {
        let c = &self.config;
        let expires = now.saturating_add(c.ttl.as_secs() as i64);
        let challenge = Challenge::issue(
            &c.key,
            req.clone(),
            facts.sender.clone(),
            facts.unpaid.clone(),
            facts.message_id.clone(),
            facts.digest,
            expires,
        )
        .map_err(|e| e.to_string())?;
        let mut rnd = [0u8; 12];
        getrandom::fill(&mut rnd).map_err(|e| e.to_string())?;
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let id = format!("postage.{hex}@{}", c.domain);
        let fmt = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .ok()
                .and_then(|d| {
                    d.format(&time::format_description::well_known::Rfc2822)
                        .ok()
                })
                .unwrap_or_default()
        };
        let eol = Eol::Crlf;
        let mut head = String::new();
        head.push_str(&format_field("From", &format!("<{}>", c.from), eol));
        head.push_str(&format_field("To", &format!("<{}>", facts.sender), eol));
        head.push_str(&format_field(
            "Subject",
            "Postage required: your message was not delivered",
            eol,
        ));
        head.push_str(&format_field("Date", &fmt(now), eol));
        head.push_str(&format_field("Message-ID", &format!("<{id}>"), eol));
        if let Some(orig) = facts.message_id.as_deref().filter(|m| strict_msg_id(m)) {
            head.push_str(&format_field("In-Reply-To", &format!("<{orig}>"), eol));
            head.push_str(&format_field("References", &format!("<{orig}>"), eol));
        }
        head.push_str(&format_field("Auto-Submitted", "auto-replied", eol));
        head.push_str(&format_field("MIME-Version", "1.0", eol));
        head.push_str(&format_field(
            "Content-Type",
            "text/plain; charset=us-ascii",
            eol,
        ));
        head.push_str(&format_field(CHALLENGE_FIELD, &challenge.to_string(), eol));
        // Nothing the sender wrote (its Message-ID, its recipients' addresses) goes into the
        // signed text a person reads: else an attacker could have us sign a phishing line in
        // our own name and replay it (review 19). The header field names them for software.
        let body = format!(
            "This is an automatic reply from {domain}: please do not reply to it.\r\n\r\n\
             Your message was not delivered to some of its recipients.\r\n\
             {domain} asks mail from senders it does not know to carry postage: a\r\n\
             small proof of work for each recipient (a hashcash stamp, RFC-style\r\n\
             X-Hashcash header field), and your message carried too little. Your mail\r\n\
             server may retry it for a while; it will be refused again.\r\n\r\n\
             To deliver it, send it again with stamps that meet this requirement:\r\n\r\n\
             \x20   {req}\r\n\r\n\
             If your mail system keeps what it sends with pennyblack, this is done for\r\n\
             you: pennyblack answer --sent DIR --smtp HOST:PORT < this-message\r\n\
             The machine-readable request is the Postage-Challenge header field of this\r\n\
             message (with the recipients not paid for). It expires {exp}.\r\n",
            domain = c.domain,
            exp = fmt(expires),
        );
        let raw = format!("{head}\r\n{body}").into_bytes();
        let msg = Message::parse(raw).map_err(|e| e.to_string())?;
        let signers = SignRequest::each(&c.domain, &c.keys, c.canon, now);
        let sigs = crate::postage::sign_fields(&msg, &signers).map_err(|e| e.to_string())?;
        Ok((msg.with_fields_on_top(&sigs), id))
    }

    /// Decides for a message just refused, and when a challenge goes, composes and sends it
    /// on a blocking thread without waiting for it. Logs one line either way.
    pub fn consider(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        qid: &str,
        facts: Facts,
        req: Requirement,
    ) {
        let now = crate::clock::unix_now();
        if let Err(why) = self.decide(&facts, now) {
            shared.log(qid, format_args!("challenge not sent: {why}"));
            return;
        }
        let (me, shared, qid) = (Arc::clone(self), Arc::clone(shared), qid.to_owned());
        tokio::task::spawn_blocking(move || {
            let sent = me.compose(&facts, &req, now).and_then(|(bytes, id)| {
                crate::relay::send(
                    &me.config.relay,
                    &me.config.helo,
                    "",
                    std::slice::from_ref(&facts.sender),
                    &bytes,
                    me.config.timeout,
                )
                .map(|()| id)
                .map_err(|e| e.to_string())
            });
            match sent {
                Ok(id) => shared.log(
                    &qid,
                    format_args!(
                        "challenge sent to <{}> for {} recipient(s) [{req}] as <{id}>",
                        facts.sender,
                        facts.unpaid.len()
                    ),
                ),
                Err(e) => shared.log(&qid, format_args!("challenge not sent: {e}")),
            }
        });
    }
}

/// Reads the challenge MAC key from `path`, or when there is no such file makes one of 32
/// random bytes (mode 0600, written to a temporary name and linked into place, so a
/// concurrent start never sees half a key). A key that others can read, or shorter than
/// [`MIN_KEY_FILE_LEN`], is refused.
pub fn load_or_create_key(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    if !path.exists() {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = dir.join(format!(".pennyblack-key-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = f.write_all(&key).and_then(|()| f.sync_all());
        // A hard link never replaces: a key another process made first is the one kept.
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(bad(format!(
            "{}: its group or others can read or write the challenge key (mode {:o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    let key = std::fs::read(path)?;
    if key.len() < MIN_KEY_FILE_LEN {
        return Err(bad(format!(
            "{}: a challenge key needs at least {MIN_KEY_FILE_LEN} random bytes, it has {}",
            path.display(),
            key.len()
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Message {
        Message::parse(format!("{head}From: a@example.org\r\n\r\nbody\r\n").into_bytes()).unwrap()
    }

    /// Review 19: one signed message of a large provider, replayed under another address there
    /// (SPF fails, DKIM passes), must not make us challenge that address.
    #[test]
    fn a_dkim_replay_under_another_local_part_is_not_authenticated() {
        let m = |from: &str| {
            Message::parse(
                format!("From: Alice <{from}>\r\nTo: x@example.net\r\nSubject: s\r\n\r\nbody\r\n")
                    .into_bytes(),
            )
            .unwrap()
        };
        let pass = |signed: &[&str]| dkim::DkimResult {
            domain: "example.org".into(),
            selector: "s1".into(),
            algorithm: "ed25519-sha256".into(),
            status: dkim::DkimStatus::Pass,
            signed: signed.iter().map(|s| s.to_string()).collect(),
        };
        let facts = |msg: &Message, sender: &str, sig: dkim::DkimResult| {
            let f = Facts::of(
                msg,
                sender,
                false,
                &[sig],
                vec!["x@example.net".into()],
                &[7; 32],
                0,
            );
            authenticated(&f.sender, f.spf_pass, &f.dkim_pass)
        };
        let alice = m("alice@example.org");
        assert!(facts(&alice, "alice@example.org", pass(&["from", "to"])));
        assert!(!facts(&alice, "victim@example.org", pass(&["from", "to"])));
        // A signature that does not cover From vouches for no one.
        assert!(!facts(
            &alice,
            "alice@example.org",
            pass(&["to", "subject"])
        ));
        // Two mailboxes in From: no one.
        let two = m("alice@example.org>, <bob@example.org");
        assert!(!facts(&two, "alice@example.org", pass(&["from"])));
    }

    /// Review 19: nothing the sender wrote reaches the text a person reads.
    #[test]
    fn strict_message_ids_only() {
        assert!(strict_msg_id("1234.abc@mail.example.org"));
        assert!(!strict_msg_id("https://evil.example/reset?x@y"));
        assert!(!strict_msg_id("a b@c"));
        assert!(!strict_msg_id("no-at-sign"));
        assert!(!strict_msg_id("a@[127.0.0.1]"));
    }

    #[test]
    fn authentication_rule() {
        let d = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(authenticated("a@example.org", true, &[]));
        assert!(authenticated("a@example.org", false, &d(&["example.org"])));
        assert!(authenticated(
            "a@mail.example.org",
            false,
            &d(&["Example.ORG."])
        ));
        // Not a parent: a sibling, a suffix that is not a label, a child, a top-level domain.
        assert!(!authenticated("a@example.org", false, &d(&["other.org"])));
        assert!(!authenticated(
            "a@badexample.org",
            false,
            &d(&["example.org"])
        ));
        assert!(!authenticated(
            "a@example.org",
            false,
            &d(&["mail.example.org"])
        ));
        assert!(!authenticated("a@example.org", false, &d(&["org"])));
        assert!(!authenticated("a@example.org", false, &[]));
        // No domain: never.
        assert!(!authenticated("", true, &[]));
        assert!(!authenticated("postmaster", true, &[]));
        assert!(!authenticated("a@", true, &[]));
    }

    #[test]
    fn automatic_mail_is_recognised() {
        let person = "a@example.org";
        assert_eq!(auto_submitted(&parse(""), person), None);
        assert_eq!(
            auto_submitted(&parse("Auto-Submitted: no\r\n"), person),
            None
        );
        assert_eq!(
            auto_submitted(&parse("Auto-Submitted: No (a comment)\r\n"), person),
            Some("Auto-Submitted")
        );
        for head in [
            "Auto-Submitted: auto-replied\r\n",
            "Auto-Submitted: auto-generated; owner-email=x@y\r\n",
            "Precedence: bulk\r\n",
            "Precedence: LIST\r\n",
            "Precedence: junk\r\n",
            "List-Id: <list.example.org>\r\n",
            "Postage-Challenge: v=PB1; bits=1\r\n",
        ] {
            assert!(auto_submitted(&parse(head), person).is_some(), "{head}");
        }
        for sender in [
            "MAILER-DAEMON@example.org",
            "owner-list@example.org",
            "list-request@example.org",
            "bounces+x@example.org",
        ] {
            assert!(auto_submitted(&parse(""), sender).is_some(), "{sender}");
        }
        assert_eq!(
            auto_submitted(&parse("Precedence: first-class\r\n"), person),
            None
        );
    }

    #[test]
    fn rate_table_limits_each_sender_and_fails_safe_when_full() {
        let mut t = RateTable::new(3, 3600, 2);
        for _ in 0..3 {
            assert_eq!(t.allow("a", 100), Ok(()));
        }
        assert_eq!(t.allow("a", 200), Err(NoChallenge::SenderRate));
        // A period later, one more.
        assert_eq!(t.allow("a", 100 + 3600 + 1), Ok(()));
        assert_eq!(t.allow("b", 4000), Ok(()));
        // Full of senders still within their period: a new one gets nothing.
        assert_eq!(t.allow("c", 4000), Err(NoChallenge::TableFull));
        assert_eq!(t.len(), 2);
        // Once theirs are past, the table makes room.
        assert_eq!(t.allow("c", 4000 + 3601), Ok(()));
        assert_eq!(t.len(), 1);
    }

    fn key_file_config(keys: Vec<(String, SigningKey)>) -> ChallengeConfig {
        ChallengeConfig {
            relay: "127.0.0.1:1".into(),
            from: "postmaster@example.net".into(),
            helo: "mx.example.net".into(),
            key: vec![7; 32],
            ttl: Duration::from_secs(3 * 86_400),
            per_sender: 2,
            per_domain: 10,
            period: Duration::from_secs(3600),
            max_senders: 10,
            per_hour: 3,
            max_recent: 100,
            domain: "example.net".into(),
            keys,
            canon: (Canon::Relaxed, Canon::Relaxed),
            timeout: Duration::from_secs(5),
        }
    }

    fn facts(sender: &str, digest: u8) -> Facts {
        Facts {
            sender: sender.into(),
            spf_pass: true,
            dkim_pass: vec![],
            auto: None,
            answered: false,
            digest: [digest; 32],
            message_id: Some("m1@example.org".into()),
            unpaid: vec!["bob@example.net".into()],
        }
    }

    #[test]
    fn decisions_dedupe_rate_and_cap() {
        let ch = Challenger::new(key_file_config(vec![]));
        assert_eq!(ch.decide(&facts("a@example.org", 1), 10), Ok(()));
        // The MTA's retry of the same message: no second challenge.
        assert_eq!(
            ch.decide(&facts("A@example.org", 1), 20),
            Err(NoChallenge::Repeated)
        );
        assert_eq!(ch.decide(&facts("a@example.org", 2), 30), Ok(()));
        assert_eq!(
            ch.decide(&facts("a@example.org", 3), 40),
            Err(NoChallenge::SenderRate)
        );
        assert_eq!(ch.decide(&facts("b@example.org", 4), 50), Ok(()));
        assert_eq!(
            ch.decide(&facts("c@example.org", 5), 60),
            Err(NoChallenge::HourlyCap)
        );
        // The next hour.
        assert_eq!(ch.decide(&facts("c@example.org", 5), 3600), Ok(()));
        let mut f = facts("", 9);
        assert_eq!(ch.decide(&f, 3601), Err(NoChallenge::NullSender));
        f = facts("d@example.org", 9);
        f.spf_pass = false;
        assert_eq!(ch.decide(&f, 3601), Err(NoChallenge::NotAuthenticated));
        f.dkim_pass = vec!["example.org".into()];
        f.answered = true;
        assert_eq!(ch.decide(&f, 3601), Err(NoChallenge::Answered));
        f.answered = false;
        f.unpaid = vec!["x@example.net".into(); MAX_RCPTS + 1];
        assert_eq!(ch.decide(&f, 3601), Err(NoChallenge::Recipients));
    }

    /// Review: one domain's senders (any local part passes its SPF) cannot use up the hourly
    /// cap for every other sender.
    #[test]
    fn one_domain_cannot_use_up_the_hourly_cap() {
        let mut config = key_file_config(vec![]);
        config.per_hour = 5;
        config.per_domain = 3;
        config.per_sender = 3;
        let ch = Challenger::new(config);
        for (i, local) in ["a", "b", "c"].iter().enumerate() {
            let f = facts(&format!("{local}@evil.example"), i as u8);
            assert_eq!(ch.decide(&f, 10), Ok(()), "{local}");
        }
        assert_eq!(
            ch.decide(&facts("d@EVIL.example", 9), 10),
            Err(NoChallenge::DomainRate)
        );
        assert_eq!(ch.decide(&facts("ok@good.example", 10), 10), Ok(()));
        // A sender refused for its own rate spends none of its domain's share.
        let mut config = key_file_config(vec![]);
        config.per_sender = 2;
        config.per_domain = 3;
        let ch = Challenger::new(config);
        for i in 0..3u8 {
            let _ = ch.decide(&facts("a@d.example", i), 10);
        }
        assert_eq!(
            ch.decide(&facts("a@d.example", 7), 10),
            Err(NoChallenge::SenderRate)
        );
        assert_eq!(ch.decide(&facts("b@d.example", 8), 10), Ok(()));
    }

    /// A retry of an original that an answer delivered: recognised only for that sender, body
    /// and Message-ID, only for the recipients the answer paid, and only with our own MAC.
    #[test]
    fn deliveries_through_answers_are_recognised_for_the_same_message_only() {
        let ch = Challenger::new(key_file_config(vec![]));
        let head = "From: a@example.org\r\nMessage-ID: <m1@example.org>\r\n";
        let original = parse(head);
        let digest = crate::bind::body_digest(original.body());
        let rcpts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let answer_from = |from: &str, key: &[u8], id: Option<&str>, digest: [u8; 32]| {
            let c = Challenge::issue(
                key,
                requirement(16, &[], 1024),
                from.to_owned(),
                rcpts(&["bob@example.net", "carol@example.net"]),
                id.map(str::to_owned),
                digest,
                1_000,
            )
            .unwrap();
            parse(&format!("{ANSWER_FIELD}: {c}\r\n{head}"))
        };
        let answer = |key: &[u8], id: Option<&str>, digest: [u8; 32]| {
            answer_from("a@example.org", key, id, digest)
        };
        let sent = rcpts(&["Bob@example.net", "dave@example.net"]);
        let ours = answer(&[7; 32], Some("m1@example.org"), digest);
        // An answer under another key, for another body or another Message-ID, or to a
        // challenge of another sender (a co-recipient's, sent under this sender's address):
        // nothing.
        for other in [
            answer_from(
                "mallory@example.com",
                &[7; 32],
                Some("m1@example.org"),
                digest,
            ),
            answer(&[8; 32], Some("m1@example.org"), digest),
            answer(&[7; 32], Some("m2@example.org"), digest),
            answer(&[7; 32], Some("m1@example.org"), [1; 32]),
        ] {
            assert_eq!(
                answered_delivery(&other, "a@example.org", &sent, &[7; 32], 10),
                None
            );
        }
        assert_eq!(answered_delivery(&ours, "", &sent, &[7; 32], 10), None);
        // Ours, even past its expiry: the recipients it names, not Dave.
        let d = answered_delivery(&ours, "A@example.org", &sent, &[7; 32], 5_000).unwrap();
        assert_eq!(d.rcpts, ["bob@example.net"]);
        assert!(!ch.has_deliveries());
        ch.record_delivery(d, 100);
        let had = |sender: &str, id: Option<&str>, d: &[u8; 32], now: i64| {
            ch.delivered_to(sender, d, id, now)
        };
        assert_eq!(
            had("a@example.org", Some("m1@example.org"), &digest, 200),
            ["bob@example.net"]
        );
        assert!(had("b@example.org", Some("m1@example.org"), &digest, 200).is_empty());
        assert!(had("a@example.org", Some("m9@example.org"), &digest, 200).is_empty());
        assert!(had("a@example.org", None, &digest, 200).is_empty());
        assert!(had("a@example.org", Some("m1@example.org"), &[2; 32], 200).is_empty());
        let end = 100 + ANSWERED_KEEP.as_secs() as i64;
        assert_eq!(
            had("a@example.org", Some("m1@example.org"), &digest, end).len(),
            1
        );
        assert!(had("a@example.org", Some("m1@example.org"), &digest, end + 1).is_empty());
        // Bounded: the oldest is forgotten first.
        for i in 0..100u8 {
            ch.record_delivery(
                Delivered {
                    sender: format!("s{i}@example.org"),
                    digest,
                    message_id: None,
                    rcpts: rcpts(&["x@example.net"]),
                },
                100,
            );
        }
        assert!(had("a@example.org", Some("m1@example.org"), &digest, 200).is_empty());
        assert_eq!(
            had("s99@example.org", None, &digest, 200),
            ["x@example.net"]
        );
        assert_eq!(ch.state.lock().unwrap().answered.map.len(), 100);
    }

    #[test]
    fn a_challenge_message_is_an_automatic_signed_reply() {
        let key = SigningKey::generate(crate::dkim::keys::KeyKind::Ed25519, 0).unwrap();
        let record = key.public_record().unwrap();
        let ch = Challenger::new(key_file_config(vec![("s1".into(), key)]));
        let req = requirement(16, &[], 1024);
        let (bytes, id) = ch
            .compose(&facts("a@example.org", 1), &req, 1_800_000_000)
            .unwrap();
        let msg = Message::parse(bytes).unwrap();
        let field = |n: &str| msg.fields_named(n).next().map(|f| f.value());
        assert_eq!(field("Auto-Submitted").as_deref(), Some("auto-replied"));
        assert_eq!(field("In-Reply-To").as_deref(), Some("<m1@example.org>"));
        assert_eq!(field("Message-ID"), Some(format!("<{id}>")));
        let c = Challenge::parse(&field(CHALLENGE_FIELD).unwrap()).unwrap();
        c.verify(&[7; 32], 1_800_000_000).unwrap();
        assert_eq!(
            c.requirement.to_string(),
            "v=PB1; bits=16; alg=sha256,blake3,sha1"
        );
        assert_eq!(c.expires, 1_800_000_000 + 3 * 86_400);
        // Folded (no line over 78 columns but unbreakable tokens).
        assert!(String::from_utf8_lossy(msg.as_bytes()).contains("Postage-Challenge: v=PB1;"));
        // Signed by the receiver's domain, covering the challenge.
        let mut keys = crate::dkim::KeyFile::default();
        keys.insert("s1._domainkey.example.net", &record);
        let v = dkim::verify(
            &msg,
            &keys,
            &dkim::VerifyOptions {
                now: 1_800_000_000,
                ..Default::default()
            },
        );
        assert_eq!(v[0].status, dkim::DkimStatus::Pass, "{v:?}");
        assert_eq!(v[0].covers("postage-challenge"), 1);
        // Our own challenge, copied into an answer, is recognised; a forged one is not.
        let answer = Message::parse(
            format!("Postage-Answer: {c}\r\nFrom: a@example.org\r\n\r\nx\r\n").into_bytes(),
        )
        .unwrap();
        assert!(carries_our_answer(&answer, "A@example.org", &[7; 32], 0));
        assert!(carries_our_answer(
            &answer,
            "a@example.org",
            &[7; 32],
            i64::MAX
        ));
        assert!(!carries_our_answer(&answer, "a@example.org", &[8; 32], 0));
        // Another sender's answer is not one for this sender.
        assert!(!carries_our_answer(&answer, "b@example.org", &[7; 32], 0));
        assert!(!carries_our_answer(&answer, "", &[7; 32], 0));
    }

    #[test]
    fn requirement_names_each_family_minimum() {
        let r = requirement(
            16,
            &[
                (crate::Algorithm::ARGON2ID, 8),
                (crate::Algorithm::Sha256, 20),
            ],
            1024,
        );
        let text = r.to_string();
        assert_eq!(
            text,
            "v=PB1; bits=16; alg=sha256,blake3,sha1,argon2id; argon2id=8; sha256=20; mem=1024"
        );
        // Without a memory-hard family, no mem=; every statement parses back (review).
        assert_eq!(
            requirement(16, &[], 1024).to_string(),
            "v=PB1; bits=16; alg=sha256,blake3,sha1"
        );
        for (bits, v, mem) in [(1, 1, 0), (128, 128, u32::MAX), (16, 8, 4)] {
            let r = requirement(bits, &[(crate::Algorithm::ARGON2ID, v)], mem);
            assert_eq!(Requirement::parse(&r.to_string()), Ok(r));
        }
        let back = crate::policy::requirement_in_reply(&format!(
            "4.7.1 postage required [{text}] for 1 of 1 recipient(s)"
        ))
        .unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn key_files_are_made_private_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("challenge.key");
        let k = load_or_create_key(&p).unwrap();
        assert_eq!(k.len(), 32);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create_key(&p).unwrap(), k, "made once, then read");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create_key(&p).is_err(), "world-readable");
        let short = dir.path().join("short.key");
        std::fs::write(&short, [1u8; 16]).unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_or_create_key(&short).is_err(), "short");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file left");
    }
}
