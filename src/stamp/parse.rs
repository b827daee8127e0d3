//! Stamp grammar, reading side. The grammar is written down in the README's "Stamp formats"
//! section; this file and `format.rs` are the only places that know it.

use super::{Algorithm, MAX_PARTS, MAX_STAMP_LEN, Stamp, StampDate, Version, is_alphabet};
use crate::error::ParseError;

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
    if let Some(i) = s.bytes().position(|b| !b.is_ascii_graphic()) {
        return Err(ParseError::BadCharacter(i));
    }
    let fields: Vec<&str> = s.split(':').collect();
    let version = match fields[0] {
        "0" => Version::V0,
        "1" => Version::V1,
        "2" => Version::V2,
        other => {
            return Err(ParseError::UnsupportedVersion(short(other)));
        }
    };
    let expected = match version {
        Version::V0 => 4,
        Version::V1 => 7,
        Version::V2 => 9,
    };
    if fields.len() != expected {
        return Err(ParseError::FieldCount {
            version: version.number(),
            expected,
            found: fields.len(),
        });
    }
    match version {
        Version::V0 => Ok(Stamp {
            version,
            alg: Algorithm::Sha1,
            bits: 0,
            date: StampDate::parse(fields[1])?,
            resource: fields[2].to_owned(),
            ext: String::new(),
            rand: alphabet("rand", fields[3])?,
            counters: Vec::new(),
        }),
        Version::V1 => Ok(Stamp {
            version,
            alg: Algorithm::Sha1,
            // hashcash accepts claims above 160 bits; such a stamp is simply worth 0.
            bits: canonical_number(fields[1])
                .ok_or_else(|| ParseError::BadBits(short(fields[1])))?,
            date: StampDate::parse(fields[2])?,
            resource: fields[3].to_owned(),
            ext: fields[4].to_owned(),
            rand: alphabet("rand", fields[5])?,
            counters: vec![alphabet("counter", fields[6])?],
        }),
        Version::V2 => {
            let alg = match fields[1] {
                "sha256" => Algorithm::Sha256,
                "blake3" => Algorithm::Blake3,
                other => return Err(ParseError::BadAlgorithm(short(other))),
            };
            let bits =
                canonical_number(fields[2]).ok_or_else(|| ParseError::BadBits(short(fields[2])))?;
            if bits > alg.output_bits() {
                return Err(ParseError::BitsTooHigh {
                    bits,
                    max: alg.output_bits(),
                });
            }
            let parts = canonical_number(fields[3])
                .filter(|p| (1..=MAX_PARTS).contains(p))
                .ok_or_else(|| ParseError::BadParts(short(fields[3])))?;
            let counters = counters(fields[8], parts as usize)?;
            Ok(Stamp {
                version,
                alg,
                bits,
                date: StampDate::parse(fields[4])?,
                resource: fields[5].to_owned(),
                ext: fields[6].to_owned(),
                rand: alphabet("rand", fields[7])?,
                counters,
            })
        }
    }
}

/// Numbers are canonical decimal (so that a stamp formats back exactly): 1 to 3 digits, no leading zero (except "0" itself).
fn canonical_number(s: &str) -> Option<u32> {
    let ok = (1..=3).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().expect("1-3 ASCII digits fit in u32"))
}

fn alphabet(field: &'static str, s: &str) -> Result<String, ParseError> {
    if s.bytes().all(is_alphabet) {
        Ok(s.to_owned())
    } else {
        Err(ParseError::BadAlphabet {
            field,
            value: s.chars().take(80).collect(),
        })
    }
}

fn counters(field: &str, declared: usize) -> Result<Vec<String>, ParseError> {
    let list: Vec<&str> = field.split(',').collect();
    if list.len() != declared {
        return Err(ParseError::PartsMismatch {
            declared,
            found: list.len(),
        });
    }
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        if c.is_empty() || c.len() > 64 {
            return Err(ParseError::BadCounterLength(c.chars().take(80).collect()));
        }
        out.push(alphabet("counter", c)?);
    }
    let mut sorted: Vec<&String> = out.iter().collect();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(ParseError::DuplicateCounter(w[0].clone()));
    }
    Ok(out)
}

/// Error messages quote at most the first 16 characters of an offending field.
fn short(s: &str) -> String {
    s.chars().take(16).collect()
}
