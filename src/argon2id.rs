//! Argon2id parts (docs/FORMAT.md, "Argon2id"): one evaluation of Argon2id (RFC 9106, version
//! 0x13) through the RustCrypto `argon2` crate, for the verifier and the minter alike.
//!
//! Each thread keeps one block buffer and reuses it, so minting on T threads holds T x m KiB
//! and nothing grows per attempt. A verifying thread (rayon's global pool, as long-lived as the
//! process) frees a buffer above [`KEEP_BYTES`] after its evaluation; a minting thread keeps
//! its buffer whatever its size (`hash_minting`): a fresh 64 MiB buffer costs about as much
//! as the evaluation itself (mapping and zeroing 16,384 pages: 29 ms against 31 to 40 ms on
//! the development machine), and the minter's threads, bounded by `Minter::max_memory`, end
//! with their `Minter`.

use std::cell::RefCell;

use argon2::{Argon2, Block, Params, Version};

use crate::stamp::Argon2Params;

/// The salt of every part: fixed, since the password (the stamp's prefix and counter) already
/// holds the stamp's random field. At least 8 bytes, as Argon2 requires.
pub const SALT: &[u8] = b"pennyblack argon2id stamp v2";

/// Output length in bytes.
pub const OUTPUT_LEN: usize = 32;

/// Block buffers up to this size stay allocated on their thread between evaluations.
pub const KEEP_BYTES: usize = 16 << 20;

thread_local! {
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2id over `prefix || counter` with the stamp's parameters and [`SALT`], 32 bytes out.
pub(crate) fn part(params: Argon2Params, prefix: &[u8], counter: &[u8]) -> [u8; OUTPUT_LEN] {
    let mut pwd = Vec::with_capacity(prefix.len() + counter.len());
    pwd.extend_from_slice(prefix);
    pwd.extend_from_slice(counter);
    hash(params, &pwd)
}

/// Argon2id over `pwd` with the stamp's parameters and [`SALT`], 32 bytes out; a block buffer
/// above [`KEEP_BYTES`] is freed afterwards (the verifier's evaluations).
pub(crate) fn hash(params: Argon2Params, pwd: &[u8]) -> [u8; OUTPUT_LEN] {
    hash_salted(params, pwd, SALT, KEEP_BYTES)
}

/// [`hash`] for the minter (its search and its re-check of a hit): the thread keeps its block
/// buffer whatever its size, for the next attempt.
pub(crate) fn hash_minting(params: Argon2Params, pwd: &[u8]) -> [u8; OUTPUT_LEN] {
    hash_salted(params, pwd, SALT, usize::MAX)
}

fn hash_salted(
    params: Argon2Params,
    pwd: &[u8],
    salt: &[u8],
    keep_bytes: usize,
) -> [u8; OUTPUT_LEN] {
    // The parser admits only parameters Argon2 accepts (m >= 8p, t >= 1, 1 <= p <= 255).
    let p = Params::new(
        params.memory_kib,
        params.passes,
        params.lanes,
        Some(OUTPUT_LEN),
    )
    .expect("parameters checked by Argon2Params::new");
    let a = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, p);
    let blocks = a.params().block_count();
    let mut out = [0u8; OUTPUT_LEN];
    MEMORY.with_borrow_mut(|mem| {
        if mem.len() != blocks {
            mem.clear();
            mem.resize(blocks, Block::default());
        }
        a.hash_password_into_with_memory(pwd, salt, &mut out, &mut mem[..])
            .expect("password, salt and output lengths are within Argon2's limits");
        if blocks * 1024 > keep_bytes {
            *mem = Vec::new();
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate against the reference `argon2` tool (Debian package `argon2`) for a plain
    /// password and salt: `echo -n password | argon2 somesaltsomesalt -id -t 2 -k 64 -p 1 -l 32
    /// -r`. The stamp-level known answers, against argon2-cffi, are in tests/data.
    #[test]
    fn matches_reference_tool() {
        let params = Argon2Params::new(64, 2, 1).unwrap();
        let out = hash_salted(params, b"password", b"somesaltsomesalt", KEEP_BYTES);
        assert_eq!(
            hex(&out),
            "1a98fba8e6394425c9bdc333a9c750aaf811df070f5fb4a5788e1cf4db5793a1"
        );
    }

    /// Every row of tests/data/argon2id-kat.tsv (parts computed by argon2-cffi, the reference
    /// C implementation) is what `part` computes for that prefix, counter and m, t, p: all 32
    /// bytes, so the salt, the password's assembly, the version and the output length are those
    /// of the format. The table's zero-bit column agrees with its outputs.
    #[test]
    fn every_part_in_the_known_answer_table() {
        let table = include_str!("../tests/data/argon2id-kat.tsv");
        let mut rows = 0;
        for line in table.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split('\t').collect();
            let [prefix, counter, m, t, p, output, zero_bits] = f[..] else {
                panic!("bad row {line:?}")
            };
            let params =
                Argon2Params::new(m.parse().unwrap(), t.parse().unwrap(), p.parse().unwrap())
                    .unwrap();
            let out = part(params, prefix.as_bytes(), counter.as_bytes());
            assert_eq!(hex(&out), output, "{prefix}{counter}");
            let zeros = out
                .iter()
                .position(|&b| b != 0)
                .map_or(256, |i| 8 * i as u32 + out[i].leading_zeros());
            assert_eq!(zeros.to_string(), zero_bits, "{prefix}{counter}");
            rows += 1;
        }
        assert!(rows >= 12, "{rows} rows: the table was cut short");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
