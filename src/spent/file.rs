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
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// The previous layout's bookkeeping table. On upgrade it is replaced by [`FENCE`].
const OLD_META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// A table of the name the previous layout's builds read their bookkeeping from, of another
/// type: a process of such a build still running beside this one stops with an error on its
/// next open instead of recording stamps where this build does not look.
const FENCE: TableDefinition<u64, u64> = TableDefinition::new("meta");
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
/// The hour under which entries without a date are filed; every dated check looks there too.
const UNDATED: u32 = u32::MAX;
/// The hour under which entries kept for good (`keep_until == i64::MAX`, a checker with
/// `--validity 0`) are filed, whatever their date: such a checker accepts stamps of any age,
/// and one table per hour of all history would cost a page per stamp. Every check looks there
/// too.
const FOREVER: u32 = u32::MAX - 1;
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
            .unwrap_or(FOREVER - 1)
            .min(FOREVER - 1),
    }
}

/// The hour an item is recorded under.
fn record_hour(item: &Spend) -> u32 {
    if item.keep_until == i64::MAX && item.date.is_some() {
        FOREVER
    } else {
        hour_of(item.date)
    }
}

/// The hours an item may already be recorded under: its own, its date's, and the shared ones.
fn lookup_hours(item: &Spend) -> impl Iterator<Item = u32> {
    let own = record_hour(item);
    let dated = item.date.is_some();
    [
        Some(own),
        Some(hour_of(item.date)).filter(|&h| h != own),
        Some(FOREVER).filter(|&h| h != own && dated),
        Some(UNDATED).filter(|&h| h != own),
    ]
    .into_iter()
    .flatten()
}

fn table_name(hour: u32) -> String {
    match hour {
        UNDATED => "spent/undated".to_owned(),
        FOREVER => "spent/forever".to_owned(),
        _ => format!("spent/h{hour}"),
    }
}

/// The hour tables one transaction uses, opened once each: those that exist (per `parts` when
/// the transaction began) and those it records into.
struct Hours<'t> {
    tx: &'t WriteTransaction,
    existing: std::collections::HashSet<u32>,
    open: std::collections::HashMap<u32, redb::Table<'t, [u8; 16], ()>>,
}

impl<'t> Hours<'t> {
    fn new(tx: &'t WriteTransaction, items: &[Spend]) -> Result<Hours<'t>, redb::Error> {
        let parts = tx.open_table(PARTS)?;
        let mut existing = std::collections::HashSet::new();
        for item in items {
            for h in lookup_hours(item) {
                if !existing.contains(&h) && parts.get(h)?.is_some() {
                    existing.insert(h);
                }
            }
        }
        Ok(Hours {
            tx,
            existing,
            open: std::collections::HashMap::new(),
        })
    }

    /// The table of `hour`; `None` when it does not exist and `create` is false.
    fn table(
        &mut self,
        hour: u32,
        create: bool,
    ) -> Result<Option<&mut redb::Table<'t, [u8; 16], ()>>, redb::Error> {
        if !self.open.contains_key(&hour) {
            if !create && !self.existing.contains(&hour) {
                return Ok(None);
            }
            let t = self.tx.open_table(Entries::new(&table_name(hour)))?;
            self.open.insert(hour, t);
        }
        Ok(self.open.get_mut(&hour))
    }

    /// Whether `key` is recorded under any hour `item` may be recorded under, but `except`.
    fn holds(
        &mut self,
        item: &Spend,
        key: [u8; 16],
        except: Option<u32>,
    ) -> Result<bool, redb::Error> {
        for h in lookup_hours(item) {
            if Some(h) == except {
                continue;
            }
            if let Some(t) = self.table(h, false)?
                && t.get(key)?.is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
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
        // Tables are opened by name, not listed: a store of many hours opens as fast.
        let layout = {
            let tx = db.begin_read().map_err(|e| err(e.into()))?;
            match tx.open_table(META) {
                Ok(meta) => meta
                    .get(LAYOUT_KEY)
                    .map_err(|e| err(e.into()))?
                    .map(|v| v.value().to_vec()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(err(e.into())),
            }
        };
        if layout.as_deref() != Some(LAYOUT) {
            let tx = db.begin_write().map_err(|e| err(e.into()))?;
            let names: Vec<String> = tx
                .list_tables()
                .map_err(|e| err(e.into()))?
                .map(|t| t.name().to_owned())
                .collect();
            if names.iter().any(|n| n == ANCIENT) {
                return Err(StoreError::UnknownLayout {
                    path: path.to_owned(),
                }
                .into());
            }
            let has = |name: &str| names.iter().any(|n| n == name);
            upgrade(&tx, has(OLD_META.name()), has(LEGACY.name())).map_err(err)?;
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

/// Makes a new file, or one of the previous layout, current: creates the tables, fences out
/// the previous layout's builds (see [`FENCE`]), and records until when the previous layout's
/// table must be kept: the latest time of any entry in it, whatever that layout's own
/// bookkeeping said (its builds went on recording after writing it).
fn upgrade(tx: &WriteTransaction, had_old_meta: bool, had_legacy: bool) -> Result<(), redb::Error> {
    tx.open_table(PARTS)?;
    tx.open_table(BY_EXPIRY)?;
    if had_old_meta {
        // A table of the fence's name and type is already the fence.
        let old = match tx.open_table(OLD_META) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableTypeMismatch { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(old) = old {
            drop(old);
            tx.delete_table(OLD_META)?;
        }
    }
    tx.open_table(FENCE)?;
    let mut meta = tx.open_table(META)?;
    if had_legacy {
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
                meta.remove(LEGACY_UNTIL)?;
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
        .map(|(i, item)| (record_hour(item), u128::from_be_bytes(short(&item.key)), i))
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
    /// The records of `spend_many`, made in `tx` (committed by the caller). Each item is
    /// recorded under its hour (if it is not there already) and its hour is kept as long as
    /// the item asks, spent or fresh.
    fn spend_in(
        &self,
        tx: &WriteTransaction,
        items: &[Spend],
        now: i64,
    ) -> Result<Vec<bool>, Error> {
        let mut fresh = vec![false; items.len()];
        let mut keeps: Vec<(u32, i64)> = Vec::new();
        {
            let legacy = legacy_table(tx).map_err(|e| self.err(e))?;
            let mut hours = Hours::new(tx, items).map_err(|e| self.err(e))?;
            for (hour, key, i) in visit_order(items) {
                let item = &items[i];
                let key = key.to_be_bytes();
                let table = hours
                    .table(hour, true)
                    .map_err(|e| self.err(e))?
                    .expect("created");
                // One B-tree operation for a fresh stamp: insert, and look at what was there.
                let known = table.insert(key, ()).map_err(|e| self.err(e))?.is_some()
                    || hours
                        .holds(item, key, Some(hour))
                        .map_err(|e| self.err(e))?
                    || in_legacy(legacy.as_ref(), item).map_err(|e| self.err(e))?;
                fresh[i] = !known;
                match keeps.last_mut() {
                    Some((h, keep)) if *h == hour => *keep = (*keep).max(item.keep_until),
                    _ => keeps.push((hour, item.keep_until)),
                }
            }
        }
        for (hour, keep) in keeps {
            keep_hour(tx, hour, keep).map_err(|e| self.err(e))?;
        }
        // Swept after the records, which have raised their hours' times: a stamp refused now
        // stays spent at least as long as this check asks. Swept by the real clock at the
        // latest: a check run `--now` in the future must not remove live entries of a shared
        // store.
        let sweep_now = now.min(crate::clock::unix_now());
        expire(tx, sweep_now, DROPS_PER_CHECK).map_err(|e| self.err(e))?;
        Ok(fresh)
    }

    /// Which items are recorded already (under any hour they may be recorded under, or in the
    /// previous layout's table), without writing; and which are fresh (not recorded, and not
    /// a repeat of an earlier item of the batch).
    fn look_up(
        &self,
        tx: &WriteTransaction,
        items: &[Spend],
    ) -> Result<(Vec<bool>, Vec<bool>), Error> {
        let mut known = vec![false; items.len()];
        let mut fresh = vec![false; items.len()];
        let legacy = legacy_table(tx).map_err(|e| self.err(e))?;
        let mut hours = Hours::new(tx, items).map_err(|e| self.err(e))?;
        let mut previous = None;
        for (hour, key, i) in visit_order(items) {
            let repeated = previous == Some((hour, key));
            previous = Some((hour, key));
            let item = &items[i];
            known[i] = hours
                .holds(item, key.to_be_bytes(), None)
                .map_err(|e| self.err(e))?
                || in_legacy(legacy.as_ref(), item).map_err(|e| self.err(e))?;
            fresh[i] = !repeated && !known[i];
        }
        Ok((known, fresh))
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
        } else if n > 0 && keep != i64::MAX {
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
    /// committed, otherwise only the spent entries' times are raised.
    fn spend_if_all_fresh(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
        guarded(&self.path, || {
            let tx = self.db().begin_write().map_err(|e| self.err(e))?;
            let (known, fresh) = self.look_up(&tx, items)?;
            if fresh.contains(&false) {
                // Nothing is recorded; the spent entries are still kept as long as this check
                // asks (a checker with a longer window that once saw them spent never sees
                // them fresh). A repeat within the batch that is not recorded stays unrecorded.
                let spent: Vec<Spend> = items
                    .iter()
                    .zip(&known)
                    .filter(|(_, k)| **k)
                    .map(|(item, _)| *item)
                    .collect();
                if !spent.is_empty() {
                    self.spend_in(&tx, &spent, now)?;
                    tx.commit().map_err(|e| self.err(e))?;
                }
                return Ok(fresh);
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
                // Its bookkeeping: the key-rule marker, and a legacy-until time written when
                // its rule changed, already past (its builds went on recording after it).
                let mut meta = tx.open_table(OLD_META).unwrap();
                meta.insert("keys_rule", b"2".as_slice()).unwrap();
                meta.insert(LEGACY_UNTIL, (now - 1).to_be_bytes().as_slice())
                    .unwrap();
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
        // A process of the previous layout's build opening the file now stops with an error
        // (its bookkeeping table has another type) rather than recording where we do not look.
        let db = Database::create(&path).unwrap();
        let tx = db.begin_read().unwrap();
        assert!(matches!(
            tx.open_table(OLD_META),
            Err(redb::TableError::TableTypeMismatch { .. })
        ));
    }

    /// Entries kept for good (a checker with `--validity 0`) share one table whatever their
    /// dates, and every check looks there: a stamp recorded by a 28-day checker is spent for a
    /// keep-for-good checker and the other way round, and undated records are seen by dated
    /// checks.
    #[test]
    fn kept_for_good_and_undated_entries_are_seen_by_every_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = FileStore::open(&path).unwrap();
        let (h, now) = (3600, 400_000 * 3600);
        // 50 stamps of 50 different past hours, kept for good: one table.
        let forever: Vec<Spend> = (0..50)
            .map(|i| dated(i, now - i64::from(i) * 100 * h, i64::MAX))
            .collect();
        assert!(store.spend_many(&forever, now).unwrap().iter().all(|&f| f));
        assert_eq!(store.stats(now).unwrap().hours, 1);
        // Seen by a check with a finite window, and the reverse.
        let finite = dated(3, now - 300 * h, now + 10 * h);
        assert_eq!(store.spend_many(&[finite], now).unwrap(), [false]);
        let first = dated(60, now, now + 10 * h);
        assert_eq!(store.spend_many(&[first], now).unwrap(), [true]);
        let for_good = dated(60, now, i64::MAX);
        assert_eq!(store.spend_if_all_fresh(&[for_good], now).unwrap(), [false]);
        // The refusal filed it for good: the finite hour's drop does not free it.
        store.purge(now + 11 * h).unwrap();
        assert_eq!(store.spend_many(&[first], now + 11 * h).unwrap(), [false]);
        // An undated record is seen by a dated check of the same key.
        let mut undated = dated(70, now, now + h);
        undated.date = None;
        assert!(store.spend_many(&[undated], now).unwrap()[0]);
        assert_eq!(
            store.spend_many(&[dated(70, now, now + h)], now).unwrap(),
            [false]
        );
        // Stats name no time for entries kept for good.
        let s = store.stats(now + 100 * h).unwrap();
        assert_eq!(s.next_expiry, None);
    }

    /// A check that refuses a message (one stamp spent) records nothing fresh, but keeps the
    /// spent entries as long as it asks: a longer window never sees them fresh later.
    #[test]
    fn a_refusal_keeps_spent_entries_as_long_as_it_asks() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("s.redb")).unwrap();
        let (h, t) = (3600, 500_000 * 3600);
        assert!(store.spend_many(&[dated(1, t, t + h)], t).unwrap()[0]);
        let batch = [dated(1, t, t + 10 * h), dated(2, t, t + 10 * h)];
        assert_eq!(store.spend_if_all_fresh(&batch, t).unwrap(), [false, true]);
        assert_eq!(store.purge(t + 2 * h).unwrap(), 0, "kept until t + 10h");
        assert_eq!(store.len().unwrap(), 1, "the fresh one was not recorded");
        assert_eq!(store.spend_many(&batch[..1], t + 2 * h).unwrap(), [false]);
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
