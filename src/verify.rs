//! Verification: a [`Policy`], a clock, an optional spent store, and a [`Verdict`] per stamp.
//!
//! Cheap checks run first (syntax; the algorithm and its cost parameters against the policy;
//! date, resource, binding to the message; the verification budget), then the work (every part,
//! constant-time; memory-hard parts on every core), then the spent store, so a stamp is recorded as spent only after
//! every other check passed: a stamp lifted into another message is neither accepted nor burnt.

mod resource;
pub(crate) mod work;

pub use resource::ResourcePattern;

use std::time::Duration;

use crate::bind::{BindingSource, binding_of_ext};
use crate::error::{Error, VerifyError};
use crate::spent::{Spend, SpentStore, legacy_key, spent_key};
use crate::stamp::{Algorithm, Stamp, Version, date::rfc3339};

pub use work::{
    ARGON2ID_FRESH_KIB_COST, ARGON2ID_KIB_PASS_COST, ARGON2ID_LANE_COST, ARGON2ID_PART_COST,
    EQUIX_PART_COST, HASH_PART_COST, estimated_cost,
};

/// A malformed text as kept in its verdict: at most 256 bytes, then `...`, so a hostile
/// megabyte line is not echoed back whole.
fn shorten(text: &str) -> String {
    const MAX: usize = 256;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Default validity of a stamp: 28 days (hashcash's default).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(28 * 86_400);
/// Default allowance for clock skew, in both directions: 2 days (hashcash's default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2 * 86_400);

/// What a receiver accepts.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The least work accepted, in bits; `None` accepts any work a stamp honestly claims (and
    /// leaves the stamp "not fully checked").
    pub min_bits: Option<u32>,
    /// Accepted resources; empty accepts any resource (and leaves the stamp not fully checked).
    pub resources: Vec<ResourcePattern>,
    /// How long after its date a stamp stays valid; zero means forever.
    pub validity: Duration,
    /// Clock-skew allowance, applied to both expiry and future dates. Keep it well under 49
    /// years: a two-digit-year date is read in the century within 50 years of now, and with a
    /// larger grace two checks months apart could read one stamp's date in two centuries (and
    /// so as two stamps in a store that files entries by date). The command line refuses 10
    /// years or more.
    pub grace: Duration,
    /// Refuse stamps that are not bound to their message (see [`crate::bind`]); checked only
    /// where the message is known ([`Verifier::check_in`]).
    pub require_binding: bool,
    /// Refuse stamps whose binding does not cover every field a reader sees (a version-2
    /// binding over [`crate::bind::FULL_MASK`], as stamps are minted now): a version-1 binding
    /// lets fields absent at minting (a `Reply-To:`) be added. Implies `require_binding`.
    pub require_full_binding: bool,
    /// The least value accepted per algorithm family (compared by [`Algorithm::name`]; the
    /// parameters of a memory-hard entry are ignored). A family listed here is judged by its own
    /// minimum: a 20-bit SHA-256 stamp and an 8-bit Argon2id stamp are not comparable.
    /// `min_bits` is the minimum of the hash families (SHA-1, SHA-256, BLAKE3) not listed. When
    /// any minimum is set, a family with none (Argon2id or Equi-X unless listed) is refused
    /// ([`VerifyError::NotAccepted`]). An Equi-X stamp's value counts Equi-X solutions.
    pub min_value: Vec<(Algorithm, u32)>,
    /// The least Argon2id memory accepted, in KiB (default 1024): below it an evaluation is too
    /// cheap for its bits to mean what the policy's minimum assumes.
    pub min_memory_kib: u32,
    /// The most Argon2id memory accepted, in KiB (default 16384, 16 MiB). A verifier holds
    /// this much per thread while it checks a stamp's parts.
    pub max_memory_kib: u32,
    /// The most parts a stamp may have (default 64, the format's limit).
    pub max_parts: u32,
    /// The most verification work the stamps of one recipient of a message may cost (or one
    /// stamp given alone; the stamps of a message that pay no recipient share one more such
    /// budget), estimated before any work by [`work::estimated_cost`] (default 100 ms). A stamp
    /// that would go over it is refused ([`VerifyError::OverBudget`]) without being checked.
    pub max_work: Duration,
    /// The most verification work all the stamps of one message may cost, whatever its
    /// recipients (default 1 s: ten recipients at [`Policy::max_work`]).
    pub max_message_work: Duration,
}

/// Default [`Policy::min_memory_kib`]: 1 MiB.
pub const DEFAULT_MIN_MEMORY_KIB: u32 = 1024;
/// Default [`Policy::max_memory_kib`]: 16 MiB, so that a stamp of the default 4 parts at the
/// largest default memory (about 66 ms estimated) fits the default [`Policy::max_work`].
pub const DEFAULT_MAX_MEMORY_KIB: u32 = 16 * 1024;
/// Default [`Policy::max_work`]: 100 ms of estimated verification work per recipient.
pub const DEFAULT_MAX_WORK: Duration = Duration::from_millis(100);
/// Default [`Policy::max_message_work`]: 1 s of estimated verification work per message.
pub const DEFAULT_MAX_MESSAGE_WORK: Duration = Duration::from_secs(1);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_bits: None,
            resources: Vec::new(),
            validity: DEFAULT_VALIDITY,
            grace: DEFAULT_GRACE,
            require_binding: false,
            require_full_binding: false,
            min_value: Vec::new(),
            min_memory_kib: DEFAULT_MIN_MEMORY_KIB,
            max_memory_kib: DEFAULT_MAX_MEMORY_KIB,
            max_parts: crate::stamp::MAX_PARTS,
            max_work: DEFAULT_MAX_WORK,
            max_message_work: DEFAULT_MAX_MESSAGE_WORK,
        }
    }
}

impl Policy {
    /// A policy requiring `bits` of work for any of `resources`, with default validity and grace.
    pub fn new(bits: u32, resources: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Policy {
            min_bits: Some(bits),
            resources: resources
                .into_iter()
                .map(|r| ResourcePattern::new(r))
                .collect(),
            ..Policy::default()
        }
    }

    /// Adds (or replaces) the minimum value for `alg`'s family.
    pub fn with_min_value(mut self, alg: Algorithm, value: u32) -> Self {
        self.min_value.retain(|(a, _)| a.name() != alg.name());
        self.min_value.push((alg, value));
        self
    }

    /// The minimum value a stamp of `alg` must reach: `Ok(None)` when the policy sets no
    /// minimum at all (any honest claim passes, "not fully checked"), `Err` when it sets some
    /// but none for this family.
    pub fn minimum_for(&self, alg: Algorithm) -> Result<Option<u32>, VerifyError> {
        if let Some(&(_, v)) = self.min_value.iter().find(|(a, _)| a.name() == alg.name()) {
            return Ok(Some(v));
        }
        match self.min_bits {
            Some(b) if !alg.is_memory_hard() => Ok(Some(b)),
            None if self.min_value.is_empty() => Ok(None),
            _ => Err(VerifyError::NotAccepted { alg: alg.name() }),
        }
    }

    /// The checks on a stamp's cost parameters, made before anything else: its family is
    /// accepted, its memory and parts within bounds. Microseconds, whatever the stamp claims.
    fn admits(&self, stamp: &Stamp) -> Result<Option<u32>, VerifyError> {
        let alg = stamp.algorithm();
        // A stamp this build cannot check (Equi-X without the feature) says so, whatever the
        // policy: the operator learns which build would accept it.
        if let Some(feature) = alg.feature().filter(|_| !alg.is_available()) {
            return Err(VerifyError::Unsupported {
                alg: alg.name(),
                feature,
            });
        }
        let minimum = self.minimum_for(alg)?;
        let parts = stamp.parts() as u64;
        if parts > u64::from(self.max_parts) {
            return Err(VerifyError::OutOfPolicy {
                what: "parts",
                value: parts,
                bound: format!("maximum {}", self.max_parts),
            });
        }
        if let Some(p) = alg.argon2() {
            let m = u64::from(p.memory_kib);
            if m > u64::from(self.max_memory_kib) {
                return Err(VerifyError::OutOfPolicy {
                    what: "memory (KiB)",
                    value: m,
                    bound: format!("maximum {}", self.max_memory_kib),
                });
            }
            if m < u64::from(self.min_memory_kib) {
                return Err(VerifyError::OutOfPolicy {
                    what: "memory (KiB)",
                    value: m,
                    bound: format!("minimum {}", self.min_memory_kib),
                });
            }
        }
        Ok(minimum)
    }
}

/// What is left of a verification budget ([`Policy::max_work`], [`Policy::max_message_work`]).
/// A stamp is checked only if its estimated cost ([`work::estimated_cost`]) fits every budget it
/// draws from, and then takes it from all of them.
#[derive(Debug)]
pub struct Budget(std::cell::Cell<u64>);

impl Budget {
    /// A budget of `limit`.
    pub fn new(limit: Duration) -> Budget {
        Budget(std::cell::Cell::new(
            u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
        ))
    }

    /// What is left.
    pub fn left(&self) -> Duration {
        Duration::from_nanos(self.0.get())
    }

    /// Takes `cost` from every budget of `all`, or refuses without taking anything.
    fn take_all(all: &[&Budget], cost: Duration) -> Result<(), VerifyError> {
        let cost = u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX);
        let left = all.iter().map(|b| b.0.get()).min().unwrap_or(u64::MAX);
        if cost > left {
            return Err(VerifyError::OverBudget {
                cost_us: cost / 1000,
                left_us: left / 1000,
            });
        }
        for b in all {
            b.0.set(b.0.get() - cost);
        }
        Ok(())
    }
}

pub use crate::clock::{Clock, FixedClock, SystemClock};

/// A check a verdict could not make because the policy did not ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Unchecked {
    /// No minimum bits were given: any honest claim passes.
    Bits,
    /// No resource was given: any resource passes.
    Resource,
    /// No spent store: replays are not detected.
    Spent,
    /// The stamp is bound to a message that was not given: whether it was lifted from another
    /// message is not known.
    Binding,
}

impl Unchecked {
    const ALL: [Unchecked; 4] = [
        Unchecked::Bits,
        Unchecked::Resource,
        Unchecked::Spent,
        Unchecked::Binding,
    ];

    /// The name used in messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Unchecked::Bits => "bits",
            Unchecked::Resource => "resource",
            Unchecked::Spent => "spent",
            Unchecked::Binding => "binding",
        }
    }
}

/// The checks a verdict left out, as a small set (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UncheckedSet(u8);

impl UncheckedSet {
    fn insert(&mut self, u: Unchecked) {
        self.0 |= 1 << (u as u8);
    }
    /// Whether `u` was left out.
    pub fn contains(self, u: Unchecked) -> bool {
        self.0 & (1 << (u as u8)) != 0
    }
    /// Whether every check was made.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The checks left out, in a fixed order (bits, resource, spent, binding).
    pub fn iter(self) -> impl Iterator<Item = Unchecked> {
        Unchecked::ALL
            .into_iter()
            .filter(move |&u| self.contains(u))
    }
}

/// The outcome of checking one stamp.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The stamp, or the text that did not parse.
    checked: Checked,
    /// Bits of work found (0 when the hashes miss their claim or were not reached).
    pub value: f64,
    /// Why the stamp failed a check other than its work (form, dates, resource, spent).
    failure: Option<VerifyError>,
    /// Whether the work was enough; meaningful when `failure` is `None`. Kept as data, with
    /// `required`, rather than as an `Err` built on the spot, so that a valid stamp and one
    /// short of work leave the verifier by the same path (see `benches/ct.rs`).
    work_ok: bool,
    /// The bits the work needed (the policy's or the stamp's own claim, the larger).
    required: u32,
    /// Checks the policy left out; a valid stamp with any of these is "not fully checked".
    pub unchecked: UncheckedSet,
    /// Set when the spent store failed and the verifier fails open: the stamp was accepted
    /// without a replay check, for this reason.
    store_error: Option<std::sync::Arc<crate::Error>>,
}

/// What a verdict is about: a stamp, or a text that is not one (and then the verdict's
/// failure is [`VerifyError::Malformed`]).
#[derive(Debug, Clone)]
enum Checked {
    Stamp(Stamp),
    /// Cut to 256 bytes and `...` when longer.
    Malformed(String),
}

impl Verdict {
    /// The stamp text that was checked (surrounding white space removed; a malformed text is
    /// cut to 256 bytes and `...` when longer).
    pub fn stamp(&self) -> &str {
        match &self.checked {
            Checked::Stamp(s) => s.as_str(),
            Checked::Malformed(t) => t,
        }
    }

    /// The parsed stamp, unless the text was malformed.
    pub fn parsed(&self) -> Option<&Stamp> {
        match &self.checked {
            Checked::Stamp(s) => Some(s),
            Checked::Malformed(_) => None,
        }
    }

    /// The text that was checked, when it did not parse.
    pub fn malformed_text(&self) -> Option<&str> {
        match &self.checked {
            Checked::Stamp(_) => None,
            Checked::Malformed(t) => Some(t),
        }
    }

    /// Why the spent store could not be asked, when the verifier fails open: the stamp was
    /// accepted without a replay check.
    pub fn store_error(&self) -> Option<&crate::Error> {
        self.store_error.as_deref()
    }

    /// `Ok` for an acceptable stamp, otherwise the reason it is not.
    pub fn result(&self) -> Result<(), VerifyError> {
        match &self.failure {
            Some(e) => Err(e.clone()),
            None if self.work_ok => Ok(()),
            None => Err(VerifyError::InsufficientWork {
                value: self.value,
                required: self.required,
            }),
        }
    }

    /// Whether the stamp is acceptable under the policy.
    pub fn is_valid(&self) -> bool {
        self.failure.is_none() & self.work_ok
    }

    /// Whether every check was made (a policy with bits, resources and a spent store).
    pub fn fully_checked(&self) -> bool {
        self.unchecked.is_empty()
    }
}

/// The outcome of the work check of a stamp whose visible fields passed.
struct Work {
    /// Bits of work found.
    value: f64,
    /// The bits it needed (the policy's or its own claim, whichever is larger).
    required: u32,
    /// Whether the work is enough.
    pass: bool,
    /// The stamp's date (Unix seconds).
    date: i64,
    /// Until when its spent entry must be kept.
    keep_until: i64,
}

/// A stamp checked but not yet recorded: see [`Verifier::check_pending`].
#[derive(Debug, Clone)]
pub struct Pending {
    verdict: Verdict,
    spend: Option<Spend>,
}

impl Pending {
    /// The verdict as it will be if the store finds the stamp fresh.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Leaves the stamp out of the store: checked, but neither recorded nor refused as spent
    /// (its verdict says the replay check was not made).
    pub fn unrecorded(mut self) -> Pending {
        if self.spend.take().is_some() {
            self.verdict.unchecked.insert(Unchecked::Spent);
        }
        self
    }
}

/// From this many stamps on, [`Verifier::check_batch`] checks them on every core.
pub const PARALLEL_BATCH: usize = 256;

/// Checks stamps against a policy, a clock and (optionally) a spent store.
pub struct Verifier {
    policy: Policy,
    clock: Box<dyn Clock>,
    store: Option<Box<dyn SpentStore>>,
    fail_open: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .field("store", &self.store.is_some())
            .finish()
    }
}

impl Verifier {
    /// A verifier with the system clock and no spent store.
    pub fn new(policy: Policy) -> Self {
        Verifier {
            policy,
            clock: Box::new(SystemClock),
            store: None,
            fail_open: false,
        }
    }

    /// When the spent store fails: `false` (the default) makes `check` return the error (fail
    /// closed); `true` accepts the stamps without a replay check and says so in each verdict
    /// (`store_error`, and `spent` among the unchecked).
    pub fn fail_open(mut self, yes: bool) -> Self {
        self.fail_open = yes;
        self
    }

    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Records accepted stamps in `store` and refuses stamps already in it.
    pub fn with_store(mut self, store: impl SpentStore + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The spent store, if any (a receiver records other spent things in it too: the postage
    /// tickets of the messages it accepted).
    pub fn spent_store(&self) -> Option<&dyn SpentStore> {
        self.store.as_deref()
    }

    /// Whether the spent store's failures are accepted ([`Verifier::fail_open`]).
    pub fn is_fail_open(&self) -> bool {
        self.fail_open
    }

    /// Checks one stamp text. `Err` only when the spent store failed; a bad stamp is an `Ok`
    /// verdict with a reason.
    pub fn check(&self, text: &str) -> Result<Verdict, Error> {
        self.check_in(text, None)
    }

    /// Checks one stamp text that came in `msg`: a stamp bound to another message is refused
    /// (and not recorded as spent); with `None` (the message is not known) a bound stamp is
    /// valid but not fully checked, and not recorded.
    pub fn check_in(&self, text: &str, msg: Option<&dyn BindingSource>) -> Result<Verdict, Error> {
        let pending = self.check_pending(text, msg);
        if self.store.is_none() {
            // Nothing to commit: no batch bookkeeping.
            return Ok(pending.verdict);
        }
        let mut v = self.record(vec![pending])?;
        Ok(v.remove(0))
    }

    /// Every check but the spent store: the verdict as it will be if the stamp is fresh, and
    /// what [`record`](Self::record) would send to the store. Nothing is recorded, so a caller
    /// can decide (e.g. refuse a whole message) before any stamp of it is spent.
    pub fn check_pending(&self, text: &str, msg: Option<&dyn BindingSource>) -> Pending {
        self.check_pending_within(text, msg, &[&self.stamp_budget()])
    }

    /// [`check_pending`](Self::check_pending) drawing on `budgets` (each [`Budget`] the stamp's
    /// estimated cost must fit, and is taken from), for a caller that checks the stamps of one
    /// message itself: e.g. one budget of [`Policy::max_message_work`] shared by all of them and
    /// one of [`Policy::max_work`] per recipient.
    pub fn check_pending_within(
        &self,
        text: &str,
        msg: Option<&dyn BindingSource>,
        budgets: &[&Budget],
    ) -> Pending {
        let now = self.clock.now();
        let (verdict, spend) = self.check_without_store(text, now, msg, true, budgets);
        Pending { verdict, spend }
    }

    /// The budget of one stamp checked on its own.
    fn stamp_budget(&self) -> Budget {
        Budget::new(self.policy.max_work.min(self.policy.max_message_work))
    }

    /// [`check_pending`](Self::check_pending) for a stamp whose resource the caller has matched
    /// against the policy already (`check_message` does, once per message, indexed).
    #[cfg(feature = "mail")]
    pub(crate) fn check_pending_matched(
        &self,
        text: &str,
        msg: Option<&dyn BindingSource>,
        budgets: &[&Budget],
    ) -> Pending {
        let now = self.clock.now();
        let (verdict, spend) = self.check_without_store(text, now, msg, false, budgets);
        Pending { verdict, spend }
    }

    /// Records the stamps of `pending` that passed every other check in the store, in one call
    /// and in order, and returns the final verdicts (those found spent say so). `Err` only when
    /// the store failed and the verifier fails closed; then nothing was recorded.
    pub fn record(&self, pending: Vec<Pending>) -> Result<Vec<Verdict>, Error> {
        let now = self.clock.now();
        self.record_at(
            pending.into_iter().map(|p| (p.verdict, p.spend)).collect(),
            now,
        )
    }

    /// [`record`](Self::record), all or nothing: the stamps are recorded only if every one is
    /// fresh. Returns the verdicts (those found spent say so) and whether they were recorded;
    /// when one was spent nothing was written, so the caller may still refuse the whole message
    /// without having burnt any stamp of it.
    pub fn record_if_all_fresh(
        &self,
        pending: Vec<Pending>,
    ) -> Result<(Vec<Verdict>, bool), Error> {
        let now = self.clock.now();
        self.record_each_or_all(
            pending.into_iter().map(|p| (p.verdict, p.spend)).collect(),
            now,
            true,
        )
    }

    /// Checks a batch of stamp texts: every check but the store for each, then one call to the
    /// store for all that passed (for a durable store, one commit, so a large batch costs hashing,
    /// not fsyncs). A stamp repeated within the batch is accepted once. `Err` only when the store
    /// failed, in which case none of the batch was recorded.
    ///
    /// A batch of [`PARALLEL_BATCH`] stamps or more is checked on every core (rayon's global
    /// pool; `RAYON_NUM_THREADS` sets its size); the store is still called once, in order.
    pub fn check_batch(&self, texts: &[&str]) -> Result<Vec<Verdict>, Error> {
        use rayon::prelude::*;
        let now = self.clock.now();
        // Each stamp of a batch is its own message: it gets a whole budget.
        let one =
            |text: &&str| self.check_without_store(text, now, None, true, &[&self.stamp_budget()]);
        let checked: Vec<(Verdict, Option<Spend>)> = if texts.len() >= PARALLEL_BATCH {
            texts.par_iter().with_min_len(64).map(one).collect()
        } else {
            texts.iter().map(one).collect()
        };
        self.record_at(checked, now)
    }

    /// Sends the stamps that passed every other check to the store in one call, in order, and
    /// marks those it found spent.
    fn record_at(
        &self,
        checked: Vec<(Verdict, Option<Spend>)>,
        now: i64,
    ) -> Result<Vec<Verdict>, Error> {
        Ok(self.record_each_or_all(checked, now, false)?.0)
    }

    /// Sends the stamps that passed every other check to the store in one call, in order, and
    /// marks those it found spent. With `all`, the store records them only if every one is
    /// fresh; the flag returned says whether they were recorded (always, without `all`).
    fn record_each_or_all(
        &self,
        checked: Vec<(Verdict, Option<Spend>)>,
        now: i64,
        all: bool,
    ) -> Result<(Vec<Verdict>, bool), Error> {
        let mut verdicts = Vec::with_capacity(checked.len());
        // What goes to the store, and where each item's verdict is.
        let (mut items, mut at): (Vec<Spend>, Vec<usize>) = (Vec::new(), Vec::new());
        for (i, (verdict, item)) in checked.into_iter().enumerate() {
            if let Some(item) = item {
                items.push(item);
                at.push(i);
            }
            verdicts.push(verdict);
        }
        let Some(store) = self.store.as_ref().filter(|_| !items.is_empty()) else {
            return Ok((verdicts, true));
        };
        let result = if all {
            store.spend_if_all_fresh(&items, now)
        } else {
            store.spend_many(&items, now)
        };
        match result {
            Ok(fresh) => {
                let recorded = !all || !fresh.contains(&false);
                for (&i, f) in at.iter().zip(fresh) {
                    if !f {
                        verdicts[i].failure = Some(VerifyError::Spent);
                    }
                }
                Ok((verdicts, recorded))
            }
            Err(e) if self.fail_open => {
                let e = std::sync::Arc::new(e);
                for &i in &at {
                    verdicts[i].unchecked.insert(Unchecked::Spent);
                    verdicts[i].store_error = Some(e.clone());
                }
                Ok((verdicts, true))
            }
            Err(e) => Err(e),
        }
    }

    /// The verdict before the spent store, and what to record if it passed (with a store).
    fn check_without_store(
        &self,
        text: &str,
        now: i64,
        msg: Option<&dyn BindingSource>,
        match_resource: bool,
        budgets: &[&Budget],
    ) -> (Verdict, Option<Spend>) {
        let text = text.trim_ascii();
        let mut unchecked = UncheckedSet::default();
        if self.policy.min_bits.is_none() && self.policy.min_value.is_empty() {
            unchecked.insert(Unchecked::Bits);
        }
        if self.policy.resources.is_empty() {
            unchecked.insert(Unchecked::Resource);
        }
        if self.store.is_none() {
            unchecked.insert(Unchecked::Spent);
        }
        let verdict = |checked| Verdict {
            checked,
            value: 0.0,
            failure: None,
            work_ok: false,
            required: 0,
            unchecked,
            store_error: None,
        };
        match text.parse::<Stamp>() {
            Err(e) => {
                let mut verdict = verdict(Checked::Malformed(shorten(text)));
                verdict.failure = Some(VerifyError::Malformed(e));
                (verdict, None)
            }
            Ok(stamp) => {
                let mut unchecked = unchecked;
                let outcome =
                    self.check_parsed(&stamp, now, msg, match_resource, &mut unchecked, budgets);
                // A stamp whose binding could not be compared is not recorded: it may have been
                // lifted from another message, and recording it would burn the genuine one.
                let unbound_check = unchecked.contains(Unchecked::Binding);
                if unbound_check && self.store.is_some() {
                    unchecked.insert(Unchecked::Spent);
                }
                let item = match (&outcome, &self.store) {
                    (Ok(work), Some(_)) if work.pass && !unbound_check => Some(Spend {
                        key: spent_key(&stamp),
                        legacy: legacy_key(&stamp),
                        date: Some(work.date),
                        keep_until: work.keep_until,
                    }),
                    _ => None,
                };
                let mut verdict = Verdict {
                    unchecked,
                    ..verdict(Checked::Stamp(stamp))
                };
                match outcome {
                    Ok(work) => {
                        // The work's outcome is stored as data, the same stores either way.
                        verdict.value = work.value;
                        verdict.required = work.required;
                        verdict.work_ok = work.pass;
                        (verdict, item)
                    }
                    Err(e) => {
                        verdict.failure = Some(e);
                        (verdict, None)
                    }
                }
            }
        }
    }

    /// Every check but the spent store, cheapest first: `Err` for the checks on the stamp's
    /// visible fields (date, resource), then the work, whose outcome is data rather than a branch.
    fn check_parsed(
        &self,
        stamp: &Stamp,
        now: i64,
        msg: Option<&dyn BindingSource>,
        match_resource: bool,
        unchecked: &mut UncheckedSet,
        budgets: &[&Budget],
    ) -> Result<Work, VerifyError> {
        // The stamp's family and cost parameters first: a hostile stamp (4 GiB of memory, 64
        // parts, an algorithm we do not accept) is refused here, in microseconds.
        let minimum = self.policy.admits(stamp)?;
        let date = stamp.date().to_unix(now)?;
        let grace = i64::try_from(self.policy.grace.as_secs()).unwrap_or(i64::MAX);
        if date > now.saturating_add(grace) {
            return Err(VerifyError::Future {
                date: rfc3339(date),
                now: rfc3339(now),
            });
        }
        let (expires_at, keep_until) = if self.policy.validity.is_zero() {
            (i64::MAX, i64::MAX)
        } else {
            let end = date
                .saturating_add(i64::try_from(self.policy.validity.as_secs()).unwrap_or(i64::MAX));
            // The entry outlives this window by one more grace: a checker whose clock lags the
            // one that purges by up to the grace still finds it.
            (
                end.saturating_add(grace),
                end.saturating_add(grace.saturating_mul(2)),
            )
        };
        if now >= expires_at {
            return Err(VerifyError::Expired {
                date: rfc3339(date),
                expired_at: rfc3339(expires_at),
            });
        }
        if match_resource
            && !self.policy.resources.is_empty()
            && !self.policy.resources.iter().any(|p| p.accepts(stamp))
        {
            return Err(VerifyError::WrongResource {
                resource: stamp.resource().to_owned(),
            });
        }
        match (binding_of_ext(stamp.ext()), msg) {
            (Err(e), _) => return Err(e),
            (Ok(Some(bound)), _) if self.policy.require_full_binding && !bound.is_full() => {
                return Err(VerifyError::PartlyBound);
            }
            (Ok(Some(bound)), Some(msg)) if !bound.matches(msg) => {
                return Err(VerifyError::WrongMessage);
            }
            (Ok(Some(_)), Some(_)) => {}
            (Ok(Some(_)), None) => unchecked.insert(Unchecked::Binding),
            (Ok(None), Some(_))
                if self.policy.require_binding || self.policy.require_full_binding =>
            {
                return Err(VerifyError::Unbound);
            }
            (Ok(None), _) => {}
        }
        // Last before the work: its estimated cost must fit what is left of the budget.
        Budget::take_all(
            budgets,
            work::estimated_cost(stamp.algorithm(), stamp.parts() as u32),
        )?;
        let value = work::value(stamp);
        // A stamp that misses its own claim is worth nothing whatever the policy says.
        let claimed = match stamp.version() {
            Version::V0 => 0,
            _ => stamp.bits(),
        };
        let required = minimum.unwrap_or(0);
        // One decision on the outcome, made without short-circuits on the digest's value.
        let honest = (stamp.version() == Version::V0) | (value > 0.0) | (claimed == 0);
        let enough = value + 1e-9 >= f64::from(required);
        Ok(Work {
            value,
            required: required.max(claimed),
            pass: honest & enough,
            date,
            keep_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MintRequest, Minter};

    /// A build without the `equix` feature recognises an Equi-X stamp and refuses it before
    /// any work, saying which build would take it; minting one fails the same way.
    #[cfg(not(feature = "equix"))]
    #[test]
    fn equix_needs_the_feature() {
        let text = "2:equix:4:4:261127:bob@example.org::oQrybfJppEL/YBZS:\
            AAAAAAAAAALeVUFwijinnxIXOR92hQH2,AAAAAAAAAAUdxIHJI4j81bZBIOuTgvv7,\
            AAAAAAAAAAnBM01O+RXRtjRlO7wmf83a,AAAAAAAAABhZBbwjfg8xeG1b77UbAAq5";
        let unsupported = VerifyError::Unsupported {
            alg: "equix",
            feature: "equix",
        };
        assert_eq!(
            unsupported.to_string(),
            "equix stamps need a build with --features equix"
        );
        for policy in [
            Policy::new(4, ["bob@example.org"]).with_min_value(Algorithm::Equix, 4),
            Policy::default(),
        ] {
            let v = Verifier::new(policy)
                .with_clock(FixedClock(1_795_780_800))
                .check(text)
                .unwrap();
            assert_eq!(v.parsed().map(|s| s.algorithm()), Some(Algorithm::Equix));
            assert_eq!(v.result(), Err(unsupported.clone()));
            assert_eq!(v.value, 0.0);
        }
        let refused = crate::MintError::Unsupported {
            alg: "equix",
            feature: "equix",
        };
        let req = MintRequest::new("bob@example.org")
            .alg(Algorithm::Equix)
            .bits(4);
        assert_eq!(req.validate(), Err(refused.clone()));
        assert_eq!(Minter::new().mint(&req), Err(refused.clone()));
        assert_eq!(
            crate::Backend::Portable.require(Algorithm::Equix),
            Err(refused)
        );
    }

    /// The structural half of the valid-against-invalid timing claim: a stamp with enough work
    /// and the same stamp one bit short leave the verifier with the same fields set (no error
    /// built for either); only `work_ok` differs, and `result()` builds the reason on request.
    #[test]
    fn enough_and_short_work_differ_only_in_data() {
        let now = 1_795_780_800;
        let req = MintRequest::new("bob@example.org")
            .alg(crate::Algorithm::Sha1)
            .bits(8)
            .parts(1)
            .date(crate::StampDate::from_unix(now, 6).unwrap());
        let stamp = Minter::new().mint(&req).unwrap();
        let at = |bits: u32| {
            Verifier::new(Policy::new(bits, ["bob@example.org"]))
                .with_clock(FixedClock(now))
                .check(stamp.as_str())
                .unwrap()
        };
        let (enough, short) = (at(8), at(stamp.bits() + 1));
        for v in [&enough, &short] {
            assert!(v.failure.is_none() && v.parsed().is_some() && v.value == 8.0);
        }
        assert!(enough.work_ok && enough.is_valid() && enough.result().is_ok());
        assert!(!short.work_ok && !short.is_valid());
        assert_eq!(
            short.result(),
            Err(VerifyError::InsufficientWork {
                value: 8.0,
                required: 9
            })
        );
    }
}
