//! The work a stamp carries, measured with the plain `sha1`, `sha2`, `blake3` and `argon2`
//! crates, and `equix` (never a SIMD backend: this is the reference the minter is tested
//! against).
//!
//! This check is constant-time for the hashes and Argon2id: every part is hashed, every byte of
//! every digest is examined, and the comparison against the target is a mask-and-accumulate
//! with no branch on digest data, so the time depends only on the stamp's length and number of
//! parts (see the test `reads_every_byte_whatever_the_digest`). Equi-X keeps the same structure
//! (every part checked and hashed, whatever the others gave), but its check is not claimed to
//! be constant-time (the `equix` crate makes no such claim).

use sha1::Digest as _;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::stamp::{Algorithm, Stamp, Version};

/// What the cost model ([`estimated_cost`]) takes for one part of a hash stamp: 2 us.
pub const HASH_PART_COST: std::time::Duration = std::time::Duration::from_micros(2);
/// What the cost model takes for one Argon2id part whatever its memory: 20 us.
pub const ARGON2ID_PART_COST: std::time::Duration = std::time::Duration::from_micros(20);
/// What the cost model takes per KiB of an Argon2id part's memory per pass: 1 us.
pub const ARGON2ID_KIB_PASS_COST: std::time::Duration = std::time::Duration::from_micros(1);
/// What the cost model takes per lane of an Argon2id part: 40 us.
pub const ARGON2ID_LANE_COST: std::time::Duration = std::time::Duration::from_micros(40);
/// What the cost model adds per KiB of an Argon2id part's memory when the verifying thread
/// takes a fresh buffer for it (above [`crate::argon2id::KEEP_BYTES`]): 1 us.
pub const ARGON2ID_FRESH_KIB_COST: std::time::Duration = std::time::Duration::from_micros(1);
/// What the cost model takes for one Equi-X part: 100 us.
pub const EQUIX_PART_COST: std::time::Duration = std::time::Duration::from_micros(200);

/// The cost model the verifier budgets with (see [`crate::Policy::max_work`]): an upper
/// estimate, made before any work, of the CPU time one stamp takes to check on one core of the
/// reference machine (docs/PERFORMANCE.md, "Verification cost"; `cargo bench --bench
/// verify_cost` and `pennyblack bench` measure it beside this model).
///
/// * A hash part: [`HASH_PART_COST`], 2 us. Measured: a whole one-part stamp (parse, policy,
///   hash) 0.2 to 0.3 us, a 16-part SHA-256 or BLAKE3 stamp 1.4 to 1.8 us.
/// * An Argon2id part of m KiB, t passes and p lanes: [`ARGON2ID_PART_COST`] +
///   [`ARGON2ID_LANE_COST`] x p + [`ARGON2ID_KIB_PASS_COST`] x m x t, plus
///   [`ARGON2ID_FRESH_KIB_COST`] x m when m is above 16 MiB, where the verifier maps a fresh
///   buffer for each part: 20 us + 40 us x p + 1 us x m x t (+ 1 us x m). Measured on one
///   thread: 12 to 14 us at 8 KiB, 28 to 31 us at 64 KiB, 0.30 to 0.33 ms at 1 MiB (t = 3:
///   0.9 ms; 4 lanes: 0.33 ms), 2.8 ms at 8 MiB, 5.2 to 6.6 ms at 16 MiB; with the fresh buffer
///   21 to 26 ms at 32 MiB and 48 to 69 ms at 64 MiB on a quiet machine, up to 124 ms with the
///   test suite running beside it. Each lane costs about 10 us of its own (its first blocks
///   and final hashes): without the lane term, 255 lanes of 8 KiB cost 1.6 times their
///   estimate.
/// * An Equi-X part: [`EQUIX_PART_COST`], 200 us. Measured: about 52 us with equix's
///   interpreter (about 40 us build the challenge's HashX program, 11 us check the solution;
///   the BLAKE3 digest is under 1 us), 50 to 60 us per part for whole stamps on a quiet
///   machine, 112 to 128 us with builds running beside it (it was 100 us until that).
pub fn estimated_cost(alg: Algorithm, parts: u32) -> std::time::Duration {
    // Saturating throughout: `Argon2Params`' fields are public, so a hand-built algorithm may
    // name anything (a parsed one stays far below the limit).
    let per_part = match alg {
        Algorithm::Argon2id(p) => {
            let kib = u64::from(p.memory_kib);
            let fresh = if p.memory_bytes() > crate::argon2id::KEEP_BYTES as u64 {
                ns(ARGON2ID_FRESH_KIB_COST).saturating_mul(kib)
            } else {
                0
            };
            ns(ARGON2ID_PART_COST)
                .saturating_add(ns(ARGON2ID_LANE_COST).saturating_mul(p.lanes.into()))
                .saturating_add(
                    ns(ARGON2ID_KIB_PASS_COST).saturating_mul(kib.saturating_mul(p.passes.into())),
                )
                .saturating_add(fresh)
        }
        Algorithm::Equix => ns(EQUIX_PART_COST),
        _ => ns(HASH_PART_COST),
    };
    std::time::Duration::from_nanos(per_part.saturating_mul(u64::from(parts.max(1))))
}

fn ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A digest of up to 256 bits and its length in bytes.
pub(crate) struct Digest {
    bytes: [u8; 32],
    len: usize,
}

impl Digest {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Hashes `parts` (concatenated) with `alg` through the plain crates.
pub(crate) fn digest(alg: Algorithm, parts: &[&[u8]]) -> Digest {
    let mut bytes = [0u8; 32];
    let len = match alg {
        Algorithm::Sha1 => {
            let mut h = sha1::Sha1::new();
            parts.iter().for_each(|p| h.update(p));
            bytes[..20].copy_from_slice(&h.finalize());
            20
        }
        Algorithm::Sha256 => {
            let mut h = sha2::Sha256::new();
            parts.iter().for_each(|p| h.update(p));
            bytes.copy_from_slice(&h.finalize());
            32
        }
        // An Equi-X part's digest is BLAKE3 over its challenge and solution.
        Algorithm::Blake3 | Algorithm::Equix => {
            let mut h = blake3::Hasher::new();
            parts.iter().for_each(|p| {
                h.update(p);
            });
            bytes.copy_from_slice(h.finalize().as_bytes());
            32
        }
        Algorithm::Argon2id(params) => {
            // Only the minter's re-check of a hit comes here (the verifier evaluates parts
            // through `argon2id::part`): keep the thread's buffer for its next attempt.
            bytes = crate::argon2id::hash_minting(params, &parts.concat());
            32
        }
    };
    Digest { bytes, len }
}

/// Whether `alg(msg)` starts with `bits` zero bits (the minter's re-check of a backend's hit).
/// For Equi-X, `msg` is a part's challenge and solution, and the solution must solve it too.
pub(crate) fn meets(alg: Algorithm, msg: &[u8], bits: u32) -> bool {
    if alg == Algorithm::Equix {
        #[cfg(feature = "equix")]
        return crate::equix::meets(msg, bits);
        #[cfg(not(feature = "equix"))]
        return false;
    }
    let d = digest(alg, &[msg]);
    let b = d.as_bytes();
    bool::from(ct_zero_prefix(b.len(), bits, |i| b[i]))
}

/// Whether the first `bits` bits of the digest are zero, reading each byte through `byte`, every
/// byte exactly once, with no branch on their values. This check is constant-time.
fn ct_zero_prefix(len: usize, bits: u32, byte: impl Fn(usize) -> u8) -> Choice {
    let mut acc = 0u8;
    for i in 0..len {
        // The mask depends only on the (public) target, never on the digest.
        let start = (i * 8) as u32;
        let mask = if bits >= start + 8 {
            0xff
        } else if bits > start {
            !(0xffu8 >> (bits - start))
        } else {
            0
        };
        acc |= byte(i) & mask;
    }
    // A claim longer than the digest can never be met.
    let possible = Choice::from(u8::from(bits as usize <= len * 8));
    acc.ct_eq(&0) & possible
}

/// Counts the leading zero bits of a digest (version 0's value) without branching on its bytes.
fn ct_leading_zeros(len: usize, byte: impl Fn(usize) -> u8) -> u32 {
    let mut count = 0u32;
    let mut still_zero = 1u32; // 1 while every byte so far was zero
    for i in 0..len {
        let b = byte(i);
        count += still_zero * (b.leading_zeros());
        let is_zero = u32::from(b.ct_eq(&0).unwrap_u8());
        still_zero &= is_zero;
    }
    count
}

/// The value of a stamp in bits of work, measured on its exact text: version 0 counts the zero bits; version 1 is worth its claim if the hash meets
/// it and 0 otherwise; version 2 is worth `bits + log2(parts)` if every part meets its claim.
pub(crate) fn value(stamp: &Stamp) -> f64 {
    let text = stamp.as_str().as_bytes();
    match stamp.version() {
        Version::V0 => {
            let d = digest(Algorithm::Sha1, &[text]);
            let b = d.as_bytes();
            f64::from(ct_leading_zeros(b.len(), |i| b[i]))
        }
        Version::V1 => {
            let d = digest(Algorithm::Sha1, &[text]);
            let b = d.as_bytes();
            let ok = ct_zero_prefix(b.len(), stamp.bits(), |i| b[i]);
            f64::from(u32::conditional_select(&0, &stamp.bits(), ok))
        }
        Version::V2 => {
            // The parts share the prefix: its whole blocks are hashed once and each part
            // finishes from that state (the same work for every part, whatever its digest).
            let prefix = stamp.prefix().as_bytes();
            let mut all = Choice::from(1);
            // Equi-X: whether every part's solution solves its challenge.
            let mut solved = Choice::from(1);
            let mut check = |d: Digest| {
                let b = d.as_bytes();
                all &= ct_zero_prefix(b.len(), stamp.bits(), |i| b[i]);
            };
            match stamp.algorithm() {
                Algorithm::Sha256 => {
                    let mut h = sha2::Sha256::new();
                    h.update(prefix);
                    for counter in stamp.counters() {
                        let mut bytes = [0u8; 32];
                        bytes.copy_from_slice(&h.clone().chain_update(counter).finalize());
                        check(Digest { bytes, len: 32 });
                    }
                }
                Algorithm::Blake3 => {
                    let mut h = blake3::Hasher::new();
                    h.update(prefix);
                    for counter in stamp.counters() {
                        let mut p = h.clone();
                        p.update(counter.as_bytes());
                        check(Digest {
                            bytes: *p.finalize().as_bytes(),
                            len: 32,
                        });
                    }
                }
                Algorithm::Sha1 => {
                    for counter in stamp.counters() {
                        check(digest(Algorithm::Sha1, &[prefix, counter.as_bytes()]));
                    }
                }
                Algorithm::Argon2id(params) => {
                    // One evaluation per part, the parts on every core (each thread holds one
                    // block buffer of the stamp's memory size).
                    use rayon::prelude::*;
                    let counters: Vec<&str> = stamp.counters().collect();
                    let digests: Vec<[u8; 32]> = counters
                        .par_iter()
                        .map(|c| crate::argon2id::part(params, prefix, c.as_bytes()))
                        .collect();
                    for bytes in digests {
                        check(Digest { bytes, len: 32 });
                    }
                }
                #[cfg(feature = "equix")]
                Algorithm::Equix => {
                    // One Equi-X check (interpreter) and one BLAKE3 digest per part, the parts
                    // on every core, each evaluated whatever the others gave.
                    use rayon::prelude::*;
                    let counters: Vec<&str> = stamp.counters().collect();
                    let outcomes: Vec<(bool, [u8; 32])> = counters
                        .par_iter()
                        .map(|c| crate::equix::verify_part(prefix, c))
                        .collect();
                    for (ok, bytes) in outcomes {
                        solved &= Choice::from(u8::from(ok));
                        check(Digest { bytes, len: 32 });
                    }
                }
                // The verifier refuses these before any work (`Policy::admits`): no work found.
                #[cfg(not(feature = "equix"))]
                Algorithm::Equix => solved = Choice::from(0),
            }
            let all = all & solved;
            // Parts of 0 bits are met by any counter: nobody had to evaluate anything, so such a
            // stamp is worth nothing however many parts it has (not log2 K). An Equi-X part is a
            // real solution even at 0 bits (a solve each), so it keeps log2 K.
            let worth = if stamp.bits() == 0 && stamp.algorithm() != Algorithm::Equix {
                0.0
            } else {
                f64::from(stamp.bits()) + (stamp.parts() as f64).log2()
            };
            // Selected without a branch on the outcome.
            f64::from_bits(u64::conditional_select(&0, &worth.to_bits(), all))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// The model's figures (no timing here: the measurements are in the benches).
    #[test]
    fn cost_model_figures() {
        use std::time::Duration;
        let argon = |m, t, p| Algorithm::Argon2id(crate::Argon2Params::new(m, t, p).unwrap());
        let us = |alg, parts| estimated_cost(alg, parts).as_nanos() as f64 / 1e3;
        assert_eq!(us(Algorithm::Sha1, 1), 2.0);
        assert_eq!(us(Algorithm::Sha256, 16), 32.0);
        assert_eq!(us(Algorithm::Blake3, 0), 2.0);
        assert_eq!(us(Algorithm::Equix, 4), 800.0);
        // 20 us a part, 40 us a lane, 1 us a KiB a pass.
        assert_eq!(us(argon(8, 1, 1), 1), 20.0 + 40.0 + 8.0);
        assert_eq!(us(Algorithm::ARGON2ID, 4), 4.0 * (20.0 + 40.0 + 1024.0));
        assert_eq!(us(argon(1024, 3, 4), 1), 20.0 + 160.0 + 3072.0);
        assert_eq!(us(argon(2040, 1, 255), 1), 20.0 + 10200.0 + 2040.0);
        // 16 MiB keeps its buffer; 32 MiB and 64 MiB take a fresh one, 1 us a KiB more.
        assert_eq!(us(argon(16 << 10, 1, 1), 1), 60.0 + 16384.0);
        assert_eq!(us(argon(64 << 10, 1, 1), 1), 60.0 + 65536.0 + 65536.0);
        assert_eq!(us(argon(64 << 10, 2, 1), 1), 60.0 + 131072.0 + 65536.0);
        // Four parts at the default largest memory fit the default budget; one 64 MiB part does
        // not; nothing at the format's limits overflows.
        let most = argon(crate::verify::DEFAULT_MAX_MEMORY_KIB, 1, 1);
        assert!(estimated_cost(most, 4) <= crate::verify::DEFAULT_MAX_WORK);
        assert!(estimated_cost(argon(64 << 10, 1, 1), 1) > crate::verify::DEFAULT_MAX_WORK);
        let huge = argon(crate::Argon2Params::MAX_MEMORY_KIB, 999, 1);
        assert!(estimated_cost(huge, 64) > Duration::from_secs(100_000));
    }

    #[test]
    fn zero_prefix_is_exact_at_every_bit() {
        for bits in 0..=160u32 {
            let mut d = [0xffu8; 20];
            // exactly `bits` zero bits, then a one
            for i in 0..bits as usize {
                d[i / 8] &= !(0x80 >> (i % 8));
            }
            let ok = |n: u32| bool::from(ct_zero_prefix(20, n, |i| d[i]));
            assert!(ok(bits), "{bits}");
            if bits < 160 {
                assert!(!ok(bits + 1), "{bits}+1");
            }
            assert_eq!(ct_leading_zeros(20, |i| d[i]), bits);
        }
        assert!(!bool::from(ct_zero_prefix(20, 161, |_| 0)));
    }

    /// The structural half of the constant-time claim: whatever the digest (all zero, differing
    /// in the first byte, differing in the last), every byte is read exactly once, so there is
    /// no early exit for a timing difference to come from.
    #[test]
    fn reads_every_byte_whatever_the_digest() {
        let cases: [[u8; 32]; 3] = [[0; 32], [0xff; 32], {
            let mut d = [0u8; 32];
            d[31] = 1;
            d
        }];
        for d in cases {
            for bits in [0, 1, 8, 20, 255, 256] {
                let reads: Vec<Cell<u32>> = (0..32).map(|_| Cell::new(0)).collect();
                let _ = ct_zero_prefix(32, bits, |i| {
                    reads[i].set(reads[i].get() + 1);
                    d[i]
                });
                assert!(reads.iter().all(|c| c.get() == 1), "bits {bits}");
                let reads: Vec<Cell<u32>> = (0..32).map(|_| Cell::new(0)).collect();
                let _ = ct_leading_zeros(32, |i| {
                    reads[i].set(reads[i].get() + 1);
                    d[i]
                });
                assert!(reads.iter().all(|c| c.get() == 1));
            }
        }
    }
}
