//! The durable spent store: one `redb` file. Each `spend` is one ACID transaction committed
//! with fsync before it returns, so an accepted stamp is never forgotten by a crash.
//!
//! Layout: entries are filed by the hour of their stamp's date, one table per hour
//! (`spent/h<hour>`) holding the first 128 bits of each spent key and nothing else. A stamp's
//! date is part of its identity, so every check of one stamp looks in one table; fresh stamps
//! carry recent dates, so a fresh stamp goes into a small table however many entries the store
//! holds (a B-tree insert dirties pages of that table only). Each hour's table is kept until
//! the latest keep-until time asked for any of its entries (table `parts`, indexed by that time
//! in `parts_by_expiry`), then dropped whole: purging costs a table drop, not a walk over
//! entries. Entries recorded without a date (see [`Spend::date`]) share one table.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::{Spend, SpentKey, SpentStore};
use crate::error::{Error, StoreError};

/// The entries of one hour of stamp dates: the first 128 bits of each key. 128 bits keep an
/// accidental collision out of reach (2^-64 at 2^32 entries), and a collision could only refuse
/// a stamp, never accept one.
type Entries<'a> = TableDefinition<'a, [u8; 16], ()>;
/// Hour (Unix seconds / 3600) -> the latest keep-until time asked for an entry of that hour.
const PARTS: TableDefinition<u32, i64> = TableDefinition::new("parts");
/// (keep-until, hour): the hours in the order they may go.
const BY_EXPIRY: TableDefinition<(i64, u32), ()> = TableDefinition::new("parts_by_expiry");
/// Small values of the store's own.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The layout marker, [`LAYOUT`].
const LAYOUT_KEY: &str = "layout";
const LAYOUT: &[u8] = b"3";
/// The table of the previous layout (one table of every entry with its own keep-until time,
/// keyed by the spent key or, for version 2 stamps before the prefix rule, the legacy key): read
/// only, looked up under both keys until its last entry's time (`LEGACY_UNTIL`), then dropped.
const LEGACY: TableDefinition<[u8; 16], i64> = TableDefinition::new("spent16");
/// Until when (Unix seconds, big-endian) the `LEGACY` table is kept.
const LEGACY_UNTIL: &str = "legacy_until";
/// The table of development builds before the 128-bit layout; such a file is refused.
const ANCIENT: &str = "spent";
/// The hour under which entries without a date are filed.
const UNDATED: u32 = u32::MAX;
/// At most this many hours are dropped by the sweep of one check (a purge drops all): the
/// latency of a check stays bounded when many hours fall due at once.
const DROPS_PER_CHECK: usize = 4;

/// How long `open` waits for a process that locks the whole file.
const OPEN_WAIT: Duration = Duration::from_secs(10);

/// A spent store in one file, safe against crashes.
pub struct FileStore {
    /// Always `Some` until dropped (see `Drop`).
    db: Option<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish()
    }
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> Error {
    StoreError::Database {
        path: path.to_owned(),
        source: Box::new(e.into()),
    }
    .into()
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
            Err(StoreError::Damaged {
                path: path.to_owned(),
                what,
            }
            .into())
        }
    }
}

/// The hour a stamp dated `date` is filed under.
fn hour_of(date: Option<i64>) -> u32 {
    match date {
        None => UNDATED,
        Some(d) => u32::try_from(d.div_euclid(3600).max(0))
            .unwrap_or(UNDATED - 1)
            .min(UNDATED - 1),
    }
}

fn table_name(hour: u32) -> String {
    if hour == UNDATED {
        "spent/undated".to_owned()
    } else {
        format!("spent/h{hour}")
    }
}

/// The part of a spent key this store keeps.
fn short(key: &SpentKey) -> [u8; 16] {
    let mut k = [0; 16];
    k.copy_from_slice(&key[..16]);
    k
}

impl FileStore {
    /// Opens the store at `path`, creating it (and its parent folder) if needed. Any number of
    /// processes may have it open at once; their write transactions take turns. A process that
    /// locks the whole file is waited for, up to 10 seconds.
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore, Error> {
        let path = path.as_ref();
        guarded(path, || FileStore::open_unguarded(path))
    }

    fn open_unguarded(path: &Path) -> Result<FileStore, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let err = |e: redb::Error| db_err(path, e);
        let started = Instant::now();
        // Any number of processes keep the file open and write to it, one write transaction at
        // a time (redb's byte-range locks); a process holding the whole file is waited for.
        let mut builder = Database::builder();
        builder.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
        let db = loop {
            match builder.create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < OPEN_WAIT => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(err(e.into())),
            }
        };
        // A file already in the current layout opens without a write transaction (and its
        // fsync): one check per process, as a pipe filter runs, costs one commit, not two.
        let (names, layout) = {
            let tx = db.begin_read().map_err(|e| err(e.into()))?;
            let names = tx
                .list_tables()
                .map_err(|e| err(e.into()))?
                .map(|t| t.name().to_owned())
                .collect::<Vec<String>>();
            let layout = if names.iter().any(|n| n == META.name()) {
                let meta = tx.open_table(META).map_err(|e| err(e.into()))?;
                meta.get(LAYOUT_KEY)
                    .map_err(|e| err(e.into()))?
                    .map(|v| v.value().to_vec())
            } else {
                None
            };
            (names, layout)
        };
        let has = |name: &str| names.iter().any(|n| n == name);
        if has(ANCIENT) {
            return Err(StoreError::UnknownLayout {
                path: path.to_owned(),
            }
            .into());
        }
        if layout.as_deref() != Some(LAYOUT) {
            let tx = db.begin_write().map_err(|e| err(e.into()))?;
            upgrade(&tx, has(LEGACY.name())).map_err(err)?;
            tx.commit().map_err(|e| err(e.into()))?;
        }
        Ok(FileStore {
            db: Some(db),
            path: path.to_owned(),
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        db_err(&self.path, e)
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is only taken in drop")
    }
}

/// Makes a new file, or one of the previous layout, current: creates the tables, and records
/// until when the previous layout's table must be kept (its latest entry's time).
fn upgrade(tx: &WriteTransaction, had_legacy: bool) -> Result<(), redb::Error> {
    tx.open_table(PARTS)?;
    tx.open_table(BY_EXPIRY)?;
    let mut meta = tx.open_table(META)?;
    // Bookkeeping of the previous layout (its sweep cursor, its key-rule marker).
    meta.remove("purge_cursor")?;
    meta.remove("keys_rule")?;
    if had_legacy && meta.get(LEGACY_UNTIL)?.is_none() {
        let legacy = tx.open_table(LEGACY)?;
        let mut latest = None::<i64>;
        for r in legacy.iter()? {
            let (_, v) = r?;
            latest = Some(latest.map_or(v.value(), |l| l.max(v.value())));
        }
        drop(legacy);
        match latest {
            Some(until) => {
                meta.insert(LEGACY_UNTIL, until.to_be_bytes().as_slice())?;
            }
            None => {
                tx.delete_table(LEGACY)?;
            }
        }
    }
    meta.insert(LAYOUT_KEY, LAYOUT)?;
    Ok(())
}

/// The previous layout's table while it is kept.
fn legacy_table(
    tx: &WriteTransaction,
) -> Result<Option<redb::Table<'_, [u8; 16], i64>>, redb::Error> {
    let meta = tx.open_table(META)?;
    if meta.get(LEGACY_UNTIL)?.is_none() {
        return Ok(None);
    }
    Ok(Some(tx.open_table(LEGACY)?))
}

/// Whether the previous layout's table holds `item` under its key or its legacy key.
fn in_legacy(
    legacy: Option<&redb::Table<'_, [u8; 16], i64>>,
    item: &Spend,
) -> Result<bool, redb::Error> {
    let Some(t) = legacy else {
        return Ok(false);
    };
    if t.get(short(&item.key))?.is_some() {
        return Ok(true);
    }
    match &item.legacy {
        Some(old) => Ok(t.get(short(old))?.is_some()),
        None => Ok(false),
    }
}

/// The items' order of visit: by hour, then key (B-tree inserts with locality), then place in
/// the batch (of a key repeated in the batch, the first occurrence wins).
fn visit_order(items: &[Spend]) -> Vec<(u32, u128, usize)> {
    let mut order: Vec<(u32, u128, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (hour_of(item.date), u128::from_be_bytes(short(&item.key)), i))
        .collect();
    order.sort_unstable();
    order
}

/// Records that entries of `hour` are kept until at least `keep`.
fn keep_hour(tx: &WriteTransaction, hour: u32, keep: i64) -> Result<(), redb::Error> {
    let mut parts = tx.open_table(PARTS)?;
    let old = parts.get(hour)?.map(|v| v.value());
    if old.is_some_and(|old| old >= keep) {
        return Ok(());
    }
    parts.insert(hour, keep)?;
    let mut by_expiry = tx.open_table(BY_EXPIRY)?;
    if let Some(old) = old {
        by_expiry.remove((old, hour))?;
    }
    by_expiry.insert((keep, hour), ())?;
    Ok(())
}

/// Drops up to `limit` hours whose time has passed at `now` (and the previous layout's table
/// once its time has passed); returns how many entries went.
fn expire(tx: &WriteTransaction, now: i64, limit: usize) -> Result<u64, redb::Error> {
    let mut removed = 0;
    for _ in 0..limit {
        let due = {
            let by_expiry = tx.open_table(BY_EXPIRY)?;
            let first = by_expiry.first()?.map(|(k, _)| k.value());
            first.filter(|&(keep, _)| keep <= now)
        };
        let Some((keep, hour)) = due else { break };
        let name = table_name(hour);
        let def = Entries::new(&name);
        removed += tx.open_table(def)?.len()?;
        tx.delete_table(def)?;
        tx.open_table(PARTS)?.remove(hour)?;
        tx.open_table(BY_EXPIRY)?.remove((keep, hour))?;
    }
    let mut meta = tx.open_table(META)?;
    let until = meta
        .get(LEGACY_UNTIL)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map(i64::from_be_bytes);
    if until.is_some_and(|u| u <= now) {
        removed += tx.open_table(LEGACY)?.len()?;
        tx.delete_table(LEGACY)?;
        meta.remove(LEGACY_UNTIL)?;
    }
    Ok(removed)
}

impl FileStore {
    /// The records of `spend_many`, made in `tx` (committed by the caller).
    fn spend_in(
        &self,
        tx: &WriteTransaction,
        items: &[Spend],
        now: i64,
    ) -> Result<Vec<bool>, Error> {
        let mut fresh = vec![false; items.len()];
        let legacy = legacy_table(tx).map_err(|e| self.err(e))?;
        let order = visit_order(items);
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let hour = group[0].0;
            let name = table_name(hour);
            let mut entries = tx
                .open_table(Entries::new(&name))
                .map_err(|e| self.err(e))?;
            let mut keep = i64::MIN;
            for &(_, key, i) in group {
                let item = &items[i];
                keep = keep.max(item.keep_until);
                // One B-tree operation for a fresh stamp: insert, and look at what was there.
                let known = entries
                    .insert(key.to_be_bytes(), ())
                    .map_err(|e| self.err(e))?
                    .is_some();
                fresh[i] = !known && !in_legacy(legacy.as_ref(), item).map_err(|e| self.err(e))?;
            }
            drop(entries);
            // Spent or fresh, the entry is kept as long as the longest time asked for.
            keep_hour(tx, hour, keep).map_err(|e| self.err(e))?;
        }
        drop(legacy);
        // Swept after the records, which have raised their hours' times: a stamp refused now
        // stays spent at least as long as this check asks. Swept by the real clock at the
        // latest: a check run `--now` in the future must not remove live entries of a shared
        // store.
        let sweep_now = now.min(crate::clock::unix_now());
        expire(tx, sweep_now, DROPS_PER_CHECK).map_err(|e| self.err(e))?;
        Ok(fresh)
    }

    /// Whether each item is fresh, without writing: looked up in its hour's table (if there is
    /// one) and the previous layout's; a key repeated in the batch is fresh once.
    fn look_up(&self, tx: &WriteTransaction, items: &[Spend]) -> Result<Vec<bool>, Error> {
        let mut fresh = vec![false; items.len()];
        let legacy = legacy_table(tx).map_err(|e| self.err(e))?;
        let parts = tx.open_table(PARTS).map_err(|e| self.err(e))?;
        let order = visit_order(items);
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let hour = group[0].0;
            let name = table_name(hour);
            let exists = parts.get(hour).map_err(|e| self.err(e))?.is_some();
            let entries = if exists {
                Some(
                    tx.open_table(Entries::new(&name))
                        .map_err(|e| self.err(e))?,
                )
            } else {
                None
            };
            let mut previous = None;
            for &(_, key, i) in group {
                let repeated = previous == Some(key);
                previous = Some(key);
                let known = match &entries {
                    Some(t) => t.get(key.to_be_bytes()).map_err(|e| self.err(e))?.is_some(),
                    None => false,
                };
                fresh[i] = !repeated
                    && !known
                    && !in_legacy(legacy.as_ref(), &items[i]).map_err(|e| self.err(e))?;
            }
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

/// What `FileStore::stats` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Entries held.
    pub entries: u64,
    /// Of those, entries already expired (not yet purged).
    pub expired: u64,
    /// The earliest expiry among unexpired entries (Unix seconds).
    pub next_expiry: Option<i64>,
    /// Hours of stamp dates the entries are filed under (one table each).
    pub hours: u64,
    /// The file's size in bytes.
    pub file_bytes: u64,
}

impl FileStore {
    /// Counts entries and expired entries at `now` (an operator's command, not part of
    /// checking).
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
            let db = builder.open_read_only(path).map_err(|e| db_err(path, e))?;
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
        guarded(&path, || db.compact().map_err(|e| db_err(&path, e)))
    }
}

fn stats_of(db: &impl ReadableDatabase, path: &Path, now: i64) -> Result<Stats, Error> {
    let err = |e: redb::Error| db_err(path, e);
    let tx = db.begin_read().map_err(|e| err(e.into()))?;
    let mut s = Stats {
        entries: 0,
        expired: 0,
        next_expiry: None,
        hours: 0,
        file_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
    };
    let mut count = |n: u64, keep: i64| {
        s.entries += n;
        if keep <= now {
            s.expired += n;
        } else if n > 0 {
            s.next_expiry = Some(s.next_expiry.map_or(keep, |e| e.min(keep)));
        }
    };
    let names: Vec<String> = tx
        .list_tables()
        .map_err(|e| err(e.into()))?
        .map(|t| t.name().to_owned())
        .collect();
    if names.iter().any(|n| n == PARTS.name()) {
        let parts = tx.open_table(PARTS).map_err(|e| err(e.into()))?;
        for r in parts.iter().map_err(|e| err(e.into()))? {
            let (hour, keep) = r.map_err(|e| err(e.into()))?;
            let name = table_name(hour.value());
            let n = tx
                .open_table(Entries::new(&name))
                .map_err(|e| err(e.into()))?
                .len()
                .map_err(|e| err(e.into()))?;
            count(n, keep.value());
            s.hours += 1;
        }
    }
    if names.iter().any(|n| n == LEGACY.name()) {
        let legacy = tx.open_table(LEGACY).map_err(|e| err(e.into()))?;
        for r in legacy.iter().map_err(|e| err(e.into()))? {
            let (_, keep) = r.map_err(|e| err(e.into()))?;
            count(1, keep.value());
        }
    }
    Ok(s)
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
        guarded(&self.path, || {
            let tx = self.db().begin_write().map_err(|e| self.err(e))?;
            let fresh = self.look_up(&tx, items)?;
            if fresh.contains(&false) {
                return Ok(fresh); // dropped: nothing written
            }
            let fresh = self.spend_in(&tx, items, now)?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(fresh)
        })
    }

    /// Drops every hour whose time has passed; entries of the previous layout go one by one.
    fn purge(&self, now: i64) -> Result<u64, Error> {
        guarded(&self.path, || {
            let tx = self.db().begin_write().map_err(|e| self.err(e))?;
            let mut removed = expire(&tx, now, usize::MAX).map_err(|e| self.err(e))?;
            if let Some(mut legacy) = legacy_table(&tx).map_err(|e| self.err(e))? {
                let before = legacy.len().map_err(|e| self.err(e))?;
                legacy
                    .retain(|_, keep| keep > now)
                    .map_err(|e| self.err(e))?;
                removed += before - legacy.len().map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(removed)
        })
    }

    fn len(&self) -> Result<u64, Error> {
        guarded(&self.path, || {
            let s = stats_of(self.db(), &self.path, i64::MIN)?;
            Ok(s.entries)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dated(n: u8, date: i64, keep_until: i64) -> Spend {
        let mut key = [0u8; 32];
        key[0] = n;
        Spend {
            key,
            legacy: None,
            date: Some(date),
            keep_until,
        }
    }

    fn tables(path: &Path) -> Vec<String> {
        let db = Database::create(path).unwrap();
        let tx = db.begin_read().unwrap();
        tx.list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect()
    }

    /// Entries are filed by the hour of their date; an hour goes as a whole when the latest
    /// time asked for any of its entries has passed, by a purge or by the sweep of a later
    /// check (never ahead of the real clock), and a stamp of a live hour stays spent.
    #[test]
    fn hours_are_kept_until_their_latest_entry_then_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = FileStore::open(&path).unwrap();
        let h = 3600;
        let now = 1_000 * h;
        // Two stamps of one hour kept until different times, one of another hour.
        let items = [
            dated(1, now, now + 10 * h),
            dated(2, now + 59, now + 20 * h),
            dated(3, now + h, now + 5 * h),
        ];
        assert_eq!(store.spend_many(&items, now).unwrap(), [true; 3]);
        assert_eq!(store.stats(now).unwrap().hours, 2);
        // A purge at +10h drops only the second hour (its time, 5h, has passed); the first is
        // kept until 20h for its later entry, so stamp 1 stays spent though its own time passed.
        assert_eq!(store.purge(now + 10 * h).unwrap(), 1);
        assert_eq!(store.spend_many(&items[..1], now).unwrap(), [false]);
        assert_eq!(store.len().unwrap(), 2);
        // The sweep of a later check drops the hour once its time passed by the real clock.
        let real = crate::clock::unix_now();
        let old = [dated(4, real - 30 * h, real - 20 * h)];
        store.spend_many(&old, real - 25 * h).unwrap();
        let before = store.len().unwrap();
        store.spend_many(&[dated(5, real, real + h)], real).unwrap();
        assert_eq!(store.len().unwrap(), before, "hour of 4 dropped, 5 added");
        assert!(
            !tables(&{
                drop(store);
                path.clone()
            })
            .contains(&table_name(hour_of(Some(real - 30 * h))))
        );
    }

    /// A check `--now` far in the future does not sweep live entries of a shared store.
    #[test]
    fn a_future_now_does_not_sweep_live_hours() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("s.redb")).unwrap();
        let real = crate::clock::unix_now();
        let live = dated(1, real, real + 3600);
        assert_eq!(store.spend_many(&[live], real).unwrap(), [true]);
        let later = dated(2, real + 86_400 * 365, real + 86_400 * 400);
        store.spend_many(&[later], real + 86_400 * 365).unwrap();
        assert_eq!(store.spend_many(&[live], real).unwrap(), [false]);
    }

    /// A file of the previous layout (one table of 128-bit keys with their own times, keys of
    /// either rule) keeps every entry spent after the upgrade, under either key, until the
    /// last entry's time; then its table goes.
    #[test]
    fn a_stamp_spent_before_the_upgrade_stays_spent() {
        use crate::{FixedClock, MintRequest, Minter, Policy, Verifier};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        let now = 1_795_780_800;
        let mint = || {
            Minter::new()
                .mint(
                    &MintRequest::new("bob@example.org")
                        .bits(6)
                        .parts(4)
                        .date(crate::StampDate::from_unix(now, 6).unwrap()),
                )
                .unwrap()
        };
        let (by_legacy, by_key, other) = (mint(), mint(), mint());
        let until = now + 30 * 86_400;
        {
            // What an earlier build left: one stamp under its legacy key, one under its key.
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(LEGACY).unwrap();
                let legacy = crate::spent::legacy_key(&by_legacy).unwrap();
                t.insert(short(&legacy), until).unwrap();
                t.insert(short(&crate::spent::spent_key(&by_key)), until - 1)
                    .unwrap();
                let mut meta = tx.open_table(META).unwrap();
                meta.insert("keys_rule", b"2".as_slice()).unwrap();
            }
            tx.commit().unwrap();
        }
        let check = |text: &str, at: i64| {
            Verifier::new(Policy::new(6, ["bob@example.org"]))
                .with_clock(FixedClock(at))
                .with_store(FileStore::open(&path).unwrap())
                .check(text)
                .unwrap()
        };
        for stamp in [&by_legacy, &by_key] {
            assert_eq!(
                check(stamp.as_str(), now).result(),
                Err(crate::VerifyError::Spent)
            );
        }
        // A fresh stamp is accepted once as usual.
        assert!(check(other.as_str(), now).is_valid());
        assert_eq!(
            check(other.as_str(), now).result(),
            Err(crate::VerifyError::Spent)
        );
        // The old table's 2 entries, and the 3 stamps checked now (refusals are recorded too).
        assert_eq!(FileStore::open(&path).unwrap().len().unwrap(), 5);
        // Past its last entry's time the old table goes with a purge; the stamps refused since
        // the upgrade stay spent, recorded in the new layout.
        assert_eq!(FileStore::open(&path).unwrap().purge(until).unwrap(), 2);
        assert!(!tables(&path).contains(&LEGACY.name().to_owned()));
        assert_eq!(
            check(by_legacy.as_str(), now).result(),
            Err(crate::VerifyError::Spent)
        );
    }

    /// A file of a development build before the 128-bit layout is refused, not emptied.
    #[test]
    fn an_ancient_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ancient.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(TableDefinition::<&[u8], i64>::new(ANCIENT))
                .unwrap()
                .insert([7u8; 32].as_slice(), 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let e = FileStore::open(&path).unwrap_err();
        assert!(
            matches!(e, Error::Store(StoreError::UnknownLayout { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("move it aside"), "{e}");
    }

    /// `spend_if_all_fresh` writes nothing when one item is spent or repeated, across hours.
    #[test]
    fn all_or_nothing_across_hours() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("s.redb")).unwrap();
        let h = 3600;
        let t = 500 * h;
        assert!(store.spend_many(&[dated(1, t, t + h)], t).unwrap()[0]);
        let batch = [
            dated(2, t - h, t + h),
            dated(1, t, t + h),
            dated(3, t + h, t + h),
        ];
        assert_eq!(
            store.spend_if_all_fresh(&batch, t).unwrap(),
            [true, false, true]
        );
        assert_eq!(store.len().unwrap(), 1);
        let repeated = [dated(2, t - h, t + h), dated(2, t - h, t + h)];
        assert_eq!(
            store.spend_if_all_fresh(&repeated, t).unwrap(),
            [true, false]
        );
        assert_eq!(store.len().unwrap(), 1);
        assert_eq!(store.spend_if_all_fresh(&batch[..1], t).unwrap(), [true]);
        assert_eq!(store.len().unwrap(), 2);
    }
}
