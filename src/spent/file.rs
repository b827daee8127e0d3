//! The durable spent store: one `redb` file. Each `spend` is one ACID transaction committed
//! with fsync before it returns, so an accepted stamp is never forgotten by a crash.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{Spend, SpentKey, SpentStore};
use crate::error::Error;

/// Spent stamps: the first 128 bits of the spent key, and until when the entry is kept. Fixed-width
/// keys half the size of the full digest make the B-tree insert, the cost of a fresh stamp, about
/// a third cheaper; 128 bits keep an accidental collision out of reach (2^-64 at 2^32 entries).
const SPENT: TableDefinition<[u8; 16], i64> = TableDefinition::new("spent16");
/// The table of earlier builds, keyed by the whole 256-bit key; moved into `SPENT` on open.
const OLD_SPENT: TableDefinition<&[u8], i64> = TableDefinition::new("spent");
/// Small values of the store's own: the purge cursor.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// An index by expiry that earlier builds kept; dropped on open (it cost a second B-tree
/// insert per stamp).
const OLD_BY_EXPIRY: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("spent_by_expiry");
/// The key after which the next purge sweep starts.
const CURSOR: &str = "purge_cursor";
/// Present once the file holds keys of the current rule (version 2 stamps keyed by prefix).
const KEYS_RULE: &str = "keys_rule";
/// Until when (Unix seconds, big-endian) entries of the earlier key rule may remain: until then a
/// version 2 stamp is also looked up under its legacy key.
const LEGACY_UNTIL: &str = "legacy_until";

/// Entries examined for expiry per transaction, beyond one per stamp recorded: the sweep goes
/// round the table at least as fast as it grows, a little at a time, with no full scan on any
/// check, so an expired entry is gone after at most one lap.
const PURGE_STEP: usize = 16;

/// How long `open` waits for a process that locks the whole file (an earlier build).
const OPEN_WAIT: Duration = Duration::from_secs(10);

/// A spent store in one file, safe against crashes.
pub struct FileStore {
    /// Always `Some` until dropped (see `Drop`).
    db: Option<Database>,
    path: PathBuf,
    /// Legacy keys are looked up while `now` is before this.
    legacy_until: i64,
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

/// Runs `f` on the database, turning a panic inside `redb` (which it raises on some damage
/// within the file's data, e.g. "Malformed allocator state") into a clear error: a damaged store
/// stops the check (exit 3) rather than crashing it, and never lets a replay through.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unreadable".to_owned());
            Err(Error::Store(format!(
                "{}: database damaged ({what}): move it aside (a new one is made on the next \
                 check; stamps it held could be accepted once more) or restore it from a backup",
                path.display()
            )))
        }
    }
}

impl FileStore {
    /// Opens the store at `path`, creating it (and its parent folder) if needed. Any number of
    /// processes may have it open at once; their write transactions take turns. A process that
    /// locks the whole file (an earlier build) is waited for, up to 10 seconds.
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore, Error> {
        let path = path.as_ref();
        guarded(path, || FileStore::open_unguarded(path))
    }

    fn open_unguarded(path: &Path) -> Result<FileStore, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
        }
        let started = Instant::now();
        // Any number of processes keep the file open and write to it, one write transaction at
        // a time (redb's byte-range locks); an older build holding the whole file is waited for.
        let mut builder = Database::builder();
        builder.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
        let db = loop {
            match builder.create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < OPEN_WAIT => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(store_err(path, e)),
            }
        };
        // A file already in the current layout opens without a write transaction (and its
        // fsync): one check per process, as a pipe filter runs, costs one commit, not two.
        let names = {
            let tx = db.begin_read().map_err(|e| store_err(path, e))?;
            let tables = tx.list_tables().map_err(|e| store_err(path, e))?;
            tables
                .map(|t| redb::TableHandle::name(&t).to_owned())
                .collect::<Vec<String>>()
        };
        let has = |t: &dyn redb::TableHandle| names.iter().any(|n| n == t.name());
        let had_old = has(&OLD_SPENT);
        let meta = |name: &str| -> Result<Option<Vec<u8>>, Error> {
            if !has(&META) {
                return Ok(None);
            }
            let tx = db.begin_read().map_err(|e| store_err(path, e))?;
            let t = tx.open_table(META).map_err(|e| store_err(path, e))?;
            Ok(t.get(name)
                .map_err(|e| store_err(path, e))?
                .map(|v| v.value().to_vec()))
        };
        let has_rule = meta(KEYS_RULE)?.is_some();
        let needs_write =
            !has(&SPENT) || !has(&META) || had_old || has(&OLD_BY_EXPIRY) || !has_rule;
        if needs_write {
            let tx = db.begin_write().map_err(|e| store_err(path, e))?;
            tx.open_table(SPENT).map_err(|e| store_err(path, e))?;
            tx.open_table(META).map_err(|e| store_err(path, e))?;
            tx.delete_table(OLD_BY_EXPIRY)
                .map_err(|e| store_err(path, e))?;
            if had_old {
                migrate(&tx).map_err(|e| store_err(path, e))?;
            }
            if !has_rule {
                upgrade_key_rule(&tx).map_err(|e| store_err(path, e))?;
            }
            tx.commit().map_err(|e| store_err(path, e))?;
        }
        let legacy_until = meta(LEGACY_UNTIL)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(i64::MIN, i64::from_be_bytes);
        Ok(FileStore {
            db: Some(db),
            path: path.to_owned(),
            legacy_until,
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        store_err(&self.path, e)
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is only taken in drop")
    }

    /// The records of `spend_many`, made in `tx` (committed by the caller).
    fn spend_in(
        &self,
        tx: &redb::WriteTransaction,
        items: &[Spend],
        now: i64,
    ) -> Result<Vec<bool>, Error> {
        let mut fresh = vec![false; items.len()];
        let legacy = now < self.legacy_until;
        // Visit keys in sorted order (B-tree inserts with locality), keeping each item's place.
        // The stored key as one big-endian number sorts as its bytes do, and compares in one
        // instruction; with the index as the tie-break, of a key repeated in the batch the
        // first occurrence wins.
        let mut order: Vec<(u128, usize)> = items
            .iter()
            .enumerate()
            .map(|(i, item)| (u128::from_be_bytes(short(&item.key)), i))
            .collect();
        order.sort_unstable();
        {
            let mut spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            for &(_, i) in &order {
                let item = &items[i];
                // One B-tree operation for a fresh stamp: insert, and look at what was there.
                let old = spent
                    .insert(short(&item.key), item.keep_until)
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value());
                fresh[i] = match old {
                    Some(kept) => {
                        // Spent: kept as long as the longest time asked for.
                        if kept > item.keep_until {
                            spent
                                .insert(short(&item.key), kept)
                                .map_err(|e| self.err(e))?;
                        }
                        false
                    }
                    None => match item.legacy.filter(|_| legacy) {
                        Some(old_key) => spent
                            .get(short(&old_key))
                            .map_err(|e| self.err(e))?
                            .is_none(),
                        None => true,
                    },
                };
            }
            // Swept by the real clock at the latest: a check run `--now` in the future must
            // not remove live entries of a shared store.
            let sweep_now = now.min(crate::verify::Clock::now(&crate::verify::SystemClock));
            sweep(&mut spent, &mut meta, sweep_now, items.len() + PURGE_STEP)
                .map_err(|e| self.err(e))?;
        }
        Ok(fresh)
    }
}

impl Drop for FileStore {
    /// Closing a damaged database can panic inside `redb`, as using it can: the store is closed
    /// under the same guard, so a damaged file ends in the error already reported, not a crash.
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
        }
    }
}

/// Moves the entries of a file written by an earlier build into the current table, in the
/// transaction that opens the file, so that no spent stamp is forgotten on the way.
fn migrate(tx: &redb::WriteTransaction) -> Result<(), redb::Error> {
    {
        let old = tx.open_table(OLD_SPENT)?;
        let mut spent = tx.open_table(SPENT)?;
        for r in old.iter()? {
            let (k, v) = r?;
            let Ok(key) = <[u8; 32]>::try_from(k.value()) else {
                continue; // not a key this store ever wrote
            };
            let short = short(&key);
            let exp = v.value();
            let keep = spent.get(short)?.map_or(exp, |e| e.value().max(exp));
            spent.insert(short, keep)?;
        }
    }
    tx.delete_table(OLD_SPENT)?;
    // The purge cursor was an old key; the sweep starts again from the beginning.
    tx.open_table(META)?.remove(CURSOR)?;
    Ok(())
}

/// Marks the file as holding keys of the current rule. Entries already there were written by a
/// build of the earlier rule: their latest keep-until time is when the last of them can go, and
/// until then version 2 stamps are also looked up under their legacy keys.
fn upgrade_key_rule(tx: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let latest = {
        let spent = tx.open_table(SPENT)?;
        let mut latest = None::<i64>;
        for r in spent.iter()? {
            let (_, v) = r?;
            latest = Some(latest.map_or(v.value(), |l| l.max(v.value())));
        }
        latest
    };
    let mut meta = tx.open_table(META)?;
    if let Some(until) = latest {
        meta.insert(LEGACY_UNTIL, until.to_be_bytes().as_slice())?;
    }
    meta.insert(KEYS_RULE, b"2".as_slice())?;
    Ok(())
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
        guarded(&self.path, || stats_of(self.db(), &self.path, now))
    }

    /// [`stats`](Self::stats) of the store at `path`, opened read-only: nothing is written (a
    /// read-only file works, a missing one is an error, not created).
    pub fn stats_read_only(path: impl AsRef<Path>, now: i64) -> Result<Stats, Error> {
        let path = path.as_ref();
        guarded(path, || {
            let mut builder = Database::builder();
            builder.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
            let db = builder
                .open_read_only(path)
                .map_err(|e| store_err(path, e))?;
            stats_of(&db, path, now)
        })
    }

    /// Gives the file's free pages back to the file system (after a purge): the file shrinks.
    /// Waits for other processes' transactions; returns whether anything was compacted.
    pub fn compact(&mut self) -> Result<bool, Error> {
        let path = self.path.clone();
        let db = self
            .db
            .as_mut()
            .expect("the database is only taken in drop");
        guarded(&path, || db.compact().map_err(|e| store_err(&path, e)))
    }
}

fn stats_of(db: &impl ReadableDatabase, path: &Path, now: i64) -> Result<Stats, Error> {
    let err = |e: &dyn std::fmt::Display| store_err(path, e);
    let tx = db.begin_read().map_err(|e| err(&e))?;
    let spent = tx.open_table(SPENT).map_err(|e| err(&e))?;
    let (mut entries, mut expired, mut next_expiry) = (0u64, 0u64, None::<i64>);
    for r in spent.iter().map_err(|e| err(&e))? {
        let (_, v) = r.map_err(|e| err(&e))?;
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
        file_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
    })
}

/// Examines up to `budget` entries after the stored cursor (wrapping round to the start once),
/// removes those expired at `now`, and moves the cursor past them. Returns how many went.
fn sweep(
    spent: &mut redb::Table<'_, [u8; 16], i64>,
    meta: &mut redb::Table<'_, &str, &[u8]>,
    now: i64,
    budget: usize,
) -> Result<u64, redb::StorageError> {
    let cursor: [u8; 16] = meta
        .get(CURSOR)?
        .and_then(|v| v.value().try_into().ok())
        .unwrap_or_default();
    let mut seen: Vec<([u8; 16], i64)> = Vec::new();
    {
        use std::ops::Bound::{Excluded, Unbounded};
        let after = spent.range::<[u8; 16]>((Excluded(cursor), Unbounded))?;
        for r in after.take(budget) {
            let (k, v) = r?;
            seen.push((k.value(), v.value()));
        }
    }
    let mut next = seen.last().map(|(k, _)| *k);
    if seen.len() < budget {
        // The end of the table: go round to the start, up to where this sweep began.
        let wrapped = spent.range::<[u8; 16]>(..=cursor)?;
        for r in wrapped.take(budget - seen.len()) {
            let (k, v) = r?;
            next = Some(k.value());
            seen.push((k.value(), v.value()));
        }
    }
    let mut removed = 0;
    for (k, exp) in &seen {
        if *exp <= now {
            spent.remove(k)?;
            removed += 1;
        }
    }
    meta.insert(CURSOR, next.unwrap_or_default().as_slice())?;
    Ok(removed)
}

/// The part of a spent key this store keeps.
fn short(key: &SpentKey) -> [u8; 16] {
    let mut k = [0; 16];
    k.copy_from_slice(&key[..16]);
    k
}

impl SpentStore for FileStore {
    /// One transaction, one fsync, for the whole batch.
    fn spend_many(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
        guarded(&self.path, || {
            let tx = self.db().begin_write().map_err(|e| self.err(e))?;
            let fresh = self.spend_in(&tx, items, now)?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(fresh)
        })
    }

    /// One transaction: every key looked up first; only if all are fresh are they inserted and
    /// committed, otherwise the transaction is dropped (nothing written).
    fn spend_if_all_fresh(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
        guarded(&self.path, || self.spend_if_all_fresh_unguarded(items, now))
    }

    fn purge(&self, now: i64) -> Result<u64, Error> {
        guarded(&self.path, || self.purge_unguarded(now))
    }

    fn len(&self) -> Result<u64, Error> {
        guarded(&self.path, || self.len_unguarded())
    }
}

impl FileStore {
    fn spend_if_all_fresh_unguarded(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
        let tx = self.db().begin_write().map_err(|e| self.err(e))?;
        let legacy = now < self.legacy_until;
        let mut seen = std::collections::HashSet::new();
        let fresh = {
            let spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let mut fresh = Vec::with_capacity(items.len());
            for item in items {
                let mut known = spent
                    .get(short(&item.key))
                    .map_err(|e| self.err(e))?
                    .is_some();
                if !known
                    && legacy
                    && let Some(old) = &item.legacy
                {
                    known = spent.get(short(old)).map_err(|e| self.err(e))?.is_some();
                }
                fresh.push(seen.insert(short(&item.key)) && !known);
            }
            fresh
        };
        if fresh.contains(&false) {
            return Ok(fresh); // dropped: nothing written
        }
        let fresh = self.spend_in(&tx, items, now)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(fresh)
    }

    fn purge_unguarded(&self, now: i64) -> Result<u64, Error> {
        let tx = self.db().begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut spent = tx.open_table(SPENT).map_err(|e| self.err(e))?;
            let before = spent.len().map_err(|e| self.err(e))?;
            spent.retain(|_, exp| exp > now).map_err(|e| self.err(e))?;
            before - spent.len().map_err(|e| self.err(e))?
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    fn len_unguarded(&self) -> Result<u64, Error> {
        let tx = self.db().begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(SPENT).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written by an older version (256-bit keys in the table `spent`) keeps every entry
    /// when opened: a stamp spent before is still spent after, and the old table is gone.
    #[test]
    fn opening_an_old_file_keeps_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        let (now, later) = (1_000_000, 2_000_000);
        let key = |n: u8| {
            let mut k = [0u8; 32];
            k[0] = n;
            k[31] = 0xaa; // a byte beyond the kept 128 bits, dropped by the migration
            k
        };
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(OLD_SPENT).unwrap();
                t.insert(key(1).as_slice(), later).unwrap();
                t.insert(key(2).as_slice(), now - 1).unwrap(); // already expired
                t.insert(b"junk".as_slice(), later).unwrap();
            }
            tx.commit().unwrap();
        }
        let store = FileStore::open(&path).unwrap();
        assert_eq!(store.len().unwrap(), 2);
        let items = [(key(1), later), (key(2), later), (key(3), later)].map(Spend::from);
        let fresh = store.spend_many(&items, now).unwrap();
        // An entry counts until it is purged, past its time or not.
        assert_eq!(fresh, [false, false, true]);
        drop(store);
        let db = Database::create(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let names: Vec<String> = tx
            .list_tables()
            .unwrap()
            .map(|t| redb::TableHandle::name(&t).to_owned())
            .collect();
        assert!(!names.iter().any(|n| n == "spent"), "{names:?}");
    }

    /// A file of the earlier key rule (version 2 stamps keyed by prefix and sorted counters):
    /// a stamp recorded there by an earlier build stays spent after the upgrade, and so does any
    /// other text of its prefix once it has been refused.
    #[test]
    fn a_stamp_spent_before_the_upgrade_stays_spent() {
        use crate::{FixedClock, MintRequest, Minter, Policy, Verifier};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        let now = 1_795_780_800;
        let stamp = Minter::new()
            .mint(
                &MintRequest::new("bob@example.org")
                    .bits(6)
                    .parts(4)
                    .date(crate::StampDate::from_unix(now, 6).unwrap()),
            )
            .unwrap();
        let legacy = crate::spent::legacy_key(&stamp).unwrap();
        {
            // What an earlier build left: the legacy key, no key-rule marker.
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(SPENT)
                .unwrap()
                .insert(short(&legacy), now + 30 * 86_400)
                .unwrap();
            tx.open_table(META).unwrap();
            tx.commit().unwrap();
        }
        let check = |text: &str| {
            Verifier::new(Policy::new(6, ["bob@example.org"]))
                .with_clock(FixedClock(now))
                .with_store(FileStore::open(&path).unwrap())
                .check(text)
                .unwrap()
        };
        let v = check(stamp.as_str());
        assert_eq!(v.result(), Err(crate::VerifyError::Spent));
        // A fresh stamp is accepted once as usual.
        let other = Minter::new()
            .mint(
                &MintRequest::new("bob@example.org")
                    .bits(6)
                    .parts(4)
                    .date(crate::StampDate::from_unix(now, 6).unwrap()),
            )
            .unwrap();
        assert!(check(other.as_str()).is_valid());
        assert_eq!(
            check(other.as_str()).result(),
            Err(crate::VerifyError::Spent)
        );
    }
}
