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
    /// pennyblack version 2, `2:ALG:BITS:PARTS:DATE:RESOURCE:EXT:RAND:C1,...,CK`: SHA-256,
    /// BLAKE3, Argon2id or Equi-X.
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

/// A cost function a stamp can be made with: a hash (CPU-bound) or a memory-hard function.
/// A memory-hard one carries its cost parameters, which are part of the stamp's text and so of
/// its identity and of the hashed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-1 (versions 0 and 1, hashcash compatible).
    Sha1,
    /// SHA-256 (version 2).
    Sha256,
    /// BLAKE3 with 256-bit output (version 2).
    Blake3,
    /// Argon2id (RFC 9106) with these parameters, 256-bit output (version 2).
    Argon2id(Argon2Params),
    /// Equi-X (Tor's onion-service proof of work), a part being a solution whose BLAKE3 digest
    /// has the stamp's zero bits (version 2; see [`crate::equix`]). Minting and checking need
    /// the `equix` cargo feature; without it such stamps parse and are refused as unsupported.
    Equix,
}

/// The cost parameters of an Argon2id stamp (RFC 9106 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Argon2Params {
    /// Memory size m, in KiB (1 KiB blocks); at least 8 x lanes.
    pub memory_kib: u32,
    /// Number of passes t over the memory, at least 1.
    pub passes: u32,
    /// Degree of parallelism p (lanes), at least 1.
    pub lanes: u32,
}

impl Argon2Params {
    /// What `mint --alg argon2id` uses unless told otherwise: 1 MiB, one pass, one lane.
    pub const DEFAULT: Argon2Params = Argon2Params {
        memory_kib: 1024,
        passes: 1,
        lanes: 1,
    };
    /// The largest memory a stamp may name: 4 GiB (receivers' policies allow far less).
    pub const MAX_MEMORY_KIB: u32 = 4 << 20;
    /// The most passes a stamp may name.
    pub const MAX_PASSES: u32 = 999;
    /// The most lanes a stamp may name.
    pub const MAX_LANES: u32 = 255;

    /// Checks the parameters against Argon2's rules and the grammar's limits.
    pub fn new(memory_kib: u32, passes: u32, lanes: u32) -> Result<Self, ParseError> {
        let p = Argon2Params {
            memory_kib,
            passes,
            lanes,
        };
        let ok = (1..=Self::MAX_LANES).contains(&lanes)
            && (1..=Self::MAX_PASSES).contains(&passes)
            && memory_kib >= 8 * lanes
            && memory_kib <= Self::MAX_MEMORY_KIB;
        if ok {
            Ok(p)
        } else {
            Err(ParseError::BadAlgorithm(p.field()))
        }
    }

    /// Bytes of memory one evaluation needs.
    pub fn memory_bytes(self) -> u64 {
        u64::from(self.memory_kib) * 1024
    }

    /// The algorithm field: `argon2id-mMEMORY-tPASSES-pLANES`.
    fn field(self) -> String {
        format!(
            "argon2id-m{}-t{}-p{}",
            self.memory_kib, self.passes, self.lanes
        )
    }
}

impl Algorithm {
    /// The hash algorithms (CPU-bound, minted by the SIMD backends), in the order the CLI lists
    /// them. Memory-hard algorithms carry parameters and are not in this list.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Blake3];

    /// Argon2id with [`Argon2Params::DEFAULT`].
    pub const ARGON2ID: Algorithm = Algorithm::Argon2id(Argon2Params::DEFAULT);

    /// The family names, as [`name`](Self::name) gives them and `from_str` reads them.
    pub const NAMES: [&'static str; 5] = ["sha1", "sha256", "blake3", "argon2id", "equix"];

    /// The family name used on the command line and in policies (`sha1`, `sha256`, `blake3`,
    /// `argon2id`, `equix`); the stamp's field also names the parameters (see `Display`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
            Algorithm::Argon2id(_) => "argon2id",
            Algorithm::Equix => "equix",
        }
    }

    /// Whether this is a memory-hard function (each attempt costs memory, not just a hash):
    /// Argon2id, and Equi-X (each attempt is a solve over about 1.8 MiB).
    pub fn is_memory_hard(self) -> bool {
        matches!(self, Algorithm::Argon2id(_) | Algorithm::Equix)
    }

    /// The cargo feature a build needs to mint and check this algorithm (`equix` for Equi-X),
    /// or `None` when every build has it.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Algorithm::Equix => Some("equix"),
            _ => None,
        }
    }

    /// Whether this build can mint and check this algorithm (see [`feature`](Self::feature)).
    pub fn is_available(self) -> bool {
        self != Algorithm::Equix || cfg!(feature = "equix")
    }

    /// The Argon2id parameters, for an Argon2id algorithm.
    pub fn argon2(self) -> Option<Argon2Params> {
        match self {
            Algorithm::Argon2id(p) => Some(p),
            _ => None,
        }
    }

    /// The digest size in bits, which is also the most bits a part can claim.
    pub fn output_bits(self) -> u32 {
        match self {
            Algorithm::Sha1 => 160,
            Algorithm::Sha256 | Algorithm::Blake3 | Algorithm::Argon2id(_) | Algorithm::Equix => {
                256
            }
        }
    }

    /// The stamp version this algorithm mints.
    pub fn version(self) -> Version {
        match self {
            Algorithm::Sha1 => Version::V1,
            _ => Version::V2,
        }
    }

    /// The number of parts new stamps get unless asked otherwise: 1 for SHA-1 (hashcash's
    /// format has one counter), 4 for Argon2id and Equi-X (each part costs its verifier one
    /// evaluation, or one Equi-X check of about 50 us), 16 for the others.
    pub fn default_parts(self) -> u32 {
        match self {
            Algorithm::Sha1 => 1,
            Algorithm::Argon2id(_) | Algorithm::Equix => 4,
            Algorithm::Sha256 | Algorithm::Blake3 => 16,
        }
    }

    /// The most parts a stamp with this algorithm may have (1 for hashcash's SHA-1 format).
    pub fn max_parts(self) -> u32 {
        match self {
            Algorithm::Sha1 => 1,
            _ => MAX_PARTS,
        }
    }
}

impl fmt::Display for Algorithm {
    /// The algorithm field of a stamp: the name, and for Argon2id its parameters
    /// (`argon2id-m1024-t1-p1`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Algorithm::Argon2id(p) => f.write_str(&p.field()),
            _ => f.write_str(self.name()),
        }
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Algorithm {
    type Err = ParseError;
    /// A family name (`argon2id` means [`Argon2Params::DEFAULT`]) or a stamp's algorithm field
    /// (`argon2id-m65536-t2-p1`, `equix`). Every build reads `equix`, with the feature or not.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "argon2id" {
            return Ok(Algorithm::ARGON2ID);
        }
        parse::algorithm_field(s)
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
    /// The algorithm, with its parameters (SHA-1 for versions 0 and 1).
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
