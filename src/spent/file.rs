//! The durable spent store: one `redb` file. Each `spend` is one ACID transaction committed
//! with fsync before it returns, so an accepted stamp is never forgotten by a crash.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{SpentKey, SpentStore};
use crate::error::Error;

const SPENT: TableDefinition<&[u8], i64> = TableDefinition::new("spent");
/// The same entries ordered by expiry, so expired ones are found without a scan.
const BY_EXPIRY: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("spent_by_expiry");

/// Expired entries removed per transaction, beyond one per stamp recorded: purging keeps pace
/// with recording, a little at a time, with no full scan on any check.
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
        tx.open_table(BY_EXPIRY).map_err(|e| store_err(path, e))?;
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
    /// Counts entries and expired entries at `now`.
    pub fn stats(&self, now: i64) -> Result<Stats, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
        let index = tx.open_table(BY_EXPIRY).map_err(|e| self.err(e))?;
        let bound: (i64, &[u8]) = (now.saturating_add(1), &[]);
        let expired = index.range(..bound).map_err(|e| self.err(e))?.count() as u64;
        let next_expiry = index
            .range(bound..)
            .map_err(|e| self.err(e))?
            .next()
            .transpose()
            .map_err(|e| self.err(e))?
            .map(|(k, _)| k.value().0);
        Ok(Stats {
            entries: spent.len().map_err(|e| self.err(e))?,
            expired,
            next_expiry,
            file_bytes: std::fs::metadata(&self.path).map_or(0, |m| m.len()),
        })
    }
}

/// Removes up to `limit` entries expired at `now` (all of them for `usize::MAX`).
fn purge_expired(
    spent: &mut redb::Table<'_, &[u8], i64>,
    index: &mut redb::Table<'_, (i64, &[u8]), ()>,
    now: i64,
    limit: usize,
) -> Result<u64, redb::StorageError> {
    let bound: (i64, &[u8]) = (now.saturating_add(1), &[]);
    let victims: Vec<(i64, Vec<u8>)> = index
        .range(..bound)?
        .take(limit)
        .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_vec())))
        .collect::<Result<_, _>>()?;
    for (exp, key) in &victims {
        index.remove((*exp, key.as_slice()))?;
        let current = spent.get(key.as_slice())?.map(|v| v.value());
        if current == Some(*exp) {
            spent.remove(key.as_slice())?;
        }
    }
    Ok(victims.len() as u64)
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
            let mut index = tx.open_table(BY_EXPIRY).map_err(|e| self.err(e))?;
            for &i in &order {
                let (key, expires_at) = &items[i];
                let seen = spent
                    .get(key.as_slice())
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value());
                let is_fresh = match seen {
                    Some(exp) if exp > now => false,
                    Some(old) => {
                        index
                            .remove((old, key.as_slice()))
                            .map_err(|e| self.err(e))?;
                        true
                    }
                    None => true,
                };
                if is_fresh {
                    spent
                        .insert(key.as_slice(), *expires_at)
                        .map_err(|e| self.err(e))?;
                    index
                        .insert((*expires_at, key.as_slice()), ())
                        .map_err(|e| self.err(e))?;
                }
                fresh[i] = is_fresh;
            }
            purge_expired(&mut spent, &mut index, now, items.len() + PURGE_STEP)
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(fresh)
    }

    fn purge(&self, now: i64) -> Result<u64, Error> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let mut index = tx.open_table(BY_EXPIRY).map_err(|e| self.err(e))?;
            purge_expired(&mut spent, &mut index, now, usize::MAX).map_err(|e| self.err(e))?
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
