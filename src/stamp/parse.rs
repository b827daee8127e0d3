//! Stamp grammar, reading side. The grammar is written down in docs/FORMAT.md; this file and
//! `format.rs` are the only places that know it.

use super::{
    Algorithm, Argon2Params, MAX_PARTS, MAX_STAMP_LEN, Span, Stamp, StampDate, Version,
    is_alphabet, split_commas,
};
use crate::error::ParseError;

/// The most fields any version has.
const MAX_FIELDS: usize = 9;

/// Parses one stamp. Surrounding ASCII white space is ignored; anything else that is not
/// printable ASCII, or a field that breaks the grammar, is an error.
pub(crate) fn parse(text: &str) -> Result<Stamp, ParseError> {
    let s = text.trim_ascii();
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    if s.len() > MAX_STAMP_LEN {
        return Err(ParseError::TooLong(s.len()));
    }
    // Refuse non-printable bytes (a branch-free pass the compiler vectorizes), then note field
    // boundaries with memchr (spans[i] is field i), without allocating.
    let bytes = s.as_bytes();
    let bad = bytes
        .iter()
        .fold(false, |bad, &b| bad | !b.is_ascii_graphic());
    if bad {
        let i = bytes
            .iter()
            .position(|b| !b.is_ascii_graphic())
            .unwrap_or(0);
        return Err(ParseError::BadCharacter(i));
    }
    let mut spans = [Span::default(); MAX_FIELDS];
    let mut count = 0;
    let mut start = 0;
    for i in memchr::memchr_iter(b':', bytes).chain(std::iter::once(bytes.len())) {
        if count < MAX_FIELDS {
            spans[count] = Span {
                start: start as u32,
                end: i as u32,
            };
        }
        count += 1;
        start = i + 1;
    }
    let field = |i: usize| &s[spans[i].start as usize..spans[i].end as usize];
    let version = match field(0) {
        "0" => Version::V0,
        "1" => Version::V1,
        "2" => Version::V2,
        other => return Err(ParseError::UnsupportedVersion(short(other))),
    };
    let expected = match version {
        Version::V0 => 4,
        Version::V1 => 7,
        Version::V2 => 9,
    };
    if count != expected {
        return Err(ParseError::FieldCount {
            version: version.number(),
            expected,
            found: count,
        });
    }
    let stamp =
        |alg, bits, parts, date: usize, resource: usize, ext: Option<usize>, rand: usize| {
            let end = spans[expected - 1].end;
            Ok(Stamp {
                text: s.to_owned(),
                version,
                alg,
                bits,
                parts,
                date: StampDate::parse(field(date))?,
                resource: spans[resource],
                ext: ext.map_or(Span { start: end, end }, |e| spans[e]),
                rand: spans[rand],
                counters: if version == Version::V0 {
                    Span { start: end, end }
                } else {
                    spans[expected - 1]
                },
            })
        };
    match version {
        Version::V0 => {
            alphabet("rand", field(3))?;
            stamp(Algorithm::Sha1, 0, 1, 1, 2, None, 3)
        }
        Version::V1 => {
            // hashcash accepts claims above 160 bits; such a stamp is simply worth 0.
            let bits =
                canonical_number(field(1)).ok_or_else(|| ParseError::BadBits(short(field(1))))?;
            alphabet("rand", field(5))?;
            alphabet("counter", field(6))?;
            stamp(Algorithm::Sha1, bits, 1, 2, 3, Some(4), 5)
        }
        Version::V2 => {
            let alg = algorithm_field(field(1))?;
            let bits =
                canonical_number(field(2)).ok_or_else(|| ParseError::BadBits(short(field(2))))?;
            if bits > alg.output_bits() {
                return Err(ParseError::BitsTooHigh {
                    bits,
                    max: alg.output_bits(),
                });
            }
            let parts = canonical_number(field(3))
                .filter(|p| (1..=MAX_PARTS).contains(p))
                .ok_or_else(|| ParseError::BadParts(short(field(3))))?;
            alphabet("rand", field(7))?;
            counters(field(8), parts as usize)?;
            if alg == Algorithm::Equix {
                equix_counters(field(8))?;
            }
            stamp(alg, bits, parts, 4, 5, Some(6), 7)
        }
    }
}

/// A version 2 algorithm field: `sha256`, `blake3`, `equix` or `argon2id-mM-tT-pP` (canonical
/// decimal numbers; M at least 8 P and at most 4 GiB in KiB, T 1-999, P 1-255).
pub(super) fn algorithm_field(s: &str) -> Result<Algorithm, ParseError> {
    match s {
        "sha256" => return Ok(Algorithm::Sha256),
        "blake3" => return Ok(Algorithm::Blake3),
        "equix" => return Ok(Algorithm::Equix),
        _ => {}
    }
    let bad = || ParseError::BadAlgorithm(short(s));
    let rest = s.strip_prefix("argon2id-m").ok_or_else(bad)?;
    let (m, rest) = rest.split_once("-t").ok_or_else(bad)?;
    let (t, p) = rest.split_once("-p").ok_or_else(bad)?;
    let m = canonical_big(m).ok_or_else(bad)?;
    let t = canonical_number(t).ok_or_else(bad)?;
    let p = canonical_number(p).ok_or_else(bad)?;
    let params = Argon2Params::new(m, t, p).map_err(|_| bad())?;
    Ok(Algorithm::Argon2id(params))
}

/// A canonical decimal of 1 to 10 digits that fits in a u32.
fn canonical_big(s: &str) -> Option<u32> {
    let ok = (1..=10).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

/// Numbers are canonical decimal (so that a stamp formats back exactly): 1 to 3 digits, no
/// leading zero (except "0" itself).
fn canonical_number(s: &str) -> Option<u32> {
    let ok = (1..=3).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
}

fn alphabet(field: &'static str, s: &str) -> Result<(), ParseError> {
    // Branch-free over the bytes; the error path says which field.
    if s.bytes().fold(true, |ok, b| ok & is_alphabet(b)) {
        Ok(())
    } else {
        Err(ParseError::BadAlphabet {
            field,
            value: s.chars().take(80).collect(),
        })
    }
}

fn counters(field: &str, declared: usize) -> Result<(), ParseError> {
    // One pass into a list on the stack (at most MAX_PARTS pieces are kept; more only count).
    let mut list = [""; MAX_PARTS as usize];
    let mut found = 0;
    for c in split_commas(field) {
        if let Some(slot) = list.get_mut(found) {
            *slot = c;
        }
        found += 1;
    }
    if found != declared {
        return Err(ParseError::PartsMismatch { declared, found });
    }
    let list = &mut list[..found];
    for c in list.iter() {
        if c.is_empty() || c.len() > 64 {
            return Err(ParseError::BadCounterLength(c.chars().take(80).collect()));
        }
        alphabet("counter", c)?;
    }
    // Minted lists are in increasing order already; any other order is sorted to find repeats.
    if !list.windows(2).all(|w| w[0] < w[1]) {
        list.sort_unstable();
        if let Some(w) = list.windows(2).find(|w| w[0] == w[1]) {
            return Err(ParseError::DuplicateCounter(w[0].to_owned()));
        }
    }
    Ok(())
}

/// The counters of an Equi-X stamp (already checked by `counters`: 1 to 64 of them, distinct):
/// each exactly 32 characters of standard base64 (a nonce and a solution), and no nonce twice,
/// since a part must cost its own solve rather than be another solution of a nonce already
/// used. Every build checks this, with the `equix` feature or not: it needs no solving.
fn equix_counters(field: &str) -> Result<(), ParseError> {
    let mut nonces = [0u64; MAX_PARTS as usize];
    let mut n = 0;
    for c in split_commas(field) {
        let (nonce, _) = crate::equix::decode_counter(c)
            .ok_or_else(|| ParseError::BadEquixCounter(c.chars().take(80).collect()))?;
        // `counters` let at most MAX_PARTS through.
        nonces[n] = nonce;
        n += 1;
    }
    let nonces = &mut nonces[..n];
    nonces.sort_unstable();
    match nonces.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(ParseError::DuplicateNonce(w[0])),
        None => Ok(()),
    }
}

/// Error messages quote at most the first 16 characters of an offending field.
fn short(s: &str) -> String {
    s.chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::equix::{decode_counter, encode_counter};

    /// An Equi-X stamp minted by this implementation (tests/it/equix.rs has it too).
    const EQUIX: &str = "2:equix:4:4:261127:bob@example.org::oQrybfJppEL/YBZS:\
        AAAAAAAAAALeVUFwijinnxIXOR92hQH2,AAAAAAAAAAUdxIHJI4j81bZBIOuTgvv7,\
        AAAAAAAAAAnBM01O+RXRtjRlO7wmf83a,AAAAAAAAABhZBbwjfg8xeG1b77UbAAq5";

    /// The Equi-X rules hold in every build, with the `equix` feature or not: counters of
    /// exactly 32 base64 characters, no nonce twice.
    #[test]
    fn equix_counters() {
        let stamp = parse(EQUIX).unwrap();
        assert_eq!(stamp.algorithm(), Algorithm::Equix);
        assert_eq!(stamp.to_string(), EQUIX);
        let counters: Vec<&str> = stamp.counters().collect();
        let prefix = stamp.prefix();
        let rest = counters[1..].join(",");
        // Another solution for the first part's nonce, in the second part.
        let (n0, _) = decode_counter(counters[0]).unwrap();
        let (_, mut s1) = decode_counter(counters[1]).unwrap();
        s1[0] ^= 1;
        let twice = format!(
            "{prefix}{},{},{}",
            counters[0],
            encode_counter(n0, &s1),
            counters[2..].join(",")
        );
        assert_eq!(parse(&twice), Err(ParseError::DuplicateNonce(n0)));
        // The same counter twice.
        let two = prefix.replacen(":4:4:", ":4:2:", 1);
        let same = format!("{two}{},{}", counters[0], counters[0]);
        assert!(matches!(parse(&same), Err(ParseError::DuplicateCounter(_))));
        // Not 32 characters of standard base64 (padding, length).
        let c = counters[0];
        for bad in [
            &c[..31],
            &format!("{c}A")[..],
            &format!("{}=", &c[..31]),
            "AAAA",
        ] {
            let text = format!("{prefix}{bad},{rest}");
            assert!(
                matches!(parse(&text), Err(ParseError::BadEquixCounter(_))),
                "{text}"
            );
        }
        // The same counters under another algorithm are plain counters.
        assert!(parse(&EQUIX.replacen("equix", "blake3", 1)).is_ok());
        assert_eq!("equix".parse::<Algorithm>(), Ok(Algorithm::Equix));
    }
}
