//! The durable spent store: one `redb` file. Each `spend` is one ACID transaction committed
//! with fsync before it returns, so an accepted stamp is never forgotten by a crash.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{SpentKey, SpentStore};
use crate::error::Error;

const SPENT: TableDefinition<&[u8], i64> = TableDefinition::new("spent");
/// Small values of the store's own: the purge cursor.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// An index by expiry that versions before 0.2 kept; dropped on open (it cost a second B-tree
/// insert per stamp).
const OLD_BY_EXPIRY: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("spent_by_expiry");
/// The key after which the next purge sweep starts.
const CURSOR: &str = "purge_cursor";

/// Entries examined for expiry per transaction, beyond one per stamp recorded: the sweep goes
/// round the table at least as fast as it grows, a little at a time, with no full scan on any
/// check, so an expired entry is gone after at most one lap.
const PURGE_STEP: usize = 16;

/// How long `open` waits for another process that holds the file.
const OPEN_WAIT: Duration = Duration::from_secs(10);

/// A spent store in one file, safe against crashes.
pub struct FileStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish()
    }
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Store(format!("{}: {e}", path.display()))
}

impl FileStore {
    /// Opens the store at `path`, creating it (and its parent folder) if needed. Another process
    /// holding the file is waited for, up to 10 seconds.
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore, Error> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
        }
        let started = Instant::now();
        let db = loop {
            match Database::create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < OPEN_WAIT => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(store_err(path, e)),
            }
        };
        let tx = db.begin_write().map_err(|e| store_err(path, e))?;
        tx.open_table(SPENT).map_err(|e| store_err(path, e))?;
        tx.open_table(META).map_err(|e| store_err(path, e))?;
        tx.delete_table(OLD_BY_EXPIRY)
            .map_err(|e| store_err(path, e))?;
        tx.commit().map_err(|e| store_err(path, e))?;
        Ok(FileStore {
            db,
            path: path.to_owned(),
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        store_err(&self.path, e)
    }
}

/// What `FileStore::stats` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Entries held.
    pub entries: u64,
    /// Of those, entries already expired (not yet purged).
    pub expired: u64,
    /// The earliest expiry among unexpired entries (Unix seconds).
    pub next_expiry: Option<i64>,
    /// The file's size in bytes.
    pub file_bytes: u64,
}

impl FileStore {
    /// Counts entries and expired entries at `now` (reads the whole table: an operator's
    /// command, not part of checking).
    pub fn stats(&self, now: i64) -> Result<Stats, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
        let (mut entries, mut expired, mut next_expiry) = (0u64, 0u64, None::<i64>);
        for r in spent.iter().map_err(|e| self.err(e))? {
            let (_, v) = r.map_err(|e| self.err(e))?;
            let exp = v.value();
            entries += 1;
            if exp <= now {
                expired += 1;
            } else {
                next_expiry = Some(next_expiry.map_or(exp, |n| n.min(exp)));
            }
        }
        Ok(Stats {
            entries,
            expired,
            next_expiry,
            file_bytes: std::fs::metadata(&self.path).map_or(0, |m| m.len()),
        })
    }
}

/// Examines up to `budget` entries after the stored cursor (wrapping round to the start once),
/// removes those expired at `now`, and moves the cursor past them. Returns how many went.
fn sweep(
    spent: &mut redb::Table<'_, &[u8], i64>,
    meta: &mut redb::Table<'_, &str, &[u8]>,
    now: i64,
    budget: usize,
) -> Result<u64, redb::StorageError> {
    let cursor: Vec<u8> = meta
        .get(CURSOR)?
        .map(|v| v.value().to_vec())
        .unwrap_or_default();
    let mut seen: Vec<(Vec<u8>, i64)> = Vec::new();
    {
        use std::ops::Bound::{Excluded, Unbounded};
        let after = spent.range::<&[u8]>((Excluded(cursor.as_slice()), Unbounded))?;
        for r in after.take(budget) {
            let (k, v) = r?;
            seen.push((k.value().to_vec(), v.value()));
        }
    }
    let mut next = seen.last().map(|(k, _)| k.clone());
    if seen.len() < budget {
        // The end of the table: go round to the start, up to where this sweep began.
        let wrapped = spent.range::<&[u8]>(..=cursor.as_slice())?;
        for r in wrapped.take(budget - seen.len()) {
            let (k, v) = r?;
            next = Some(k.value().to_vec());
            seen.push((k.value().to_vec(), v.value()));
        }
    }
    let mut removed = 0;
    for (k, exp) in &seen {
        if *exp <= now {
            spent.remove(k.as_slice())?;
            removed += 1;
        }
    }
    meta.insert(CURSOR, next.unwrap_or_default().as_slice())?;
    Ok(removed)
}

impl SpentStore for FileStore {
    fn spend(&self, key: &SpentKey, expires_at: i64, now: i64) -> Result<bool, Error> {
        Ok(self.spend_many(&[(*key, expires_at)], now)?[0])
    }

    /// One transaction, one fsync, for the whole batch.
    fn spend_many(&self, items: &[(SpentKey, i64)], now: i64) -> Result<Vec<bool>, Error> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut fresh = vec![false; items.len()];
        // Visit keys in sorted order (B-tree inserts with locality), keeping each item's place;
        // the sort is stable, so of a key repeated in the batch the first occurrence wins.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| items[i].0);
        {
            let mut spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            for &i in &order {
                let (key, expires_at) = &items[i];
                // One B-tree operation for a fresh stamp: insert, and look at what was there.
                let old = spent
                    .insert(key.as_slice(), *expires_at)
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value());
                let is_fresh = match old {
                    Some(exp) if exp > now => {
                        // Still spent: put the original expiry back.
                        spent.insert(key.as_slice(), exp).map_err(|e| self.err(e))?;
                        false
                    }
                    _ => true,
                };
                fresh[i] = is_fresh;
            }
            sweep(&mut spent, &mut meta, now, items.len() + PURGE_STEP).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(fresh)
    }

    fn purge(&self, now: i64) -> Result<u64, Error> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let before = spent.len().map_err(|e| self.err(e))?;
            spent.retain(|_, exp| exp > now).map_err(|e| self.err(e))?;
            before - spent.len().map_err(|e| self.err(e))?
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    fn len(&self) -> Result<u64, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(SPENT).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }
}
