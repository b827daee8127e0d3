//! DKIM signatures (RFC 6376) with `rsa-sha256` and `ed25519-sha256` (RFC 8463), following
//! RFC 8301 (no `rsa-sha1`, no RSA key under 1024 bits). Canonicalization and tag handling are
//! ours ([`canon`], in the core because the stamp binding needs it too, and [`tags`]); RSA is
//! AWS-LC's (`aws-lc-rs`), Ed25519 `ed25519-dalek`'s (see [`keys`]).
//!
//! Keys come through [`KeyLookup`]; [`KeyFile`] reads `SELECTOR._domainkey.DOMAIN TXT-RECORD`
//! lines for offline use and tests.

/// Canonicalization lives in the core (the stamp binding needs it too).
pub use crate::canon;
#[cfg(feature = "dns")]
pub mod dns;
mod error;
pub mod keys;
pub mod tags;

pub use canon::Canon;
#[cfg(feature = "dns")]
pub use dns::{DnsError, DnsLookup};
pub use error::{DkimError, EncodeError, KeyError, KeyFileError, SyntaxError};
pub use keys::{KeyFile, KeyLookup, SigningKey};
pub use tags::Tags;

use base64::Engine;

use crate::mail::{Message, format_field};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The header fields signed besides [`crate::bind::READER_FIELDS`] (which are signed and
/// oversigned, as stamps bind them: a field a reader sees cannot be added, changed or removed
/// without breaking the signature; [`crate::bind::ADDED_IN_TRANSIT`] ones absent at signing are
/// left out, so a relay may add them). The stamp fields are oversigned too, so a stamp added
/// above or below after signing breaks the signature; postage tickets likewise. The postage
/// challenge and answer fields are signed where present, so a receiver's signature vouches for
/// its challenge (`pennyblack answer` requires it, with `Auto-Submitted`) and a sender's for its
/// answer.
pub const POSTAGE_SIGNED: [&str; 5] = [
    "x-hashcash",
    "x-postage-ticket",
    "postage-challenge",
    "postage-answer",
    "auto-submitted",
];
/// Of [`POSTAGE_SIGNED`], the fields listed once more than they occur.
pub const POSTAGE_OVERSIGNED: [&str; 2] = ["x-hashcash", "x-postage-ticket"];

/// The `h=` list a signature of `msg` carries: each field of [`crate::bind::READER_FIELDS`] and
/// [`POSTAGE_SIGNED`] as many times as it occurs, plus once more where it is oversigned.
pub fn signed_fields(msg: &Message) -> Vec<&'static str> {
    let mut h = Vec::new();
    for name in crate::bind::READER_FIELDS {
        let n = msg.fields_named(name).count();
        let over = n > 0 || !crate::bind::ADDED_IN_TRANSIT.contains(&name);
        h.extend(std::iter::repeat_n(name, n + usize::from(over)));
    }
    for name in POSTAGE_SIGNED {
        let n = msg.fields_named(name).count() + usize::from(POSTAGE_OVERSIGNED.contains(&name));
        h.extend(std::iter::repeat_n(name, n));
    }
    h
}

/// What to sign with.
#[derive(Debug)]
pub struct SignRequest<'a> {
    /// The signing domain (`d=`).
    pub domain: &'a str,
    /// The selector (`s=`).
    pub selector: &'a str,
    /// The private key.
    pub key: &'a SigningKey,
    /// Header and body canonicalization.
    pub canon: (Canon, Canon),
    /// Signature time (`t=`), Unix seconds.
    pub time: i64,
}

impl<'a> SignRequest<'a> {
    /// One request per `(selector, key)` of `keys`, for `domain`, at `time`.
    pub fn each(
        domain: &'a str,
        keys: &'a [(String, SigningKey)],
        canon: (Canon, Canon),
        time: i64,
    ) -> Vec<SignRequest<'a>> {
        keys.iter()
            .map(|(selector, key)| SignRequest {
                domain,
                selector,
                key,
                canon,
                time,
            })
            .collect()
    }
}

/// Signs `msg` and returns the `DKIM-Signature` field, folded, in the message's line ending,
/// ready to be put on top of the message.
pub fn sign(msg: &Message, req: &SignRequest<'_>) -> Result<String, DkimError> {
    let valid_label = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !valid_label(req.domain) || !valid_label(req.selector) {
        return Err(SyntaxError::NotDnsName {
            domain: req.domain.to_owned(),
            selector: req.selector.to_owned(),
        }
        .into());
    }
    let h = signed_fields(msg);
    let bh = B64.encode(canon::body_hash(req.canon.1, msg.body(), None));
    let value = format!(
        "v=1; a={}; c={}/{}; d={}; s={}; t={}; h={}; bh={}; b=",
        req.key.algorithm(),
        req.canon.0.name(),
        req.canon.1.name(),
        req.domain,
        req.selector,
        req.time,
        // FWS is allowed around the colons (RFC 6376 3.5), so the list can be folded there.
        h.join(": "),
        bh
    );
    let eol = msg.eol();
    let unsigned = format_field("DKIM-Signature", &value, eol);
    let data = signed_data(msg, req.canon.0, &h, unsigned.as_bytes());
    let sig = req.key.sign(&data)?;
    // Append b= folded in chunks; FWS inside b= is ignored by verifiers.
    let mut out = unsigned[..unsigned.len() - eol.as_str().len()].to_owned();
    for chunk in B64.encode(sig).as_bytes().chunks(64) {
        out.push_str(eol.as_str());
        out.push('\t');
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
    }
    out.push_str(eol.as_str());
    Ok(out)
}

/// The data a signature covers: the selected header fields (bottom-up, each instance once, a
/// name with no instance left contributing nothing), then the signature field itself with its
/// `b=` value removed and no final CRLF.
fn signed_data(msg: &Message, c: Canon, h: &[&str], sig_field: &[u8]) -> Vec<u8> {
    // The fields indexed by lower-case name once, each list top to bottom: every `h=` name
    // then takes the lowest instance not yet used, in constant time (linear in the message).
    let mut by_name: std::collections::HashMap<String, Vec<&[u8]>> =
        std::collections::HashMap::new();
    for f in msg.fields() {
        by_name
            .entry(f.name.to_ascii_lowercase())
            .or_default()
            .push(f.raw);
    }
    let mut data = Vec::new();
    for name in h {
        let pick = by_name
            .get_mut(&name.trim().to_ascii_lowercase())
            .and_then(|list| list.pop());
        if let Some(raw) = pick {
            data.extend_from_slice(&canon::header(c, raw));
        }
    }
    let mut own = canon::header(c, &strip_b_value(sig_field));
    own.truncate(own.len() - 2);
    data.extend_from_slice(&own);
    data
}

/// The field with the value of its `b=` tag removed (up to the next `;` or the end of the field),
/// the final line ending kept.
fn strip_b_value(field: &[u8]) -> Vec<u8> {
    let body_end = field.len()
        - field
            .iter()
            .rev()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
    let colon = field.iter().position(|&b| b == b':').map_or(0, |i| i + 1);
    let mut start = colon;
    while start < body_end {
        let end = field[start..body_end]
            .iter()
            .position(|&b| b == b';')
            .map_or(body_end, |i| start + i);
        let spec = &field[start..end];
        if let Some(eq) = spec.iter().position(|&b| b == b'=') {
            let name: Vec<u8> = spec[..eq]
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            if name == b"b" {
                let mut out = field[..start + eq + 1].to_vec();
                out.extend_from_slice(&field[end..]);
                return out;
            }
        }
        start = end + 1;
    }
    field.to_vec()
}

/// The outcome of one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DkimStatus {
    /// The signature verified.
    Pass,
    /// The signature, body hash or key did not verify.
    Fail(String),
    /// The signature cannot be checked (bad syntax, unknown algorithm, missing or bad key).
    PermError(String),
    /// The key lookup failed for now.
    TempError(String),
}

impl DkimStatus {
    /// The RFC 8601 result keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            DkimStatus::Pass => "pass",
            DkimStatus::Fail(_) => "fail",
            DkimStatus::PermError(_) => "permerror",
            DkimStatus::TempError(_) => "temperror",
        }
    }
    /// The reason, for anything but a pass.
    pub fn reason(&self) -> Option<&str> {
        match self {
            DkimStatus::Pass => None,
            DkimStatus::Fail(r) | DkimStatus::PermError(r) | DkimStatus::TempError(r) => Some(r),
        }
    }
}

/// One signature's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimResult {
    /// `d=`, if it could be read.
    pub domain: String,
    /// `s=`, if it could be read.
    pub selector: String,
    /// `a=`, if it could be read.
    pub algorithm: String,
    /// The outcome.
    pub status: DkimStatus,
    /// The `h=` names, lowercased, in order.
    pub signed: Vec<String>,
}

impl DkimResult {
    /// How many instances of `name` (lowercase) the signature covers.
    pub fn covers(&self, name: &str) -> usize {
        self.signed.iter().filter(|n| n.as_str() == name).count()
    }
}

/// How to verify.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Honour the `l=` body length limit (off by default: a signature with `l=` then only
    /// passes if it covers the whole body).
    pub honour_l: bool,
    /// Now, Unix seconds, for `x=` (expiry) and `t=` (not in the future, beyond `skew`).
    pub now: i64,
    /// Allowed clock skew for `t=`, seconds.
    pub skew: i64,
    /// At most this many signatures are checked; the rest are reported as permerror.
    pub max_signatures: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            honour_l: false,
            now: crate::clock::unix_now(),
            skew: 300,
            max_signatures: 5,
        }
    }
}

/// The most names an `h=` tag may list; a signature listing more is a permerror (each costs
/// the verifier work, linear in the names). Our own signatures list every stamp field of a
/// message and the oversigned reader fields: 2,048 holds a message to 1,000 recipients (the
/// Postfix default) with a stamp or ticket each.
pub const MAX_SIGNED_FIELDS: usize = 2048;

/// Body hashes already computed for this message, per canonicalization and length limit: each is
/// computed once however many signatures ask for it.
type BodyHashes = std::cell::RefCell<Vec<((Canon, Option<u64>), [u8; 32])>>;

/// Verifies every `DKIM-Signature` field of `msg`, top to bottom. The cost is linear in the
/// message: the header fields are indexed once per signature, each body hash is streamed once
/// per canonicalization and length, and tag lists and `h=` lists are bounded.
///
/// A message with more than one `From` field fails every signature (RFC 6376 8.15: a signature
/// that does not oversign From survives a forged From prepended above the real one).
pub fn verify(msg: &Message, keys: &dyn KeyLookup, opts: &VerifyOptions) -> Vec<DkimResult> {
    let hashes = BodyHashes::default();
    let froms = msg.fields_named("From").count();
    msg.fields_named("DKIM-Signature")
        .enumerate()
        .map(|(i, f)| {
            if i >= opts.max_signatures {
                return DkimResult {
                    domain: String::new(),
                    selector: String::new(),
                    algorithm: String::new(),
                    status: DkimStatus::PermError(format!(
                        "more than {} signatures; not checked",
                        opts.max_signatures
                    )),
                    signed: Vec::new(),
                };
            }
            let mut r = verify_one(msg, f.raw, keys, opts, &hashes);
            if froms > 1 && r.status == DkimStatus::Pass {
                r.status = DkimStatus::Fail(format!(
                    "the message has {froms} From fields (RFC 6376 8.15)"
                ));
            }
            r
        })
        .collect()
}

/// A permerror saying `e` (a [`SyntaxError`] reads "syntax: ...", as a [`DkimError`] does).
fn perm(e: impl Into<DkimError>) -> DkimStatus {
    DkimStatus::PermError(e.into().to_string())
}

fn verify_one(
    msg: &Message,
    raw: &[u8],
    keys: &dyn KeyLookup,
    opts: &VerifyOptions,
    hashes: &BodyHashes,
) -> DkimResult {
    let mut r = DkimResult {
        domain: String::new(),
        selector: String::new(),
        algorithm: String::new(),
        status: DkimStatus::Pass,
        signed: Vec::new(),
    };
    let value =
        String::from_utf8_lossy(&raw[raw.iter().position(|&b| b == b':').map_or(0, |i| i + 1)..]);
    let tags = match Tags::parse(&value) {
        Ok(t) => t,
        Err(e) => {
            r.status = perm(e);
            return r;
        }
    };
    r.status = match check(msg, raw, &tags, keys, opts, hashes, &mut r) {
        Ok(()) => DkimStatus::Pass,
        Err(s) => s,
    };
    r
}

fn check(
    msg: &Message,
    raw: &[u8],
    tags: &Tags,
    keys: &dyn KeyLookup,
    opts: &VerifyOptions,
    hashes: &BodyHashes,
    r: &mut DkimResult,
) -> Result<(), DkimStatus> {
    let perm_s = |s: &str| DkimStatus::PermError(s.to_owned());
    if tags.require("v").map_err(perm)? != "1" {
        return Err(perm_s("v= is not 1"));
    }
    r.domain = tags.require("d").map_err(perm)?.to_ascii_lowercase();
    r.selector = tags.require("s").map_err(perm)?.to_owned();
    r.algorithm = tags.require("a").map_err(perm)?.to_owned();
    let h = tags.require("h").map_err(perm)?;
    if h.split(':').nth(MAX_SIGNED_FIELDS).is_some() {
        return Err(DkimStatus::PermError(format!(
            "h= lists more than {MAX_SIGNED_FIELDS} fields"
        )));
    }
    r.signed = h
        .split(':')
        .map(|n| {
            n.trim_matches(|c: char| c.is_ascii_whitespace())
                .to_ascii_lowercase()
        })
        .collect();
    if !r.signed.iter().any(|n| n == "from") {
        return Err(perm_s("h= does not include from"));
    }
    let (hc, bc) = match tags.get("c").unwrap_or("simple/simple").split_once('/') {
        Some((h, b)) => (Canon::parse(h), Canon::parse(b)),
        None => (
            Canon::parse(tags.get("c").unwrap_or("simple")),
            Some(Canon::Simple),
        ),
    };
    let (Some(hc), Some(bc)) = (hc, bc) else {
        return Err(perm_s("unknown canonicalization in c="));
    };
    let kind = match r.algorithm.as_str() {
        "rsa-sha256" => keys::KeyKind::Rsa,
        "ed25519-sha256" => keys::KeyKind::Ed25519,
        "rsa-sha1" => return Err(perm_s("rsa-sha1 is not accepted (RFC 8301)")),
        other => {
            return Err(DkimStatus::PermError(format!(
                "unknown algorithm {other:.40}"
            )));
        }
    };
    let parse_time = |name: &str| -> Result<Option<i64>, DkimStatus> {
        tags.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| DkimStatus::PermError(format!("{name}= is not a number")))
            })
            .transpose()
    };
    let (t, x) = (parse_time("t")?, parse_time("x")?);
    if let Some(x) = x {
        if t.is_some_and(|t| x < t) {
            return Err(perm_s("x= is before t="));
        }
        if opts.now > x {
            return Err(DkimStatus::Fail("signature expired (x=)".into()));
        }
    }
    if t.is_some_and(|t| t > opts.now + opts.skew) {
        return Err(DkimStatus::Fail(
            "signature dated in the future (t=)".into(),
        ));
    }
    let limit = match tags.get("l") {
        Some(l) if opts.honour_l => {
            Some(l.parse::<u64>().map_err(|_| perm_s("l= is not a number"))?)
        }
        _ => None,
    };
    let bh = tags.base64("bh").map_err(perm)?;
    let b = tags.base64("b").map_err(perm)?;
    let body_hash = {
        let mut known = hashes.borrow_mut();
        match known.iter().find(|(k, _)| *k == (bc, limit)) {
            Some((_, h)) => *h,
            None => {
                let h = canon::body_hash(bc, msg.body(), limit);
                known.push(((bc, limit), h));
                h
            }
        }
    };
    if body_hash.as_slice() != bh.as_slice() {
        return Err(DkimStatus::Fail("body hash does not match (bh=)".into()));
    }
    let name = format!("{}._domainkey.{}", r.selector, r.domain);
    let records = keys.txt(&name).map_err(|e| match e {
        keys::LookupError::NotFound => DkimStatus::PermError(format!("no key record at {name}")),
        keys::LookupError::Temporary(m) => DkimStatus::TempError(m),
    })?;
    let record = records.join("");
    let key = keys::PublicKey::from_record(&record, kind).map_err(perm)?;
    let h: Vec<&str> = r.signed.iter().map(String::as_str).collect();
    let data = signed_data(msg, hc, &h, raw);
    if key.verify(&data, &b) {
        Ok(())
    } else {
        Err(DkimStatus::Fail("signature does not verify (b=)".into()))
    }
}
