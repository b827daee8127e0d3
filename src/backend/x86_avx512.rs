//! AVX-512 kernel for BLAKE3: 16 candidates per vector, one per 32-bit lane. Lane i hashes
//! counter `n + i` for `n` a multiple of 16, so the lanes differ only in the counter's last
//! digit: every message word is a broadcast except the one word that holds that digit. The same
//! precomputation as the AVX2 kernel (`x86_avx2`): round 0 but for its last half G, and the
//! steps of round 1 that read no lane-dependent value, are done once per run of 64 counters
//! (`portable::b3_w15_head`), and round 6 only as far as output word 0. What AVX-512 adds:
//! every rotation is one `vprord` (AVX2 needs a shuffle, or two shifts and an or), and twice
//! the lanes per instruction. Hits are found with one `vptestnmd` into a mask register.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{COUNTER_DIGITS, Job, encode_counter, portable};
use crate::stamp::Algorithm;

const LANES: u64 = 16;

/// Whether this CPU has AVX-512 F, the only AVX-512 subset the kernel uses.
pub(crate) fn detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Scans counters `start..end` of a BLAKE3 job and appends the hits. Counters outside whole
/// groups of 16, and layouts the lanes cannot share (a message over one chunk), go to the
/// portable kernel.
pub(crate) fn search(job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    assert!(
        detected(),
        "the avx512 backend was called on a CPU without AVX-512 F"
    );
    if job.width == 0 || job.alg != Algorithm::Blake3 || job.b3.is_none() {
        return portable::search(job, start, end, hits);
    }
    let first = start.next_multiple_of(LANES).min(end);
    let last = first + (end - first) / LANES * LANES;
    portable::search(job, start, first, hits);
    let before = hits.len();
    if first < last {
        // SAFETY: `detected()` has just confirmed AVX-512 F.
        unsafe { blake3_scan(job, first, last, hits) }
    }
    if job.bits > 32 {
        // Candidates were judged on their first 32 bits; confirm them.
        let candidates: Vec<u64> = hits.drain(before..).collect();
        for n in candidates {
            portable::search(job, n, n + 1, hits);
        }
    }
    portable::search(job, last, end, hits);
}

/// For each of the 4 groups of 16 in a run of 64 counters, the vector whose lane i holds the
/// digit of counter `16g + i` at its place (`shift` bits up) in the word that holds the last
/// digit.
#[target_feature(enable = "avx512f")]
fn lane_table(shift: u32) -> [__m512i; 4] {
    let mut out = [_mm512_setzero_si512(); 4];
    for (g, o) in out.iter_mut().enumerate() {
        let d = |i: usize| (u32::from(COUNTER_DIGITS[16 * g + i]) << shift) as i32;
        *o = _mm512_setr_epi32(
            d(0),
            d(1),
            d(2),
            d(3),
            d(4),
            d(5),
            d(6),
            d(7),
            d(8),
            d(9),
            d(10),
            d(11),
            d(12),
            d(13),
            d(14),
            d(15),
        );
    }
    out
}

/// Mask of the lanes whose output word 0 (the digest's first 4 bytes, little-endian) starts
/// with min(bits, 32) zero bits: the leading bits of the big-endian reading, byte-swapped once
/// here, so each test is one `vptestnmd` (no byte swap of the output).
fn zero_bits_mask(bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        (u32::MAX << (32 - bits.min(32))).swap_bytes()
    }
}

#[inline(always)]
fn push_mask(mask: u32, n: u64, hits: &mut Vec<u64>) {
    let mut m = mask;
    while m != 0 {
        hits.push(n + u64::from(m.trailing_zeros()));
        m &= m - 1;
    }
}

// The rotations by 16 and 8 (`$r` is unused: the AVX2 kernel's macros pass shuffle masks).
macro_rules! rot16 {
    ($r:ident, $x:expr) => {
        _mm512_ror_epi32::<16>($x)
    };
}
macro_rules! rot8 {
    ($r:ident, $x:expr) => {
        _mm512_ror_epi32::<8>($x)
    };
}

// BLAKE3's G in two halves, and its rounds, on one or more independent batches of 16 lanes at
// once: each batch is a pair `(v, w)` of its state array and the name its message macro `$m`
// takes (`$m!(i, w)` gives message word i of that batch; the schedule indices are constants, so
// each use resolves at compile time). Every step is written for all batches before the next, so
// one batch's adds and rotates fill the latency of the other's dependency chain.
macro_rules! b3_g1 {
    ($r:ident, $m:ident, $a:literal, $b:literal, $c:literal, $d:literal, $x:expr;
     $(($v:ident, $w:ident)),+) => {
        // a + x first: it does not wait for b, the end of the dependency chain.
        $( $v[$a] = _mm512_add_epi32(_mm512_add_epi32($v[$a], $m!($x, $w)), $v[$b]); )+
        $( $v[$d] = rot16!($r, _mm512_xor_si512($v[$d], $v[$a])); )+
        $( $v[$c] = _mm512_add_epi32($v[$c], $v[$d]); )+
        $( $v[$b] = _mm512_ror_epi32::<12>(_mm512_xor_si512($v[$b], $v[$c])); )+
    };
}
macro_rules! b3_g2 {
    ($r:ident, $m:ident, $a:literal, $b:literal, $c:literal, $d:literal, $y:expr;
     $(($v:ident, $w:ident)),+) => {
        $( $v[$a] = _mm512_add_epi32(_mm512_add_epi32($v[$a], $m!($y, $w)), $v[$b]); )+
        $( $v[$d] = rot8!($r, _mm512_xor_si512($v[$d], $v[$a])); )+
        $( $v[$c] = _mm512_add_epi32($v[$c], $v[$d]); )+
        $( $v[$b] = _mm512_ror_epi32::<7>(_mm512_xor_si512($v[$b], $v[$c])); )+
    };
}
macro_rules! b3_g {
    ($r:ident, $m:ident, $a:literal, $b:literal, $c:literal, $d:literal, $x:expr, $y:expr;
     $($vw:tt),+) => {
        b3_g1!($r, $m, $a, $b, $c, $d, $x; $($vw),+);
        b3_g2!($r, $m, $a, $b, $c, $d, $y; $($vw),+);
    };
}
macro_rules! b3_columns {
    ($r:ident, $m:ident, $s:expr; $($vw:tt),+) => {
        b3_g!($r, $m, 0, 4, 8, 12, $s[0], $s[1]; $($vw),+);
        b3_g!($r, $m, 1, 5, 9, 13, $s[2], $s[3]; $($vw),+);
        b3_g!($r, $m, 2, 6, 10, 14, $s[4], $s[5]; $($vw),+);
        b3_g!($r, $m, 3, 7, 11, 15, $s[6], $s[7]; $($vw),+);
    };
}
macro_rules! b3_diagonals {
    ($r:ident, $m:ident, $s:expr; $($vw:tt),+) => {
        b3_g!($r, $m, 0, 5, 10, 15, $s[8], $s[9]; $($vw),+);
        b3_g!($r, $m, 1, 6, 11, 12, $s[10], $s[11]; $($vw),+);
        b3_g!($r, $m, 2, 7, 8, 13, $s[12], $s[13]; $($vw),+);
        b3_g!($r, $m, 3, 4, 9, 14, $s[14], $s[15]; $($vw),+);
    };
}
macro_rules! b3_round {
    ($r:ident, $m:ident, $round:literal; $($vw:tt),+) => {{
        const S: [usize; 16] = portable::B3_SCHEDULE[$round];
        b3_columns!($r, $m, S; $($vw),+);
        b3_diagonals!($r, $m, S; $($vw),+);
    }};
}
/// Rounds 2 to 6, the last one cut to what output word 0 (`v0 ^ v8`) needs: v0 is final after
/// the second add of its diagonal G and v8 after the second add to c of its own; the other two
/// diagonal G functions reach neither. Gives output word 0 of each batch, as a tuple.
macro_rules! b3_rounds_2_to_6_word0 {
    ($r:ident, $m:ident; $(($v:ident, $w:ident)),+) => {{
        b3_round!($r, $m, 2; $(($v, $w)),+);
        b3_round!($r, $m, 3; $(($v, $w)),+);
        b3_round!($r, $m, 4; $(($v, $w)),+);
        b3_round!($r, $m, 5; $(($v, $w)),+);
        const S: [usize; 16] = portable::B3_SCHEDULE[6];
        b3_columns!($r, $m, S; $(($v, $w)),+);
        b3_g1!($r, $m, 0, 5, 10, 15, S[8]; $(($v, $w)),+);
        $( $v[0] = _mm512_add_epi32(_mm512_add_epi32($v[0], $m!(S[9], $w)), $v[5]); )+
        b3_g1!($r, $m, 2, 7, 8, 13, S[12]; $(($v, $w)),+);
        $( $v[2] = _mm512_add_epi32(_mm512_add_epi32($v[2], $m!(S[13], $w)), $v[7]); )+
        $( $v[13] = rot8!($r, _mm512_xor_si512($v[13], $v[2])); )+
        $( $v[8] = _mm512_add_epi32($v[8], $v[13]); )+
        ( $( _mm512_xor_si512($v[0], $v[8]) ),+ )
    }};
}

/// What is left of rounds 0 and 1 for lanes that differ only in message word 15, from the
/// shared head `$h` (see `portable::b3_w15_head`): round 0's last half G, the one place it reads
/// word 15, then round 1's columns without the steps whose inputs are the same in every lane,
/// and round 1's diagonals.
macro_rules! b3_w15_rounds_0_1 {
    ($r:ident, $m:ident, $h:ident; $(($v:ident, $w:ident)),+) => {{
        // Round 0, second half of G(3, 4, 9, 14): v3 = (v3 + v4) + m15.
        $( $v[3] = _mm512_add_epi32($h.s34, $w); )+
        $( $v[14] = rot8!($r, _mm512_xor_si512($v[14], $v[3])); )+
        $( $v[9] = _mm512_add_epi32($v[9], $v[14]); )+
        $( $v[4] = _mm512_ror_epi32::<7>(_mm512_xor_si512($v[4], $v[9])); )+
        const S: [usize; 16] = portable::B3_SCHEDULE[1];
        // G(0, 4, 8, 12): v0 = (v0 + m) + v4.
        $( $v[0] = _mm512_add_epi32($h.q0, $v[4]); )+
        $( $v[12] = rot16!($r, _mm512_xor_si512($v[12], $v[0])); )+
        $( $v[8] = _mm512_add_epi32($v[8], $v[12]); )+
        $( $v[4] = _mm512_ror_epi32::<12>(_mm512_xor_si512($v[4], $v[8])); )+
        b3_g2!($r, $m, 0, 4, 8, 12, S[1]; $(($v, $w)),+);
        // G(1, 5, 9, 13): v1 and v13 come done from the head.
        $( $v[9] = _mm512_add_epi32($v[9], $v[13]); )+
        $( $v[5] = _mm512_ror_epi32::<12>(_mm512_xor_si512($v[5], $v[9])); )+
        b3_g2!($r, $m, 1, 5, 9, 13, S[3]; $(($v, $w)),+);
        // G(2, 6, 10, 14): v2 comes done from the head.
        $( $v[14] = rot16!($r, _mm512_xor_si512($v[14], $v[2])); )+
        $( $v[10] = _mm512_add_epi32($v[10], $v[14]); )+
        $( $v[6] = _mm512_ror_epi32::<12>(_mm512_xor_si512($v[6], $v[10])); )+
        b3_g2!($r, $m, 2, 6, 10, 14, S[5]; $(($v, $w)),+);
        // G(3, 7, 11, 15): v3 = v3 + (m + v7).
        $( $v[3] = _mm512_add_epi32($v[3], $h.q7); )+
        $( $v[15] = rot16!($r, _mm512_xor_si512($v[15], $v[3])); )+
        $( $v[11] = _mm512_add_epi32($v[11], $v[15]); )+
        $( $v[7] = _mm512_ror_epi32::<12>(_mm512_xor_si512($v[7], $v[11])); )+
        b3_g2!($r, $m, 3, 7, 11, 15, S[7]; $(($v, $w)),+);
        b3_diagonals!($r, $m, S; $(($v, $w)),+);
    }};
}

/// BLAKE3 compression of 16 lanes (chunk counter 0); returns output word 0 of each lane. For a
/// layout whose differing word is not word 15 (no precomputation).
#[target_feature(enable = "avx512f")]
fn blake3_x16(cv: &[u32; 8], m: &[__m512i; 16], block_len: u32, flags: u32) -> __m512i {
    let _r = ();
    let iv = &portable::SHA256_IV;
    let b = |x: u32| _mm512_set1_epi32(x as i32);
    let mut v = [
        b(cv[0]),
        b(cv[1]),
        b(cv[2]),
        b(cv[3]),
        b(cv[4]),
        b(cv[5]),
        b(cv[6]),
        b(cv[7]),
        b(iv[0]),
        b(iv[1]),
        b(iv[2]),
        b(iv[3]),
        b(0),
        b(0),
        b(block_len),
        b(flags),
    ];
    macro_rules! word {
        ($i:expr, $w:ident) => {
            $w[$i]
        };
    }
    b3_round!(_r, word, 0; (v, m));
    b3_round!(_r, word, 1; (v, m));
    b3_rounds_2_to_6_word0!(_r, word; (v, m))
}

/// What lanes that differ only in message word 15 share, computed once per run of 64 counters
/// (`portable::B3W15Head`), as broadcasts.
struct W15Head {
    pre: [__m512i; 16],
    s34: __m512i,
    q0: __m512i,
    q7: __m512i,
    base: [__m512i; 16],
}

/// Output word 0 of 16 lanes that differ only in message word 15 (`m15`), from the shared head.
#[target_feature(enable = "avx512f")]
fn blake3_x16_w15(h: &W15Head, m15: __m512i) -> __m512i {
    let _r = ();
    let base = &h.base;
    let mut v = h.pre;
    macro_rules! word {
        ($i:expr, $w:ident) => {
            if $i == 15 { $w } else { base[$i] }
        };
    }
    b3_w15_rounds_0_1!(_r, word, h; (v, m15));
    b3_rounds_2_to_6_word0!(_r, word; (v, m15))
}

#[target_feature(enable = "avx512f")]
fn blake3_scan(job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    let b3 = job.b3.as_ref().expect("checked by search");
    let mut block = b3.block;
    let at = b3.counter_at;
    let pos = at + job.width - 1;
    let table = lane_table(8 * (pos % 4) as u32); // little-endian words
    let test = _mm512_set1_epi32(zero_bits_mask(job.bits) as i32);
    let zero = _mm512_setzero_si512();
    let mut head = W15Head {
        pre: [zero; 16],
        s34: zero,
        q0: zero,
        q7: zero,
        base: [zero; 16],
    };
    // The usual layout (the counter ends the block) puts the last digit in word 15.
    let word15 = pos / 4 == 15;
    let mut n = start;
    while n < end {
        if n == start || n.is_multiple_of(64) {
            encode_counter(n, &mut block[at..at + job.width]);
            block[pos] = 0;
            let words = portable::le_words(&block);
            head.base = words.map(|w| _mm512_set1_epi32(w as i32));
            if word15 {
                let h = portable::b3_w15_head(&b3.cv, &words, b3.block_len, b3.flags);
                head.pre = h.pre.map(|w| _mm512_set1_epi32(w as i32));
                head.s34 = _mm512_set1_epi32(h.s34 as i32);
                head.q0 = _mm512_set1_epi32(h.q0 as i32);
                head.q7 = _mm512_set1_epi32(h.q7 as i32);
            }
        }
        let group = (n % 64 / 16) as usize;
        let out0 = if word15 {
            blake3_x16_w15(&head, _mm512_or_si512(head.base[15], table[group]))
        } else {
            let mut m = head.base;
            m[pos / 4] = _mm512_or_si512(head.base[pos / 4], table[group]);
            blake3_x16(&b3.cv, &m, b3.block_len, b3.flags)
        };
        push_mask(u32::from(_mm512_testn_epi32_mask(out0, test)), n, hits);
        n += LANES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::COUNTER_WIDTH;

    /// Output word 0 of the 16 lanes for counters `n..n + 16` (`n` a multiple of 16), set up
    /// as `blake3_scan` does.
    #[target_feature(enable = "avx512f")]
    fn word0s(job: &Job, n: u64) -> [u32; 16] {
        let b3 = job.b3.as_ref().expect("one-chunk layout");
        let mut block = b3.block;
        let at = b3.counter_at;
        let pos = at + job.width - 1;
        encode_counter(n, &mut block[at..at + job.width]);
        block[pos] = 0;
        let words = portable::le_words(&block);
        let base = words.map(|w| _mm512_set1_epi32(w as i32));
        let lanes = _mm512_or_si512(
            base[pos / 4],
            lane_table(8 * (pos % 4) as u32)[(n % 64 / 16) as usize],
        );
        let out = if pos / 4 == 15 {
            let h = portable::b3_w15_head(&b3.cv, &words, b3.block_len, b3.flags);
            let head = W15Head {
                pre: h.pre.map(|w| _mm512_set1_epi32(w as i32)),
                s34: _mm512_set1_epi32(h.s34 as i32),
                q0: _mm512_set1_epi32(h.q0 as i32),
                q7: _mm512_set1_epi32(h.q7 as i32),
                base,
            };
            blake3_x16_w15(&head, lanes)
        } else {
            let mut m = base;
            m[pos / 4] = lanes;
            blake3_x16(&b3.cv, &m, b3.block_len, b3.flags)
        };
        // SAFETY: `out` is 64 bytes, as is `[u32; 16]`.
        unsafe { std::mem::transmute::<__m512i, [u32; 16]>(out) }
    }

    /// Each lane's output word 0 against the first 4 bytes of the `blake3` crate's hash of the
    /// same message, for both kernels (counter in word 15 and elsewhere) and every group of 16
    /// in a run of 64: the backend tests compare hits only, which judge a few bits.
    #[test]
    fn lanes_match_the_blake3_crate() {
        if !detected() {
            eprintln!("note: skipping: no AVX-512 F on this CPU");
            return;
        }
        for len in (0..=140usize).chain([1000, 1016]) {
            let prefix: Vec<u8> = (0..len).map(|i| b'#' + (i % 80) as u8).collect();
            let job = Job::new(Algorithm::Blake3, &prefix, COUNTER_WIDTH, 0);
            if job.b3.is_none() {
                continue;
            }
            for n in [
                0u64,
                16,
                32,
                48,
                64 * 1234 + 32,
                super::super::COUNTER_SPACE - 16,
            ] {
                // SAFETY: `detected()` confirmed AVX-512 F.
                let got = unsafe { word0s(&job, n) };
                for (i, &w) in got.iter().enumerate() {
                    let hash = blake3::hash(&job.message(n + i as u64));
                    let want = u32::from_le_bytes(hash.as_bytes()[..4].try_into().unwrap());
                    assert_eq!(w, want, "len {len} counter {}", n + i as u64);
                }
            }
        }
    }

    #[test]
    fn zero_bits_mask_selects_the_leading_bits() {
        assert_eq!(zero_bits_mask(0), 0);
        assert_eq!(zero_bits_mask(1), 0x80);
        assert_eq!(zero_bits_mask(8), 0xff);
        assert_eq!(zero_bits_mask(12), 0xf0ff);
        assert_eq!(zero_bits_mask(32), u32::MAX);
        assert_eq!(zero_bits_mask(40), u32::MAX);
    }
}
