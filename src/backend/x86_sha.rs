//! SHA-NI kernels for SHA-1 and SHA-256: the x86 SHA extensions, `LANES` candidates interleaved
//! in one function so that the long-latency round instructions of independent candidates overlap.
//! No 256-bit AVX instruction appears here (no AVX/SSE transition penalties).
//!
//! Fast path (the layout the minter makes by the layout rule, `backend::counter_padding`: one
//! final block holding the whole counter): the message is kept in registers; within a run of 64
//! counters only the last digit changes, so the other words, and the rounds over the 4-word
//! groups before the last digit's group, are computed once per 64 counters; each candidate ORs
//! its digit into one register. Any other layout takes the general path, which loads each
//! candidate's block from memory.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{COUNTER_DIGITS, Job, K256, MdTail, encode_counter, first_word_ok, portable};
use crate::stamp::Algorithm;

/// Candidates hashed side by side.
const LANES: usize = 2;

/// Whether this CPU has what these kernels need.
pub(crate) fn detected() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
}

/// Scans counters `start..end` of a SHA-1 or SHA-256 job and appends the hits.
pub(crate) fn search(job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    assert!(
        detected(),
        "the sha-ni backend was called on a CPU without SHA-NI"
    );
    let Some(md) = &job.md else {
        return portable::search(job, start, end, hits);
    };
    let fast = md.tail.len() == 64 && job.width > 0;
    let (first, last) = (start, end);
    let before = hits.len();
    // SAFETY: `detected()` has just confirmed SHA, SSE4.1 and SSSE3 (SSE2 is baseline on x86_64).
    unsafe {
        match (job.alg, fast) {
            (Algorithm::Sha1, true) => sha1_fast(md, job, first, last, hits),
            (Algorithm::Sha1, false) => sha1_general(md, job, first, last, hits),
            (_, true) => sha256_fast(md, job, first, last, hits),
            (_, false) => sha256_general(md, job, first, last, hits),
        }
    }
    if job.bits > 32 {
        // Candidates were judged on their first 32 bits; confirm them.
        let candidates: Vec<u64> = hits.drain(before..).collect();
        for n in candidates {
            portable::search(job, n, n + 1, hits);
        }
    }
}

/// How many lanes of the batch starting at `n` are real: up to `LANES`, but never past `end`
/// nor across a run of 64 counters (whose high digits are shared).
#[inline(always)]
fn batch(n: u64, end: u64) -> usize {
    (end - n).min(64 - n % 64).min(LANES as u64) as usize
}

/// Byte shuffles that turn 16 message bytes into SHA-NI's word order.
#[target_feature(enable = "sse2")]
fn sha256_bswap() -> __m128i {
    _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203)
}
#[target_feature(enable = "sse2")]
fn sha1_bswap() -> __m128i {
    _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f)
}

/// Loads 16 bytes of `bytes` at `offset`, shuffled by `mask`.
#[target_feature(enable = "sse2,ssse3")]
fn load_quad(bytes: &[u8], offset: usize, mask: __m128i) -> __m128i {
    let chunk: &[u8; 16] = bytes[offset..offset + 16].try_into().expect("16 bytes");
    // SAFETY: `chunk` is 16 readable bytes; loadu has no alignment requirement.
    _mm_shuffle_epi8(
        unsafe { _mm_loadu_si128(chunk.as_ptr() as *const __m128i) },
        mask,
    )
}

/// For each digit d, the message group holding only that digit at byte `p` (in message order).
#[target_feature(enable = "sse2,ssse3")]
fn digit_table(p: usize, mask: __m128i) -> [__m128i; 64] {
    let mut out = [_mm_setzero_si128(); 64];
    for (d, o) in out.iter_mut().enumerate() {
        let mut b = [0u8; 16];
        b[p] = COUNTER_DIGITS[d];
        *o = load_quad(&b, 0, mask);
    }
    out
}

/// SHA-256 state in SHA-NI order (`abef`, `cdgh`) from the usual eight words.
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn sha256_state(state: &[u32; 8]) -> (__m128i, __m128i) {
    let w = |i: usize| state[i] as i32;
    let dcba = _mm_setr_epi32(w(0), w(1), w(2), w(3));
    let efgh = _mm_setr_epi32(w(4), w(5), w(6), w(7));
    let cdab = _mm_shuffle_epi32::<0xB1>(dcba);
    let hgfe = _mm_shuffle_epi32::<0x1B>(efgh);
    (
        _mm_alignr_epi8::<8>(cdab, hgfe),
        _mm_blend_epi16::<0xF0>(hgfe, cdab),
    )
}

/// SHA-256 rounds `4 * from .. 4 * to` (groups of four) for every lane; `w` is the message ring
/// (group r lives at `w[r % 4]`), extended by the schedule from group 4 on.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256_quads<const FROM: usize, const TO: usize>(
    abef: &mut [__m128i; LANES],
    cdgh: &mut [__m128i; LANES],
    w: &mut [[__m128i; 4]; LANES],
) {
    macro_rules! quad {
        ($r:literal) => {
            if $r >= FROM && $r < TO {
                let k = _mm_setr_epi32(
                    K256[4 * $r] as i32,
                    K256[4 * $r + 1] as i32,
                    K256[4 * $r + 2] as i32,
                    K256[4 * $r + 3] as i32,
                );
                for j in 0..LANES {
                    if $r >= 4 {
                        let t = _mm_sha256msg1_epu32(w[j][$r % 4], w[j][($r + 1) % 4]);
                        let t = _mm_add_epi32(
                            t,
                            _mm_alignr_epi8::<4>(w[j][($r + 3) % 4], w[j][($r + 2) % 4]),
                        );
                        w[j][$r % 4] = _mm_sha256msg2_epu32(t, w[j][($r + 3) % 4]);
                    }
                    let t1 = _mm_add_epi32(w[j][$r % 4], k);
                    cdgh[j] = _mm_sha256rnds2_epu32(cdgh[j], abef[j], t1);
                    abef[j] =
                        _mm_sha256rnds2_epu32(abef[j], cdgh[j], _mm_shuffle_epi32::<0x0E>(t1));
                }
            }
        };
    }
    quad!(0);
    quad!(1);
    quad!(2);
    quad!(3);
    quad!(4);
    quad!(5);
    quad!(6);
    quad!(7);
    quad!(8);
    quad!(9);
    quad!(10);
    quad!(11);
    quad!(12);
    quad!(13);
    quad!(14);
    quad!(15);
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256_fast(md: &MdTail, job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    match (md.counter_at + job.width - 1) / 16 {
        0 => sha256_fast_q::<0>(md, job, start, end, hits),
        1 => sha256_fast_q::<1>(md, job, start, end, hits),
        2 => sha256_fast_q::<2>(md, job, start, end, hits),
        _ => sha256_fast_q::<3>(md, job, start, end, hits),
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256_fast_q<const QS: usize>(
    md: &MdTail,
    job: &Job,
    start: u64,
    end: u64,
    hits: &mut Vec<u64>,
) {
    let (at, width) = (md.counter_at, job.width);
    let last = at + width - 1;
    let (qs, mask) = (QS, sha256_bswap());
    let table = digit_table(last % 16, mask);
    let (abef0, cdgh0) = sha256_state(&md.state);
    let mut block: [u8; 64] = md.tail[..64].try_into().expect("one block");
    let mut base = [_mm_setzero_si128(); 4];
    let (mut pre_abef, mut pre_cdgh) = (abef0, cdgh0);
    let mut n = start;
    while n < end {
        if n == start || n.is_multiple_of(64) {
            // New high digits: rebuild the message without the last digit, and run the rounds
            // that come before the last digit's group once for the next 64 counters.
            encode_counter(n, &mut block[at..at + width]);
            block[last] = 0;
            for (k, b) in base.iter_mut().enumerate() {
                *b = load_quad(&block, 16 * k, mask);
            }
            let (mut a, mut c, mut w) = ([abef0; LANES], [cdgh0; LANES], [base; LANES]);
            sha256_quads::<0, QS>(&mut a, &mut c, &mut w);
            (pre_abef, pre_cdgh) = (a[0], c[0]);
        }
        let real = batch(n, end);
        let mut w = [base; LANES];
        for (j, wj) in w.iter_mut().enumerate() {
            wj[qs] = _mm_or_si128(
                base[qs],
                table[((n + j.min(real - 1) as u64) % 64) as usize],
            );
        }
        let (mut abef, mut cdgh) = ([pre_abef; LANES], [pre_cdgh; LANES]);
        sha256_quads::<QS, 16>(&mut abef, &mut cdgh, &mut w);
        for (j, s) in abef.iter().enumerate().take(real) {
            let a = _mm_extract_epi32::<3>(_mm_add_epi32(*s, abef0)) as u32;
            if first_word_ok(a, job.bits) {
                hits.push(n + j as u64);
            }
        }
        n += real as u64;
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256_general(md: &MdTail, job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    let (abef0, cdgh0) = sha256_state(&md.state);
    let mask = sha256_bswap();
    let mut tail = md.tail.clone();
    let at = md.counter_at;
    for n in start..end {
        encode_counter(n, &mut tail[at..at + job.width]);
        let (mut abef, mut cdgh) = ([abef0; LANES], [cdgh0; LANES]);
        for block in tail.chunks_exact(64) {
            let (save_abef, save_cdgh) = (abef, cdgh);
            let mut quads = [_mm_setzero_si128(); 4];
            for (k, q) in quads.iter_mut().enumerate() {
                *q = load_quad(block, 16 * k, mask);
            }
            sha256_quads::<0, 16>(&mut abef, &mut cdgh, &mut [quads; LANES]);
            abef[0] = _mm_add_epi32(abef[0], save_abef[0]);
            cdgh[0] = _mm_add_epi32(cdgh[0], save_cdgh[0]);
        }
        if first_word_ok(_mm_extract_epi32::<3>(abef[0]) as u32, job.bits) {
            hits.push(n);
        }
    }
}

/// SHA-1 groups of four rounds `from .. to` for every lane. `prev` is the `abcd` that went into
/// the previous group (sha1nexte derives the next group's `e` from it); group 0 adds `e0`.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_groups<const FROM: usize, const TO: usize>(
    abcd: &mut [__m128i; LANES],
    prev: &mut [__m128i; LANES],
    e0: __m128i,
    w: &mut [[__m128i; 4]; LANES],
) {
    macro_rules! group {
        ($g:literal, $f:literal) => {
            if $g >= FROM && $g < TO {
                for j in 0..LANES {
                    if $g >= 4 {
                        let t = _mm_sha1msg1_epu32(w[j][$g % 4], w[j][($g + 1) % 4]);
                        let t = _mm_xor_si128(t, w[j][($g + 2) % 4]);
                        w[j][$g % 4] = _mm_sha1msg2_epu32(t, w[j][($g + 3) % 4]);
                    }
                    let we = if $g == 0 {
                        _mm_add_epi32(e0, w[j][0])
                    } else {
                        _mm_sha1nexte_epu32(prev[j], w[j][$g % 4])
                    };
                    prev[j] = abcd[j];
                    abcd[j] = _mm_sha1rnds4_epu32::<$f>(abcd[j], we);
                }
            }
        };
    }
    group!(0, 0);
    group!(1, 0);
    group!(2, 0);
    group!(3, 0);
    group!(4, 0);
    group!(5, 1);
    group!(6, 1);
    group!(7, 1);
    group!(8, 1);
    group!(9, 1);
    group!(10, 2);
    group!(11, 2);
    group!(12, 2);
    group!(13, 2);
    group!(14, 2);
    group!(15, 3);
    group!(16, 3);
    group!(17, 3);
    group!(18, 3);
    group!(19, 3);
}

/// SHA-1 state: `abcd` with `a` in the top lane, and `e` in the top lane of its own register.
#[target_feature(enable = "sse2")]
fn sha1_state(state: &[u32; 8]) -> (__m128i, __m128i) {
    let w = |i: usize| state[i] as i32;
    (
        _mm_set_epi32(w(0), w(1), w(2), w(3)),
        _mm_set_epi32(w(4), 0, 0, 0),
    )
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_fast(md: &MdTail, job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    match (md.counter_at + job.width - 1) / 16 {
        0 => sha1_fast_q::<0>(md, job, start, end, hits),
        1 => sha1_fast_q::<1>(md, job, start, end, hits),
        2 => sha1_fast_q::<2>(md, job, start, end, hits),
        _ => sha1_fast_q::<3>(md, job, start, end, hits),
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_fast_q<const QS: usize>(md: &MdTail, job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    let (at, width) = (md.counter_at, job.width);
    let last = at + width - 1;
    let (qs, mask) = (QS, sha1_bswap());
    let table = digit_table(last % 16, mask);
    let (abcd0, e0) = sha1_state(&md.state);
    let mut block: [u8; 64] = md.tail[..64].try_into().expect("one block");
    let mut base = [_mm_setzero_si128(); 4];
    let (mut pre_abcd, mut pre_prev) = (abcd0, abcd0);
    let mut n = start;
    while n < end {
        if n == start || n.is_multiple_of(64) {
            encode_counter(n, &mut block[at..at + width]);
            block[last] = 0;
            for (k, b) in base.iter_mut().enumerate() {
                *b = load_quad(&block, 16 * k, mask);
            }
            let (mut a, mut p, mut w) = ([abcd0; LANES], [abcd0; LANES], [base; LANES]);
            sha1_groups::<0, QS>(&mut a, &mut p, e0, &mut w);
            (pre_abcd, pre_prev) = (a[0], p[0]);
        }
        let real = batch(n, end);
        let mut w = [base; LANES];
        for (j, wj) in w.iter_mut().enumerate() {
            wj[qs] = _mm_or_si128(
                base[qs],
                table[((n + j.min(real - 1) as u64) % 64) as usize],
            );
        }
        let (mut abcd, mut prev) = ([pre_abcd; LANES], [pre_prev; LANES]);
        sha1_groups::<QS, 20>(&mut abcd, &mut prev, e0, &mut w);
        for (j, s) in abcd.iter().enumerate().take(real) {
            let a = _mm_extract_epi32::<3>(_mm_add_epi32(*s, abcd0)) as u32;
            if first_word_ok(a, job.bits) {
                hits.push(n + j as u64);
            }
        }
        n += real as u64;
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_general(md: &MdTail, job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    let (abcd0, e_init) = sha1_state(&md.state);
    let mask = sha1_bswap();
    let mut tail = md.tail.clone();
    let at = md.counter_at;
    for n in start..end {
        encode_counter(n, &mut tail[at..at + job.width]);
        let (mut abcd, mut e) = (abcd0, e_init);
        for block in tail.chunks_exact(64) {
            let mut quads = [_mm_setzero_si128(); 4];
            for (k, q) in quads.iter_mut().enumerate() {
                *q = load_quad(block, 16 * k, mask);
            }
            let (mut a, mut p) = ([abcd; LANES], [abcd; LANES]);
            sha1_groups::<0, 20>(&mut a, &mut p, e, &mut [quads; LANES]);
            e = _mm_sha1nexte_epu32(p[0], e);
            abcd = _mm_add_epi32(a[0], abcd);
        }
        if first_word_ok(_mm_extract_epi32::<3>(abcd) as u32, job.bits) {
            hits.push(n);
        }
    }
}
