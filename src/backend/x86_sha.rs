//! SHA-NI kernels for SHA-1 and SHA-256: the x86 SHA extensions, `LANES` candidates interleaved
//! in one function so that the long-latency round instructions of independent candidates overlap.
//! No 256-bit AVX instruction appears here (no AVX/SSE transition penalties).

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{Job, encode_counter, first_word_ok, portable};
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
    let before = hits.len();
    // SAFETY: `detected()` has just confirmed SHA, SSE4.1 and SSSE3 (SSE2 is baseline on x86_64).
    unsafe {
        match job.alg {
            Algorithm::Sha1 => sha1_scan(&md.state, &md.tail, md.counter_at, job, start, end, hits),
            _ => sha256_scan(&md.state, &md.tail, md.counter_at, job, start, end, hits),
        }
    }
    confirm_long_targets(job, before, hits);
}

/// The kernels judge candidates on the first state word only; for targets over 32 bits the
/// (rare) candidates are confirmed with the portable kernel.
fn confirm_long_targets(job: &Job, from: usize, hits: &mut Vec<u64>) {
    if job.bits <= 32 {
        return;
    }
    let candidates: Vec<u64> = hits.drain(from..).collect();
    for n in candidates {
        portable::search(job, n, n + 1, hits);
    }
}

/// Fills `blocks[j]` with the tail for counter `start + j` (the last lanes repeat the last
/// counter when fewer than `LANES` remain) and returns how many lanes are real.
#[inline(always)]
fn fill(blocks: &mut [[u8; 128]; LANES], at: usize, width: usize, n: u64, end: u64) -> usize {
    let real = (end - n).min(LANES as u64) as usize;
    for (j, b) in blocks.iter_mut().enumerate() {
        let c = n + (j.min(real - 1)) as u64;
        encode_counter(c, &mut b[at..at + width]);
    }
    real
}

const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 over `LANES` candidates: `abef`/`cdgh` hold each candidate's state in SHA-NI order.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn sha256_blocks(
    abef: &mut [__m128i; LANES],
    cdgh: &mut [__m128i; LANES],
    blocks: &[[u8; 128]; LANES],
    offset: usize,
) {
    let bswap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let (save_abef, save_cdgh) = (*abef, *cdgh);
    let mut w = [[_mm_setzero_si128(); 4]; LANES];
    for j in 0..LANES {
        for (k, wk) in w[j].iter_mut().enumerate() {
            // SAFETY: offset + 16k + 16 <= 128 since offset is 0 or 64 and k < 4.
            let p = unsafe { blocks[j].as_ptr().add(offset + 16 * k) } as *const __m128i;
            // SAFETY: `p` points at 16 readable bytes inside `blocks[j]`; loadu has no alignment need.
            *wk = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(p) }, bswap);
        }
    }
    macro_rules! quad {
        ($r:expr) => {{
            // SAFETY: 4r + 4 <= 64 elements of K256.
            let k = unsafe { _mm_loadu_si128(K256.as_ptr().add(4 * $r) as *const __m128i) };
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
                abef[j] = _mm_sha256rnds2_epu32(abef[j], cdgh[j], _mm_shuffle_epi32::<0x0E>(t1));
            }
        }};
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
    for j in 0..LANES {
        abef[j] = _mm_add_epi32(abef[j], save_abef[j]);
        cdgh[j] = _mm_add_epi32(cdgh[j], save_cdgh[j]);
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn sha256_scan(
    state: &[u32; 8],
    tail: &[u8],
    at: usize,
    job: &Job,
    start: u64,
    end: u64,
    hits: &mut Vec<u64>,
) {
    // SAFETY: `state` holds 8 words: two unaligned 16-byte loads stay inside it.
    let (dcba, efgh) = unsafe {
        (
            _mm_loadu_si128(state.as_ptr() as *const __m128i),
            _mm_loadu_si128(state.as_ptr().add(4) as *const __m128i),
        )
    };
    let cdab = _mm_shuffle_epi32::<0xB1>(dcba);
    let hgfe = _mm_shuffle_epi32::<0x1B>(efgh);
    let abef0 = _mm_alignr_epi8::<8>(cdab, hgfe);
    let cdgh0 = _mm_blend_epi16::<0xF0>(hgfe, cdab);
    let mut blocks = [[0u8; 128]; LANES];
    for b in &mut blocks {
        b[..tail.len()].copy_from_slice(tail);
    }
    let nblocks = tail.len() / 64;
    let mut n = start;
    while n < end {
        let real = fill(&mut blocks, at, job.width, n, end);
        let mut abef = [abef0; LANES];
        let mut cdgh = [cdgh0; LANES];
        for b in 0..nblocks {
            // SAFETY: the features this function enables are the ones `sha256_blocks` needs.
            unsafe { sha256_blocks(&mut abef, &mut cdgh, &blocks, 64 * b) };
        }
        for (j, s) in abef.iter().enumerate().take(real) {
            if first_word_ok(_mm_extract_epi32::<3>(*s) as u32, job.bits) {
                hits.push(n + j as u64);
            }
        }
        n += real as u64;
    }
}

/// SHA-1 over `LANES` candidates; `abcd` has `a` in its top lane, `e` likewise.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn sha1_blocks(
    abcd: &mut [__m128i; LANES],
    e: &mut [__m128i; LANES],
    blocks: &[[u8; 128]; LANES],
    offset: usize,
) {
    let bswap = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
    let (save_abcd, save_e) = (*abcd, *e);
    let mut w = [[_mm_setzero_si128(); 4]; LANES];
    for j in 0..LANES {
        for (k, wk) in w[j].iter_mut().enumerate() {
            // SAFETY: offset + 16k + 16 <= 128 since offset is 0 or 64 and k < 4.
            let p = unsafe { blocks[j].as_ptr().add(offset + 16 * k) } as *const __m128i;
            // SAFETY: `p` points at 16 readable bytes inside `blocks[j]`.
            *wk = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(p) }, bswap);
        }
    }
    // `prev` is the abcd that went into the previous group of four rounds: sha1nexte derives
    // the next group's e from it.
    let mut prev = *abcd;
    for j in 0..LANES {
        let we = _mm_add_epi32(e[j], w[j][0]);
        prev[j] = abcd[j];
        abcd[j] = _mm_sha1rnds4_epu32::<0>(abcd[j], we);
    }
    macro_rules! group {
        ($g:expr, $f:expr) => {{
            for j in 0..LANES {
                if $g >= 4 {
                    let t = _mm_sha1msg1_epu32(w[j][$g % 4], w[j][($g + 1) % 4]);
                    let t = _mm_xor_si128(t, w[j][($g + 2) % 4]);
                    w[j][$g % 4] = _mm_sha1msg2_epu32(t, w[j][($g + 3) % 4]);
                }
                let we = _mm_sha1nexte_epu32(prev[j], w[j][$g % 4]);
                prev[j] = abcd[j];
                abcd[j] = _mm_sha1rnds4_epu32::<$f>(abcd[j], we);
            }
        }};
    }
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
    for j in 0..LANES {
        e[j] = _mm_sha1nexte_epu32(prev[j], save_e[j]);
        abcd[j] = _mm_add_epi32(abcd[j], save_abcd[j]);
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn sha1_scan(
    state: &[u32; 8],
    tail: &[u8],
    at: usize,
    job: &Job,
    start: u64,
    end: u64,
    hits: &mut Vec<u64>,
) {
    // SAFETY: `state` holds 8 words; the first 4 are read.
    let abcd0 =
        _mm_shuffle_epi32::<0x1B>(unsafe { _mm_loadu_si128(state.as_ptr() as *const __m128i) });
    let e0 = _mm_set_epi32(state[4] as i32, 0, 0, 0);
    let mut blocks = [[0u8; 128]; LANES];
    for b in &mut blocks {
        b[..tail.len()].copy_from_slice(tail);
    }
    let nblocks = tail.len() / 64;
    let mut n = start;
    while n < end {
        let real = fill(&mut blocks, at, job.width, n, end);
        let mut abcd = [abcd0; LANES];
        let mut e = [e0; LANES];
        for b in 0..nblocks {
            // SAFETY: the features this function enables are the ones `sha1_blocks` needs.
            unsafe { sha1_blocks(&mut abcd, &mut e, &blocks, 64 * b) };
        }
        for (j, s) in abcd.iter().enumerate().take(real) {
            if first_word_ok(_mm_extract_epi32::<3>(*s) as u32, job.bits) {
                hits.push(n + j as u64);
            }
        }
        n += real as u64;
    }
}
