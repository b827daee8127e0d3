//! Equi-X parts (docs/EQUIX.md): the construction Tor's onion-service proof of work (v1) uses,
//! adapted to stamps. Equi-X (the `equix` crate) is an asymmetric puzzle: a solve fills about
//! 1.8 MiB and takes milliseconds, checking a solution takes tens of microseconds.
//!
//! A part's counter is 32 characters of standard base64 (no padding) of 24 bytes: an 8-byte
//! big-endian nonce, then a 16-byte Equi-X solution. With
//! `challenge = "pennyblack equix v2\0" || prefix || nonce`, the part is valid when the solution
//! solves `challenge` and BLAKE3(challenge || solution) starts with the stamp's bits of zeros.
//! Equi-X itself has a fixed cost per challenge; the zero bits on top make the cost adjustable,
//! as Tor's effort does.
//!
//! The counter's layout, the challenge and the part's digest are here in every build, so a
//! build without the `equix` feature parses these stamps (and refuses them as unsupported);
//! solving and checking need the feature. Minting threads keep one solver memory each.

use base64::Engine as _;

/// What every challenge starts with: a name for this construction, so a solution found for
/// another use of Equi-X (Tor's `"Tor hs intro v1\0"`, a later version of ours) is no part here.
pub const DOMAIN: &[u8] = b"pennyblack equix v2\0";

/// Bytes of the nonce at the start of a counter.
pub const NONCE_BYTES: usize = 8;

/// Bytes of an Equi-X solution (eight 16-bit items, little-endian, in the solver's canonical
/// order).
pub const SOLUTION_BYTES: usize = 16;

/// Characters of a counter: standard base64 of nonce and solution, 24 bytes, no padding.
pub const COUNTER_CHARS: usize = 32;

/// Bytes one solver holds (`equix::SolverMemory::SIZE`, checked by a test): what each minting
/// thread keeps for its solves.
pub const SOLVER_MEMORY_BYTES: u64 = 1_895_424;

/// How many of 1000 challenges had 0, 1, ... 8 solutions (measured with equix 0.8.0 on
/// 108-byte challenges; 1.979 solutions on average). The expected cost of a part follows.
const SOLUTIONS_HISTOGRAM: [u32; 9] = [137, 267, 295, 160, 82, 42, 15, 2, 0];

/// Strict standard base64: no padding, and a 32-character text has no spare bits, so every
/// counter has one spelling only.
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// A counter's nonce and solution.
pub type Part = (u64, [u8; SOLUTION_BYTES]);

/// The nonce and solution a counter holds; `None` unless it is exactly [`COUNTER_CHARS`]
/// characters of standard base64.
pub fn decode_counter(counter: &str) -> Option<Part> {
    if counter.len() != COUNTER_CHARS {
        return None;
    }
    let mut bytes = [0u8; NONCE_BYTES + SOLUTION_BYTES];
    match B64.decode_slice(counter, &mut bytes) {
        Ok(n) if n == bytes.len() => {}
        _ => return None,
    }
    let (nonce, solution) = bytes.split_at(NONCE_BYTES);
    Some((
        u64::from_be_bytes(nonce.try_into().ok()?),
        solution.try_into().ok()?,
    ))
}

/// The counter of a nonce and its solution.
pub fn encode_counter(nonce: u64, solution: &[u8; SOLUTION_BYTES]) -> String {
    let mut bytes = [0u8; NONCE_BYTES + SOLUTION_BYTES];
    bytes[..NONCE_BYTES].copy_from_slice(&nonce.to_be_bytes());
    bytes[NONCE_BYTES..].copy_from_slice(solution);
    B64.encode(bytes)
}

/// The Equi-X challenge of a part: [`DOMAIN`] || the stamp's prefix (up to and including the
/// colon before the counters) || the nonce, 8 bytes big-endian.
pub fn challenge(prefix: &[u8], nonce: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(DOMAIN.len() + prefix.len() + NONCE_BYTES);
    c.extend_from_slice(DOMAIN);
    c.extend_from_slice(prefix);
    c.extend_from_slice(&nonce.to_be_bytes());
    c
}

/// The digest whose leading zero bits a part must show: BLAKE3(challenge || solution).
pub fn part_digest(challenge: &[u8], solution: &[u8; SOLUTION_BYTES]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(challenge);
    h.update(solution);
    *h.finalize().as_bytes()
}

/// The expected number of nonces (solves) to find one part of `bits`: a nonce has 0 to 8
/// solutions (about 2), each passes with probability 2^-bits, and a nonce gives one part at
/// most. About 1.16 solves at 0 bits, 2^bits / 1.98 for large bits.
pub fn expected_nonces(bits: u32) -> f64 {
    // ln(1 - 2^-bits), and 1 - (1 - p)^k as -expm1(k ln(1 - p)): exact for large bits too.
    let ln_miss = (-2f64.powi(-(bits.min(1000) as i32))).ln_1p();
    let total: u32 = SOLUTIONS_HISTOGRAM.iter().sum();
    let hit: f64 = SOLUTIONS_HISTOGRAM
        .iter()
        .enumerate()
        .skip(1) // no solution, no part (and 0 x ln 0 would be NaN)
        .map(|(k, &n)| f64::from(n) / f64::from(total) * -(k as f64 * ln_miss).exp_m1())
        .sum();
    1.0 / hit
}

#[cfg(feature = "equix")]
pub(crate) use solving::{Found, meets, search, verify_part};

#[cfg(feature = "equix")]
mod solving {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use equix::{EquiXBuilder, RuntimeOption, SolverMemory};

    use super::{Part, SOLUTION_BYTES, challenge, decode_counter, part_digest};
    use crate::backend::bytes_have_zero_bits;

    thread_local! {
        /// This thread's solver memory, made on its first solve and kept: a minting thread
        /// holds one, whatever the number of solves.
        static MEMORY: RefCell<Option<SolverMemory>> = const { RefCell::new(None) };
    }

    /// The solutions of `challenge`, in the solver's order, with the HashX compiler where the
    /// platform has one (about 9x faster than interpreting; falls back on its own). None for a
    /// challenge whose HashX program breaks Equi-X's constraints (rare: 0 in 50,000 of ours).
    pub(crate) fn solutions(challenge: &[u8]) -> Vec<[u8; SOLUTION_BYTES]> {
        let Ok(eq) = EquiXBuilder::new().build(challenge) else {
            return Vec::new();
        };
        MEMORY.with_borrow_mut(|mem| {
            let mem = mem.get_or_insert_with(SolverMemory::new);
            eq.solve_with_memory(mem)
                .iter()
                .map(|s| s.to_bytes())
                .collect()
        })
    }

    /// Whether `solution` solves `challenge`, with the HashX interpreter: as fast as the
    /// compiler for one check (building the program is most of the cost either way), and it
    /// needs no writable and executable memory, so a verifier runs under W^X policies
    /// (`MemoryDenyWriteExecute=yes`, SELinux execmem).
    pub(crate) fn verify(challenge: &[u8], solution: &[u8; SOLUTION_BYTES]) -> bool {
        EquiXBuilder::new()
            .runtime(RuntimeOption::InterpretOnly)
            .verify_bytes(challenge, solution)
            .is_ok()
    }

    /// The verifier's work for one part: whether its solution solves its challenge, and its
    /// digest. Both are computed whatever the other's outcome (a counter the parser let
    /// through always decodes; one that did not would be an unsolved part).
    pub(crate) fn verify_part(prefix: &[u8], counter: &str) -> (bool, [u8; 32]) {
        let Some((nonce, solution)) = decode_counter(counter) else {
            return (false, [0xff; 32]);
        };
        let c = challenge(prefix, nonce);
        let solved = verify(&c, &solution);
        (solved, part_digest(&c, &solution))
    }

    /// Whether `msg` (a challenge and a 16-byte solution after it, as [`Found::message`]
    /// gives) is a part of `bits`: the minter's re-check of a hit, on the verifier's path.
    pub(crate) fn meets(msg: &[u8], bits: u32) -> bool {
        let Some(at) = msg.len().checked_sub(SOLUTION_BYTES) else {
            return false;
        };
        let (c, s) = msg.split_at(at);
        let s: &[u8; SOLUTION_BYTES] = s.try_into().expect("16 bytes");
        verify(c, s) & bytes_have_zero_bits(&part_digest(c, s), bits)
    }

    /// Solves each nonce of `start..end` for `prefix` and reports, for each nonce that has one,
    /// its first solution whose digest has `bits` zero bits, as the hit `nonce * 8 + index`
    /// (its place among the nonce's solutions); the solution goes into `found`. One hit per
    /// nonce at most: a part costs a solve, not a pick among one solve's solutions.
    pub(crate) fn search(
        prefix: &[u8],
        start: u64,
        end: u64,
        bits: u32,
        found: &Found,
        hits: &mut Vec<u64>,
    ) {
        for nonce in start..end {
            let c = challenge(prefix, nonce);
            let sols = solutions(&c);
            if let Some(i) = sols
                .iter()
                .position(|s| bytes_have_zero_bits(&part_digest(&c, s), bits))
            {
                let n = nonce << 3 | i as u64;
                found.record(n, sols[i]);
                hits.push(n);
            }
        }
    }

    /// The solutions behind a mint's hits. A hit names its nonce and the solution's index; the
    /// solution is kept here when the search finds it, so the re-check and the stamp need not
    /// solve again (a name not kept, which the minter never asks for, is solved again: solving
    /// is deterministic).
    #[derive(Debug, Default)]
    pub(crate) struct Found(Mutex<HashMap<u64, [u8; SOLUTION_BYTES]>>);

    impl Found {
        fn record(&self, n: u64, solution: [u8; SOLUTION_BYTES]) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(n, solution);
        }

        /// The nonce and solution the hit `n` names (`None` if the nonce has no such solution).
        pub(crate) fn part(&self, prefix: &[u8], n: u64) -> Option<Part> {
            let nonce = n >> 3;
            let kept = self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&n)
                .copied();
            let solution = match kept {
                Some(s) => s,
                None => *solutions(&challenge(prefix, nonce)).get((n & 7) as usize)?,
            };
            Some((nonce, solution))
        }

        /// What the part `n` stands for: its challenge, then its solution (empty when `n`
        /// names no solution, which no check accepts).
        pub(crate) fn message(&self, prefix: &[u8], n: u64) -> Vec<u8> {
            match self.part(prefix, n) {
                Some((nonce, solution)) => {
                    let mut m = challenge(prefix, nonce);
                    m.extend_from_slice(&solution);
                    m
                }
                None => Vec::new(),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::equix::{SOLVER_MEMORY_BYTES, encode_counter};
        use equix::{Error, HashError};

        /// Known answers from C tor's `test_crypto_equix` (src/test/test_crypto_equix.c), as
        /// the `equix` crate ships them in tests/tor_equix_vectors.rs: a challenge and the full
        /// list of its solutions, in the solver's order, as eight 16-bit items. Here they go
        /// through our solver wrapper (compiler, this thread's reused memory) and our
        /// verifier wrapper (interpreter).
        const VECTORS: &[(&[u8], &[[u16; 8]])] = &[
            (
                b"zzz",
                &[[
                    0xae21, 0xd392, 0x3215, 0xdd9c, 0x2f08, 0x93df, 0x232c, 0xe5dc,
                ]],
            ),
            (b"qqq", &[]),
            (b"0123456789", &[]),
            (
                b"a",
                &[
                    [
                        0x4b38, 0x8c81, 0x9255, 0xad99, 0x5ce7, 0xeb3e, 0xc635, 0xee38,
                    ],
                    [
                        0x3f9e, 0x659b, 0x9ae6, 0xb891, 0x63ae, 0x777c, 0x06ca, 0xc593,
                    ],
                    [
                        0x2227, 0xa173, 0x365a, 0xb47d, 0x1bb2, 0xa077, 0x0d5e, 0xf25f,
                    ],
                ],
            ),
            (
                b"abc",
                &[
                    [
                        0x371f, 0x8865, 0x8189, 0xfbc3, 0x26df, 0xe4c0, 0xab39, 0xfe5a,
                    ],
                    [
                        0x2101, 0xb88f, 0xc525, 0xccb3, 0x5785, 0xa41e, 0x4fba, 0xed18,
                    ],
                ],
            ),
        ];

        /// The byte form a counter carries: each item little-endian.
        fn bytes(items: &[u16; 8]) -> [u8; 16] {
            let mut b = [0u8; 16];
            for (i, v) in items.iter().enumerate() {
                b[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
            }
            b
        }

        #[test]
        fn tor_vectors_through_our_solver_and_verifier() {
            // Twice: the second round reuses the memory the first one made.
            for _ in 0..2 {
                for (c, want) in VECTORS {
                    let want: Vec<[u8; 16]> = want.iter().map(bytes).collect();
                    assert_eq!(solutions(c), want, "{:?}", String::from_utf8_lossy(c));
                    for s in &want {
                        assert!(verify(c, s));
                        let mut m = c.to_vec();
                        m.extend_from_slice(s);
                        assert!(meets(&m, 0));
                    }
                }
            }
            // b"a", third solution, in the byte form: changed sums, order, challenge.
            let s = bytes(&VECTORS[3].1[2]);
            assert_eq!(
                s,
                [
                    0x27, 0x22, 0x73, 0xa1, 0x5a, 0x36, 0x7d, 0xb4, 0xb2, 0x1b, 0x77, 0xa0, 0x5e,
                    0x0d, 0x5f, 0xf2
                ]
            );
            let mut t = s;
            t[0] = 0x20;
            assert!(!verify(b"a", &t));
            let mut t = s;
            t.swap(0, 2);
            t.swap(1, 3);
            assert!(!verify(b"a", &t));
            assert!(!verify(b"b", &s));
        }

        /// Challenges whose HashX program Equi-X refuses (from the crate's tests): no
        /// solutions, and nothing verifies against them.
        #[test]
        fn refused_programs_have_no_solutions() {
            for c in [&b"tvfdrjb"[..], b"zuneuh", b"bsipdp", b"espceob"] {
                assert!(matches!(
                    equix::EquiX::new(c),
                    Err(Error::Hash(HashError::ProgramConstraints))
                ));
                assert!(solutions(c).is_empty());
                assert!(!verify(c, &bytes(&VECTORS[0].1[0])));
            }
        }

        #[test]
        fn solver_memory_is_what_we_report() {
            assert_eq!(SolverMemory::SIZE as u64, SOLVER_MEMORY_BYTES);
        }

        /// The search's hits are exactly, per nonce, the first solution whose digest has the
        /// bits, and each names its solution (kept, or solved again).
        #[test]
        fn search_hits_are_the_first_passing_solution_of_each_nonce() {
            let prefix = b"2:equix:2:4:261129:bob@example.org::AAAAAAAAAAAAAAAA:";
            let (found, mut hits) = (Found::default(), Vec::new());
            search(prefix, 10, 30, 2, &found, &mut hits);
            let mut want = Vec::new();
            for nonce in 10..30u64 {
                let c = challenge(prefix, nonce);
                if let Some(i) = solutions(&c)
                    .iter()
                    .position(|s| bytes_have_zero_bits(&part_digest(&c, s), 2))
                {
                    want.push(nonce << 3 | i as u64);
                }
            }
            assert!(!want.is_empty());
            assert_eq!(hits, want);
            let fresh = Found::default();
            for &n in &hits {
                let kept = found.part(prefix, n).unwrap();
                assert_eq!(fresh.part(prefix, n), Some(kept));
                assert!(meets(&found.message(prefix, n), 2));
                let (nonce, s) = kept;
                assert_eq!(
                    verify_part(prefix, &encode_counter(nonce, &s)),
                    (true, part_digest(&challenge(prefix, nonce), &s))
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_and_are_strict() {
        let s: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
        for nonce in [0, 1, 255, 1 << 40, u64::MAX] {
            let c = encode_counter(nonce, &s);
            assert_eq!(c.len(), COUNTER_CHARS);
            assert!(c.bytes().all(crate::stamp::is_alphabet));
            assert_eq!(decode_counter(&c), Some((nonce, s)));
        }
        let c = encode_counter(7, &s);
        for bad in [
            &c[..31],
            &format!("{c}A")[..],
            &format!("{}=", &c[..31]),
            &format!("{}-", &c[..31]),
            "",
        ] {
            assert_eq!(decode_counter(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn challenge_layout() {
        let c = challenge(b"2:equix:0:1:26:r::R:", 0x0102_0304_0506_0708);
        assert_eq!(
            c,
            b"pennyblack equix v2\x002:equix:0:1:26:r::R:\x01\x02\x03\x04\x05\x06\x07\x08"
        );
    }

    #[test]
    fn expected_nonces_per_part() {
        assert!((expected_nonces(0) - 1000.0 / 863.0).abs() < 1e-9);
        for bits in [8, 16, 30, 60, 200] {
            let r = expected_nonces(bits) / (2f64.powi(bits as i32) / 1.979);
            assert!((0.99..1.01).contains(&r), "{bits}: {r}");
        }
        assert!((1..40).all(|b| expected_nonces(b) > expected_nonces(b - 1)));
    }
}
