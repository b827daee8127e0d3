//! Postage on whole messages: stamp one for every recipient and sign it ([`stamp_message`],
//! [`stamp_fields`]); check the stamps and signatures of one and judge each recipient
//! ([`check_message`], [`MessageVerdict`]). The `stamp` and `check` commands and the milter are
//! thin layers over these functions.
//!
//! The message itself, parsed and with new fields put on top, is
//! [`mail::Message`](crate::mail::Message) (`mail.rs`): this module decides what goes on a
//! message, that one only carries it.

use std::collections::{HashMap, HashSet};

use sha2::Digest as _;

use crate::bind::{Binding, BindingSource, normalize_address, same_address};
use crate::dkim::{self, DkimResult, DkimStatus, KeyLookup, SignRequest};
use crate::error::{Error, MintError};
use crate::mail::{Message, format_field};
use crate::mint::{MintRequest, Minter};
use crate::verify::Budget;
use crate::verify::{Verdict, Verifier};

/// Why a message could not be stamped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// The message has no recipient to stamp for.
    #[error("no recipients: the message has no To or Cc address and none was given")]
    NoRecipients,
    /// A stamp could not be minted.
    #[error("minting a stamp for {resource}: {error}")]
    Mint {
        /// The recipient.
        resource: String,
        /// Why.
        error: MintError,
    },
    /// The stamped message could not be read back (cannot happen for a message that parsed).
    #[error("the stamped message does not parse: {0}")]
    Mail(#[from] crate::mail::MailError),
    /// Signing failed.
    #[error("DKIM: {0}")]
    Dkim(#[from] dkim::DkimError),
    /// A stamp would not fit on one header line (a stamp is never folded inside its text).
    #[error(
        "the stamp for {resource} would be {len} bytes: an X-Hashcash field line holds at most {max} (use fewer parts, or a shorter extension or resource)"
    )]
    TooLong {
        /// The recipient.
        resource: String,
        /// The stamp's length.
        len: usize,
        /// The most that fits.
        max: usize,
    },
}

/// Mints one stamp per recipient (`request` gives everything but the resource; each stamp uses
/// all of `threads`) and puts them on top of `msg` as `X-Hashcash:` fields; then signs the
/// result once per signer and puts the signatures above. Returns the new message bytes.
pub fn stamp_message(
    msg: &Message,
    recipients: &[String],
    request: &MintRequest,
    threads: usize,
    signers: &[SignRequest<'_>],
) -> Result<Vec<u8>, StampError> {
    let minter = Minter::new().threads(threads);
    let fields = stamp_fields(msg, recipients, request, &minter, signers)?;
    Ok(msg.with_fields_on_top(&fields))
}

/// The fields `stamp_message` adds, in top-to-bottom order (signatures first, then one
/// `X-Hashcash` field per recipient), each ending in the message's line ending. The stamps are
/// minted one after another with `minter`, each on all of its threads, so its deadline and
/// cancel flag bound the whole message. Every request is validated before any work starts.
///
/// Every stamp is bound to the message (`bind=` in its extension field, added in front of
/// `request.ext`: a digest of the body and of From, To, Cc, Subject, Date and Message-ID), so it
/// is worth nothing in another message. A recipient not named in the
/// message's `To` or `Cc` (a Bcc or envelope-only recipient) gets a stamp whose resource is the
/// hidden form of the address, so the header every recipient receives names no one it did not
/// already name. Recipients are stamped once per address (compared as mail addresses).
pub fn stamp_fields(
    msg: &Message,
    recipients: &[String],
    request: &MintRequest,
    minter: &Minter,
    signers: &[SignRequest<'_>],
) -> Result<Vec<String>, StampError> {
    let each: Vec<(String, MintRequest)> = recipients
        .iter()
        .map(|r| (r.clone(), request.clone()))
        .collect();
    stamp_fields_each(msg, &each, minter, signers)
}

/// [`stamp_fields`] with a cost of its own for each recipient (`(recipient, request)`: the
/// request's resource is replaced by the recipient, its `ext` kept after `bind=`), as a sender
/// following its recipients' postage policies mints ([`crate::policy::Requirement::plan`]).
/// A recipient named twice is stamped once, at the cost of its first entry. Every request is
/// validated before any work starts, as in [`stamp_fields`].
pub fn stamp_fields_each(
    msg: &Message,
    recipients: &[(String, MintRequest)],
    minter: &Minter,
    signers: &[SignRequest<'_>],
) -> Result<Vec<String>, StampError> {
    if recipients.is_empty() {
        return Err(StampError::NoRecipients);
    }
    let visible = msg.recipients();
    let binding = Binding::of(&BindingView::new(msg));
    let mut seen: Vec<String> = Vec::with_capacity(recipients.len());
    let mut reqs: Vec<MintRequest> = Vec::with_capacity(recipients.len());
    for (r, request) in recipients {
        let norm = normalize_address(r);
        if seen.contains(&norm) {
            continue;
        }
        seen.push(norm);
        reqs.push(MintRequest {
            resource: r.clone(),
            ext: binding.add_to_ext(&request.ext),
            hidden: !visible.iter().any(|v| same_address(v, r)),
            ..request.clone()
        });
    }
    for r in &reqs {
        r.validate().map_err(|error| StampError::Mint {
            resource: shown(r),
            error,
        })?;
        if r.stamp_len() > MAX_FIELD_STAMP {
            return Err(StampError::TooLong {
                resource: shown(r),
                len: r.stamp_len(),
                max: MAX_FIELD_STAMP,
            });
        }
    }
    let mut stamps = Vec::with_capacity(reqs.len());
    for r in &reqs {
        let stamp = minter.mint(r).map_err(|error| StampError::Mint {
            resource: shown(r),
            error,
        })?;
        stamps.push(format_field("X-Hashcash", &stamp.to_string(), msg.eol()));
    }
    if signers.is_empty() {
        return Ok(stamps);
    }
    let stamped = Message::parse(msg.with_fields_on_top(&stamps))?;
    let mut fields = sign_fields(&stamped, signers)?;
    fields.extend(stamps);
    Ok(fields)
}

/// The longest stamp an `X-Hashcash:` field holds on one line of at most 998 octets.
pub const MAX_FIELD_STAMP: usize = crate::mail::MAX_LINE - "X-Hashcash: ".len();

/// A message as the stamp binding sees it, each thing computed at most once however many stamps
/// and tickets are compared with it: the body digest, each covered field's canonical form and
/// digest (one pass over the header fields), and each binding asked for. So a message's binding
/// checks cost one pass over it plus, for version-1 stamps, one hash of the covered fields per
/// distinct mask (at most 64), and a constant per version-2 stamp.
pub struct BindingView<'a> {
    msg: &'a Message,
    body: std::cell::OnceCell<[u8; 32]>,
    /// Relaxed canonical instances of every field a binding can name, by name (lower case).
    canonical: std::cell::OnceCell<HashMap<&'static str, Vec<u8>>>,
    digests: std::cell::RefCell<HashMap<&'static str, [u8; 32]>>,
    bindings: std::cell::RefCell<HashMap<(crate::bind::BindVersion, u32), Binding>>,
    /// Bytes hashed for bindings so far (canonical fields and kept answers excluded).
    hashed: std::cell::Cell<u64>,
}

impl<'a> BindingView<'a> {
    /// A view of `msg`.
    pub fn new(msg: &'a Message) -> Self {
        BindingView {
            msg,
            body: std::cell::OnceCell::new(),
            canonical: std::cell::OnceCell::new(),
            digests: std::cell::RefCell::default(),
            bindings: std::cell::RefCell::default(),
            hashed: std::cell::Cell::new(0),
        }
    }

    /// How many bytes of header fields this view has hashed for bindings so far: bounded by the
    /// size of the header times 65 (one pass for the version-2 digests, one per distinct
    /// version-1 mask), whatever the number of stamps.
    pub fn hashed_bytes(&self) -> u64 {
        self.hashed.get()
    }

    fn canonical(&self) -> &HashMap<&'static str, Vec<u8>> {
        self.canonical.get_or_init(|| {
            let mut out: HashMap<&'static str, Vec<u8>> = HashMap::new();
            for f in self.msg.fields() {
                let Some(name) = crate::bind::READER_FIELDS
                    .iter()
                    .find(|n| f.name.eq_ignore_ascii_case(n))
                else {
                    continue;
                };
                out.entry(name)
                    .or_default()
                    .extend_from_slice(&crate::canon::header(crate::canon::Canon::Relaxed, f.raw));
            }
            out
        })
    }
}

impl BindingSource for BindingView<'_> {
    fn fields(&self, name: &str) -> Vec<&[u8]> {
        self.msg
            .fields()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.raw)
            .collect()
    }
    fn body(&self) -> &[u8] {
        self.msg.body()
    }
    fn body_digest(&self) -> [u8; 32] {
        *self
            .body
            .get_or_init(|| crate::bind::body_digest(self.msg.body()))
    }
    fn canonical_field(&self, name: &str, sink: &mut dyn FnMut(&[u8])) {
        if let Some(bytes) = self.canonical().get(name) {
            self.hashed.set(self.hashed.get() + bytes.len() as u64);
            sink(bytes);
        }
    }
    fn field_digest(&self, name: &str) -> [u8; 32] {
        let Some(&key) = crate::bind::READER_FIELDS.iter().find(|n| **n == name) else {
            return sha2::Sha256::digest(b"").into();
        };
        if let Some(d) = self.digests.borrow().get(key) {
            return *d;
        }
        let mut h = sha2::Sha256::new();
        self.canonical_field(key, &mut |b| h.update(b));
        let d: [u8; 32] = h.finalize().into();
        self.digests.borrow_mut().insert(key, d);
        d
    }
    fn binding(&self, version: crate::bind::BindVersion, mask: u32) -> Binding {
        if let Some(b) = self.bindings.borrow().get(&(version, mask)) {
            return *b;
        }
        let b = Binding::compute(self, version, mask);
        self.bindings.borrow_mut().insert((version, mask), b);
        b
    }
}

/// At most this many hidden-resource digests are computed per message when matching `bcc.`
/// stamps against the recipients (each is one SHA-256): beyond it, hidden stamps pay no one.
pub const HIDDEN_MATCH_BUDGET: usize = 65_536;

/// How an error names a request's recipient: hidden ones are not named (errors reach logs).
fn shown(r: &MintRequest) -> String {
    if r.hidden {
        "a hidden (Bcc) recipient".to_owned()
    } else {
        r.resource.clone()
    }
}

/// One `DKIM-Signature` field per signer, in order, for `msg` as it is.
pub fn sign_fields(msg: &Message, signers: &[SignRequest<'_>]) -> Result<Vec<String>, StampError> {
    Ok(signers
        .iter()
        .map(|s| dkim::sign(msg, s))
        .collect::<Result<Vec<_>, _>>()?)
}

/// What `check_message` found.
#[derive(Debug)]
pub struct MessageVerdict {
    /// One result per DKIM signature, top to bottom.
    pub dkim: Vec<DkimResult>,
    /// One verdict per stamp addressed to us, top to bottom.
    pub stamps: Vec<StampVerdict>,
    /// One verdict per recipient the verifier's policy names (its addresses), in order; empty
    /// when it names none.
    pub recipients: Vec<RecipientVerdict>,
    /// Stamps skipped because they are addressed to someone else, or beyond the limit.
    pub skipped: usize,
    /// Bytes of header fields hashed to compare the stamps' bindings with the message: at most
    /// the covered fields' size times 65 (once for the version-2 digests, once per distinct
    /// version-1 mask), however many stamps the message carries.
    pub binding_bytes: u64,
}

/// One stamp's verdict, and whether a passing signature covers its field.
#[derive(Debug)]
pub struct StampVerdict {
    /// The verdict.
    pub verdict: Verdict,
    /// The domain of a passing signature that covers this stamp's field, if any.
    pub bound_to: Option<String>,
    /// The recipient (index into [`MessageVerdict::recipients`]) this stamp names, if any.
    pub pays: Option<usize>,
}

/// Whether one recipient is paid for.
#[derive(Debug, Clone)]
pub struct RecipientVerdict {
    /// The recipient's address as given.
    pub address: String,
    /// Whether the message's `To` or `Cc` names it (otherwise reports do not name it either).
    pub visible: bool,
    /// Pass: a valid, fully checked stamp names it; neutral: a valid stamp names it but some
    /// check was not made; fail: stamps name it and none is valid; none: no stamp names it.
    pub outcome: Outcome,
    /// The stamp (index into [`MessageVerdict::stamps`]) that decided: the best valid one, else
    /// the first that names it.
    pub stamp: Option<usize>,
    /// The value of the best valid stamp naming it, in bits (0 without one).
    pub value: f64,
}

/// The result of a message check, for the message or for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Outcome {
    /// Paid with valid, fully checked stamps, and no failing signature.
    Pass,
    /// A signature failed, or stamps were there and none is valid.
    Fail,
    /// Valid stamps, but some check was not made (no minimum bits, no recipient, no spent store,
    /// a binding that could not be checked): never reported as pass.
    Neutral,
    /// No stamp and nothing failed.
    None,
}

impl Outcome {
    /// The result keyword of `Authentication-Results` and of the JSON output.
    pub fn keyword(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Neutral => "neutral",
            Outcome::None => "none",
        }
    }
}

/// The message's outcome from its recipients': fail if one fails, else none if one has
/// nothing, else neutral if one is not fully checked, else pass.
pub(crate) fn worst(recipients: impl Iterator<Item = Outcome>) -> Outcome {
    let all: Vec<Outcome> = recipients.collect();
    [Outcome::Fail, Outcome::None, Outcome::Neutral]
        .into_iter()
        .find(|o| all.contains(o))
        .unwrap_or(Outcome::Pass)
}

/// Whether `value` bits reach `bits` (with room for the rounding of `log2(parts)`).
fn enough(value: f64, bits: u32) -> bool {
    value + 1e-9 >= f64::from(bits)
}

/// Whether a valid stamp pays at `bits`: a hash stamp by its value; a memory-hard one, whose
/// value is in another unit, by having met the policy's own minimum for its family.
fn pays_at(v: &Verdict, bits: u32) -> bool {
    match v.parsed() {
        Some(s) if s.algorithm().is_memory_hard() => {
            !v.unchecked.contains(crate::verify::Unchecked::Bits)
        }
        _ => enough(v.value, bits),
    }
}

/// The recipients among `requests` that `msg` already pays: a valid stamp bound to this message,
/// naming the recipient, worth at least its request's bits (a memory-hard stamp: its value
/// claimed and met). A sender's relay mints only for the others, so a message stamped before it
/// (`pennyblack stamp`, or `pennyblack answer` re-sending for a challenge) is not paid twice.
/// No stamp is recorded anywhere: this only looks.
pub fn paid_already(msg: &Message, requests: &[(String, crate::MintRequest)]) -> Vec<String> {
    if requests.is_empty() || msg.fields_named("X-Hashcash").next().is_none() {
        return Vec::new();
    }
    let policy = crate::Policy {
        min_bits: None,
        resources: requests
            .iter()
            .map(|(r, _)| crate::ResourcePattern::address(r.as_str()))
            .collect(),
        require_binding: true,
        ..crate::Policy::default()
    };
    let verifier = Verifier::new(policy);
    let Ok(v) = check_message(
        msg,
        &verifier,
        &dkim::KeyFile::default(),
        &dkim::VerifyOptions::default(),
        &CheckLimits::default(),
    ) else {
        return Vec::new();
    };
    requests
        .iter()
        .filter(|(r, req)| {
            v.recipients.iter().enumerate().any(|(i, rv)| {
                rv.address == *r
                    && v.stamps.iter().any(|s| {
                        s.pays == Some(i) && s.verdict.is_valid() && pays_at(&s.verdict, req.bits)
                    })
            })
        })
        .map(|(r, _)| r.clone())
        .collect()
}

/// The outcome of a set of stamps for one recipient (or for the message without recipients).
fn outcome_of<'a>(verdicts: impl Iterator<Item = &'a Verdict>) -> Outcome {
    let mut out = Outcome::None;
    for v in verdicts {
        out = match (out, v.is_valid(), v.fully_checked()) {
            (_, true, true) => return Outcome::Pass,
            (_, true, false) => Outcome::Neutral,
            (Outcome::Neutral, false, _) => Outcome::Neutral,
            (_, false, _) => Outcome::Fail,
        };
    }
    out
}

impl MessageVerdict {
    /// The `x-hashcash` result. With recipients: pass when every recipient is paid by a valid,
    /// fully checked stamp naming it; fail when some recipient's stamps are all invalid; none when
    /// some recipient has no stamp; neutral when all are paid but some check was not made.
    /// Without recipients: the best of the stamps for us.
    pub fn hashcash(&self) -> Outcome {
        if self.recipients.is_empty() {
            return outcome_of(self.stamps.iter().map(|s| &s.verdict));
        }
        worst(self.recipients.iter().map(|r| r.outcome))
    }

    /// The message's overall outcome: fail if a signature failed or the stamps failed.
    pub fn outcome(&self) -> Outcome {
        let dkim_failed = self
            .dkim
            .iter()
            .any(|d| matches!(d.status, DkimStatus::Fail(_)));
        match (dkim_failed, self.hashcash()) {
            (true, _) | (_, Outcome::Fail) => Outcome::Fail,
            (false, h) => h,
        }
    }

    /// Whether every recipient is paid by a valid stamp of at least `bits` (a receiver's
    /// refusal policy); without recipients, whether any stamp for us is.
    pub fn paid_at_least(&self, bits: u32) -> bool {
        if self.recipients.is_empty() {
            return self
                .stamps
                .iter()
                .any(|s| s.verdict.is_valid() && pays_at(&s.verdict, bits));
        }
        self.unpaid_at(bits) == 0
    }

    /// How many recipients no valid stamp of at least `bits` pays (a memory-hard stamp pays
    /// when it met the policy's minimum for its family).
    pub fn unpaid_at(&self, bits: u32) -> usize {
        self.unpaid_recipients(bits).len()
    }

    /// The addresses of the recipients no valid stamp of at least `bits` pays, in order.
    pub fn unpaid_recipients(&self, bits: u32) -> Vec<String> {
        (0..self.recipients.len())
            .filter(|&r| {
                !self
                    .stamps
                    .iter()
                    .any(|s| s.pays == Some(r) && s.verdict.is_valid() && pays_at(&s.verdict, bits))
            })
            .map(|r| self.recipients[r].address.clone())
            .collect()
    }
}

/// Limits on the work a message may cause.
#[derive(Debug, Clone, Copy)]
pub struct CheckLimits {
    /// At most this many `X-Hashcash` fields are examined.
    pub max_stamps: usize,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits { max_stamps: 64 }
    }
}

/// Verifies the DKIM signatures of `msg`, then the stamps for us, recording valid ones as spent,
/// and judges each recipient on its own.
///
/// The recipients are the addresses among the verifier's accepted resources
/// ([`ResourcePattern::address`](crate::ResourcePattern::address), e.g. the envelope
/// recipients); its other resources are the operator's patterns. A stamp is for us when it names
/// a recipient (literally, or in hidden form) or matches a pattern, or when the policy accepts
/// any resource. A recipient is paid only by a valid stamp naming it. Each stamp is checked
/// against this message's body binding before it is recorded, so a stamp lifted from another
/// message is refused and not burnt. A stamp counts as bound to a domain when a passing
/// signature of that domain covers its field (signatures cover `X-Hashcash` fields bottom-up,
/// as many as `h=` names).
pub fn check_message(
    msg: &Message,
    verifier: &Verifier,
    keys: &dyn KeyLookup,
    dkim_opts: &dkim::VerifyOptions,
    limits: &CheckLimits,
) -> Result<MessageVerdict, Error> {
    Ok(check_message_if(msg, verifier, keys, dkim_opts, limits, |_| true)?.0)
}

/// [`check_message`] for a receiver that may refuse the message: `accept` is shown the verdict
/// as it will be if every valid stamp is fresh, before any stamp is recorded. Only when it says
/// yes are the stamps recorded as spent (and the final verdict, with any replays found, is
/// returned with `true`); otherwise nothing is recorded, so a refused message (one unpaid
/// recipient among many, a tempfail the sender will retry) burns none of its stamps, and the
/// provisional verdict is returned with `false`.
pub fn check_message_if(
    msg: &Message,
    verifier: &Verifier,
    keys: &dyn KeyLookup,
    dkim_opts: &dkim::VerifyOptions,
    limits: &CheckLimits,
    accept: impl Fn(&MessageVerdict) -> bool,
) -> Result<(MessageVerdict, bool), Error> {
    let dkim = dkim::verify(msg, keys, dkim_opts);
    let view = BindingView::new(msg);
    let policy = verifier.policy();
    let visible = msg.recipients();
    // The recipients, once per distinct text (two spellings of one address are two recipients,
    // each needing a stamp of its own), indexed by normalized address for the clear stamps.
    let mut rcpts: Vec<&crate::ResourcePattern> = Vec::new();
    let mut texts = HashSet::new();
    let mut by_address: HashMap<String, usize> = HashMap::new();
    for p in policy.resources.iter().filter(|p| p.is_address()) {
        if texts.insert(p.as_str()) {
            by_address
                .entry(normalize_address(p.as_str()))
                .or_insert(rcpts.len());
            rcpts.push(p);
        }
    }
    let patterns: Vec<_> = policy
        .resources
        .iter()
        .filter(|p| !p.is_address())
        .collect();
    // Every recipient can be paid however many there are; fields beyond twice that are not
    // even parsed.
    let max_stamps = limits.max_stamps.saturating_add(rcpts.len());
    let fields: Vec<_> = msg.fields_named("X-Hashcash").collect();
    let total = fields.len();
    // How many stamp fields (from the bottom) each passing signature covers, counted once.
    let stamp_cover: Vec<(usize, String)> = dkim
        .iter()
        .filter(|d| d.status == DkimStatus::Pass)
        .map(|d| (d.covers("x-hashcash"), d.domain.clone()))
        .collect();
    let mut texts_for_us = Vec::new();
    let mut about = Vec::new(); // (bound_to, pays) per stamp for us
    let mut skipped = 0;
    let mut hidden_budget = HIDDEN_MATCH_BUDGET;
    // Verification budgets: one per recipient for the stamps that pay it (Policy::max_work),
    // one more for the stamps that pay none, and one for the whole message
    // (Policy::max_message_work), so a recipient's stamps cannot spend another's budget.
    let message_budget = Budget::new(policy.max_message_work);
    let others_budget = Budget::new(policy.max_work);
    for (i, f) in fields.iter().enumerate() {
        if i >= max_stamps.saturating_mul(2) || texts_for_us.len() >= max_stamps {
            skipped += total - i;
            break;
        }
        let text: String = f.value().chars().filter(|c| !c.is_whitespace()).collect();
        let (for_us, pays) = match text.parse::<crate::Stamp>() {
            Ok(s) => {
                let resource = s.resource();
                let pays = if crate::bind::is_hidden(resource) {
                    let mut found = None;
                    for (r, p) in rcpts.iter().enumerate() {
                        if hidden_budget == 0 {
                            break;
                        }
                        hidden_budget -= 1;
                        if crate::bind::resource_names(resource, s.rand(), p.as_str()) {
                            found = Some(r);
                            break;
                        }
                    }
                    found
                } else if rcpts.is_empty() {
                    None
                } else {
                    by_address.get(&normalize_address(resource)).copied()
                };
                let for_us = policy.resources.is_empty()
                    || pays.is_some()
                    || patterns.iter().any(|p| p.accepts(&s));
                (for_us, pays)
            }
            Err(_) => (true, None),
        };
        if !for_us {
            skipped += 1;
            continue;
        }
        let from_bottom = total - i; // 1 for the lowest field
        let bound_to = stamp_cover
            .iter()
            .find(|(covered, _)| *covered >= from_bottom)
            .map(|(_, domain)| domain.clone());
        texts_for_us.push(text);
        about.push((bound_to, pays));
    }
    // With recipients, a stamp that pays none of them (one for another resource the operator's
    // pattern accepts) is reported but never decides or is recorded: the stamps that pay a
    // recipient are checked first, so such stamps above them cannot spend the budget they need.
    let pays_none = |i: usize| !rcpts.is_empty() && about[i].1.is_none();
    let mut checked: Vec<Option<crate::verify::Pending>> = vec![None; texts_for_us.len()];
    let order = (0..texts_for_us.len())
        .filter(|&i| !pays_none(i))
        .chain((0..texts_for_us.len()).filter(|&i| pays_none(i)));
    let rcpt_budgets: Vec<Budget> = rcpts.iter().map(|_| Budget::new(policy.max_work)).collect();
    for i in order {
        let own = about[i].1.map_or(&others_budget, |r| &rcpt_budgets[r]);
        // The resource was matched here already (once, indexed): the verifier need not again.
        let mut p =
            verifier.check_pending_matched(&texts_for_us[i], Some(&view), &[own, &message_budget]);
        if pays_none(i) {
            // Reported but not recorded: it may be a co-recipient's, whose own delivery must
            // still find it fresh.
            p = p.unrecorded();
        }
        checked[i] = Some(p);
    }
    let pending: Vec<crate::verify::Pending> = checked
        .into_iter()
        .map(|p| p.expect("every stamp for us was checked"))
        .collect();
    let judge = |verdicts: Vec<Verdict>, dkim: Vec<DkimResult>| {
        let stamps: Vec<StampVerdict> = verdicts
            .into_iter()
            .zip(about.iter().cloned())
            .map(|(verdict, (bound_to, pays))| StampVerdict {
                verdict,
                bound_to,
                pays,
            })
            .collect();
        let recipients = judge_recipients(&rcpts, &visible, &stamps);
        MessageVerdict {
            dkim,
            stamps,
            recipients,
            skipped,
            binding_bytes: view.hashed_bytes(),
        }
    };
    let provisional = judge(pending.iter().map(|p| p.verdict().clone()).collect(), dkim);
    if !accept(&provisional) {
        return Ok((provisional, false));
    }
    // All or nothing first: if a stamp turns out spent nothing is written, and the message is
    // judged again with it spent; refused then, it burns none of its stamps.
    let (verdicts, recorded) = verifier.record_if_all_fresh(pending.clone())?;
    if recorded {
        return Ok((judge(verdicts, provisional.dkim), true));
    }
    let with_spent = judge(verdicts, provisional.dkim.clone());
    if !accept(&with_spent) {
        return Ok((with_spent, false));
    }
    let verdicts = verifier.record(pending)?;
    Ok((judge(verdicts, provisional.dkim), true))
}

/// Each recipient's verdict from the stamps that name it.
fn judge_recipients(
    rcpts: &[&crate::ResourcePattern],
    visible: &[String],
    stamps: &[StampVerdict],
) -> Vec<RecipientVerdict> {
    rcpts
        .iter()
        .enumerate()
        .map(|(r, p)| {
            let naming = || {
                stamps
                    .iter()
                    .enumerate()
                    .filter(move |(_, s)| s.pays == Some(r))
            };
            let best = naming()
                .filter(|(_, s)| s.verdict.is_valid())
                .max_by(|a, b| a.1.verdict.value.total_cmp(&b.1.verdict.value));
            RecipientVerdict {
                address: p.as_str().to_owned(),
                visible: visible.iter().any(|v| same_address(v, p.as_str())),
                outcome: outcome_of(naming().map(|(_, s)| &s.verdict)),
                stamp: best.or_else(|| naming().next()).map(|(i, _)| i),
                value: best.map_or(0.0, |(_, s)| s.verdict.value),
            }
        })
        .collect()
}
