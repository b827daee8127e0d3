//! Postage policies: what a receiving domain asks of the stamps sent to it, published in the
//! DNS as a TXT record at `_postage.DOMAIN` and repeated in the refusals and challenges of the
//! milter (the grammar is in docs/FORMAT.md, "Postage policy").
//!
//! ```text
//! _postage.example.net.  IN TXT  "v=PB1; bits=22; alg=sha256,blake3; parts=16"
//! ```
//!
//! A sender turns a [`Requirement`] and its own configured cost into a mint request with
//! [`Requirement::plan`]: at least what the domain asks, never more than the operator's cap.

use std::fmt;

use crate::{Algorithm, Argon2Params, MintRequest};

#[cfg(feature = "dns")]
pub mod lookup;

/// The DNS label under which a domain publishes its policy: `_postage.DOMAIN`.
pub const POLICY_LABEL: &str = "_postage";
/// The version tag every record starts with: `v=PB1`.
pub const VERSION: &str = "PB1";
/// The longest record (or tag list) read, in octets; longer ones are refused unread.
pub const MAX_RECORD_LEN: usize = 1024;
/// The most tags a record may have.
pub const MAX_TAGS: usize = 32;
/// The most bits a policy may ask (a stamp's value is at most 160 + 6 bits; nothing a sender
/// would ever mint comes near 64).
pub const MAX_BITS: u32 = 128;

/// A stamp algorithm family, as a policy names it (parameters aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// SHA-1, hashcash version 1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// BLAKE3.
    Blake3,
    /// Argon2id (memory-hard).
    Argon2id,
    /// Equi-X (memory-hard).
    Equix,
}

impl Family {
    /// Every family, in the order a policy without `alg=` prefers them.
    pub const ALL: [Family; 5] = [
        Family::Sha256,
        Family::Blake3,
        Family::Sha1,
        Family::Argon2id,
        Family::Equix,
    ];

    /// The family's name, as in a stamp and a policy (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Sha1 => "sha1",
            Family::Sha256 => "sha256",
            Family::Blake3 => "blake3",
            Family::Argon2id => "argon2id",
            Family::Equix => "equix",
        }
    }

    /// The family named `s` (lower case, as written).
    pub fn from_name(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The family of an algorithm.
    pub fn of(alg: Algorithm) -> Family {
        match alg {
            Algorithm::Sha1 => Family::Sha1,
            Algorithm::Sha256 => Family::Sha256,
            Algorithm::Blake3 => Family::Blake3,
            Algorithm::Argon2id(_) => Family::Argon2id,
            Algorithm::Equix => Family::Equix,
        }
    }

    /// Whether each attempt costs memory (Argon2id, Equi-X): such a family is accepted only at
    /// a value of its own (`argon2id=N`), never at the hash families' `bits=`.
    pub fn is_memory_hard(self) -> bool {
        matches!(self, Family::Argon2id | Family::Equix)
    }
}

/// Why a policy record or tag list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Longer than [`MAX_RECORD_LEN`].
    #[error("longer than {MAX_RECORD_LEN} octets")]
    TooLong,
    /// Does not start with `v=PB1`.
    #[error("not a postage policy (it must start with v=PB1)")]
    NotAPolicy,
    /// A tag is not `name=value`, or has characters the grammar does not allow.
    #[error("malformed tag {0:?}")]
    Malformed(String),
    /// A tag appears twice.
    #[error("tag {0:?} appears twice")]
    Duplicate(String),
    /// More than [`MAX_TAGS`] tags.
    #[error("more than {MAX_TAGS} tags")]
    TooManyTags,
    /// A required tag is missing.
    #[error("the {0}= tag is missing")]
    Missing(&'static str),
    /// A tag's value is out of range or not understood.
    #[error("{tag}={value:?}: {why}")]
    BadValue {
        /// The tag.
        tag: String,
        /// Its value (at most 64 characters of it).
        value: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// Whether a TXT record is a postage policy record: its first tag is `v=PB1` (the rest may
/// still be malformed). A domain's other TXT records at `_postage.DOMAIN` are ignored; a record
/// that is one is parsed, and refused whole when malformed.
pub fn is_policy_record(text: &str) -> bool {
    let ws = [' ', '\t'];
    let rest = text.trim_start_matches(ws);
    let Some(rest) = rest.strip_prefix('v') else {
        return false;
    };
    let Some(rest) = rest.trim_start_matches(ws).strip_prefix('=') else {
        return false;
    };
    let Some(rest) = rest.trim_start_matches(ws).strip_prefix(VERSION) else {
        return false;
    };
    let rest = rest.trim_start_matches(ws);
    rest.is_empty() || rest.starts_with(';')
}

/// Splits a tag list (`name=value; name=value`) into its tags, checked against the grammar of
/// docs/FORMAT.md: names are a letter then letters, digits, `-` or `_`; values are printable
/// ASCII without `;` or white space; white space is allowed around `;` and `=`; a final `;`
/// is allowed; no name twice. Returns the pairs in order.
pub fn split_tags(text: &str) -> Result<Vec<(&str, &str)>, PolicyError> {
    if text.len() > MAX_RECORD_LEN {
        return Err(PolicyError::TooLong);
    }
    let mut tags: Vec<(&str, &str)> = Vec::new();
    let items: Vec<&str> = text.split(';').collect();
    for (i, item) in items.iter().enumerate() {
        let item = item.trim_matches([' ', '\t']);
        if item.is_empty() && i + 1 == items.len() && i > 0 {
            break; // a final `;`
        }
        let Some((name, value)) = item.split_once('=') else {
            return Err(PolicyError::Malformed(shorten(item)));
        };
        let (name, value) = (
            name.trim_end_matches([' ', '\t']),
            value.trim_start_matches([' ', '\t']),
        );
        let name_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let value_ok = !value.is_empty() && value.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !name_ok || !value_ok {
            return Err(PolicyError::Malformed(shorten(item)));
        }
        if tags.iter().any(|(n, _)| *n == name) {
            return Err(PolicyError::Duplicate(name.to_owned()));
        }
        if tags.len() == MAX_TAGS {
            return Err(PolicyError::TooManyTags);
        }
        tags.push((name, value));
    }
    Ok(tags)
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

fn bad(tag: &str, value: &str, why: &'static str) -> PolicyError {
    PolicyError::BadValue {
        tag: tag.to_owned(),
        value: shorten(value),
        why,
    }
}

/// A decimal number without sign or leading zeros, at most `max`.
pub(crate) fn number(tag: &str, value: &str, min: u32, max: u32) -> Result<u32, PolicyError> {
    if value.is_empty()
        || value.len() > 10
        || !value.bytes().all(|b| b.is_ascii_digit())
        || (value.len() > 1 && value.starts_with('0'))
    {
        return Err(bad(tag, value, "not a decimal number"));
    }
    match value.parse::<u64>() {
        Ok(n) if n >= u64::from(min) && n <= u64::from(max) => Ok(n as u32),
        _ => Err(bad(tag, value, "out of range")),
    }
}

/// What a receiving domain asks of each stamp: a postage policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The least value of a stamp of a hash family (SHA-1, SHA-256, BLAKE3), in bits (`bits=`).
    pub bits: u32,
    /// The accepted families in the order the receiver prefers them (`alg=`); empty: the hash
    /// families, in [`Family::ALL`]'s order. A memory-hard family is accepted only when listed
    /// with a value of its own.
    pub algs: Vec<Family>,
    /// The least value per family where it differs from `bits` (`sha256=24`, `argon2id=8`).
    pub family_bits: Vec<(Family, u32)>,
    /// The number of parts the receiver suggests (`parts=`); `None`: the algorithm's default.
    pub parts: Option<u32>,
    /// The least Argon2id memory accepted, in KiB (`mem=`).
    pub memory_kib: Option<u32>,
}

impl Requirement {
    /// A requirement of `bits` for the hash families, nothing else stated.
    pub fn bits(bits: u32) -> Self {
        Requirement {
            bits,
            algs: Vec::new(),
            family_bits: Vec::new(),
            parts: None,
            memory_kib: None,
        }
    }

    /// Parses a policy record or the policy part of a tag list. Unknown tags are ignored (a
    /// later version may add some); [`Requirement::parse_strict`] refuses them.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let tags = split_tags(text)?;
        Self::from_tags(&tags, |_| true)
    }

    /// Parses a tag list whose every tag is a policy tag or accepted by `extra`.
    pub fn parse_strict(text: &str) -> Result<Self, PolicyError> {
        let tags = split_tags(text)?;
        Self::from_tags(&tags, |_| false)
    }

    /// Builds a requirement from split tags; a tag that is not a policy tag is passed to
    /// `unknown`, which returns whether it may be ignored.
    pub fn from_tags(
        tags: &[(&str, &str)],
        unknown: impl Fn(&str) -> bool,
    ) -> Result<Self, PolicyError> {
        match tags.first() {
            Some(("v", v)) if *v == VERSION => {}
            _ => return Err(PolicyError::NotAPolicy),
        }
        let mut req = Requirement::bits(0);
        let mut have_bits = false;
        for &(name, value) in &tags[1..] {
            match name {
                "v" => return Err(PolicyError::Duplicate("v".into())),
                "bits" => {
                    req.bits = number(name, value, 1, MAX_BITS)?;
                    have_bits = true;
                }
                "alg" => {
                    for a in value.split(',') {
                        let f = Family::from_name(a)
                            .ok_or_else(|| bad(name, value, "unknown algorithm"))?;
                        if req.algs.contains(&f) {
                            return Err(bad(name, value, "an algorithm is named twice"));
                        }
                        req.algs.push(f);
                    }
                }
                "parts" => req.parts = Some(number(name, value, 1, crate::stamp::MAX_PARTS)?),
                "mem" => {
                    req.memory_kib = Some(number(name, value, 8, Argon2Params::MAX_MEMORY_KIB)?)
                }
                _ => match Family::from_name(name) {
                    Some(f) => req.family_bits.push((f, number(name, value, 1, MAX_BITS)?)),
                    None if unknown(name) => {}
                    None => return Err(PolicyError::Malformed(shorten(name))),
                },
            }
        }
        if !have_bits {
            return Err(PolicyError::Missing("bits"));
        }
        for f in &req.algs {
            if f.is_memory_hard() && req.value_of(*f).is_none() {
                return Err(bad(
                    "alg",
                    f.name(),
                    "a memory-hard algorithm needs a value of its own (e.g. argon2id=8)",
                ));
            }
        }
        Ok(req)
    }

    /// The families accepted, in the receiver's order of preference.
    pub fn accepted(&self) -> Vec<Family> {
        if self.algs.is_empty() {
            let mut v = vec![Family::Sha256, Family::Blake3, Family::Sha1];
            v.extend(
                self.family_bits
                    .iter()
                    .map(|(f, _)| *f)
                    .filter(|f| f.is_memory_hard()),
            );
            v
        } else {
            self.algs.clone()
        }
    }

    /// The least value the receiver accepts for `family`, `None` when it is not accepted.
    pub fn value_of(&self, family: Family) -> Option<u32> {
        if !self.algs.is_empty() && !self.algs.contains(&family) {
            return None;
        }
        match self.family_bits.iter().find(|(f, _)| *f == family) {
            Some((_, v)) => Some(*v),
            None if family.is_memory_hard() => None,
            None => Some(self.bits),
        }
    }

    /// What a sender mints for this requirement, given its own `configured` cost (the resource
    /// is left as it is), the most bits it will ever mint (`max_bits`, the operator's cap) and
    /// which families it can mint. The configured algorithm is kept when it is accepted,
    /// otherwise the first accepted family the sender can mint is used with its default
    /// parameters. The value is the larger of the configured bits and what is asked.
    pub fn plan(
        &self,
        configured: &MintRequest,
        max_bits: u32,
        can_mint: impl Fn(Family) -> bool,
    ) -> Plan {
        let mine = Family::of(configured.alg);
        // Never switch to a memory-hard family the operator did not choose: its bits are not
        // comparable with the cap (review 19: `argon2id=26; mem=16384` is weeks of work).
        let family = if self.value_of(mine).is_some() {
            mine
        } else {
            match self
                .accepted()
                .into_iter()
                .find(|f| !f.is_memory_hard() && can_mint(*f) && self.value_of(*f).is_some())
            {
                Some(f) => f,
                None => return Plan::NoCommonAlgorithm,
            }
        };
        let asked = self.value_of(family).expect("an accepted family");
        let alg = if family == mine {
            configured.alg
        } else {
            match family {
                Family::Sha1 => Algorithm::Sha1,
                Family::Sha256 => Algorithm::Sha256,
                Family::Blake3 => Algorithm::Blake3,
                Family::Argon2id => Algorithm::Argon2id(Argon2Params::DEFAULT),
                Family::Equix => Algorithm::Equix,
            }
        };
        // A memory-hard family's cap is the operator's own cost for it: never more work, and
        // never more memory, than configured.
        let cap = if family.is_memory_hard() {
            configured.bits.min(max_bits)
        } else {
            max_bits
        };
        if asked > cap {
            return Plan::OverCap { asked, cap, family };
        }
        if let (Algorithm::Argon2id(p), Some(m)) = (alg, self.memory_kib)
            && m > p.memory_kib
        {
            return Plan::MemoryOverCap {
                asked_kib: m,
                cap_kib: p.memory_kib,
            };
        }
        // The operator's parts for its own family; for another, the suggested parts rounded
        // down to a power of two: K parts of ceil(v - log2 K) bits cost 2^v only when K is one
        // (review: `bits=26; parts=63` was twice the work of the 26-bit cap).
        let parts = if family == mine {
            configured.parts
        } else {
            let k = self.parts.unwrap_or(alg.default_parts()).max(1);
            1 << k.ilog2()
        }
        .min(alg.max_parts());
        // Bits the receiver asks or the operator configured, whichever is more, within the cap
        // (only the configured bits of the family the operator chose count).
        let bits = if family == mine {
            asked.max(configured.bits).min(max_bits)
        } else {
            asked
        };
        Plan::Mint(MintRequest {
            alg,
            bits,
            parts,
            ..configured.clone()
        })
    }
}

/// What a sender does for a recipient domain's policy ([`Requirement::plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Mint this.
    Mint(MintRequest),
    /// The policy asks more than the operator's cap: the sender mints its configured cost and
    /// reports it (the stamp will likely be refused).
    OverCap {
        /// What the policy asks, in bits of `family`.
        asked: u32,
        /// The operator's cap.
        cap: u32,
        /// The family whose value was compared.
        family: Family,
    },
    /// The policy asks for more Argon2id memory than the operator configured.
    MemoryOverCap {
        /// The memory asked, in KiB.
        asked_kib: u32,
        /// The most minted, in KiB.
        cap_kib: u32,
    },
    /// The policy accepts no family the sender can mint.
    NoCommonAlgorithm,
}

impl fmt::Display for Requirement {
    /// The canonical record: `v=PB1; bits=N` then `alg=`, the per-family values, `parts=` and
    /// `mem=` when stated, in that order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v={VERSION}; bits={}", self.bits)?;
        if !self.algs.is_empty() {
            let names: Vec<&str> = self.algs.iter().map(|a| a.name()).collect();
            write!(f, "; alg={}", names.join(","))?;
        }
        for (fam, v) in &self.family_bits {
            write!(f, "; {}={v}", fam.name())?;
        }
        if let Some(p) = self.parts {
            write!(f, "; parts={p}")?;
        }
        if let Some(m) = self.memory_kib {
            write!(f, "; mem={m}")?;
        }
        Ok(())
    }
}

/// Finds the requirement in an SMTP reply text: the milter writes it in square brackets after
/// `postage required` (`451 4.7.1 postage required [v=PB1; bits=22] ...`).
pub fn requirement_in_reply(text: &str) -> Option<Requirement> {
    let at = text.find("postage required [")?;
    let rest = &text[at + "postage required [".len()..];
    let end = rest.find(']')?;
    Requirement::parse(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_record_parses_and_prints_back() {
        let r = Requirement::parse("v=PB1; bits=22; alg=sha256,blake3; parts=16").unwrap();
        assert_eq!(r.bits, 22);
        assert_eq!(r.algs, vec![Family::Sha256, Family::Blake3]);
        assert_eq!(r.parts, Some(16));
        assert_eq!(r.to_string(), "v=PB1; bits=22; alg=sha256,blake3; parts=16");
        assert_eq!(Requirement::parse(&r.to_string()).unwrap(), r);
        // White space around separators and a final `;` are allowed.
        let r2 = Requirement::parse("v=PB1 ;bits = 22;alg=sha256,blake3;parts=16;").unwrap();
        assert_eq!(r2, r);
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [
            "",
            "bits=20; v=PB1",
            "v=PB2; bits=20",
            "v=pb1; bits=20",
            "v=PB1",
            "v=PB1; bits=0",
            "v=PB1; bits=129",
            "v=PB1; bits=020",
            "v=PB1; bits=+20",
            "v=PB1; bits=20; bits=21",
            "v=PB1; bits=20; v=PB1",
            "v=PB1; bits=20; alg=md5",
            "v=PB1; bits=20; alg=sha256,sha256",
            "v=PB1; bits=20; alg=sha256,",
            "v=PB1; bits=20; alg=argon2id",
            "v=PB1; bits=20; parts=0",
            "v=PB1; bits=20; parts=65",
            "v=PB1; bits=20; mem=4",
            "v=PB1; bits=20;; parts=2",
            "v=PB1; bits=2 0",
            "v=PB1; bits=20; 1x=2",
            "v=PB1; bits=20; x",
            "v=PB1; bits=99999999999999999999",
            "v=PB1; bits=20; note=a\u{e9}",
        ] {
            assert!(Requirement::parse(bad).is_err(), "{bad:?} parsed");
        }
        let long = format!("v=PB1; bits=20; x={}", "a".repeat(MAX_RECORD_LEN));
        assert_eq!(Requirement::parse(&long), Err(PolicyError::TooLong));
        let many: String = (0..40).map(|i| format!("; x{i}=1")).collect();
        assert_eq!(
            Requirement::parse(&format!("v=PB1; bits=20{many}")),
            Err(PolicyError::TooManyTags)
        );
    }

    #[test]
    fn policy_records_are_told_from_other_txt_records() {
        for yes in ["v=PB1; bits=20", "v=PB1", " v = PB1 ;bits=x", "v=PB1;"] {
            assert!(is_policy_record(yes), "{yes:?}");
        }
        for no in [
            "",
            "v=spf1 -all",
            "v=PB10; bits=2",
            "v=pb1",
            "bits=20; v=PB1",
            "v=PB1x",
        ] {
            assert!(!is_policy_record(no), "{no:?}");
        }
    }

    #[test]
    fn unknown_tags_are_ignored_only_when_lenient() {
        let r = Requirement::parse("v=PB1; bits=20; future=yes").unwrap();
        assert_eq!(r, Requirement::bits(20));
        assert!(Requirement::parse_strict("v=PB1; bits=20; future=yes").is_err());
    }

    #[test]
    fn values_per_family() {
        let r = Requirement::parse("v=PB1; bits=22; alg=argon2id,sha256; argon2id=8; mem=4096")
            .unwrap();
        assert_eq!(r.value_of(Family::Argon2id), Some(8));
        assert_eq!(r.value_of(Family::Sha256), Some(22));
        assert_eq!(r.value_of(Family::Blake3), None);
        assert_eq!(r.accepted(), vec![Family::Argon2id, Family::Sha256]);
        let plain = Requirement::bits(20);
        assert_eq!(plain.value_of(Family::Argon2id), None);
        assert_eq!(plain.value_of(Family::Sha1), Some(20));
    }

    #[test]
    fn a_plan_never_costs_more_than_the_cap() {
        let any = |_| true;
        for configured in [
            MintRequest::new("-").bits(20).parts(16),
            MintRequest::new("-").alg(Algorithm::Sha1).bits(20),
        ] {
            for parts in [1, 3, 7, 16, 33, 63, 64] {
                for bits in [8, 20, 25, 26] {
                    let r = Requirement::parse(&format!(
                        "v=PB1; bits={bits}; alg=blake3; parts={parts}"
                    ))
                    .unwrap();
                    let Plan::Mint(m) = r.plan(&configured, 26, any) else {
                        panic!("{parts} {bits}");
                    };
                    assert!(
                        m.expected_work() <= 2f64.powi(26),
                        "{parts} parts, {bits} bits: {m:?}"
                    );
                    assert!(m.parts.is_power_of_two(), "{m:?}");
                }
            }
        }
        // Its own family keeps the operator's parts, whatever the policy suggests.
        let configured = MintRequest::new("-").bits(20).parts(16);
        let r = Requirement::parse("v=PB1; bits=26; parts=63").unwrap();
        assert!(
            matches!(r.plan(&configured, 26, any), Plan::Mint(m) if m.parts == 16 && m.bits == 26)
        );
    }

    #[test]
    fn plans_mint_at_least_what_is_asked_and_never_past_the_cap() {
        let configured = MintRequest::new("-").bits(20).parts(16);
        let any = |_| true;
        // More asked than configured: the asked bits.
        let r = Requirement::parse("v=PB1; bits=22").unwrap();
        match r.plan(&configured, 26, any) {
            Plan::Mint(m) => {
                assert_eq!((m.alg, m.bits, m.parts), (Algorithm::Sha256, 22, 16));
            }
            p => panic!("{p:?}"),
        }
        // Less asked than configured: the configured bits.
        let r = Requirement::parse("v=PB1; bits=12").unwrap();
        assert!(matches!(r.plan(&configured, 26, any), Plan::Mint(m) if m.bits == 20));
        // Over the cap: reported, not minted.
        let r = Requirement::parse("v=PB1; bits=30").unwrap();
        assert_eq!(
            r.plan(&configured, 26, any),
            Plan::OverCap {
                asked: 30,
                cap: 26,
                family: Family::Sha256
            }
        );
        // Another family when ours is not accepted; its suggested parts.
        let r = Requirement::parse("v=PB1; bits=21; alg=blake3; parts=8").unwrap();
        assert!(
            matches!(r.plan(&configured, 26, any), Plan::Mint(m) if m.alg == Algorithm::Blake3 && m.bits == 21 && m.parts == 8)
        );
        // SHA-1 is one part whatever is suggested.
        let r = Requirement::parse("v=PB1; bits=21; alg=sha1; parts=8").unwrap();
        assert!(
            matches!(r.plan(&configured, 26, any), Plan::Mint(m) if m.alg == Algorithm::Sha1 && m.parts == 1)
        );
        // Nothing in common.
        let r = Requirement::parse("v=PB1; bits=8; alg=equix; equix=8").unwrap();
        assert_eq!(
            r.plan(&configured, 26, |f| f != Family::Equix),
            Plan::NoCommonAlgorithm
        );
        // A memory-hard family is never taken up unasked by the operator (review 19), and for
        // an operator who chose it, the cap is its own cost and memory.
        let r = Requirement::parse("v=PB1; bits=1; alg=argon2id; argon2id=26; mem=16384").unwrap();
        assert_eq!(r.plan(&configured, 26, any), Plan::NoCommonAlgorithm);
        let mine = MintRequest::new("-")
            .alg(Algorithm::Argon2id(Argon2Params::DEFAULT))
            .bits(8)
            .parts(4);
        assert_eq!(
            r.plan(&mine, 26, any),
            Plan::OverCap {
                asked: 26,
                cap: 8,
                family: Family::Argon2id
            }
        );
        let r = Requirement::parse("v=PB1; bits=20; alg=argon2id; argon2id=6; mem=4096").unwrap();
        assert_eq!(
            r.plan(&mine, 26, any),
            Plan::MemoryOverCap {
                asked_kib: 4096,
                cap_kib: 1024
            }
        );
        let r = Requirement::parse("v=PB1; bits=20; alg=argon2id; argon2id=6; mem=1024").unwrap();
        assert!(matches!(r.plan(&mine, 26, any), Plan::Mint(m) if m.bits == 8));
    }

    #[test]
    fn requirement_found_in_a_reply() {
        let r = requirement_in_reply(
            "4.7.1 postage required [v=PB1; bits=22; alg=sha256] for 1 of 2 recipient(s)",
        )
        .unwrap();
        assert_eq!(r.bits, 22);
        assert!(requirement_in_reply("4.7.1 no postage").is_none());
        assert!(requirement_in_reply("postage required [v=PB1; bits=x]").is_none());
    }
}
