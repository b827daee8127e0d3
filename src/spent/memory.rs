//! An in-memory spent store, for tests and for processes that live as long as their cache.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Spend, SpentKey, SpentStore};
use crate::error::Error;

/// Spent stamps in a `HashMap` behind a mutex. Lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<SpentKey, i64>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fresh flags of `items` under the lock; recorded unless `all` and one is not fresh.
    fn spend_locked(
        &self,
        map: &mut HashMap<SpentKey, i64>,
        items: &[Spend],
        all: bool,
    ) -> Vec<bool> {
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<bool> = items
            .iter()
            .map(|item| {
                let known = map.contains_key(&item.key)
                    || item.legacy.is_some_and(|k| map.contains_key(&k));
                seen.insert(item.key) && !known
            })
            .collect();
        if all && fresh.contains(&false) {
            // Nothing is recorded; the spent entries are still kept as long as asked.
            for item in items {
                if let Some(keep) = map.get_mut(&item.key) {
                    *keep = (*keep).max(item.keep_until);
                }
            }
            return fresh;
        }
        for item in items {
            let keep = map.entry(item.key).or_insert(item.keep_until);
            *keep = (*keep).max(item.keep_until);
        }
        fresh
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SpentKey, i64>> {
        // A panic while holding the lock cannot leave the map half-updated: recover it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SpentStore for MemoryStore {
    fn spend_many(&self, items: &[Spend], _now: i64) -> Result<Vec<bool>, Error> {
        Ok(self.spend_locked(&mut self.lock(), items, false))
    }

    fn spend_if_all_fresh(&self, items: &[Spend], _now: i64) -> Result<Vec<bool>, Error> {
        Ok(self.spend_locked(&mut self.lock(), items, true))
    }

    fn purge(&self, now: i64) -> Result<u64, Error> {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, &mut exp| exp > now);
        Ok((before - map.len()) as u64)
    }

    fn len(&self) -> Result<u64, Error> {
        Ok(self.lock().len() as u64)
    }
}
