//! Minting kernels and the ONE place that decides which one runs on this CPU.
//!
//! A kernel scans a range of counters for one `Job` (a fixed prefix, a counter of fixed width
//! appended to it, a number of leading zero bits to reach) and reports the counters whose hash
//! reaches the target. Every kernel has the same signature, so the SIMD kernels (`x86_sha`,
//! `x86_avx2`, `x86_avx512`) sit beside `portable` and the minter does not know which one runs. The layout
//! the kernels are fast on (where a candidate's counter ends in its last block) is decided here
//! too, by `counter_padding`, which the minter follows.

pub(crate) mod portable;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub(crate) mod x86_avx2;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub(crate) mod x86_avx512;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub(crate) mod x86_sha;

use std::fmt;
use std::str::FromStr;

use crate::stamp::Algorithm;

/// The digits of a minted counter, most significant first: the base64 alphabet, which is also
/// inside hashcash's `[A-Za-z0-9+/=]`.
pub(crate) const COUNTER_DIGITS: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Width of a minted counter in characters: 8 base64 digits = 2^48 attempts per part.
pub(crate) const COUNTER_WIDTH: usize = 8;

/// How many counters a fixed-width counter can take (for Equi-X, how many nonces the minter
/// tries: its counters hold 8-byte nonces, so a hit's name `nonce * 8 + index` fits too).
pub(crate) const COUNTER_SPACE: u64 = 1 << (6 * COUNTER_WIDTH);

/// The characters of one minted counter of `alg`: [`COUNTER_WIDTH`], or for Equi-X its nonce
/// and solution in base64 ([`crate::equix::COUNTER_CHARS`]).
pub(crate) fn counter_chars(alg: Algorithm) -> usize {
    match alg {
        Algorithm::Equix => crate::equix::COUNTER_CHARS,
        _ => COUNTER_WIDTH,
    }
}

/// SHA-256 round constants, shared by the SIMD kernels.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub(crate) const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The kernels' layout rule: the padding (0 to 63 bytes) to put before the counter so that a
/// candidate with `len` bytes before its padding, then a [`COUNTER_WIDTH`]-digit counter, ends
/// where the kernels want it. For SHA-1 and SHA-256 the message ends at byte 55 of its last block
/// (one final block, constant words first, holding the whole counter: the SHA-NI fast path); for
/// BLAKE3 it ends a 64-byte block. The minter pads the random field of its stamps by this much.
pub(crate) fn counter_padding(alg: Algorithm, len: usize) -> usize {
    let end = match alg {
        Algorithm::Sha1 | Algorithm::Sha256 => 55,
        Algorithm::Blake3 => 0,
        // One Argon2 evaluation hashes the whole password once, an Equi-X challenge builds one
        // program: no layout to win.
        Algorithm::Argon2id(_) | Algorithm::Equix => return 0,
    };
    (end + 64 - (len + COUNTER_WIDTH) % 64) % 64
}

/// Writes `n` as `out.len()` base64 digits, most significant first.
pub(crate) fn encode_counter(mut n: u64, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = COUNTER_DIGITS[(n & 63) as usize];
        n >>= 6;
    }
}

/// Vector ops per batch of 16 candidates of the AVX-512 BLAKE3 kernel (see
/// [`Backend::bound_per_ghz`]).
const AVX512_OPS: f64 = 639.0;

/// A CPU backend for minting. Verification never uses these: it hashes with the plain crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Backend {
    /// x86 SHA extensions, 4 candidates interleaved: SHA-1 and SHA-256.
    ShaNi,
    /// x86 AVX-512 (F), 16 candidates per vector: BLAKE3.
    Avx512,
    /// x86 AVX2, 8 candidates per vector: SHA-256 and BLAKE3.
    Avx2,
    /// The `sha1` and `sha2` block functions and a scalar BLAKE3, from a precomputed midstate;
    /// runs everywhere.
    Portable,
}

impl Backend {
    /// Every backend this build knows, available on this CPU or not.
    pub const ALL: [Backend; 4] = [
        Backend::ShaNi,
        Backend::Avx512,
        Backend::Avx2,
        Backend::Portable,
    ];

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

    /// Whether this backend can mint `alg` on this CPU. This is the one place that asks the CPU.
    /// Memory-hard algorithms are minted by the portable backend only, and Equi-X only in a
    /// build with the `equix` feature.
    pub fn supports(self, alg: Algorithm) -> bool {
        match self {
            Backend::Portable => alg.is_available(),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Backend::ShaNi => {
                matches!(alg, Algorithm::Sha1 | Algorithm::Sha256) && x86_sha::detected()
            }
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Backend::Avx2 => {
                matches!(alg, Algorithm::Sha256 | Algorithm::Blake3) && x86_avx2::detected()
            }
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Backend::Avx512 => alg == Algorithm::Blake3 && x86_avx512::detected(),
            #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
            Backend::ShaNi | Backend::Avx2 | Backend::Avx512 => false,
        }
    }

    /// `Ok` when this backend can mint `alg` on this CPU, otherwise the one error every entry
    /// point that takes a forced backend gives ([`Minter::backend`](crate::Minter::backend),
    /// [`Search::run`], [`crate::rate::measure`], the command line); for an algorithm this
    /// build lacks, [`MintError::Unsupported`](crate::MintError::Unsupported).
    pub fn require(self, alg: Algorithm) -> Result<(), crate::MintError> {
        if let Some(feature) = alg.feature().filter(|_| !alg.is_available()) {
            return Err(crate::MintError::Unsupported {
                alg: alg.name(),
                feature,
            });
        }
        if self.supports(alg) {
            Ok(())
        } else {
            Err(crate::MintError::BackendUnavailable { backend: self, alg })
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::ShaNi => "sha-ni",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Portable => "portable",
        }
    }

    /// The most candidates per second, per GHz of core clock, that this backend's kernel for
    /// `alg` can reach on one core of this CPU: the instructions it issues per candidate divided
    /// by what the CPU can retire of them per cycle. `None` where the backend cannot mint `alg`.
    /// [`crate::rate::clock_ghz`] measures the clock; `pennyblack bench` shows each rate as a
    /// fraction of this bound. The derivation, for one candidate (a final block after a
    /// precomputed midstate, as the layout rule makes it):
    ///
    /// Throughputs measured on the development machine (2 cores, CPUID "Intel Xeon Processor"
    /// with AVX2, SHA-NI and AVX-512, 3.9 GHz measured by a chain of dependent adds; independent
    /// streams of one instruction, best of 5): `vpaddd`/`vpxor`/`vpor` ymm 3 per cycle, a mix of
    /// ALU, shift and shuffle ops also 3 per cycle, `vpsrld`/`vpslld` ymm 2, `vpshufb` ymm 2,
    /// `sha256rnds2` and `sha1rnds4` 1 per 3 cycles, `sha1nexte` 1, `sha256msg2` 1 per 2, scalar
    /// `add` 5, `ror` 2. These are figures for that CPU: an AMD Zen 3 measured earlier
    /// (docs/PERFORMANCE.md) retired `sha256rnds2` one per cycle and `sha1rnds4` one per 2, and
    /// Zen has 4 vector ALU pipes, so there every bound here is looser.
    ///
    /// * SHA-1, SHA-NI: the counter's last digit is in word 13, so the 12 rounds over words 0-11
    ///   are done once per 64 counters: 68 rounds = 17 `sha1rnds4` x 3 cycles = 51 cycles
    ///   (the 17 `sha1nexte` and 16 `sha1msg1`/`sha1msg2` go to other ports).
    /// * SHA-256, SHA-NI: likewise 52 of 64 rounds = 26 `sha256rnds2` x 3 = 78 cycles.
    /// * SHA-256, AVX2 (8 lanes, no precomputation): a round is 36 vector ops (Σ0 and Σ1: three
    ///   rotates of 3 ops and two xors each; ch 3, maj 4, 7 adds); a schedule word is 21 (σ0 and
    ///   σ1: two rotates, a shift, two xors; 3 adds): 64 x 36 + 48 x 21 + 8 = 3320 ops / 8
    ///   lanes = 415 per candidate / 3 per cycle = 138 cycles.
    /// * BLAKE3, AVX2 (8 lanes; 2 batches interleaved): a G half is 9 ops (3 adds, 2 xors, a
    ///   `vpshufb` for the rotation by 16 or 8, shift + shift + or for 12 or 7). Round 0 is done
    ///   once per 64 counters but for its last half G; round 1 starts with 9 ops fewer (steps
    ///   that read no lane-dependent value, also done once); rounds 2-5 are 4 x 144 ops; round 6
    ///   only what output word 0 needs (98 ops). With the compare and mask: 823 ops / 8 lanes =
    ///   103 per candidate / 3 per cycle = 34.3 cycles (274 of the 823 are shifts and shuffles:
    ///   not the limit at 2 per cycle each).
    /// * BLAKE3, AVX-512 (16 lanes, one batch): the same precomputation as AVX2, but a G half is
    ///   7 ops (3 adds, 2 xors, 2 `vprord`). Round 0's last half G 6 ops (v3 + v4 precomputed),
    ///   round 1 48 (columns, the shared steps left out) + 56 (diagonals), rounds 2-5 4 x 112,
    ///   round 6 to output word 0 78; with the or of the lane digits and the `vptestnmd`: 639 ops
    ///   / 16 lanes = 39.9 per candidate. 512-bit integer ops issue on 2 ports (0 and 5; rotates
    ///   on port 0 only, 2 of 7): 20.0 cycles. The 2 per cycle is Intel's documented figure; a
    ///   scratch loop of independent `vpaddd`/`vprord` zmm (gcc inline asm in /tmp) gave lower,
    ///   inconsistent figures on this virtual machine, while the kernel itself retires 1.55
    ///   of them per cycle at the bench's measured clock, so the bound stays at 2.
    /// * BLAKE3, portable: the full scalar compression, 7 rounds x 8 G x 14 ops (per half: 3
    ///   adds, 2 xors, 2 rotates) = 784 / 5 per cycle = 157 cycles (224 rotates / 2 = 112).
    /// * SHA-1 and SHA-256, portable: the `sha1`/`sha2` crates, which use SHA-NI where the CPU
    ///   has it, on the whole final block: 20 `sha1rnds4` (60 cycles), 32 `sha256rnds2` (96
    ///   cycles); without SHA-NI, scalar: SHA-1 about 976 ops (80 rounds of 9, 64 schedule words
    ///   of 4) / 5 = 195 cycles, SHA-256 2160 ops (64 rounds of 24, 48 schedule words of 13) / 5
    ///   = 432 cycles.
    ///
    /// One thread keeps one core busy; a bound for T threads is T times this (where the threads
    /// run on separate cores).
    ///
    /// `None` for a memory-hard algorithm: an Argon2id attempt is bound by memory traffic and
    /// its cost is set by its parameters, not by an instruction count of ours.
    pub fn bound_per_ghz(self, alg: Algorithm) -> Option<f64> {
        if alg.is_memory_hard() {
            return None;
        }
        if !matches!(
            (self, alg),
            (Backend::Portable, _)
                | (Backend::ShaNi, Algorithm::Sha1 | Algorithm::Sha256)
                | (Backend::Avx2, Algorithm::Sha256 | Algorithm::Blake3)
                | (Backend::Avx512, Algorithm::Blake3)
        ) {
            return None;
        }
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        let sha_ni = x86_sha::detected();
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        let sha_ni = false;
        let cycles = match (self, alg) {
            (Backend::ShaNi, Algorithm::Sha1) => 17.0 * 3.0,
            (Backend::ShaNi, _) => 26.0 * 3.0,
            (Backend::Avx2, Algorithm::Sha256) => 3320.0 / 8.0 / 3.0,
            (Backend::Avx2, _) => 823.0 / 8.0 / 3.0,
            (Backend::Avx512, _) => AVX512_OPS / 16.0 / 2.0,
            (_, Algorithm::Blake3) => 784.0 / 5.0,
            (_, Algorithm::Sha1) if sha_ni => 20.0 * 3.0,
            (_, Algorithm::Sha1) => 976.0 / 5.0,
            (_, _) if sha_ni => 32.0 * 3.0,
            (_, _) => 2160.0 / 5.0,
        };
        Some(1000.0 / cycles)
    }

    /// Scans counters `start..start + count` (clamped to the counter space) of `job` and appends
    /// every counter whose hash has at least `job.bits` leading zero bits to `hits`, in order.
    /// For Equi-X the range is of nonces, and a hit names a nonce and one of its solutions
    /// (see [`Job::counter`]). A backend the CPU lacks for this algorithm falls back to the
    /// portable kernel.
    pub(crate) fn search(self, job: &Job, start: u64, count: u64, hits: &mut Vec<u64>) {
        let end = start.saturating_add(count).min(COUNTER_SPACE);
        // Callers ask `require` first; a kernel is never run on a CPU without its instructions.
        if !self.supports(job.alg) {
            debug_assert!(false, "{self} run without support for {}", job.alg);
            return portable::search(job, start, end, hits);
        }
        match self {
            Backend::Portable => portable::search(job, start, end, hits),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Backend::ShaNi => x86_sha::search(job, start, end, hits),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Backend::Avx2 => x86_avx2::search(job, start, end, hits),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Backend::Avx512 => x86_avx512::search(job, start, end, hits),
            #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
            Backend::ShaNi | Backend::Avx2 | Backend::Avx512 => {
                portable::search(job, start, end, hits)
            }
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
    /// Does nothing but return [`MintError::BackendUnavailable`](crate::MintError) when this
    /// CPU lacks the backend.
    pub fn run(
        &self,
        backend: Backend,
        start: u64,
        count: u64,
        hits: &mut Vec<u64>,
    ) -> Result<(), crate::MintError> {
        backend.require(self.job.alg)?;
        backend.search(&self.job, start, count, hits);
        Ok(())
    }
}

/// One search: hash `prefix || counter` for fixed-width counters and look for leading zeros.
/// Built once per stamp; holds what every kernel precomputes.
pub(crate) struct Job {
    pub(crate) alg: Algorithm,
    pub(crate) bits: u32,
    pub(crate) width: usize,
    pub(crate) prefix: Vec<u8>,
    /// SHA-1 and SHA-256: midstate and padded final block(s).
    pub(crate) md: Option<MdTail>,
    /// BLAKE3, when the message is one chunk and the whole counter sits in its last block.
    pub(crate) b3: Option<B3Tail>,
    /// BLAKE3 otherwise: a hasher that has absorbed the prefix.
    pub(crate) b3_hasher: Option<Box<blake3::Hasher>>,
    /// Equi-X: the solutions behind the hits so far, so that neither the re-check of a hit nor
    /// the stamp has to solve its nonce again.
    #[cfg(feature = "equix")]
    pub(crate) equix: Option<crate::equix::Found>,
}

/// SHA-1/SHA-256 precomputation: the state after the prefix's full blocks, and the final one or
/// two blocks, padded, with the counter's place at `counter_at`.
pub(crate) struct MdTail {
    pub(crate) state: [u32; 8],
    pub(crate) tail: Vec<u8>,
    pub(crate) counter_at: usize,
}

/// BLAKE3 precomputation: the chaining value before the last block of a one-chunk message, the
/// last block (zero-padded) with the counter at `counter_at`, its length and flags.
pub(crate) struct B3Tail {
    pub(crate) cv: [u32; 8],
    pub(crate) block: [u8; 64],
    pub(crate) block_len: u32,
    pub(crate) flags: u32,
    pub(crate) counter_at: usize,
}

impl Job {
    /// Precomputes a search for `prefix` followed by a `width`-digit counter.
    pub(crate) fn new(alg: Algorithm, prefix: &[u8], width: usize, bits: u32) -> Job {
        let mut job = Job {
            alg,
            bits,
            width,
            prefix: prefix.to_vec(),
            md: None,
            b3: None,
            b3_hasher: None,
            #[cfg(feature = "equix")]
            equix: None,
        };
        match alg {
            Algorithm::Sha1 | Algorithm::Sha256 => {
                job.md = Some(portable::md_tail(alg, prefix, width))
            }
            Algorithm::Blake3 => {
                job.b3 = portable::b3_tail(prefix, width);
                if job.b3.is_none() {
                    let mut h = blake3::Hasher::new();
                    h.update(prefix);
                    job.b3_hasher = Some(Box::new(h));
                }
            }
            Algorithm::Argon2id(_) => {}
            #[cfg(feature = "equix")]
            Algorithm::Equix => job.equix = Some(crate::equix::Found::default()),
            #[cfg(not(feature = "equix"))]
            Algorithm::Equix => {}
        }
        job
    }

    /// The exact bytes a counter stands for: `prefix || digits(n)`; for Equi-X, the challenge
    /// and the solution the hit `n` names, the input of the part's digest.
    pub(crate) fn message(&self, n: u64) -> Vec<u8> {
        #[cfg(feature = "equix")]
        if let Some(found) = &self.equix {
            return found.message(&self.prefix, n);
        }
        let mut m = self.prefix.clone();
        m.resize(self.prefix.len() + self.width, 0);
        encode_counter(n, &mut m[self.prefix.len()..]);
        m
    }

    /// The stamp's text for the hit `n`: `width` base64 digits of `n`; for Equi-X, where `n`
    /// is `nonce * 8 + index` of one of the nonce's solutions, the base64 of the nonce and that
    /// solution (`None` if the nonce has no such solution, which a hit never names).
    pub(crate) fn counter(&self, n: u64) -> Option<String> {
        #[cfg(feature = "equix")]
        if let Some(found) = &self.equix {
            let (nonce, solution) = found.part(&self.prefix, n)?;
            return Some(crate::equix::encode_counter(nonce, &solution));
        }
        let mut c = vec![0u8; self.width];
        encode_counter(n, &mut c);
        Some(String::from_utf8_lossy(&c).into_owned())
    }
}

/// Whether a kernel's candidate, judged on its first 32 bits only, can meet `bits`.
#[inline(always)]
pub(crate) fn first_word_ok(w: u32, bits: u32) -> bool {
    bits == 0 || w >> (32 - bits.min(32)) == 0
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

    /// The backend tests run every backend this CPU has; on CI (`.ci/run` names the ones the
    /// CPU flags in /proc/cpuinfo promise in `PENNYBLACK_EXPECT_BACKENDS`) a backend the machine
    /// has but detection missed fails here instead of being skipped silently.
    #[test]
    fn expected_backends_are_detected() {
        let Ok(expected) = std::env::var("PENNYBLACK_EXPECT_BACKENDS") else {
            return;
        };
        for name in expected.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let b = Backend::ALL
                .into_iter()
                .find(|b| b.name() == name)
                .unwrap_or_else(|| panic!("PENNYBLACK_EXPECT_BACKENDS names {name:?}"));
            let algs: Vec<Algorithm> = Algorithm::ALL
                .into_iter()
                .filter(|&a| b.supports(a))
                .collect();
            assert!(
                !algs.is_empty(),
                "this CPU has {name}, but no algorithm can use it: detection failed"
            );
        }
    }

    /// Every backend against the portable kernel (itself tested against the plain crates), lane
    /// by lane: prefixes of every length across block boundaries, ranges that start and end off
    /// the lane grid, counters where a digit carries, and several targets. Backends this CPU
    /// lacks are skipped with a note.
    #[test]
    fn every_backend_matches_portable() {
        let starts = [
            0u64,
            1,
            3,
            7,
            8,
            9,
            60,
            63,
            64,
            65,
            4095,
            4096,
            262_143,
            (1 << 30) - 5,
            // The end of the counter space: ranges cut short there, and the last groups of 8
            // and 16 (the BLAKE3 kernel takes two groups of 8 at once).
            COUNTER_SPACE - 70,
            COUNTER_SPACE - 64,
            COUNTER_SPACE - 40,
            COUNTER_SPACE - 16,
            COUNTER_SPACE - 9,
        ];
        for alg in Algorithm::ALL {
            for backend in Backend::ALL {
                if !backend.supports(alg) {
                    eprintln!("note: skipping {backend} for {alg}: not available on this CPU");
                    continue;
                }
                let lens = (0..=140usize).chain([1000, 1015, 1016, 1017, 1030]);
                for len in lens {
                    let prefix: Vec<u8> = (0..len).map(|i| b'!' + (i % 90) as u8).collect();
                    for bits in [0, 3, 6] {
                        let job = Job::new(alg, &prefix, COUNTER_WIDTH, bits);
                        for &start in &starts {
                            let (mut want, mut got) = (Vec::new(), Vec::new());
                            let end = (start + 70).min(COUNTER_SPACE);
                            portable::search(&job, start, end, &mut want);
                            backend.search(&job, start, 70, &mut got);
                            assert_eq!(
                                got, want,
                                "{backend} {alg} len {len} bits {bits} start {start}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn counter_padding_puts_the_counter_where_the_kernels_want_it() {
        for alg in Algorithm::ALL {
            let end = if alg == Algorithm::Blake3 { 0 } else { 55 };
            for len in 0..200 {
                let pad = counter_padding(alg, len);
                assert!(pad < 64, "{alg} {len}");
                assert_eq!((len + pad + COUNTER_WIDTH) % 64, end, "{alg} {len}");
            }
        }
    }

    #[test]
    fn every_kernel_has_a_bound() {
        for alg in Algorithm::ALL {
            for backend in Backend::ALL {
                let kernel = matches!(
                    (backend, alg),
                    (Backend::Portable, _)
                        | (Backend::ShaNi, Algorithm::Sha1 | Algorithm::Sha256)
                        | (Backend::Avx2, Algorithm::Sha256 | Algorithm::Blake3)
                        | (Backend::Avx512, Algorithm::Blake3)
                );
                let bound = backend.bound_per_ghz(alg);
                assert_eq!(bound.is_some(), kernel, "{backend} {alg}");
                // Between 1 and 100 M candidates per second per GHz: 10 to 1000 cycles each.
                assert!(
                    bound.is_none_or(|b| (1.0..100.0).contains(&b)),
                    "{backend} {alg}"
                );
            }
        }
        // A memory-hard attempt has no instruction bound: `bench` leaves "of bound" empty.
        for backend in Backend::ALL {
            assert_eq!(
                backend.bound_per_ghz(Algorithm::ARGON2ID),
                None,
                "{backend}"
            );
        }
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
