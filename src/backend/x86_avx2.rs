//! AVX2 kernels: 8 candidates per vector, one per 32-bit lane, for SHA-256 (for CPUs without
//! SHA-NI) and BLAKE3. Lane i hashes counter `n + i` for `n` a multiple of 8, so the lanes differ
//! only in the counter's last digit: every message word is a broadcast except the one word that
//! holds that digit. Hits are found with a compare and a movemask.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{COUNTER_DIGITS, Job, K256, encode_counter, portable};
use crate::stamp::Algorithm;

const LANES: u64 = 8;

/// Whether this CPU has AVX2.
pub(crate) fn detected() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Scans counters `start..end` of a SHA-256 or BLAKE3 job and appends the hits. Counters outside
/// whole groups of 8, and layouts the lanes cannot share (a BLAKE3 message over one chunk), go to
/// the portable kernel.
pub(crate) fn search(job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    assert!(
        detected(),
        "the avx2 backend was called on a CPU without AVX2"
    );
    let vector_ok = job.width > 0
        && match job.alg {
            Algorithm::Sha256 => job.md.is_some(),
            Algorithm::Blake3 => job.b3.is_some(),
            Algorithm::Sha1 | Algorithm::Argon2id(_) | Algorithm::Equix => false,
        };
    if !vector_ok {
        return portable::search(job, start, end, hits);
    }
    let first = start.next_multiple_of(LANES).min(end);
    let last = first + (end - first) / LANES * LANES;
    portable::search(job, start, first, hits);
    let before = hits.len();
    if first < last {
        // SAFETY: `detected()` has just confirmed AVX2.
        unsafe {
            match job.alg {
                Algorithm::Sha256 => sha256_scan(job, first, last, hits),
                _ => blake3_scan(job, first, last, hits),
            }
        }
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

/// For each of the 8 groups of 8 in a run of 64 counters, the vector whose lane i holds the
/// digit of counter `8g + i` at its place (`shift` bits up) in the word that holds the last digit.
#[target_feature(enable = "avx2")]
fn lane_table(shift: u32) -> [__m256i; 8] {
    let mut out = [_mm256_setzero_si256(); 8];
    for (g, o) in out.iter_mut().enumerate() {
        let d = |i: usize| (u32::from(COUNTER_DIGITS[8 * g + i]) << shift) as i32;
        *o = _mm256_setr_epi32(d(0), d(1), d(2), d(3), d(4), d(5), d(6), d(7));
    }
    out
}

macro_rules! rotr {
    ($x:expr, $n:literal) => {
        _mm256_or_si256(
            _mm256_srli_epi32::<$n>($x),
            _mm256_slli_epi32::<{ 32 - $n }>($x),
        )
    };
}

/// One SHA-256 compression of 8 lanes.
#[target_feature(enable = "avx2")]
fn sha256_x8(state: &mut [__m256i; 8], w: &mut [__m256i; 16]) {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for t in 0..64 {
        if t >= 16 {
            let w15 = w[(t + 1) % 16];
            let w2 = w[(t + 14) % 16];
            let s0 = _mm256_xor_si256(
                _mm256_xor_si256(rotr!(w15, 7), rotr!(w15, 18)),
                _mm256_srli_epi32::<3>(w15),
            );
            let s1 = _mm256_xor_si256(
                _mm256_xor_si256(rotr!(w2, 17), rotr!(w2, 19)),
                _mm256_srli_epi32::<10>(w2),
            );
            w[t % 16] = _mm256_add_epi32(
                _mm256_add_epi32(w[t % 16], s0),
                _mm256_add_epi32(w[(t + 9) % 16], s1),
            );
        }
        let big_s1 = _mm256_xor_si256(_mm256_xor_si256(rotr!(e, 6), rotr!(e, 11)), rotr!(e, 25));
        let ch = _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g));
        let t1 = _mm256_add_epi32(
            _mm256_add_epi32(_mm256_add_epi32(h, big_s1), _mm256_add_epi32(ch, w[t % 16])),
            _mm256_set1_epi32(K256[t] as i32),
        );
        let big_s0 = _mm256_xor_si256(_mm256_xor_si256(rotr!(a, 2), rotr!(a, 13)), rotr!(a, 22));
        let maj = _mm256_or_si256(
            _mm256_and_si256(a, b),
            _mm256_and_si256(c, _mm256_or_si256(a, b)),
        );
        let t2 = _mm256_add_epi32(big_s0, maj);
        h = g;
        g = f;
        f = e;
        e = _mm256_add_epi32(d, t1);
        d = c;
        c = b;
        b = a;
        a = _mm256_add_epi32(t1, t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = _mm256_add_epi32(*s, v);
    }
}

/// Lane mask of the candidates whose first big-endian word meets min(bits, 32) zero bits.
#[target_feature(enable = "avx2")]
fn first_word_mask(word: __m256i, bits: u32) -> u32 {
    if bits == 0 {
        return 0xff;
    }
    let shifted = _mm256_srl_epi32(word, _mm_cvtsi32_si128(32 - bits.min(32) as i32));
    let zero = _mm256_cmpeq_epi32(shifted, _mm256_setzero_si256());
    _mm256_movemask_ps(_mm256_castsi256_ps(zero)) as u32
}

#[target_feature(enable = "avx2")]
fn push_mask(mask: u32, n: u64, hits: &mut Vec<u64>) {
    let mut m = mask;
    while m != 0 {
        hits.push(n + u64::from(m.trailing_zeros()));
        m &= m - 1;
    }
}

#[target_feature(enable = "avx2")]
fn sha256_scan(job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    let md = job.md.as_ref().expect("checked by search");
    let mut tail = md.tail.clone();
    let at = md.counter_at;
    let pos = at + job.width - 1; // the last digit, which differs between lanes
    let table = lane_table(8 * (3 - (pos % 4) as u32)); // big-endian words
    let init: [__m256i; 8] = md.state.map(|s| _mm256_set1_epi32(s as i32));
    let nblocks = tail.len() / 64;
    let mut base = [[_mm256_setzero_si256(); 16]; 2];
    let mut n = start;
    while n < end {
        if n == start || n.is_multiple_of(64) {
            // New high digits: broadcast every word, the last digit left out.
            encode_counter(n, &mut tail[at..at + job.width]);
            tail[pos] = 0;
            for (bi, block) in tail.chunks_exact(64).enumerate() {
                for (k, wk) in base[bi].iter_mut().enumerate() {
                    let b: [u8; 4] = block[4 * k..4 * k + 4].try_into().expect("4 bytes");
                    *wk = _mm256_set1_epi32(i32::from_be_bytes(b));
                }
            }
        }
        let mut state = init;
        for (bi, block_words) in base.iter().enumerate().take(nblocks) {
            let mut w = *block_words;
            if pos / 64 == bi {
                let k = pos % 64 / 4;
                w[k] = _mm256_or_si256(w[k], table[(n % 64 / 8) as usize]);
            }
            sha256_x8(&mut state, &mut w);
        }
        push_mask(first_word_mask(state[0], job.bits), n, hits);
        n += LANES;
    }
}

/// The byte shuffles that rotate every 32-bit lane right by 16 and by 8 bits. Passed through
/// `black_box` so the compiler sees a mask and not a constant: with a constant it turns each
/// rotation by 16 into `vpshuflw` + `vpshufhw`, two shuffles where one `vpshufb` does.
#[target_feature(enable = "avx2")]
fn rot16_rot8() -> (__m256i, __m256i) {
    std::hint::black_box((
        _mm256_setr_epi8(
            2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11,
            8, 9, 14, 15, 12, 13,
        ),
        _mm256_setr_epi8(
            1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10,
            11, 8, 13, 14, 15, 12,
        ),
    ))
}

// BLAKE3's G in two halves, and its rounds, on one or more independent batches of 8 lanes at
// once: each batch is a pair `(v, w)` of its state array and the name its message macro `$m`
// takes (`$m!(i, w)` gives message word i of that batch; the schedule indices are constants, so
// each use resolves at compile time). Every step is written for all batches before the next, so
// one batch's adds and rotates fill the latency of the other's dependency chain.
macro_rules! b3_g1 {
    ($r:ident, $m:ident, $a:literal, $b:literal, $c:literal, $d:literal, $x:expr;
     $(($v:ident, $w:ident)),+) => {
        // a + x first: it does not wait for b, the end of the dependency chain.
        $( $v[$a] = _mm256_add_epi32(_mm256_add_epi32($v[$a], $m!($x, $w)), $v[$b]); )+
        $( $v[$d] = _mm256_shuffle_epi8(_mm256_xor_si256($v[$d], $v[$a]), $r.0); )+
        $( $v[$c] = _mm256_add_epi32($v[$c], $v[$d]); )+
        $( $v[$b] = rotr!(_mm256_xor_si256($v[$b], $v[$c]), 12); )+
    };
}
macro_rules! b3_g2 {
    ($r:ident, $m:ident, $a:literal, $b:literal, $c:literal, $d:literal, $y:expr;
     $(($v:ident, $w:ident)),+) => {
        $( $v[$a] = _mm256_add_epi32(_mm256_add_epi32($v[$a], $m!($y, $w)), $v[$b]); )+
        $( $v[$d] = _mm256_shuffle_epi8(_mm256_xor_si256($v[$d], $v[$a]), $r.1); )+
        $( $v[$c] = _mm256_add_epi32($v[$c], $v[$d]); )+
        $( $v[$b] = rotr!(_mm256_xor_si256($v[$b], $v[$c]), 7); )+
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
        $( $v[0] = _mm256_add_epi32(_mm256_add_epi32($v[0], $m!(S[9], $w)), $v[5]); )+
        b3_g1!($r, $m, 2, 7, 8, 13, S[12]; $(($v, $w)),+);
        $( $v[2] = _mm256_add_epi32(_mm256_add_epi32($v[2], $m!(S[13], $w)), $v[7]); )+
        $( $v[13] = _mm256_shuffle_epi8(_mm256_xor_si256($v[13], $v[2]), $r.1); )+
        $( $v[8] = _mm256_add_epi32($v[8], $v[13]); )+
        ( $( _mm256_xor_si256($v[0], $v[8]) ),+ )
    }};
}

/// BLAKE3 compression of 8 lanes (chunk counter 0); returns output word 0 of each lane. For a
/// layout whose differing word is not word 15 (no precomputation).
#[target_feature(enable = "avx2")]
fn blake3_x8(cv: &[u32; 8], m: &[__m256i; 16], block_len: u32, flags: u32) -> __m256i {
    let r = rot16_rot8();
    let iv = &portable::SHA256_IV;
    let mut v = [
        _mm256_set1_epi32(cv[0] as i32),
        _mm256_set1_epi32(cv[1] as i32),
        _mm256_set1_epi32(cv[2] as i32),
        _mm256_set1_epi32(cv[3] as i32),
        _mm256_set1_epi32(cv[4] as i32),
        _mm256_set1_epi32(cv[5] as i32),
        _mm256_set1_epi32(cv[6] as i32),
        _mm256_set1_epi32(cv[7] as i32),
        _mm256_set1_epi32(iv[0] as i32),
        _mm256_set1_epi32(iv[1] as i32),
        _mm256_set1_epi32(iv[2] as i32),
        _mm256_set1_epi32(iv[3] as i32),
        _mm256_setzero_si256(),
        _mm256_setzero_si256(),
        _mm256_set1_epi32(block_len as i32),
        _mm256_set1_epi32(flags as i32),
    ];
    macro_rules! word {
        ($i:expr, $w:ident) => {
            $w[$i]
        };
    }
    b3_round!(r, word, 0; (v, m));
    b3_round!(r, word, 1; (v, m));
    b3_rounds_2_to_6_word0!(r, word; (v, m))
}

/// What lanes that differ only in message word 15 share, computed once per run of 64 counters
/// (`portable::B3W15Head`), as broadcasts.
struct W15Head {
    pre: [__m256i; 16],
    s34: __m256i,
    q0: __m256i,
    q7: __m256i,
    base: [__m256i; 16],
}

/// What is left of rounds 0 and 1 for lanes that differ only in message word 15, from the
/// shared head `$h` (see `portable::b3_w15_head`): round 0's last half G, the one place it reads
/// word 15, then round 1's columns without the steps whose inputs are the same in every lane,
/// and round 1's diagonals.
macro_rules! b3_w15_rounds_0_1 {
    ($r:ident, $m:ident, $h:ident; $(($v:ident, $w:ident)),+) => {{
        // Round 0, second half of G(3, 4, 9, 14): v3 = (v3 + v4) + m15.
        $( $v[3] = _mm256_add_epi32($h.s34, $w); )+
        $( $v[14] = _mm256_shuffle_epi8(_mm256_xor_si256($v[14], $v[3]), $r.1); )+
        $( $v[9] = _mm256_add_epi32($v[9], $v[14]); )+
        $( $v[4] = rotr!(_mm256_xor_si256($v[4], $v[9]), 7); )+
        const S: [usize; 16] = portable::B3_SCHEDULE[1];
        // G(0, 4, 8, 12): v0 = (v0 + m) + v4.
        $( $v[0] = _mm256_add_epi32($h.q0, $v[4]); )+
        $( $v[12] = _mm256_shuffle_epi8(_mm256_xor_si256($v[12], $v[0]), $r.0); )+
        $( $v[8] = _mm256_add_epi32($v[8], $v[12]); )+
        $( $v[4] = rotr!(_mm256_xor_si256($v[4], $v[8]), 12); )+
        b3_g2!($r, $m, 0, 4, 8, 12, S[1]; $(($v, $w)),+);
        // G(1, 5, 9, 13): v1 and v13 come done from the head.
        $( $v[9] = _mm256_add_epi32($v[9], $v[13]); )+
        $( $v[5] = rotr!(_mm256_xor_si256($v[5], $v[9]), 12); )+
        b3_g2!($r, $m, 1, 5, 9, 13, S[3]; $(($v, $w)),+);
        // G(2, 6, 10, 14): v2 comes done from the head.
        $( $v[14] = _mm256_shuffle_epi8(_mm256_xor_si256($v[14], $v[2]), $r.0); )+
        $( $v[10] = _mm256_add_epi32($v[10], $v[14]); )+
        $( $v[6] = rotr!(_mm256_xor_si256($v[6], $v[10]), 12); )+
        b3_g2!($r, $m, 2, 6, 10, 14, S[5]; $(($v, $w)),+);
        // G(3, 7, 11, 15): v3 = v3 + (m + v7).
        $( $v[3] = _mm256_add_epi32($v[3], $h.q7); )+
        $( $v[15] = _mm256_shuffle_epi8(_mm256_xor_si256($v[15], $v[3]), $r.0); )+
        $( $v[11] = _mm256_add_epi32($v[11], $v[15]); )+
        $( $v[7] = rotr!(_mm256_xor_si256($v[7], $v[11]), 12); )+
        b3_g2!($r, $m, 3, 7, 11, 15, S[7]; $(($v, $w)),+);
        b3_diagonals!($r, $m, S; $(($v, $w)),+);
    }};
}

/// Output word 0 of 8 lanes that differ only in message word 15 (`m15`), from the shared head.
/// Kept for a lone group of 8 at either end of a range; runs go through [`blake3_x16_w15`].
#[target_feature(enable = "avx2")]
fn blake3_x8_w15(h: &W15Head, m15: __m256i) -> __m256i {
    let r = rot16_rot8();
    let base = &h.base;
    let mut v = h.pre;
    macro_rules! word {
        ($i:expr, $w:ident) => {
            if $i == 15 { $w } else { base[$i] }
        };
    }
    b3_w15_rounds_0_1!(r, word, h; (v, m15));
    b3_rounds_2_to_6_word0!(r, word; (v, m15))
}

/// The same for two independent batches of 8 lanes at once (16 counters), interleaved step by
/// step: one batch's instructions fill the latency of the other's dependency chain.
#[target_feature(enable = "avx2")]
fn blake3_x16_w15(h: &W15Head, m15a: __m256i, m15b: __m256i) -> (__m256i, __m256i) {
    let r = rot16_rot8();
    let base = &h.base;
    let mut va = h.pre;
    let mut vb = h.pre;
    macro_rules! word {
        ($i:expr, $w:ident) => {
            if $i == 15 { $w } else { base[$i] }
        };
    }
    b3_w15_rounds_0_1!(r, word, h; (va, m15a), (vb, m15b));
    b3_rounds_2_to_6_word0!(r, word; (va, m15a), (vb, m15b))
}

#[target_feature(enable = "avx2")]
fn blake3_scan(job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    let b3 = job.b3.as_ref().expect("checked by search");
    let mut block = b3.block;
    let at = b3.counter_at;
    let pos = at + job.width - 1;
    let table = lane_table(8 * (pos % 4) as u32); // little-endian words
    // The digest's first bytes are word 0 in little-endian order: byte-swap to count zero bits.
    let bswap = _mm256_setr_epi8(
        3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8,
        15, 14, 13, 12,
    );
    let zero = _mm256_setzero_si256();
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
            head.base = words.map(|w| _mm256_set1_epi32(w as i32));
            if word15 {
                let h = portable::b3_w15_head(&b3.cv, &words, b3.block_len, b3.flags);
                head.pre = h.pre.map(|w| _mm256_set1_epi32(w as i32));
                head.s34 = _mm256_set1_epi32(h.s34 as i32);
                head.q0 = _mm256_set1_epi32(h.q0 as i32);
                head.q7 = _mm256_set1_epi32(h.q7 as i32);
            }
        }
        let group = (n % 64 / 8) as usize;
        if word15 && n.is_multiple_of(16) && n + 16 <= end {
            // Two groups of 8 from the same run of 64 (a run is whole groups of 16).
            let (a, b) = blake3_x16_w15(
                &head,
                _mm256_or_si256(head.base[15], table[group]),
                _mm256_or_si256(head.base[15], table[group + 1]),
            );
            let mask_a = first_word_mask(_mm256_shuffle_epi8(a, bswap), job.bits);
            let mask_b = first_word_mask(_mm256_shuffle_epi8(b, bswap), job.bits);
            push_mask(mask_a | mask_b << 8, n, hits);
            n += 2 * LANES;
            continue;
        }
        let out0 = if word15 {
            blake3_x8_w15(&head, _mm256_or_si256(head.base[15], table[group]))
        } else {
            let mut m = head.base;
            m[pos / 4] = _mm256_or_si256(head.base[pos / 4], table[group]);
            blake3_x8(&b3.cv, &m, b3.block_len, b3.flags)
        };
        push_mask(
            first_word_mask(_mm256_shuffle_epi8(out0, bswap), job.bits),
            n,
            hits,
        );
        n += LANES;
    }
}
