//! The stamp: its versions, fields and hash algorithm. Parsing and formatting follow
//! docs/FORMAT.md and live in `stamp/parse.rs` and `stamp/format.rs` only.

pub(crate) mod date;
mod format;
mod parse;

pub use date::StampDate;
pub(crate) use format::{Fields, build_prefix};

use std::fmt;
use std::str::FromStr;

use crate::error::ParseError;

/// The longest stamp text we accept, in bytes. Longer input is refused before any other work.
pub const MAX_STAMP_LEN: usize = 8192;

/// The most parts a version 2 stamp may have.
pub const MAX_PARTS: u32 = 64;

/// A stamp format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum Version {
    /// hashcash version 0, `0:DATE:RESOURCE:RAND`: verify only; value = leading zero bits of SHA-1.
    V0,
    /// hashcash version 1, `1:BITS:DATE:RESOURCE:EXT:RAND:COUNTER`, SHA-1.
    V1,
    /// pennyblack version 2, `2:ALG:BITS:PARTS:DATE:RESOURCE:EXT:RAND:C1,...,CK`, SHA-256 or BLAKE3.
    V2,
}

impl Version {
    /// The digit that opens a stamp of this version.
    pub fn number(self) -> u8 {
        match self {
            Version::V0 => 0,
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }
}

/// A hash algorithm a stamp can be made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-1 (versions 0 and 1, hashcash compatible).
    Sha1,
    /// SHA-256 (version 2).
    Sha256,
    /// BLAKE3 with 256-bit output (version 2).
    Blake3,
}

impl Algorithm {
    /// All algorithms, in the order the CLI lists them.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Blake3];

    /// The name used in stamps and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
        }
    }

    /// The digest size in bits, which is also the most bits a part can claim.
    pub fn output_bits(self) -> u32 {
        match self {
            Algorithm::Sha1 => 160,
            Algorithm::Sha256 | Algorithm::Blake3 => 256,
        }
    }

    /// The stamp version this algorithm mints.
    pub fn version(self) -> Version {
        match self {
            Algorithm::Sha1 => Version::V1,
            Algorithm::Sha256 | Algorithm::Blake3 => Version::V2,
        }
    }

    /// The number of parts new stamps get unless asked otherwise: 1 for SHA-1 (hashcash's
    /// format has one counter), 16 for the others.
    pub fn default_parts(self) -> u32 {
        match self {
            Algorithm::Sha1 => 1,
            Algorithm::Sha256 | Algorithm::Blake3 => 16,
        }
    }

    /// The most parts a stamp with this algorithm may have (1 for hashcash's SHA-1 format).
    pub fn max_parts(self) -> u32 {
        match self {
            Algorithm::Sha1 => 1,
            Algorithm::Sha256 | Algorithm::Blake3 => MAX_PARTS,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| ParseError::BadAlgorithm(s.to_owned()))
    }
}

/// A parsed stamp of any version. It keeps its exact text, so `Display` writes back exactly the
/// text it was parsed from, and the fields are views into that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub(crate) text: String,
    pub(crate) version: Version,
    pub(crate) alg: Algorithm,
    /// Claimed bits per part (version 0 claims nothing: 0).
    pub(crate) bits: u32,
    pub(crate) parts: u32,
    pub(crate) date: StampDate,
    pub(crate) resource: Span,
    pub(crate) ext: Span,
    pub(crate) rand: Span,
    /// Version 1: one counter; version 2: the comma-separated list; version 0: empty at the end.
    pub(crate) counters: Span,
}

/// A byte range of a stamp's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Stamp {
    fn span(&self, s: Span) -> &str {
        &self.text[s.start as usize..s.end as usize]
    }
    /// The format version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The hash algorithm (SHA-1 for versions 0 and 1).
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
    /// The bits claimed per part (0 for version 0, which claims none).
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// The number of parts: the number of counters for version 2, otherwise 1.
    pub fn parts(&self) -> usize {
        self.parts as usize
    }
    /// The date field.
    pub fn date(&self) -> &StampDate {
        &self.date
    }
    /// The resource (usually the recipient's address).
    pub fn resource(&self) -> &str {
        self.span(self.resource)
    }
    /// The extension field (empty for version 0).
    pub fn ext(&self) -> &str {
        self.span(self.ext)
    }
    /// The random field.
    pub fn rand(&self) -> &str {
        self.span(self.rand)
    }
    /// The counters: one for version 1, one per part for version 2, none for version 0.
    pub fn counters(&self) -> impl Iterator<Item = &str> + '_ {
        let list = self.span(self.counters);
        let none = self.version == Version::V0;
        split_commas(list).filter(move |_| !none)
    }
    /// The stamp's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// What each part's counter is appended to before hashing: for versions 1 and 2 the text up
    /// to and including the colon before the counter(s); for version 0 the whole text.
    pub fn prefix(&self) -> &str {
        match self.version {
            Version::V0 => &self.text,
            _ => &self.text[..self.counters.start as usize],
        }
    }
}

impl FromStr for Stamp {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse(s)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The pieces of `list` between commas: `str::split(',')` for the short pieces of a counter
/// list, with a plain byte scan where `split` calls `memchr` once per piece.
pub(crate) fn split_commas(list: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = Some(list);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b',') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The characters allowed in RAND and COUNTER fields: `[A-Za-z0-9+/=]`, as hashcash checks.
#[inline(always)]
pub(crate) fn is_alphabet(b: u8) -> bool {
    let lower = b | 0x20;
    (lower.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'+')
        | (b == b'/')
        | (b == b'=')
}

#[cfg(test)]
mod tests {
    use super::split_commas;

    /// `split_commas` is `str::split(',')`, empty pieces included.
    #[test]
    fn split_commas_is_split() {
        for s in [
            "",
            ",",
            ",,",
            "a",
            "a,",
            ",a",
            "a,b",
            "AAAA,BBBB,,C",
            "x,y,z,",
        ] {
            let ours: Vec<&str> = split_commas(s).collect();
            let std: Vec<&str> = s.split(',').collect();
            assert_eq!(ours, std, "{s:?}");
        }
    }
}
