//! Postage policies from the DNS (cargo feature `dns`): the TXT record at `_postage.DOMAIN`,
//! looked up through [`DnsLookup`] (or any [`TxtSource`]) and kept in a [`PolicyCache`] that
//! every task of the milter shares.
//!
//! | answer                                       | what a sender does        | kept for                   |
//! |----------------------------------------------|---------------------------|----------------------------|
//! | one `v=PB1` record that parses               | follows it, within its cap | its TTL, clamped to [`MIN_TTL`]..=[`MAX_TTL`] (60 s to 1 day) |
//! | no name, no TXT, no `v=PB1` record           | its configured cost       | [`NEGATIVE_TTL`] (1 hour)  |
//! | one `v=PB1` record that does not parse       | its configured cost       | [`NEGATIVE_TTL`]           |
//! | several `v=PB1` records                      | its configured cost       | [`NEGATIVE_TTL`]           |
//! | a DNS failure (timeout, SERVFAIL)            | its configured cost       | [`FAILURE_TTL`] (60 s)     |
//!
//! At most [`MAX_DOMAINS`] domains are kept (by default): when full, expired answers go first,
//! then the one stored longest ago. A domain is checked (length, labels) before any lookup, and
//! a record is read only up to [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN) octets, so an entry
//! holds at most about 1.3 KiB and the cache about 13 MiB.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Family, Plan, PolicyError, Requirement};
use crate::MintRequest;
use crate::clock::{Clock, SystemClock};
use crate::dkim::DnsLookup;
use crate::dkim::keys::LookupError;

/// The most domains a [`PolicyCache`] keeps by default.
pub const MAX_DOMAINS: usize = 10_000;
/// The least time a policy is kept, whatever its TTL, in seconds.
pub const MIN_TTL: u32 = 60;
/// The longest time a policy is kept, whatever its TTL, in seconds (one day).
pub const MAX_TTL: u32 = 86_400;
/// How long "no policy" (no record, an invalid record, several records) is kept, in seconds: a
/// domain that starts publishing one is followed within the hour, and the many domains that
/// publish none cost one lookup an hour each.
pub const NEGATIVE_TTL: u32 = 3_600;
/// How long a DNS failure is kept, in seconds: meanwhile senders mint their configured cost
/// without asking again, so a dead server costs one timeout a minute per domain, not one per
/// message.
pub const FAILURE_TTL: u32 = 60;
/// A lookup that failed because the caller's deadline left it less than this is not cached.
pub const MIN_FAILURE_WAIT: Duration = Duration::from_secs(1);
/// The most lookups one message makes at once ([`requests_for`]).
pub const MAX_PARALLEL_LOOKUPS: usize = 8;
/// The longest domain looked up, in octets: `_postage.` and it make at most 253.
pub const MAX_DOMAIN_LEN: usize = 253 - "_postage.".len();

/// The TXT record strings at a name and their least TTL in seconds, or why there are none.
pub type TxtAnswer = Result<(Vec<String>, u32), LookupError>;

/// Where TXT records come from: the DNS ([`DnsLookup`]), or an in-memory table in tests.
pub trait TxtSource: Send + Sync {
    /// The TXT record strings at `name` and their least TTL in seconds, waiting at most
    /// `timeout` (`None`: the source's own). No such name, or no TXT record at it, is
    /// [`LookupError::NotFound`]; a failure is [`LookupError::Temporary`].
    fn txt_with_ttl(&self, name: &str, timeout: Option<Duration>) -> TxtAnswer;
}

impl TxtSource for DnsLookup {
    fn txt_with_ttl(&self, name: &str, timeout: Option<Duration>) -> TxtAnswer {
        DnsLookup::txt_with_ttl(self, name, timeout)
    }
}

/// Why a domain is not looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// Empty (or only a dot).
    #[error("empty domain")]
    Empty,
    /// Longer than [`MAX_DOMAIN_LEN`].
    #[error("domain longer than {MAX_DOMAIN_LEN} octets")]
    TooLong,
    /// A label is empty, longer than 63 octets, or has a character other than an ASCII letter,
    /// digit, `-` or `_` (an internationalized name is looked up in its `xn--` form).
    #[error("domain label {0:?} is empty, longer than 63 octets, or not letters, digits, - and _")]
    BadLabel(String),
}

/// The domain as the cache keys it: ASCII lower case, without a final dot, an
/// internationalized name in its `xn--` form (UTS 46); refused when it is no host name (see
/// [`DomainError`]).
pub fn normalize_domain(domain: &str) -> Result<String, DomainError> {
    let ascii;
    let domain = if domain.is_ascii() {
        domain
    } else {
        ascii = idna::domain_to_ascii(domain)
            .map_err(|_| DomainError::BadLabel(domain.chars().take(64).collect()))?;
        ascii.as_str()
    };
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.is_empty() {
        return Err(DomainError::Empty);
    }
    if d.len() > MAX_DOMAIN_LEN {
        return Err(DomainError::TooLong);
    }
    for label in d.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(DomainError::BadLabel(label.chars().take(64).collect()));
        }
    }
    Ok(d.to_ascii_lowercase())
}

/// What a domain publishes at `_postage.DOMAIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Published {
    /// One policy record.
    Policy {
        /// The record as published.
        record: String,
        /// What it asks.
        requirement: Requirement,
        /// Its TTL in the DNS answer, in seconds (the cache keeps it within
        /// [`MIN_TTL`]..=[`MAX_TTL`]).
        ttl: u32,
    },
    /// No policy: no such name, no TXT record, or none that starts with `v=PB1`.
    None,
    /// One `v=PB1` record that does not parse: senders treat it as none.
    Invalid {
        /// The record (at most [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN) octets of it).
        record: String,
        /// What is wrong with it.
        error: PolicyError,
    },
    /// Several `v=PB1` records: senders treat them as none, as DMARC does (RFC 7489 6.6.3).
    Several {
        /// How many.
        count: usize,
    },
    /// The lookup failed (timeout, server failure): senders mint their configured cost.
    TempError {
        /// Why (a [`LookupError::Temporary`]).
        reason: LookupError,
    },
}

impl Published {
    /// The requirement a sender follows: only that of [`Published::Policy`].
    pub fn requirement(&self) -> Option<&Requirement> {
        match self {
            Published::Policy { requirement, .. } => Some(requirement),
            _ => None,
        }
    }

    /// The answer of a lookup that found `records` (all TXT strings at the name).
    pub fn from_records(records: &[String], ttl: u32) -> Published {
        let policies: Vec<&String> = records
            .iter()
            .filter(|r| super::is_policy_record(r))
            .collect();
        match policies.as_slice() {
            [] => Published::None,
            [one] => match Requirement::parse(one) {
                Ok(requirement) => Published::Policy {
                    record: (*one).clone(),
                    requirement,
                    ttl,
                },
                Err(error) => Published::Invalid {
                    record: truncate(one, super::MAX_RECORD_LEN),
                    error,
                },
            },
            many => Published::Several { count: many.len() },
        }
    }

    /// How long a cache keeps this answer, in seconds.
    pub fn keep_for(&self) -> u32 {
        match self {
            Published::Policy { ttl, .. } => (*ttl).clamp(MIN_TTL, MAX_TTL),
            Published::None | Published::Invalid { .. } | Published::Several { .. } => NEGATIVE_TTL,
            Published::TempError { .. } => FAILURE_TTL,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Looks up the policy of `domain` (already normalized) without a cache.
pub fn lookup_policy(source: &dyn TxtSource, domain: &str, timeout: Option<Duration>) -> Published {
    let name = format!("{}.{domain}", super::POLICY_LABEL);
    match source.txt_with_ttl(&name, timeout) {
        Ok((records, ttl)) => Published::from_records(&records, ttl),
        Err(LookupError::NotFound) => Published::None,
        Err(reason) => Published::TempError { reason },
    }
}

struct Entry {
    answer: Published,
    /// Unix seconds after which the answer is asked again.
    expires: i64,
    /// When it was stored, in the order of stores: the least is forgotten first when full.
    order: u64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    next: u64,
}

/// Postage policies by domain, each kept as long as [`Published::keep_for`] says, at most
/// [`MAX_DOMAINS`] of them (see the module's table). Shared by threads: lookups are made
/// without holding the lock, so a slow domain holds up no other (two tasks asking for the same
/// new domain at once may both look it up).
pub struct PolicyCache {
    source: Arc<dyn TxtSource>,
    clock: Arc<dyn Clock>,
    capacity: usize,
    entries: Mutex<Entries>,
}

impl fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl PolicyCache {
    /// A cache over `source`, on the system clock, of [`MAX_DOMAINS`] domains.
    pub fn new(source: Arc<dyn TxtSource>) -> Self {
        PolicyCache {
            source,
            clock: Arc::new(SystemClock),
            capacity: MAX_DOMAINS,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Reads the time from `clock` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps at most `capacity` domains (at least 1).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// How many domains are kept now (expired ones included until they are replaced).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no domain is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map is consistent between statements: a panic elsewhere leaves it usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fresh cached answer for `domain` (already normalized), if there is one.
    fn fresh(&self, domain: &str) -> Option<Published> {
        let now = self.clock.now();
        self.lock()
            .map
            .get(domain)
            .filter(|e| now < e.expires)
            .map(|e| e.answer.clone())
    }

    /// The policy of `domain`, from the cache while it is fresh, else from the source, waiting
    /// at most `timeout` (`Some(0)`: no time left, a [`Published::TempError`] that is not
    /// kept).
    pub fn lookup(
        &self,
        domain: &str,
        timeout: Option<Duration>,
    ) -> Result<Published, DomainError> {
        let key = normalize_domain(domain)?;
        let now = self.clock.now();
        if let Some(e) = self.lock().map.get(&key)
            && now < e.expires
        {
            return Ok(e.answer.clone());
        }
        if timeout.is_some_and(|t| t.is_zero()) {
            return Ok(Published::TempError {
                reason: LookupError::Temporary("no time left to look it up".into()),
            });
        }
        let started = Instant::now();
        let answer = lookup_policy(self.source.as_ref(), &key, timeout);
        // A failure because our own deadline ran out with under a second left (other
        // domains of the same message used the time) says little of this domain: not kept,
        // else every sender to it would mint the configured cost for a minute (review). A
        // failure within a wait of a second or more (a dead server, SERVFAIL) is kept, so a
        // dead server costs one wait a minute, as the table says.
        if matches!(answer, Published::TempError { .. })
            && timeout.is_some_and(|t| t < MIN_FAILURE_WAIT && started.elapsed() >= t)
        {
            return Ok(answer);
        }
        let expires = self
            .clock
            .now()
            .saturating_add(i64::from(answer.keep_for()));
        let mut entries = self.lock();
        let now = self.clock.now();
        if !entries.map.contains_key(&key) && entries.map.len() >= self.capacity {
            entries.map.retain(|_, e| now < e.expires);
            if entries.map.len() >= self.capacity
                && let Some(oldest) = entries
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.order)
                    .map(|(k, _)| k.clone())
            {
                entries.map.remove(&oldest);
            }
        }
        let order = entries.next;
        entries.next += 1;
        entries.map.insert(
            key,
            Entry {
                answer: answer.clone(),
                expires,
                order,
            },
        );
        Ok(answer)
    }
}

/// Why a sender does not mint what a recipient domain's policy asks (it mints its configured
/// cost instead). Its text names the domain, never a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deviation {
    /// The policy asks more bits than the sender's cap.
    OverCap {
        /// The recipient domain.
        domain: String,
        /// What it asks, in bits of `family`.
        asked: u32,
        /// The cap.
        cap: u32,
        /// The family compared.
        family: Family,
    },
    /// The policy asks for more Argon2id memory than the operator configured.
    MemoryOverCap {
        /// The recipient domain.
        domain: String,
        /// The memory asked, in KiB.
        asked_kib: u32,
        /// The most minted, in KiB.
        cap_kib: u32,
    },
    /// The policy accepts no algorithm the sender can mint.
    NoCommonAlgorithm {
        /// The recipient domain.
        domain: String,
    },
    /// The domain's record is invalid: treated as none.
    Invalid {
        /// The recipient domain.
        domain: String,
        /// What is wrong.
        error: PolicyError,
    },
    /// The domain publishes several records: treated as none.
    Several {
        /// The recipient domain.
        domain: String,
        /// How many.
        count: usize,
    },
    /// What the policy asks cannot be minted for a recipient: an invalid request, or a stamp
    /// too long for one header line.
    Unmintable {
        /// The recipient domain.
        domain: String,
        /// The parts asked.
        parts: u32,
    },
    /// The lookup failed: the configured cost is minted.
    TempError {
        /// The recipient domain.
        domain: String,
        /// Why.
        reason: LookupError,
    },
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FALLBACK: &str = "minting the configured cost";
        match self {
            Deviation::OverCap {
                domain,
                asked,
                cap,
                family,
            } => write!(
                f,
                "postage policy of {domain} asks {asked} bits ({}), over the cap of {cap} bits: \
                 {FALLBACK}, which it will likely refuse",
                family.name()
            ),
            Deviation::MemoryOverCap {
                domain,
                asked_kib,
                cap_kib,
            } => write!(
                f,
                "postage policy of {domain} asks {asked_kib} KiB of Argon2id memory, over the \
                 {cap_kib} KiB configured: {FALLBACK}"
            ),
            Deviation::NoCommonAlgorithm { domain } => write!(
                f,
                "postage policy of {domain} accepts no algorithm this sender can mint: {FALLBACK}"
            ),
            Deviation::Invalid { domain, error } => write!(
                f,
                "postage policy of {domain} is invalid ({error}), treated as none: {FALLBACK}"
            ),
            Deviation::Several { domain, count } => write!(
                f,
                "{domain} publishes {count} postage policy records, treated as none: {FALLBACK}"
            ),
            Deviation::Unmintable { domain, parts } => write!(
                f,
                "postage policy of {domain} asks a stamp ({parts} parts) that cannot be minted \
                 on one header line for a recipient there: {FALLBACK}"
            ),
            Deviation::TempError { domain, reason } => write!(
                f,
                "postage policy of {domain} could not be looked up ({reason}): {FALLBACK}"
            ),
        }
    }
}

/// Whether this build mints `family` (Equi-X needs the `equix` feature).
pub fn can_mint(family: Family) -> bool {
    family != Family::Equix || cfg!(feature = "equix")
}

/// What a sender mints for a domain that published `answer`: the plan of its policy
/// ([`Requirement::plan`], at least what is asked, never more than `max_bits`), else the
/// `configured` cost, with the reason when a policy was there and not followed.
pub fn follow(
    domain: &str,
    answer: &Published,
    configured: &MintRequest,
    max_bits: u32,
) -> (MintRequest, Option<Deviation>) {
    let domain = domain.to_owned();
    let deviation = match answer {
        Published::Policy { requirement, .. } => {
            match requirement.plan(configured, max_bits, can_mint) {
                Plan::Mint(m) => return (m, None),
                Plan::OverCap { asked, cap, family } => Deviation::OverCap {
                    domain,
                    asked,
                    cap,
                    family,
                },
                Plan::MemoryOverCap { asked_kib, cap_kib } => Deviation::MemoryOverCap {
                    domain,
                    asked_kib,
                    cap_kib,
                },
                Plan::NoCommonAlgorithm => Deviation::NoCommonAlgorithm { domain },
            }
        }
        Published::None => return (configured.clone(), None),
        Published::Invalid { error, .. } => Deviation::Invalid {
            domain,
            error: error.clone(),
        },
        Published::Several { count } => Deviation::Several {
            domain,
            count: *count,
        },
        Published::TempError { reason } => Deviation::TempError {
            domain,
            reason: reason.clone(),
        },
    };
    (configured.clone(), Some(deviation))
}

/// The domain of a recipient address: after its last `@`, without angle brackets.
pub fn recipient_domain(address: &str) -> Option<&str> {
    let a = address.trim().trim_start_matches('<').trim_end_matches('>');
    a.rsplit_once('@').map(|(_, d)| d)
}

/// The answers for `domains` (normalized, distinct): from the cache, and the others looked up
/// at once, at most [`MAX_PARALLEL_LOOKUPS`] at a time, each ending by `deadline`; so one slow
/// domain does not use up the time of the others.
fn answers_for(
    cache: &PolicyCache,
    domains: &[String],
    deadline: Option<Instant>,
) -> HashMap<String, Published> {
    let mut answers: HashMap<String, Published> = HashMap::new();
    let mut missing = Vec::new();
    for d in domains {
        match cache.fresh(d) {
            Some(a) => {
                answers.insert(d.clone(), a);
            }
            None => missing.push(d.clone()),
        }
    }
    let ask = |d: &String| {
        let timeout = deadline.map(|t| t.saturating_duration_since(Instant::now()));
        let answer = cache
            .lookup(d, timeout)
            .expect("a normalized domain is valid");
        (d.clone(), answer)
    };
    if missing.len() < 2 {
        answers.extend(missing.iter().map(ask));
        return answers;
    }
    for group in missing.chunks(MAX_PARALLEL_LOOKUPS) {
        std::thread::scope(|scope| {
            // A thread the system cannot make: that lookup runs here, after the others.
            let handles: Vec<_> = group
                .iter()
                .map(|d| std::thread::Builder::new().spawn_scoped(scope, || ask(d)))
                .collect();
            for (d, h) in group.iter().zip(handles) {
                let Ok(h) = h else {
                    let (d, a) = ask(d);
                    answers.insert(d, a);
                    continue;
                };
                let answer = h.join().unwrap_or_else(|_| {
                    (
                        d.clone(),
                        Published::TempError {
                            reason: LookupError::Temporary("the lookup failed".into()),
                        },
                    )
                });
                answers.insert(answer.0, answer.1);
            }
        });
    }
    answers
}

/// One mint request per recipient, each following its domain's policy from `cache` (each
/// domain asked once, up to [`MAX_PARALLEL_LOOKUPS`] at once; all lookups end by `deadline`,
/// after which the domains left get the configured cost, reported as a lookup failure), and
/// the deviations, one per domain. A recipient without a domain that can be looked up gets the
/// configured cost, unreported.
///
/// A recipient the message's To and Cc (`visible`) do not name (Bcc) is not looked up: its
/// stamp's resource is hidden, and a cost of its domain's choosing would name that domain to
/// every reader of the header (docs/FORMAT.md, "Hidden recipients"). Every hidden recipient
/// gets one request, chosen from what the readers see already: the visible recipients' request
/// with the most bits, or the configured cost when that is more (so a Bcc recipient at a
/// visible recipient's domain is paid as that recipient is).
pub fn requests_for(
    cache: &PolicyCache,
    recipients: &[String],
    visible: &[String],
    configured: &MintRequest,
    max_bits: u32,
    deadline: Option<Instant>,
) -> (Vec<(String, MintRequest)>, Vec<Deviation>) {
    let hidden = |r: &str| !visible.iter().any(|v| crate::bind::same_address(v, r));
    let mut domains: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in recipients.iter().filter(|r| !hidden(r)) {
        if let Some(d) = recipient_domain(r).and_then(|d| normalize_domain(d).ok())
            && seen.insert(d.clone())
        {
            domains.push(d);
        }
    }
    let answers = answers_for(cache, &domains, deadline);
    let mut by_domain: HashMap<String, MintRequest> = HashMap::new();
    let mut deviations = Vec::new();
    let mut out = Vec::with_capacity(recipients.len());
    let mut hidden_at = Vec::new();
    for r in recipients {
        if hidden(r) {
            hidden_at.push(out.len());
            out.push((r.clone(), configured.clone()));
            continue;
        }
        let Some(domain) = recipient_domain(r).and_then(|d| normalize_domain(d).ok()) else {
            out.push((r.clone(), configured.clone()));
            continue;
        };
        let req = match by_domain.get(&domain) {
            Some(req) => req.clone(),
            None => {
                let answer = answers.get(&domain).expect("looked up above");
                let (req, deviation) = follow(&domain, answer, configured, max_bits);
                deviations.extend(deviation);
                by_domain.insert(domain.clone(), req.clone());
                req
            }
        };
        // A policy must not make the message unstampable for everyone: a request that is
        // invalid, or whose stamp would not fit on one header line (many parts, a long
        // address), gives way to the configured cost for this recipient.
        if req != *configured && !(req.validate().is_ok() && fits(r, &req)) {
            let d = Deviation::Unmintable {
                domain: domain.clone(),
                parts: req.parts,
            };
            if !deviations.contains(&d) {
                deviations.push(d);
            }
            out.push((r.clone(), configured.clone()));
            continue;
        }
        out.push((r.clone(), req));
    }
    let most = out
        .iter()
        .enumerate()
        .filter(|(i, _)| !hidden_at.contains(i))
        .map(|(_, (_, req))| req)
        .fold(
            configured,
            |best, req| if req.bits > best.bits { req } else { best },
        )
        .clone();
    for i in hidden_at {
        if fits(&out[i].0, &most) {
            out[i].1 = most.clone();
        }
    }
    (out, deviations)
}

/// Whether the stamp `req` mints for `rcpt` fits on one `X-Hashcash` line once bound to its
/// message (a `bind=` entry added to the extension), in clear or hidden form.
fn fits(rcpt: &str, req: &MintRequest) -> bool {
    let bind = format!(
        "{}={}",
        crate::bind::BIND_EXT,
        "A".repeat(crate::bind::BIND_ENTRY_LEN - crate::bind::BIND_EXT.len() - 1)
    );
    let ext = if req.ext.is_empty() {
        bind
    } else {
        format!("{bind};{}", req.ext)
    };
    [false, true].into_iter().all(|hidden| {
        MintRequest {
            resource: rcpt.to_owned(),
            ext: ext.clone(),
            hidden,
            ..req.clone()
        }
        .stamp_len()
            <= crate::postage::MAX_FIELD_STAMP
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    /// A clock the test moves.
    struct TestClock(AtomicI64);
    impl Clock for TestClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// TXT records by name (lower case, no final dot); a name mapped to `Err` fails. Counts
    /// the lookups.
    #[derive(Default)]
    struct Table {
        records: Mutex<HashMap<String, TxtAnswer>>,
        asked: AtomicUsize,
        last_timeout: Mutex<Option<Option<Duration>>>,
    }
    impl Table {
        fn set(&self, name: &str, answer: TxtAnswer) {
            self.records.lock().unwrap().insert(name.to_owned(), answer);
        }
        fn txt(&self, domain: &str, texts: &[&str], ttl: u32) {
            self.set(
                &format!("_postage.{domain}"),
                Ok((texts.iter().map(|s| s.to_string()).collect(), ttl)),
            );
        }
        fn asked(&self) -> usize {
            self.asked.load(Ordering::SeqCst)
        }
    }
    impl TxtSource for Table {
        fn txt_with_ttl(
            &self,
            name: &str,
            timeout: Option<Duration>,
        ) -> Result<(Vec<String>, u32), LookupError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            *self.last_timeout.lock().unwrap() = Some(timeout);
            self.records
                .lock()
                .unwrap()
                .get(name)
                .cloned()
                .unwrap_or(Err(LookupError::NotFound))
        }
    }

    fn setup() -> (Arc<Table>, Arc<TestClock>, PolicyCache) {
        let table = Arc::new(Table::default());
        let clock = Arc::new(TestClock(AtomicI64::new(1_000_000)));
        let cache = PolicyCache::new(table.clone()).with_clock(clock.clone());
        (table, clock, cache)
    }

    fn advance(clock: &TestClock, secs: i64) {
        clock.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// A source that answers only after its own second: a shorter wait runs out first.
    struct Slow(AtomicI64);
    impl TxtSource for Slow {
        fn txt_with_ttl(&self, _: &str, timeout: Option<Duration>) -> TxtAnswer {
            self.0.fetch_add(1, Ordering::SeqCst);
            let own = Duration::from_millis(200);
            match timeout {
                Some(t) if t < own => {
                    std::thread::sleep(t);
                    Err(LookupError::Temporary("no answer in time".into()))
                }
                _ => Ok((vec!["v=PB1; bits=14".into()], 300)),
            }
        }
    }

    /// A source on which each lookup waits (up to 5 s) until two have been under way at once,
    /// and which counts the most under way at once.
    #[derive(Default)]
    struct Together {
        now: std::sync::Mutex<usize>,
        most: AtomicUsize,
        woken: std::sync::Condvar,
    }
    impl TxtSource for Together {
        fn txt_with_ttl(&self, name: &str, _: Option<Duration>) -> TxtAnswer {
            let mut n = self.now.lock().unwrap();
            *n += 1;
            self.most.fetch_max(*n, Ordering::SeqCst);
            self.woken.notify_all();
            let (mut n, _) = self
                .woken
                .wait_timeout_while(n, Duration::from_secs(5), |_| {
                    self.most.load(Ordering::SeqCst) < 2
                })
                .unwrap();
            *n -= 1;
            let bits = 10 + name.len() % 5;
            Ok((vec![format!("v=PB1; bits={bits}")], 300))
        }
    }

    /// One message's domains are looked up at once (so a slow one does not use up the time of
    /// the others), each once, and the results land on their own recipients.
    #[test]
    fn a_messages_domains_are_looked_up_together() {
        let source = Arc::new(Together::default());
        let cache = PolicyCache::new(source.clone());
        let rcpts: Vec<String> = [
            "a@one.example",
            "b@two.example",
            "c@three.example",
            "d@ONE.example",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let configured = MintRequest::new("-").bits(8);
        let (reqs, devs) = requests_for(&cache, &rcpts, &rcpts, &configured, 26, None);
        assert!(devs.is_empty(), "{devs:?}");
        assert!(source.most.load(Ordering::SeqCst) >= 2, "one at a time");
        for (r, req) in &reqs {
            let name = format!(
                "_postage.{}",
                recipient_domain(r).unwrap().to_ascii_lowercase()
            );
            assert_eq!(req.bits as usize, 10 + name.len() % 5, "{r}");
        }
        assert_eq!(reqs.len(), 4);
        assert_eq!(cache.len(), 3);
    }

    /// Review: a lookup cut short by the message's own deadline is not kept as a failure.
    #[test]
    fn a_lookup_cut_short_by_the_deadline_is_not_cached() {
        let slow = Arc::new(Slow(AtomicI64::new(0)));
        let cache = PolicyCache::new(slow.clone());
        let a = cache
            .lookup("example.net", Some(Duration::from_millis(5)))
            .unwrap();
        assert!(matches!(a, Published::TempError { .. }), "{a:?}");
        let a = cache.lookup("example.net", None).unwrap();
        assert_eq!(a.requirement(), Some(&Requirement::bits(14)));
        assert_eq!(slow.0.load(Ordering::SeqCst), 2);
        // A failure of the source within the time it had is kept (FAILURE_TTL).
        let (table, _clock, cache) = setup();
        table.set(
            "_postage.down.example",
            Err(LookupError::Temporary("SERVFAIL".into())),
        );
        for _ in 0..2 {
            let a = cache
                .lookup("down.example", Some(Duration::from_secs(5)))
                .unwrap();
            assert!(matches!(a, Published::TempError { .. }), "{a:?}");
        }
        assert_eq!(table.asked(), 1);
    }

    /// Review: a recipient at an internationalized domain gets its `xn--` name's policy.
    #[test]
    fn a_u_label_domain_follows_its_a_label_policy() {
        assert_eq!(
            normalize_domain("Bücher.Example.").as_deref(),
            Ok("xn--bcher-kva.example")
        );
        assert!(normalize_domain("a\u{0}b.example").is_err());
        let (table, _clock, cache) = setup();
        table.txt("xn--bcher-kva.example", &["v=PB1; bits=14"], 300);
        let a = cache.lookup("bücher.example", None).unwrap();
        assert_eq!(a.requirement(), Some(&Requirement::bits(14)));
        let configured = MintRequest::new("-").bits(10);
        let (reqs, devs) = requests_for(
            &cache,
            &["anna@BÜCHER.example".to_owned()],
            &["anna@BÜCHER.example".to_owned()],
            &configured,
            16,
            None,
        );
        assert_eq!(reqs[0].1.bits, 14, "{devs:?}");
    }

    #[test]
    fn a_policy_is_kept_for_its_ttl_then_asked_again() {
        let (table, clock, cache) = setup();
        table.txt("example.net", &["v=PB1; bits=14"], 300);
        let a = cache.lookup("example.net", None).unwrap();
        assert_eq!(a.requirement(), Some(&Requirement::bits(14)));
        assert!(matches!(a, Published::Policy { ttl: 300, .. }));
        // The record changes; the cache keeps the old answer for its TTL.
        table.txt("example.net", &["v=PB1; bits=16"], 300);
        advance(&clock, 299);
        assert_eq!(
            cache.lookup("example.net", None).unwrap().requirement(),
            Some(&Requirement::bits(14))
        );
        assert_eq!(table.asked(), 1);
        advance(&clock, 1);
        assert_eq!(
            cache.lookup("example.net", None).unwrap().requirement(),
            Some(&Requirement::bits(16))
        );
        assert_eq!(table.asked(), 2);
    }

    #[test]
    fn ttls_are_clamped_to_a_minute_and_a_day() {
        let (table, clock, cache) = setup();
        // Attack: TTL 0 on every answer, to make the sender ask for every message.
        table.txt("zero.example", &["v=PB1; bits=14"], 0);
        // And a TTL of years, to pin an old policy.
        table.txt("years.example", &["v=PB1; bits=14"], u32::MAX);
        cache.lookup("zero.example", None).unwrap();
        cache.lookup("years.example", None).unwrap();
        advance(&clock, i64::from(MIN_TTL) - 1);
        cache.lookup("zero.example", None).unwrap();
        assert_eq!(table.asked(), 2, "a TTL of 0 was not raised to a minute");
        advance(&clock, i64::from(MAX_TTL));
        cache.lookup("years.example", None).unwrap();
        assert_eq!(table.asked(), 3, "a TTL of years was kept past a day");
    }

    #[test]
    fn no_policy_is_cached_for_an_hour_and_a_failure_for_a_minute() {
        let (table, clock, cache) = setup();
        table.set(
            "_postage.down.example",
            Err(LookupError::Temporary("SERVFAIL".into())),
        );
        assert_eq!(cache.lookup("none.example", None).unwrap(), Published::None);
        assert!(matches!(
            cache.lookup("down.example", None).unwrap(),
            Published::TempError { .. }
        ));
        assert_eq!(table.asked(), 2);
        // Both publish a policy now.
        table.txt("none.example", &["v=PB1; bits=14"], 300);
        table.txt("down.example", &["v=PB1; bits=14"], 300);
        advance(&clock, i64::from(FAILURE_TTL) - 1);
        assert!(matches!(
            cache.lookup("down.example", None).unwrap(),
            Published::TempError { .. }
        ));
        advance(&clock, 1);
        assert!(
            cache
                .lookup("down.example", None)
                .unwrap()
                .requirement()
                .is_some()
        );
        assert_eq!(cache.lookup("none.example", None).unwrap(), Published::None);
        advance(&clock, i64::from(NEGATIVE_TTL) - i64::from(FAILURE_TTL));
        assert!(
            cache
                .lookup("none.example", None)
                .unwrap()
                .requirement()
                .is_some()
        );
        assert_eq!(table.asked(), 4);
    }

    #[test]
    fn hidden_recipients_get_one_cost_readers_know_and_their_domains_are_not_asked() {
        let (table, _clock, cache) = setup();
        table.txt("visible.example", &["v=PB1; bits=12"], 300);
        table.txt("one.example", &["v=PB1; bits=13; alg=blake3"], 300);
        table.txt("two.example", &["v=PB1; bits=14; alg=sha256"], 300);
        let configured = MintRequest::new("-").bits(10);
        let rcpts = vec![
            "bob@visible.example".to_owned(),
            "hidden@one.example".to_owned(),
            "other@two.example".to_owned(),
        ];
        let (reqs, devs) = requests_for(&cache, &rcpts, &rcpts[..1], &configured, 26, None);
        assert!(devs.is_empty(), "{devs:?}");
        assert_eq!(reqs[0].1.bits, 12);
        // Both hidden stamps alike, whatever their domains publish: what the visible recipient's
        // domain asks (more than the configured 10), which every reader knows already.
        assert_eq!(reqs[1].1, reqs[0].1);
        assert_eq!(reqs[2].1, reqs[0].1);
        assert_eq!(
            table.asked(),
            1,
            "only the visible recipient's domain is looked up"
        );
        // Visible recipients asking less than the configured cost: hidden ones get the latter.
        table.txt("low.example", &["v=PB1; bits=4"], 300);
        let rcpts = vec!["a@low.example".to_owned(), "b@one.example".to_owned()];
        let (reqs, _) = requests_for(&cache, &rcpts, &rcpts[..1], &configured, 26, None);
        assert_eq!(reqs[1].1, configured);
    }

    #[test]
    fn a_failure_falls_back_to_the_configured_cost_and_says_so() {
        let (table, _clock, cache) = setup();
        table.set(
            "_postage.down.example",
            Err(LookupError::Temporary("timed out".into())),
        );
        table.txt("up.example", &["v=PB1; bits=14"], 300);
        let configured = MintRequest::new("-").bits(10).parts(16);
        let rcpts = vec![
            "a@down.example".to_owned(),
            "b@up.example".to_owned(),
            "c@Down.Example.".to_owned(),
        ];
        let (reqs, devs) = requests_for(&cache, &rcpts, &rcpts, &configured, 16, None);
        let bits: Vec<u32> = reqs.iter().map(|(_, r)| r.bits).collect();
        assert_eq!(bits, [10, 14, 10]);
        assert_eq!(devs.len(), 1, "one report per domain: {devs:?}");
        let text = devs[0].to_string();
        assert!(
            text.contains("down.example") && !text.contains("a@"),
            "{text}"
        );
        // No time left: nothing is asked, the configured cost is minted, and that is said.
        let (reqs, devs) = requests_for(
            &PolicyCache::new(table.clone()),
            &["x@later.example".to_owned()],
            &["x@later.example".to_owned()],
            &configured,
            16,
            Some(Instant::now()),
        );
        assert_eq!(reqs[0].1.bits, 10);
        assert!(
            matches!(devs[..], [Deviation::TempError { .. }]),
            "{devs:?}"
        );
    }

    #[test]
    fn a_policy_cannot_make_a_message_unstampable() {
        // Attack: a recipient domain asks 64 parts of SHA-256, so that the
        // stamp for a long address does not fit on a header line and the whole message (every
        // other recipient's stamp too) would fail.
        let (table, _clock, cache) = setup();
        // (Another family than the sender's: for its own, the operator's parts are kept.)
        table.txt(
            "evil.example",
            &["v=PB1; bits=14; alg=blake3; parts=64"],
            300,
        );
        let configured = MintRequest::new("-").bits(10).parts(16);
        let long = format!("{}@evil.example", "x".repeat(400));
        let rcpts = vec![long.clone(), "short@evil.example".to_owned()];
        let (reqs, devs) = requests_for(&cache, &rcpts, &rcpts, &configured, 16, None);
        assert_eq!(
            reqs[0].1, configured,
            "the long address kept the policy's 64 parts"
        );
        assert!(fits(&long, &reqs[0].1));
        assert_eq!(
            (reqs[1].1.alg, reqs[1].1.bits, reqs[1].1.parts),
            (crate::Algorithm::Blake3, 14, 64)
        );
        assert!(
            matches!(devs[..], [Deviation::Unmintable { parts: 64, .. }]),
            "{devs:?}"
        );
        assert!(!devs[0].to_string().contains("xxx"), "{}", devs[0]);
    }

    #[test]
    fn the_deadline_bounds_each_lookup() {
        let (table, _clock, cache) = setup();
        let deadline = Instant::now() + Duration::from_secs(30);
        requests_for(
            &cache,
            &["a@x.example".to_owned()],
            &["a@x.example".to_owned()],
            &MintRequest::new("-"),
            26,
            Some(deadline),
        );
        let t = table.last_timeout.lock().unwrap().unwrap().unwrap();
        assert!(t <= Duration::from_secs(30) && t > Duration::ZERO, "{t:?}");
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity_forgetting_the_oldest() {
        let (table, clock, cache) = setup();
        let cache = cache.with_capacity(3);
        // Attack: mail to ever new domains, to grow the cache without bound.
        for i in 0..10 {
            table.txt(&format!("d{i}.example"), &["v=PB1; bits=14"], 3600);
            cache.lookup(&format!("d{i}.example"), None).unwrap();
            advance(&clock, 1);
            assert!(cache.len() <= 3);
        }
        assert_eq!(table.asked(), 10);
        // The three newest are kept, the oldest were forgotten.
        cache.lookup("d9.example", None).unwrap();
        cache.lookup("d7.example", None).unwrap();
        assert_eq!(table.asked(), 10);
        cache.lookup("d0.example", None).unwrap();
        assert_eq!(table.asked(), 11);
        // Expired entries go before live ones.
        let (table, clock, cache) = setup();
        let cache = cache.with_capacity(2);
        table.txt("short.example", &["v=PB1; bits=14"], 60);
        table.txt("long.example", &["v=PB1; bits=14"], 3600);
        cache.lookup("long.example", None).unwrap();
        cache.lookup("short.example", None).unwrap();
        advance(&clock, 61);
        cache.lookup("new.example", None).unwrap();
        cache.lookup("long.example", None).unwrap();
        assert_eq!(
            table.asked(),
            3,
            "a live entry was evicted before an expired one"
        );
    }

    #[test]
    fn domains_are_normalized_and_checked_before_any_lookup() {
        let (table, _clock, cache) = setup();
        table.txt("example.net", &["v=PB1; bits=14"], 300);
        for d in ["example.net", "EXAMPLE.Net", "example.net."] {
            assert!(
                cache.lookup(d, None).unwrap().requirement().is_some(),
                "{d}"
            );
        }
        assert_eq!(table.asked(), 1);
        assert_eq!(cache.len(), 1);
        let long_label = "a".repeat(64);
        let long_name = vec!["a".repeat(60); 5].join(".");
        for bad in [
            "",
            ".",
            "a..b",
            ".example",
            "[192.0.2.1]",
            "exa mple.net",
            "b\u{fc}cher .example",
            "\u{2024}.example",
            "x.example/../y",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(cache.lookup(bad, None).is_err(), "{bad:?} was looked up");
        }
        assert_eq!(table.asked(), 1);
    }

    #[test]
    fn records_are_told_apart() {
        let p = |texts: &[&str]| {
            Published::from_records(&texts.iter().map(|s| s.to_string()).collect::<Vec<_>>(), 60)
        };
        // Other TXT records beside the policy are ignored.
        assert!(
            p(&["v=spf1 -all", "v=PB1; bits=14", "hello"])
                .requirement()
                .is_some()
        );
        assert_eq!(p(&["v=spf1 -all"]), Published::None);
        assert!(matches!(p(&["v=PB1; bits=x"]), Published::Invalid { .. }));
        assert_eq!(
            p(&["v=PB1; bits=14", "v=PB1; bits=20"]),
            Published::Several { count: 2 }
        );
        // An oversized record is refused unread, and only its first octets are kept.
        let long = format!("v=PB1; bits=14; x={}", "a".repeat(10_000));
        match p(&[long.as_str()]) {
            Published::Invalid { record, error } => {
                assert_eq!(error, PolicyError::TooLong);
                assert_eq!(record.len(), crate::policy::MAX_RECORD_LEN);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn follow_mints_what_is_asked_within_the_cap() {
        let configured = MintRequest::new("-").bits(10).parts(16);
        let policy = |text: &str| Published::from_records(&[text.to_owned()], 300);
        let (m, d) = follow("x.example", &policy("v=PB1; bits=14"), &configured, 16);
        assert_eq!((m.bits, d), (14, None));
        let (m, d) = follow("x.example", &policy("v=PB1; bits=20"), &configured, 16);
        assert_eq!(m.bits, 10);
        let text = d.unwrap().to_string();
        assert!(
            text.contains("x.example") && text.contains("20") && text.contains("16"),
            "{text}"
        );
        let (m, _) = follow(
            "x.example",
            &policy("v=PB1; bits=12; alg=blake3"),
            &configured,
            16,
        );
        assert_eq!((m.alg, m.bits), (Algorithm::Blake3, 12));
        let (m, d) = follow("x.example", &Published::None, &configured, 16);
        assert_eq!((m.bits, d), (10, None));
    }

    #[test]
    fn the_cache_is_shared_by_threads() {
        let (table, _clock, cache) = setup();
        table.txt("example.net", &["v=PB1; bits=14"], 300);
        let cache = Arc::new(cache);
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for j in 0..50 {
                        let d = if j % 2 == 0 {
                            "example.net".to_owned()
                        } else {
                            format!("t{i}-{j}.example")
                        };
                        cache.lookup(&d, None).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cache.len(), 1 + 8 * 25);
    }
}
