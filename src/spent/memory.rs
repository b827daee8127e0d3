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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SpentKey, i64>> {
        // A panic while holding the lock cannot leave the map half-updated: recover it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SpentStore for MemoryStore {
    fn spend_many(&self, items: &[Spend], _now: i64) -> Result<Vec<bool>, Error> {
        let mut map = self.lock();
        Ok(items
            .iter()
            .map(|item| {
                let legacy = item.legacy.is_some_and(|k| map.contains_key(&k));
                match map.get_mut(&item.key) {
                    Some(keep) => {
                        *keep = (*keep).max(item.keep_until);
                        false
                    }
                    None => {
                        map.insert(item.key, item.keep_until);
                        !legacy
                    }
                }
            })
            .collect())
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
