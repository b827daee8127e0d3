//! Spent-stamp stores: a stamp is accepted once per receiver. The verifier records a stamp only
//! after every other check passed, keyed by [`spent_key`], until the stamp would have expired.

#[cfg(feature = "store")]
mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "store")]
pub use file::{FileStore, Stats};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisOptions, RedisStore, SCHEMES as REDIS_SCHEMES, redact};

use sha2::Digest as _;

use crate::error::Error;
use crate::stamp::{Stamp, Version};

/// A digest that names a stamp in a store.
pub type SpentKey = [u8; 32];

/// One stamp to record: its key, the key an earlier build recorded the same stamp under (so an
/// upgrade opens no replay window), and how long the entry must be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spend {
    /// The stamp's key ([`spent_key`]).
    pub key: SpentKey,
    /// The key earlier builds used for this stamp ([`legacy_key`]); an entry under it also makes
    /// the stamp spent.
    pub legacy: Option<SpentKey>,
    /// The stamp's date (Unix seconds), by which a store may file the entry (the file store
    /// keeps one table per hour of dates). Every `Spend` of one key must carry the same date,
    /// as every check of one stamp does; `None` files the entry with the other undated ones.
    pub date: Option<i64>,
    /// Unix seconds until which the entry must be kept ([`i64::MAX`]: for good).
    pub keep_until: i64,
}

impl From<(SpentKey, i64)> for Spend {
    /// An undated entry.
    fn from((key, keep_until): (SpentKey, i64)) -> Spend {
        Spend {
            key,
            legacy: None,
            date: None,
            keep_until,
        }
    }
}

/// A set of spent stamps, each kept at least until the time it was recorded (or last refused)
/// with.
///
/// An entry makes its stamp spent for as long as it is in the store, whatever its keep-until
/// time: only purging removes it, and purging removes only entries whose time has passed. A
/// refused stamp's entry is kept at least as long as the refusing checker asks, so a checker
/// with a longer acceptance window that has once seen a stamp spent never sees it fresh again.
pub trait SpentStore: Send + Sync {
    /// Records `key` as spent until at least `keep_until` (Unix seconds). Returns `true` when the
    /// stamp was fresh (absent) and is now recorded, `false` when it was already spent. Atomic:
    /// of two callers racing on one key, exactly one gets `true`.
    fn spend(&self, key: &SpentKey, keep_until: i64, now: i64) -> Result<bool, Error> {
        Ok(self.spend_many(&[Spend::from((*key, keep_until))], now)?[0])
    }

    /// Records a batch at once (for a durable store, one commit): the result for item i is what
    /// `spend` would have said, in order, so a key repeated within the batch is fresh once. An
    /// item is fresh when neither its key nor its legacy key is in the store. `now` is only used
    /// to purge entries whose time has passed.
    fn spend_many(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error>;

    /// [`spend_many`](Self::spend_many), all or nothing: the items are recorded only if every
    /// one is fresh; when any is spent (or repeated in the batch) nothing is written, and the
    /// result says which were fresh. A message whose stamps are checked together burns none of
    /// them when one turns out spent. The default is not atomic (it records the fresh ones);
    /// the stores of this crate override it.
    fn spend_if_all_fresh(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
        self.spend_many(items, now)
    }

    /// Removes entries whose keep-until time has passed at `now`; returns how many went. A
    /// store may keep an entry longer than its own time (the file store drops an hour of stamp
    /// dates at once, when the latest time asked for any of its entries has passed), never
    /// shorter.
    fn purge(&self, now: i64) -> Result<u64, Error>;

    /// How many entries the store holds, those past their time included until they are purged.
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
            fn spend(&self, key: &SpentKey, keep_until: i64, now: i64) -> Result<bool, Error> {
                (**self).spend(key, keep_until, now)
            }
            fn spend_many(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
                (**self).spend_many(items, now)
            }
            fn spend_if_all_fresh(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
                (**self).spend_if_all_fresh(items, now)
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

/// The key a stamp is recorded under: SHA-256 over a domain tag and the stamp's identity. For
/// version 2 the identity is the prefix, everything before the counters (version, algorithm,
/// bits, parts, date, resource, extension, rand): any two texts with one prefix are one stamp,
/// whichever counters they carry, so parts recombined from a larger set of solutions are spent
/// once. For versions 0 and 1 it is the whole text (each text is its own work).
pub fn spent_key(stamp: &Stamp) -> SpentKey {
    let mut h = sha2::Sha256::new();
    match stamp.version() {
        Version::V2 => {
            h.update(b"pennyblack spent-key 2\0");
            h.update(stamp.prefix().as_bytes());
        }
        Version::V0 | Version::V1 => {
            h.update(b"pennyblack spent-key 1\0");
            h.update(stamp.as_str().as_bytes());
        }
    }
    h.finalize().into()
}

/// The key builds before the prefix rule recorded a version 2 stamp under (its prefix and its
/// counters sorted and joined by commas); `None` for versions 0 and 1, whose key is unchanged.
/// A store checks it too, so a stamp spent before an upgrade stays spent after it.
pub fn legacy_key(stamp: &Stamp) -> Option<SpentKey> {
    if stamp.version() != Version::V2 {
        return None;
    }
    let mut h = sha2::Sha256::new();
    h.update(b"pennyblack spent-key 1\0");
    if stamp.counters().is_sorted() {
        // In increasing order (as minters write them) the text is the prefix and the sorted list.
        h.update(stamp.as_str().as_bytes());
    } else {
        let mut counters: Vec<&str> = stamp.counters().collect();
        counters.sort_unstable();
        h.update(stamp.prefix().as_bytes());
        for (i, c) in counters.iter().enumerate() {
            if i > 0 {
                h.update(b",");
            }
            h.update(c.as_bytes());
        }
    }
    Some(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key as first defined (now the legacy key of version 2 stamps): the domain tag, the prefix, the sorted counters joined by
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
            let legacy = legacy_key(&stamp).unwrap_or_else(|| spent_key(&stamp));
            assert_eq!(legacy, reference(&stamp), "{text}");
            keys.push(spent_key(&stamp));
        }
        // Reordered parts are the same stamp; so are other counters after the same prefix
        // (recombined parts); different stamps have different keys.
        let other: Stamp =
            "2:sha256:4:3:261127:bob@example.org::AAAAAAAAAAAAAAAAAAAAAA:AAAE,AAAF,AAAG"
                .parse()
                .unwrap();
        assert_eq!(spent_key(&other), keys[2]);
        assert_ne!(legacy_key(&other), legacy_key(&texts[2].parse().unwrap()));
        assert_eq!(keys[2], keys[3]);
        assert_eq!(keys[2], keys[4]);
        assert_eq!(keys[5], keys[6]);
        assert_ne!(keys[0], keys[2]);
        assert_ne!(keys[2], keys[5]);
    }
}
