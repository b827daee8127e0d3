//! Spent-stamp stores: a stamp is accepted once per receiver. The verifier records a stamp only
//! after every other check passed, keyed by [`spent_key`], until the stamp would have expired.

mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use file::{FileStore, Stats};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;

use sha2::Digest as _;

use crate::error::Error;
use crate::stamp::{Stamp, Version};

/// A digest that names a stamp in a store.
pub type SpentKey = [u8; 32];

/// A set of spent stamps, each kept until its expiry time.
pub trait SpentStore: Send + Sync {
    /// Records `key` as spent until `expires_at` (Unix seconds). Returns `true` when the stamp was
    /// fresh (absent, or present but expired at `now`) and is now recorded, `false` when it was
    /// already spent. Atomic: of two callers racing on one key, exactly one gets `true`.
    fn spend(&self, key: &SpentKey, expires_at: i64, now: i64) -> Result<bool, Error>;

    /// Records a batch at once (for a durable store, one commit): the result for item i is what
    /// `spend` would have said, in order, so a key repeated within the batch is fresh once.
    fn spend_many(&self, items: &[(SpentKey, i64)], now: i64) -> Result<Vec<bool>, Error> {
        items
            .iter()
            .map(|(k, exp)| self.spend(k, *exp, now))
            .collect()
    }

    /// Removes every entry that has expired at `now`; returns how many were removed.
    fn purge(&self, now: i64) -> Result<u64, Error>;

    /// How many entries the store holds, expired ones included until they are purged.
    fn len(&self) -> Result<u64, Error>;

    /// Whether the store holds no entries.
    fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }
}

/// Shared and boxed stores are stores: several verifiers (or threads) can use one store through
/// an `Arc`, and a store chosen at run time can be a `Box<dyn SpentStore>`.
macro_rules! forward_store {
    ($($ptr:ident)::+) => {
        impl<T: SpentStore + ?Sized> SpentStore for $($ptr)::+<T> {
            fn spend(&self, key: &SpentKey, expires_at: i64, now: i64) -> Result<bool, Error> {
                (**self).spend(key, expires_at, now)
            }
            fn spend_many(&self, items: &[(SpentKey, i64)], now: i64) -> Result<Vec<bool>, Error> {
                (**self).spend_many(items, now)
            }
            fn purge(&self, now: i64) -> Result<u64, Error> {
                (**self).purge(now)
            }
            fn len(&self) -> Result<u64, Error> {
                (**self).len()
            }
        }
    };
}
forward_store!(std::sync::Arc);
forward_store!(Box);

/// The key a stamp is recorded under: SHA-256 over a domain tag and the stamp's canonical form.
/// For version 2 the counters are sorted first, so that reordering the parts of a stamp (which
/// changes its text but not its work) does not make it fresh again.
pub fn spent_key(stamp: &Stamp) -> SpentKey {
    let mut h = sha2::Sha256::new();
    h.update(b"pennyblack spent-key 1\0");
    match stamp.version() {
        // Counters in increasing order (as minters write them) are their sorted list already,
        // and the stamp's text is the prefix followed by that list: hash it as it stands.
        Version::V2 if stamp.counters().is_sorted() => h.update(stamp.as_str().as_bytes()),
        Version::V2 => {
            let mut counters: Vec<&str> = stamp.counters().collect();
            counters.sort_unstable();
            h.update(stamp.prefix().as_bytes());
            // The sorted counters joined by commas, fed piece by piece.
            for (i, c) in counters.iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                h.update(c.as_bytes());
            }
        }
        Version::V0 | Version::V1 => h.update(stamp.as_str().as_bytes()),
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key as first defined: the domain tag, the prefix, the sorted counters joined by
    /// commas (version 2) or the whole text (versions 0 and 1). Stores written by earlier
    /// builds hold these keys, so they must not change.
    fn reference(stamp: &Stamp) -> SpentKey {
        let mut canonical = b"pennyblack spent-key 1\0".to_vec();
        match stamp.version() {
            Version::V2 => {
                let mut counters: Vec<&str> = stamp.counters().collect();
                counters.sort_unstable();
                canonical.extend_from_slice(stamp.prefix().as_bytes());
                canonical.extend_from_slice(counters.join(",").as_bytes());
            }
            _ => canonical.extend_from_slice(stamp.as_str().as_bytes()),
        }
        sha2::Sha256::digest(&canonical).into()
    }

    #[test]
    fn keys_are_the_canonical_digest_whatever_the_counter_order() {
        let texts = [
            "1:20:261127:bob@example.org::c2FsdA==:MTIzNA==",
            "0:261127:bob@example.org:abc",
            "2:sha256:4:3:261127:bob@example.org::AAAAAAAAAAAAAAAAAAAAAA:AAAB,AAAC,AAAD",
            "2:sha256:4:3:261127:bob@example.org::AAAAAAAAAAAAAAAAAAAAAA:AAAC,AAAB,AAAD",
            "2:sha256:4:3:261127:bob@example.org::AAAAAAAAAAAAAAAAAAAAAA:AAAD,AAAC,AAAB",
            "2:blake3:4:2:261127:bob@example.org::AAAAAAAAAAAAAAAAAAAAAA:zz,AAAA",
            "2:blake3:4:2:261127:bob@example.org::AAAAAAAAAAAAAAAAAAAAAA:AAAA,zz",
        ];
        let mut keys = Vec::new();
        for text in texts {
            let stamp: Stamp = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(spent_key(&stamp), reference(&stamp), "{text}");
            keys.push(spent_key(&stamp));
        }
        // Reordered parts are the same stamp; different stamps have different keys.
        assert_eq!(keys[2], keys[3]);
        assert_eq!(keys[2], keys[4]);
        assert_eq!(keys[5], keys[6]);
        assert_ne!(keys[0], keys[2]);
        assert_ne!(keys[2], keys[5]);
    }
}
