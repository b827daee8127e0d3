//! Minting kernels and the ONE place that decides which one runs on this CPU.
//!
//! A kernel scans a range of counters for one [`Job`] (a fixed prefix, a counter of fixed width
//! appended to it, a number of leading zero bits to reach) and reports the counters whose hash
//! reaches the target. Every kernel has the same signature, so the SIMD kernels of later work slot
//! in beside [`portable`] without the minter changing.

pub(crate) mod portable;

use std::fmt;
use std::str::FromStr;

use crate::stamp::Algorithm;

/// The digits of a minted counter, most significant first: the base64 alphabet, which is also
/// inside hashcash's `[A-Za-z0-9+/=]`.
pub(crate) const COUNTER_DIGITS: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Width of a minted counter in characters: 8 base64 digits = 2^48 attempts per part.
pub(crate) const COUNTER_WIDTH: usize = 8;

/// How many counters a fixed-width counter can take.
pub(crate) const COUNTER_SPACE: u64 = 1 << (6 * COUNTER_WIDTH);

/// Writes `n` as `out.len()` base64 digits, most significant first.
pub(crate) fn encode_counter(mut n: u64, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = COUNTER_DIGITS[(n & 63) as usize];
        n >>= 6;
    }
}

/// A CPU backend for minting. Verification never uses these: it hashes with the plain crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Backend {
    /// The `sha1`, `sha2` and `blake3` crates with a precomputed midstate; runs everywhere.
    Portable,
}

impl Backend {
    /// Every backend this build knows, available on this CPU or not.
    pub const ALL: [Backend; 1] = [Backend::Portable];

    /// The fastest backend this CPU supports for `alg`.
    pub fn detect(alg: Algorithm) -> Backend {
        Backend::available(alg)
            .into_iter()
            .next()
            .unwrap_or(Backend::Portable)
    }

    /// The backends this CPU supports for `alg`, fastest first.
    pub fn available(alg: Algorithm) -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.supports(alg))
            .collect()
    }

    /// Whether this backend can mint `alg` on this CPU.
    pub fn supports(self, alg: Algorithm) -> bool {
        match self {
            Backend::Portable => {
                matches!(alg, Algorithm::Sha1 | Algorithm::Sha256 | Algorithm::Blake3)
            }
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
        }
    }

    /// Scans counters `start..start + count` (clamped to the counter space) of `job` and appends
    /// every counter whose hash has at least `job.bits` leading zero bits to `hits`.
    pub(crate) fn search(self, job: &Job, start: u64, count: u64, hits: &mut Vec<u64>) {
        let end = start.saturating_add(count).min(COUNTER_SPACE);
        match self {
            Backend::Portable => portable::search(job, start, end, hits),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Backend::ALL.iter().map(|b| b.name()).collect();
                format!("unknown backend {s:?} (known: {})", names.join(", "))
            })
    }
}

/// A reusable counter search on one backend, for benchmarks and tools that measure hash rates:
/// hashes `prefix || counter` for 8-digit base64 counters and reports those with `bits` leading
/// zero bits. The minter uses the same kernels.
pub struct Search {
    job: Job,
}

impl Search {
    /// Precomputes a search (midstate and final-block template) for `prefix`.
    pub fn new(alg: Algorithm, prefix: &[u8], bits: u32) -> Search {
        Search {
            job: Job::new(alg, prefix, COUNTER_WIDTH, bits),
        }
    }

    /// Tries counters `start..start + count` on `backend` and appends the hits to `hits`.
    /// Returns `false` (and does nothing) when this CPU lacks the backend.
    pub fn run(&self, backend: Backend, start: u64, count: u64, hits: &mut Vec<u64>) -> bool {
        if !backend.supports(self.job.alg) {
            return false;
        }
        backend.search(&self.job, start, count, hits);
        true
    }
}

/// One search: hash `prefix || counter` for fixed-width counters and look for leading zeros.
/// Built once per stamp; holds whatever the kernels precompute (the midstate).
pub(crate) struct Job {
    pub(crate) alg: Algorithm,
    pub(crate) bits: u32,
    pub(crate) width: usize,
    pub(crate) prefix: Vec<u8>,
    pub(crate) portable: portable::Precomputed,
}

impl Job {
    /// Precomputes a search for `prefix` followed by a `width`-digit counter.
    pub(crate) fn new(alg: Algorithm, prefix: &[u8], width: usize, bits: u32) -> Job {
        Job {
            alg,
            bits,
            width,
            prefix: prefix.to_vec(),
            portable: portable::Precomputed::new(alg, prefix, width),
        }
    }

    /// The exact bytes a counter stands for: `prefix || digits(n)`.
    pub(crate) fn message(&self, n: u64) -> Vec<u8> {
        let mut m = self.prefix.clone();
        m.resize(self.prefix.len() + self.width, 0);
        encode_counter(n, &mut m[self.prefix.len()..]);
        m
    }
}

/// True when the big-endian words `state` start with at least `bits` zero bits.
#[inline(always)]
pub(crate) fn words_have_zero_bits(state: &[u32], bits: u32) -> bool {
    let full = (bits / 32) as usize;
    let rem = bits % 32;
    if state[..full.min(state.len())].iter().any(|&w| w != 0) {
        return false;
    }
    rem == 0 || state.get(full).is_some_and(|&w| w >> (32 - rem) == 0)
}

/// True when `bytes` start with at least `bits` zero bits.
#[inline(always)]
pub(crate) fn bytes_have_zero_bits(bytes: &[u8], bits: u32) -> bool {
    let full = (bits / 8) as usize;
    let rem = bits % 8;
    if bytes[..full.min(bytes.len())].iter().any(|&b| b != 0) {
        return false;
    }
    rem == 0 || bytes.get(full).is_some_and(|&b| b >> (8 - rem) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_encoding_is_fixed_width_base64() {
        let mut b = [0u8; 4];
        encode_counter(0, &mut b);
        assert_eq!(&b, b"AAAA");
        encode_counter(63, &mut b);
        assert_eq!(&b, b"AAA/");
        encode_counter(64, &mut b);
        assert_eq!(&b, b"AABA");
        encode_counter((1 << 24) - 1, &mut b);
        assert_eq!(&b, b"////");
    }

    #[test]
    fn zero_bit_checks() {
        assert!(words_have_zero_bits(&[0, 0x0000_ffff], 48));
        assert!(!words_have_zero_bits(&[0, 0x0000_ffff], 49));
        assert!(words_have_zero_bits(&[0x00ff_0000, 1], 8));
        assert!(!words_have_zero_bits(&[0x00ff_0000, 1], 9));
        assert!(words_have_zero_bits(&[0, 0], 64));
        assert!(!words_have_zero_bits(&[0, 0], 65));
        assert!(bytes_have_zero_bits(&[0, 0x0f], 12));
        assert!(!bytes_have_zero_bits(&[0, 0x0f], 13));
        assert!(bytes_have_zero_bits(&[0, 0], 16));
        assert!(!bytes_have_zero_bits(&[0, 0], 17));
    }
}
