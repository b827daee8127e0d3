//! The portable kernel: the `sha1`, `sha2` and `blake3` crates, with the prefix's full blocks
//! compressed once (the midstate) so each attempt hashes only the final block(s).

use super::{Job, bytes_have_zero_bits, encode_counter, words_have_zero_bits};
use crate::stamp::Algorithm;

const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// What the portable kernel computes once per stamp.
pub(crate) enum Precomputed {
    /// SHA-1 or SHA-256: the state after the prefix's full blocks, and the padded final block(s)
    /// with the counter's place at `counter_at` (an offset into `tail`).
    Md {
        state: [u32; 8],
        tail: Vec<u8>,
        counter_at: usize,
    },
    /// BLAKE3: a hasher that has absorbed the prefix.
    Blake3(Box<blake3::Hasher>),
}

impl Precomputed {
    pub(crate) fn new(alg: Algorithm, prefix: &[u8], width: usize) -> Precomputed {
        match alg {
            Algorithm::Sha1 | Algorithm::Sha256 => {
                let full = prefix.len() / 64 * 64;
                let mut state = [0u32; 8];
                match alg {
                    Algorithm::Sha1 => {
                        let mut s = SHA1_IV;
                        sha1::block_api::compress(&mut s, as_blocks(&prefix[..full]));
                        state[..5].copy_from_slice(&s);
                    }
                    _ => {
                        state = SHA256_IV;
                        sha2::block_api::compress256(&mut state, as_blocks(&prefix[..full]));
                    }
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
                Precomputed::Md {
                    state,
                    tail,
                    counter_at: prefix.len() - full,
                }
            }
            Algorithm::Blake3 => {
                let mut h = blake3::Hasher::new();
                h.update(prefix);
                Precomputed::Blake3(Box::new(h))
            }
        }
    }
}

fn as_blocks(bytes: &[u8]) -> &[[u8; 64]] {
    let (blocks, rest) = bytes.as_chunks::<64>();
    debug_assert!(rest.is_empty());
    blocks
}

/// Scans counters `start..end` and appends the hits.
pub(crate) fn search(job: &Job, start: u64, end: u64, hits: &mut Vec<u64>) {
    match (&job.portable, job.alg) {
        (
            Precomputed::Md {
                state,
                tail,
                counter_at,
            },
            alg,
        ) => {
            let mut block = tail.clone();
            let at = *counter_at;
            for n in start..end {
                encode_counter(n, &mut block[at..at + job.width]);
                let hit = if alg == Algorithm::Sha1 {
                    let mut s: [u32; 5] = state[..5].try_into().expect("5 words");
                    sha1::block_api::compress(&mut s, as_blocks(&block));
                    words_have_zero_bits(&s, job.bits)
                } else {
                    let mut s = *state;
                    sha2::block_api::compress256(&mut s, as_blocks(&block));
                    words_have_zero_bits(&s, job.bits)
                };
                if hit {
                    hits.push(n);
                }
            }
        }
        (Precomputed::Blake3(h), _) => {
            let mut digits = vec![0u8; job.width];
            for n in start..end {
                encode_counter(n, &mut digits);
                let mut h = (**h).clone();
                h.update(&digits);
                if bytes_have_zero_bits(h.finalize().as_bytes(), job.bits) {
                    hits.push(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// The kernel's hits are exactly the counters whose plain-crate hash reaches the target,
    /// for prefixes of every length across one and two block boundaries.
    #[test]
    fn matches_plain_crates_for_every_prefix_length() {
        for alg in Algorithm::ALL {
            for len in 0..=140usize {
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
                        };
                        bytes_have_zero_bits(&d, bits)
                    })
                    .collect();
                assert_eq!(hits, expect, "{alg} prefix length {len}");
            }
        }
    }
}
