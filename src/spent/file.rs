//! The durable spent store: one `redb` file. Each `spend` is one ACID transaction committed
//! with fsync before it returns, so an accepted stamp is never forgotten by a crash.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{SpentKey, SpentStore};
use crate::error::Error;

const SPENT: TableDefinition<&[u8], i64> = TableDefinition::new("spent");

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

impl SpentStore for FileStore {
    fn spend(&self, key: &SpentKey, expires_at: i64, now: i64) -> Result<bool, Error> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let fresh = {
            let mut table = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let seen = table
                .get(key.as_slice())
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            match seen {
                Some(exp) if exp > now => false,
                _ => {
                    table
                        .insert(key.as_slice(), expires_at)
                        .map_err(|e| self.err(e))?;
                    true
                }
            }
        };
        if fresh {
            tx.commit().map_err(|e| self.err(e))?;
        } else {
            tx.abort().map_err(|e| self.err(e))?;
        }
        Ok(fresh)
    }

    fn purge(&self, now: i64) -> Result<u64, Error> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut table = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let before = table.len().map_err(|e| self.err(e))?;
            table.retain(|_, exp| exp > now).map_err(|e| self.err(e))?;
            before - table.len().map_err(|e| self.err(e))?
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
