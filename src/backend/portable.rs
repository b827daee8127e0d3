//! The portable kernel: the `sha1` and `sha2` crates' block functions from a precomputed
//! midstate, and a scalar BLAKE3 compression, so each attempt hashes only the final block(s).
//! Also the precomputation every kernel shares (see `Job`), and the memory-hard algorithms:
//! Argon2id, whose attempts are whole Argon2 evaluations (the memory fill, not the hash, is the
//! cost), and Equi-X, whose attempts are solves of one nonce each.

use super::{B3Tail, Job, MdTail, bytes_have_zero_bits, encode_counter, words_have_zero_bits};
use crate::stamp::Algorithm;

const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];
pub(crate) const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// BLAKE3 flags.
pub(crate) const CHUNK_START: u32 = 1;
pub(crate) const CHUNK_END: u32 = 2;
pub(crate) const ROOT: u32 = 8;

/// BLAKE3's message word order for each of the 7 rounds: the permutation applied repeatedly.
pub(crate) const B3_SCHEDULE: [[usize; 16]; 7] = {
    const PERM: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
    let mut s = [[0usize; 16]; 7];
    let mut i = 0;
    while i < 16 {
        s[0][i] = i;
        i += 1;
    }
    let mut r = 1;
    while r < 7 {
        let mut i = 0;
        while i < 16 {
            s[r][i] = s[r - 1][PERM[i]];
            i += 1;
        }
        r += 1;
    }
    s
};

fn as_blocks(bytes: &[u8]) -> &[[u8; 64]] {
    let (blocks, rest) = bytes.as_chunks::<64>();
    debug_assert!(rest.is_empty());
    blocks
}

/// Midstate and padded final block(s) for SHA-1 or SHA-256.
pub(crate) fn md_tail(alg: Algorithm, prefix: &[u8], width: usize) -> MdTail {
    let full = prefix.len() / 64 * 64;
    let mut state = [0u32; 8];
    if alg == Algorithm::Sha1 {
        let mut s = SHA1_IV;
        sha1::block_api::compress(&mut s, as_blocks(&prefix[..full]));
        state[..5].copy_from_slice(&s);
    } else {
        state = SHA256_IV;
        sha2::block_api::compress256(&mut state, as_blocks(&prefix[..full]));
    }
    // Merkle-Damgard padding of the whole message: 0x80, zeros, 64-bit length in bits.
    let total = prefix.len() + width;
    let mut tail = prefix[full..].to_vec();
    tail.resize(tail.len() + width, b'A');
    tail.push(0x80);
    while tail.len() % 64 != 56 {
        tail.push(0);
    }
    tail.extend_from_slice(&((total as u64) * 8).to_be_bytes());
    MdTail {
        state,
        tail,
        counter_at: prefix.len() - full,
    }
}

/// BLAKE3 precomputation, when the message is a single chunk (at most 1024 bytes) and the whole
/// counter lies in its last block; `None` otherwise.
pub(crate) fn b3_tail(prefix: &[u8], width: usize) -> Option<B3Tail> {
    let total = prefix.len() + width;
    if total > 1024 || width == 0 {
        return None;
    }
    let last = (total - 1) / 64 * 64;
    if prefix.len() < last {
        return None;
    }
    let mut cv = SHA256_IV;
    for (i, block) in prefix[..last].chunks_exact(64).enumerate() {
        let flags = if i == 0 { CHUNK_START } else { 0 };
        let out = b3_compress(&cv, &le_words(block), 64, flags);
        cv.copy_from_slice(&out[..8]);
    }
    let mut block = [0u8; 64];
    block[..prefix.len() - last].copy_from_slice(&prefix[last..]);
    let flags = CHUNK_END | ROOT | if last == 0 { CHUNK_START } else { 0 };
    Some(B3Tail {
        cv,
        block,
        block_len: (total - last) as u32,
        flags,
        counter_at: prefix.len() - last,
    })
}

/// Little-endian words of a (zero-padded) block.
pub(crate) fn le_words(block: &[u8]) -> [u32; 16] {
    let mut padded = [0u8; 64];
    padded[..block.len()].copy_from_slice(block);
    let mut w = [0u32; 16];
    for (i, c) in padded.chunks_exact(4).enumerate() {
        w[i] = u32::from_le_bytes(c.try_into().expect("4 bytes"));
    }
    w
}

/// The first half of BLAKE3's G (message word `x`, rotations 16 and 12).
#[inline(always)]
fn g1(v: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(12);
}

/// The second half of BLAKE3's G (message word `y`, rotations 8 and 7).
#[inline(always)]
fn g2(v: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, y: u32) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(8);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(7);
}

#[inline(always)]
fn g(v: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) {
    g1(v, a, b, c, d, x);
    g2(v, a, b, c, d, y);
}

/// The initial BLAKE3 state for chunk 0 (counter 0).
#[inline(always)]
fn b3_init(cv: &[u32; 8], block_len: u32, flags: u32) -> [u32; 16] {
    [
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        SHA256_IV[0],
        SHA256_IV[1],
        SHA256_IV[2],
        SHA256_IV[3],
        0,
        0,
        block_len,
        flags,
    ]
}

/// What lanes that differ only in message word 15 share, for the AVX2 kernel: computed once
/// per run of counters whose last digit is in word 15, and each group of lanes goes on from
/// here. Round 0 reads word 15 only in the second half of its last G, so `pre` is the state
/// after the rest of round 0, with the start of round 1 that reads no lane-dependent value
/// folded in: v1 and v13 after the first three steps of G(1, 5, 9, 13), v2 after the first step
/// of G(2, 6, 10, 14). `s34`, `q0` and `q7` are the lane-independent halves of three sums:
/// v3 + v4 (round 0), v0 + m2 and m4 + v7 (round 1).
pub(crate) struct B3W15Head {
    pub(crate) pre: [u32; 16],
    pub(crate) s34: u32,
    pub(crate) q0: u32,
    pub(crate) q7: u32,
}

/// See [`B3W15Head`].
pub(crate) fn b3_w15_head(cv: &[u32; 8], m: &[u32; 16], block_len: u32, flags: u32) -> B3W15Head {
    let mut v = b3_init(cv, block_len, flags);
    g(&mut v, 0, 4, 8, 12, m[0], m[1]);
    g(&mut v, 1, 5, 9, 13, m[2], m[3]);
    g(&mut v, 2, 6, 10, 14, m[4], m[5]);
    g(&mut v, 3, 7, 11, 15, m[6], m[7]);
    g(&mut v, 0, 5, 10, 15, m[8], m[9]);
    g(&mut v, 1, 6, 11, 12, m[10], m[11]);
    g(&mut v, 2, 7, 8, 13, m[12], m[13]);
    g1(&mut v, 3, 4, 9, 14, m[14]);
    // Round 0's last half G changes v3, v4, v9 and v14 only; round 1 reads m[S[i]].
    let s = B3_SCHEDULE[1];
    let head = B3W15Head {
        pre: v,
        s34: v[3].wrapping_add(v[4]),
        q0: v[0].wrapping_add(m[s[0]]),
        q7: m[s[6]].wrapping_add(v[7]),
    };
    let mut pre = head.pre;
    pre[1] = pre[1].wrapping_add(m[s[2]]).wrapping_add(pre[5]);
    pre[13] = (pre[13] ^ pre[1]).rotate_right(16);
    pre[2] = pre[2].wrapping_add(m[s[4]]).wrapping_add(pre[6]);
    B3W15Head { pre, ..head }
}

/// The BLAKE3 compression function for chunk 0 (counter 0), all 16 output words.
#[inline(always)]
pub(crate) fn b3_compress(cv: &[u32; 8], m: &[u32; 16], block_len: u32, flags: u32) -> [u32; 16] {
    let mut v = b3_init(cv, block_len, flags);
    macro_rules! round {
        ($r:literal) => {{
            const S: [usize; 16] = B3_SCHEDULE[$r];
            g(&mut v, 0, 4, 8, 12, m[S[0]], m[S[1]]);
            g(&mut v, 1, 5, 9, 13, m[S[2]], m[S[3]]);
            g(&mut v, 2, 6, 10, 14, m[S[4]], m[S[5]]);
            g(&mut v, 3, 7, 11, 15, m[S[6]], m[S[7]]);
            g(&mut v, 0, 5, 10, 15, m[S[8]], m[S[9]]);
            g(&mut v, 1, 6, 11, 12, m[S[10]], m[S[11]]);
            g(&mut v, 2, 7, 8, 13, m[S[12]], m[S[13]]);
            g(&mut v, 3, 4, 9, 14, m[S[14]], m[S[15]]);
        }};
    }
    round!(0);
    round!(1);
    round!(2);
    round!(3);
    round!(4);
    round!(5);
    round!(6);
    for i in 0..8 {
        v[i] ^= v[i + 8];
        v[i + 8] ^= cv[i];
    }
    v
}

/// Scans counters `start..end` and appends the hits.
pub(crate) fn search(job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    if let Some(md) = &job.md {
        let mut block = md.tail.clone();
        let at = md.counter_at;
        for n in start..end {
            encode_counter(n, &mut block[at..at + job.width]);
            let hit = if job.alg == Algorithm::Sha1 {
                let mut s: [u32; 5] = md.state[..5].try_into().expect("5 words");
                sha1::block_api::compress(&mut s, as_blocks(&block));
                words_have_zero_bits(&s, job.bits)
            } else {
                let mut s = md.state;
                sha2::block_api::compress256(&mut s, as_blocks(&block));
                words_have_zero_bits(&s, job.bits)
            };
            if hit {
                hits.push(n);
            }
        }
    } else if let Some(b3) = &job.b3 {
        let mut block = b3.block;
        let at = b3.counter_at;
        for n in start..end {
            encode_counter(n, &mut block[at..at + job.width]);
            let out = b3_compress(&b3.cv, &le_words(&block), b3.block_len, b3.flags);
            let mut bytes = [0u8; 32];
            for (i, w) in out[..8].iter().enumerate() {
                bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
            }
            if bytes_have_zero_bits(&bytes, job.bits) {
                hits.push(n);
            }
        }
    } else if let Some(h) = &job.b3_hasher {
        let mut digits = vec![0u8; job.width];
        for n in start..end {
            encode_counter(n, &mut digits);
            let mut h = (**h).clone();
            h.update(&digits);
            if bytes_have_zero_bits(h.finalize().as_bytes(), job.bits) {
                hits.push(n);
            }
        }
    } else if let Algorithm::Argon2id(params) = job.alg {
        // One Argon2id evaluation per counter, over this thread's reused block buffer.
        let mut pwd = job.prefix.clone();
        pwd.resize(job.prefix.len() + job.width, 0);
        for n in start..end {
            encode_counter(n, &mut pwd[job.prefix.len()..]);
            if bytes_have_zero_bits(&crate::argon2id::hash_minting(params, &pwd), job.bits) {
                hits.push(n);
            }
        }
    } else {
        // Equi-X: one solve per nonce, over this thread's reused solver memory.
        #[cfg(feature = "equix")]
        if let Some(found) = &job.equix {
            crate::equix::search(&job.prefix, start, end, job.bits, found, hits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// The kernel's hits are exactly the counters whose plain-crate hash reaches the target,
    /// for prefixes of every length across one and two block boundaries (and, for BLAKE3, past
    /// the one-chunk limit where the fallback takes over).
    #[test]
    fn matches_plain_crates_for_every_prefix_length() {
        for alg in Algorithm::ALL {
            let lens = (0..=140usize).chain([1000, 1014, 1015, 1016, 1017, 1030]);
            for len in lens {
                let prefix: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                let bits = 4;
                let job = Job::new(alg, &prefix, 8, bits);
                let mut hits = Vec::new();
                search(&job, 0, 200, &mut hits);
                let expect: Vec<u64> = (0..200)
                    .filter(|&n| {
                        let m = job.message(n);
                        let d: Vec<u8> = match alg {
                            Algorithm::Sha1 => sha1::Sha1::digest(&m).to_vec(),
                            Algorithm::Sha256 => sha2::Sha256::digest(&m).to_vec(),
                            Algorithm::Blake3 => blake3::hash(&m).as_bytes().to_vec(),
                            Algorithm::Argon2id(_) | Algorithm::Equix => {
                                unreachable!("ALL holds the hashes")
                            }
                        };
                        bytes_have_zero_bits(&d, bits)
                    })
                    .collect();
                assert_eq!(hits, expect, "{alg} prefix length {len}");
            }
        }
    }

    /// Argon2id attempts: the hits are exactly the counters whose Argon2id output (the plain
    /// crate, through `argon2id::part`) reaches the target.
    #[test]
    fn argon2id_hits_are_the_plain_evaluations() {
        let params = crate::stamp::Argon2Params::new(16, 1, 2).unwrap();
        let alg = Algorithm::Argon2id(params);
        let prefix = b"2:argon2id-m16-t1-p2:3:1:261129:bob@example.org::AAAAAAAAAAAAAAAA:";
        let job = Job::new(alg, prefix, 8, 3);
        let mut hits = Vec::new();
        search(&job, 5, 100, &mut hits);
        let expect: Vec<u64> = (5..100)
            .filter(|&n| {
                let mut c = [0u8; 8];
                encode_counter(n, &mut c);
                bytes_have_zero_bits(&crate::argon2id::part(params, prefix, &c), 3)
            })
            .collect();
        assert!(!expect.is_empty());
        assert_eq!(hits, expect);
    }
}
