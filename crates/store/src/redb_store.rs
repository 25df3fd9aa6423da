//! [`RedbStore`]: the production [`Backend`], one redb file per node.
//!
//! # Layout
//! - `data`: `[len(table) as u8][table bytes][user key]` → postcard
//!   [`KeyState`]. The length prefix makes a table's keys one contiguous
//!   range that no other table's keys fall into (`a` vs `ab`), so `scan` is a
//!   single range read.
//! - `log/{origin}/{bucket:010}`: `seq` → postcard [`LogEntry`], bucket
//!   `(seq - 1) / LOG_BUCKET_ENTRIES`. redb deletes are slow (each one
//!   rewrites B-tree pages), so truncation drops whole bucket tables and
//!   keeps the partly collected bucket; `log_start` in `meta` hides what it
//!   keeps.
//! - `meta`: small postcard blobs: the version vector, HLC floor, peers'
//!   vectors, `log_start` and `log_end` per origin, and the layout version.
//!   `log_end` is internal: it survives truncation, so an append after the
//!   whole log was collected is still checked against where the log ended.
//!
//! Durability comes from the write-ahead log next to the file
//! (`<file>.wal` and `<file>.wal.1`, [`crate::wal`]): a commit's rows are
//! appended and fdatasynced there, then kept in a memtable
//! ([`crate::memtable`]) that readers consult before redb. A background
//! thread writes the memtable to redb (a checkpoint: its key states in
//! durable transactions of a bounded size, the rest and `meta` in the
//! last) every second, or sooner when it grows; `meta` holds `lsn`,
//! the number of the last commit redb contains, so opening replays exactly
//! the logged commits a crash took from memory. Truncations reach redb with
//! the next checkpoint; table withdrawals and commits holding a row too large to log are
//! written to redb directly, after a checkpoint of everything before them.
//!
//! Every read takes the memtables and one redb read transaction under one
//! lock, and a frozen memtable is dropped only after its whole checkpoint
//! committed: states a checkpoint has written part-way are still found in
//! the frozen memtable first, so readers see a commit entirely or not at
//! all. Direct writes are one redb transaction each.
//!
//! The contract checks are shared with [`crate::MemStore`] (`contract`).
//!
//! Does not own merging, clocks or group commit: [`crate::Backend`] says why.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::{Duration, Instant};

use meridian_core::record::KeyState;
use meridian_core::{Hlc, LogEntry, RegionName, VersionVector};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, CommitBatch, Durability, LogStats, Meta, StoreError};
use crate::contract::{self, CommitBase, LogReadBudget, TABLE_NAME_BYTES_MAX};
use crate::memtable::{
    Memtable, CHECKPOINT_BEHIND_BYTES, CHECKPOINT_INTERVAL, CHECKPOINT_TXN_PAGES,
    LOGGED_ROW_BYTES_MAX, MEMTABLE_FLUSH_BYTES, PAGE_BYTES,
};
use crate::wal::{Rows, Wal};

/// Log entries per bucket table. Truncation works in whole buckets, so this
/// bounds how many collected entries stay on disk per origin (at ~150 bytes
/// an entry, about 600 KiB), while keeping the number of tables small: a
/// million-entry log is 245 tables, and a typical read of a few hundred
/// entries opens one or two.
pub const LOG_BUCKET_ENTRIES: u64 = 4096;

/// The layout this code writes and reads; stored in `meta` so a future
/// layout change is detected at open instead of misread.
///
/// Layout 2 adds the write-ahead log: commits since the last checkpoint are
/// only in `<file>.wal`, which a layout-1 build would ignore (losing them)
/// and, upgraded again, replay over newer data. Layout 3 adds the log's
/// second segment, `<file>.wal.1`, which a layout-2 build would ignore.
/// Opening a layout-1 or 2 file upgrades it (nothing to convert: no `lsn`
/// yet means 0, and a layout-2 log is the first segment); older builds
/// refuse a newer layout.
const LAYOUT_VERSION: u32 = 3;

/// redb's page cache. Its default (1 GiB) is per database, and `meridian up`
/// runs several nodes on one machine; 256 MiB holds the hot part of a
/// multi-GB data set and the recent log buckets replication reads.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Keys a table withdrawal deletes per slice.
const WITHHOLD_SLICE_KEYS: usize = 10_000;

const META_LAYOUT: &str = "layout_version";
const META_VV: &str = "vv";
const META_HLC_FLOOR: &str = "hlc_floor";
const META_PEER_VVS: &str = "peer_vvs";
const META_LOG_START: &str = "log_start";
const META_LOG_END: &str = "log_end";
const META_LSN: &str = "lsn";

/// How a [`RedbStore`] checkpoints.
#[derive(Clone)]
pub struct RedbOptions {
    /// Time between checkpoints under a steady stream of commits
    /// ([`CHECKPOINT_INTERVAL`]). Tests stretch it so that a copy of the
    /// files taken while the store is open is a crash image.
    pub checkpoint_interval: Duration,
    /// Estimated pages one checkpoint transaction may change
    /// ([`CHECKPOINT_TXN_PAGES`]); at least 1.
    pub checkpoint_txn_pages: usize,
    /// Called after each durable transaction of a checkpoint but its last
    /// (redb then holds part of the frozen memtable, and its metadata still
    /// points the replay before it): crash tests copy the files there.
    pub after_partial_checkpoint: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            checkpoint_interval: CHECKPOINT_INTERVAL,
            checkpoint_txn_pages: CHECKPOINT_TXN_PAGES,
            after_partial_checkpoint: None,
        }
    }
}

impl fmt::Debug for RedbOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbOptions")
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("checkpoint_txn_pages", &self.checkpoint_txn_pages)
            .field(
                "after_partial_checkpoint",
                &self.after_partial_checkpoint.is_some(),
            )
            .finish()
    }
}

/// A [`Backend`] on a redb database file, with a write-ahead log and a
/// memtable in front of it.
///
/// # Concurrency
/// - A commit holds the log's mutex while it appends its record and puts
///   its rows in the active memtable, so the memtables hold commits in the
///   log's order.
/// - The checkpoint thread freezes the active memtable (under the log's
///   mutex, moving the log to its other segment) and writes the frozen one
///   to redb in durable transactions, then drops it. Only one memtable is
///   frozen at a time.
/// - Readers take the memtables and begin their redb read transaction
///   under one read lock: redb then holds exactly what the memtables do
///   not (a frozen memtable is dropped only after its checkpoint
///   committed), so every read sees the store as of one commit.
pub struct RedbStore {
    inner: Arc<Inner>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    options: RedbOptions,
    /// Held through every commit, freeze and direct redb write.
    wal: Mutex<Wal>,
    mem: RwLock<Mem>,
    /// Held while a frozen memtable is written to redb.
    checkpointing: Mutex<()>,
    /// Wakes the checkpoint thread early: a memtable outgrew
    /// [`MEMTABLE_FLUSH_BYTES`], or the store closes.
    wake: Mutex<Wake>,
    wake_cv: Condvar,
    logged_commits: AtomicU64,
    checkpoint_seconds: crate::histogram::Histogram,
}

#[derive(Default)]
struct Wake {
    kicked: bool,
    stop: bool,
}

/// What is not (yet) in redb, and the store's metadata.
struct Mem {
    /// Commits since the last freeze.
    active: Memtable,
    /// The memtable being checkpointed.
    frozen: Option<Arc<Frozen>>,
    /// The metadata as of the last commit, with truncations not yet in
    /// redb: what readers and the commit checks use.
    stored: StoredMeta,
    /// `log_start` as redb holds it.
    redb_log_start: BTreeMap<RegionName, u64>,
    /// The lsn of the last commit redb holds durably.
    durable_lsn: u64,
    last_freeze: Instant,
    /// redb's data table as of its last commit that wrote key states,
    /// shared by every reader: beginning a read transaction and opening
    /// the table per read cost about a fifth of a pipelined `GET`'s CPU.
    /// Replaced under this lock by every such commit (with the memtable
    /// change that goes with it), so readers never see a stale one; `None`
    /// if opening it failed, when each read begins its own transaction.
    /// Holding it keeps redb from reusing the pages freed since, until the
    /// next checkpoint replaces it.
    data: Option<Arc<DataTable>>,
}

/// A read-only view of [`DATA`].
type DataTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Opens [`DATA`] as of redb's latest commit.
fn open_data(db: &Database) -> Result<Arc<DataTable>, StoreError> {
    let txn = db.begin_read().map_err(from_redb)?;
    Ok(Arc::new(txn.open_table(DATA).map_err(from_redb)?))
}

impl Mem {
    /// Whether anything is not yet in redb besides a frozen memtable:
    /// commits in the active one, or truncations.
    fn pending(&self) -> bool {
        !self.active.is_empty() || self.stored.meta.log_start != self.redb_log_start
    }
}

/// A memtable on its way into redb.
struct Frozen {
    table: Memtable,
    /// The metadata after its last commit.
    meta: StoredMeta,
    /// The store's lsn when it was frozen.
    lsn: u64,
    /// The log bytes that hold it (the segment left at the freeze).
    log_bytes: u64,
    /// Whether it holds commits that were not logged
    /// (`Durability::None`): a crash must lose all of them or none, so
    /// it is checkpointed in one transaction.
    unlogged: bool,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Everything in `meta`, decoded.
#[derive(Clone, Default)]
struct StoredMeta {
    meta: Meta,
    log_end: BTreeMap<RegionName, u64>,
}

impl StoredMeta {
    fn log_start(&self, origin: &RegionName) -> u64 {
        self.meta.log_start.get(origin).copied().unwrap_or(1)
    }

    fn log_end(&self, origin: &RegionName) -> u64 {
        self.log_end.get(origin).copied().unwrap_or(0)
    }

    /// Takes in what a commit changes besides keys and entries.
    fn apply(&mut self, rows: &Rows, new_ends: BTreeMap<RegionName, u64>) {
        self.meta.vv = rows.vv.clone();
        self.meta.hlc_floor = rows.hlc_floor;
        for (peer, vv) in &rows.peer_vvs {
            self.meta.peer_vvs.insert(peer.clone(), vv.clone());
        }
        self.log_end.extend(new_ends);
    }
}

impl RedbStore {
    /// Opens the database at `path` with the default checkpoint interval,
    /// creating it if the file does not exist. The parent directory must
    /// exist.
    ///
    /// Checks the layout version and that each origin's recorded log end
    /// matches its last stored entry; a mismatch is [`StoreError::Corrupt`].
    /// Replays the write-ahead log into redb before it returns.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, RedbOptions::default())
    }

    /// [`RedbStore::open`] with options.
    pub fn open_with(path: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        // Integrity checking on every open is off (redb's default): it reads
        // the whole file, so start-up would grow with the data. redb still
        // checks and repairs after an unclean shutdown.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(from_redb)?;
        let txn = db.begin_write().map_err(from_redb)?;
        let (durable_lsn, mut stored) = {
            // Opening creates the tables, so readers can rely on them.
            txn.open_table(DATA).map_err(from_redb)?;
            let mut meta = txn.open_table(META).map_err(from_redb)?;
            match get_decoded::<u32>(&meta, META_LAYOUT)? {
                Some(LAYOUT_VERSION) => {}
                Some(1 | 2) => put_encoded(&mut meta, META_LAYOUT, &LAYOUT_VERSION)?,
                Some(other) => {
                    return Err(StoreError::Corrupt(format!(
                        "{} has store layout {other}, this build reads layout {LAYOUT_VERSION}",
                        path.display()
                    )))
                }
                None => {
                    if meta.len().map_err(from_redb)? != 0 {
                        return Err(StoreError::Corrupt(format!(
                            "{} has metadata but no layout version",
                            path.display()
                        )));
                    }
                    put_encoded(&mut meta, META_LAYOUT, &LAYOUT_VERSION)?;
                }
            }
            let stored = load_meta(&meta)?;
            // What redb holds after a crash is its last durable commit, which
            // is what this transaction reads.
            let lsn = get_decoded::<u64>(&meta, META_LSN)?.unwrap_or(0);
            drop(meta);
            check_log_ends(&txn, &stored)?;
            (lsn, stored)
        };
        txn.commit().map_err(from_redb)?;

        let (mut wal, replay) = Wal::open(wal_paths(path), durable_lsn)?;
        let lsn = durable_lsn + replay.len() as u64;
        if !replay.is_empty() {
            // One durable transaction: either every logged commit is back
            // in redb, or none is and the next open replays them again.
            let txn = db.begin_write().map_err(from_redb)?;
            for rows in &replay {
                let mut new_ends = BTreeMap::new();
                for (origin, seq, _) in &rows.log {
                    new_ends.insert(origin.clone(), *seq);
                }
                insert_rows(&txn, rows)?;
                stored.apply(rows, new_ends);
            }
            put_meta(&txn, &stored, lsn)?;
            txn.commit().map_err(from_redb)?;
            tracing::info!(path = %path.display(), commits = replay.len(), through_lsn = lsn, "replayed the write-ahead log");
        }
        wal.lsn = lsn;
        let data = open_data(&db).ok();
        let inner = Arc::new(Inner {
            db,
            path: path.to_path_buf(),
            options,
            wal: Mutex::new(wal),
            mem: RwLock::new(Mem {
                active: Memtable::default(),
                frozen: None,
                redb_log_start: stored.meta.log_start.clone(),
                stored,
                durable_lsn: lsn,
                last_freeze: Instant::now(),
                data,
            }),
            checkpointing: Mutex::new(()),
            wake: Mutex::new(Wake::default()),
            wake_cv: Condvar::new(),
            logged_commits: Default::default(),
            checkpoint_seconds: Default::default(),
        });
        let checkpointer = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("redb-checkpoint".into())
                .spawn(move || inner.run_checkpoints())
                .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))?
        };
        tracing::debug!(path = %path.display(), "opened redb store");
        Ok(RedbStore {
            inner,
            checkpointer: Some(checkpointer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Makes every commit so far durable in redb itself now, rather than
    /// at the next background checkpoint.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut wal = self.inner.wal()?;
        wal.refuse_if_poisoned()?;
        self.inner.checkpoint_all(&mut wal)
    }
}

impl Drop for RedbStore {
    /// Stops the checkpoint thread and checkpoints what is left, so a clean
    /// close leaves nothing to replay (and keeps `Durability::None`
    /// commits). Best effort: the log still holds every logged commit.
    fn drop(&mut self) {
        {
            let mut wake = self
                .inner
                .wake
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            wake.stop = true;
        }
        self.inner.wake_cv.notify_all();
        if let Some(thread) = self.checkpointer.take() {
            let _ = thread.join();
        }
        match self.inner.wal() {
            Ok(mut wal) if !wal.poisoned() => {
                if let Err(e) = self.inner.checkpoint_all(&mut wal) {
                    tracing::warn!(path = %self.inner.path.display(), error = %e, "the closing checkpoint failed; the write-ahead log keeps the commits");
                }
            }
            _ => {}
        }
    }
}

impl Inner {
    /// The write-ahead log. A poisoned lock means a commit panicked between
    /// appending its record and taking its rows into the memtable: the
    /// log's lsn and the memtables no longer agree, so nothing more is
    /// written until a restart.
    fn wal(&self) -> Result<MutexGuard<'_, Wal>, StoreError> {
        self.wal.lock().map_err(|_| {
            StoreError::Io(format!(
                "{}: a commit panicked while holding the write-ahead log; restart the node",
                self.path.display()
            ))
        })
    }

    // The memtables' lock is only written by code that cannot panic
    // half-way (map inserts and swaps), so a poisoned lock still guards
    // consistent data.
    fn mem(&self) -> RwLockReadGuard<'_, Mem> {
        self.mem.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn mem_mut(&self) -> RwLockWriteGuard<'_, Mem> {
        self.mem.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The memtables' lock after a redb commit that wrote key states, with
    /// the readers' data table replaced by one as of that commit: the
    /// caller makes the memtable change that goes with the commit under
    /// the same lock.
    fn mem_after_commit(&self) -> RwLockWriteGuard<'_, Mem> {
        let data = open_data(&self.db).ok();
        let mut mem = self.mem_mut();
        mem.data = data;
        mem
    }

    /// redb's data table as of the memtables `mem` holds.
    fn data(&self, mem: &Mem) -> Result<Arc<DataTable>, StoreError> {
        match &mem.data {
            Some(data) => Ok(data.clone()),
            None => open_data(&self.db),
        }
    }

    /// The checkpoint thread: freezes and checkpoints the active memtable
    /// every `checkpoint_interval`, or when woken because it outgrew
    /// [`MEMTABLE_FLUSH_BYTES`]; retries a failed checkpoint a full
    /// interval later.
    fn run_checkpoints(&self) {
        let interval = self.options.checkpoint_interval;
        let mut failed = false;
        loop {
            // Until the next freeze is due; a full interval after a failure,
            // or when one was due but there was nothing to checkpoint (an
            // idle store polls once an interval, it does not spin).
            let until_due = interval.saturating_sub(self.mem().last_freeze.elapsed());
            let wait = if failed || until_due.is_zero() {
                interval
            } else {
                until_due
            };
            {
                let mut wake = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
                if !wake.kicked && !wake.stop {
                    wake = self
                        .wake_cv
                        .wait_timeout(wake, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if wake.stop {
                    return;
                }
                wake.kicked = false;
            }
            failed = match self.checkpoint_if_due() {
                Ok(()) => false,
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "checkpoint failed; the write-ahead log keeps the commits, retrying");
                    true
                }
            };
        }
    }

    fn kick(&self) {
        self.wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kicked = true;
        self.wake_cv.notify_one();
    }

    fn checkpoint_if_due(&self) -> Result<(), StoreError> {
        let (frozen, due) = {
            let mem = self.mem();
            (
                mem.frozen.is_some(),
                mem.active.bytes >= MEMTABLE_FLUSH_BYTES
                    || (mem.pending()
                        && mem.last_freeze.elapsed() >= self.options.checkpoint_interval),
            )
        };
        if !frozen && !due {
            return Ok(());
        }
        if !frozen {
            let mut wal = self.wal()?;
            self.freeze(&mut wal);
        }
        self.checkpoint()
    }

    /// Moves the active memtable to `frozen` and the log to its other
    /// segment. The caller holds the log and has checkpointed any
    /// memtable frozen before.
    fn freeze(&self, wal: &mut Wal) {
        let mut mem = self.mem_mut();
        if mem.frozen.is_some() {
            return;
        }
        let table = std::mem::take(&mut mem.active);
        let log_bytes = wal.rotate();
        mem.frozen = Some(Arc::new(Frozen {
            table,
            meta: mem.stored.clone(),
            lsn: wal.lsn,
            log_bytes,
            unlogged: wal.unlogged_lsn > mem.durable_lsn,
        }));
        mem.last_freeze = Instant::now();
    }

    /// Writes the frozen memtable (if any) to redb, with the truncations
    /// made since, and drops it.
    ///
    /// Its key states go in durable transactions of at most
    /// `checkpoint_txn_pages` estimated pages each, so the log's fdatasyncs
    /// never wait behind one large flush (see [`CHECKPOINT_TXN_PAGES`]) —
    /// unless the checkpoints fall behind the writers (the next memtable
    /// holds [`CHECKPOINT_BEHIND_BYTES`]), when the rest goes in one
    /// transaction.
    /// The last transaction also takes the log entries and the metadata,
    /// lsn included. A crash before it leaves redb with some of the frozen
    /// states but an lsn from before them: the open replays every logged
    /// commit since that lsn, in order, so each key ends at its newest state
    /// whatever the earlier transactions wrote; readers meanwhile find the
    /// same states in the frozen memtable first. A memtable holding unlogged
    /// commits goes in one transaction, since none of them can be replayed.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (frozen, log_start, redb_log_start) = {
            let mem = self.mem();
            let Some(frozen) = mem.frozen.clone() else {
                return Ok(());
            };
            (
                frozen,
                mem.stored.meta.log_start.clone(),
                mem.redb_log_start.clone(),
            )
        };
        // Truncations reach redb no further than the entries it will hold.
        let log_start: BTreeMap<RegionName, u64> = log_start
            .into_iter()
            .map(|(origin, start)| {
                let end = frozen.meta.log_end(&origin);
                (origin, start.min(end + 1))
            })
            .collect();
        let started = Instant::now();
        let mut pages_max = if frozen.unlogged {
            usize::MAX
        } else {
            self.options.checkpoint_txn_pages.max(1)
        };
        let mut states = frozen.table.states.iter().peekable();
        let txn = loop {
            if self.mem().active.bytes >= CHECKPOINT_BEHIND_BYTES {
                // Falling behind: the rest goes in one transaction, whose
                // single large flush is the disk's fastest way to write it;
                // small ones would stall the writer later, and longer.
                pages_max = usize::MAX;
            }
            let txn = self.db.begin_write().map_err(from_redb)?;
            {
                let mut data = txn.open_table(DATA).map_err(from_redb)?;
                let mut pages = 0;
                while pages < pages_max {
                    let Some((key, state)) = states.next() else {
                        break;
                    };
                    data.insert(key.as_slice(), state.as_slice())
                        .map_err(from_redb)?;
                    pages += 1 + (key.len() + state.len()) / PAGE_BYTES;
                }
            }
            if states.peek().is_none() {
                break txn;
            }
            txn.commit().map_err(from_redb)?;
            if let Some(hook) = &self.options.after_partial_checkpoint {
                hook();
            }
        };
        for (origin, entries) in &frozen.table.log {
            let start = log_start.get(origin).copied().unwrap_or(1);
            insert_entries(
                &txn,
                origin,
                entries
                    .range(start..)
                    .map(|(seq, bytes)| (*seq, bytes.as_slice())),
            )?;
        }
        for (origin, &start) in &log_start {
            // Drop every bucket that now lies wholly below the start;
            // buckets below redb's start were dropped before. A bucket
            // whose entries were all skipped above was never created.
            let mut bucket = bucket_of(redb_log_start.get(origin).copied().unwrap_or(1));
            while bucket_last_seq(bucket) < start {
                txn.delete_table(log_table(&log_table_name(origin, bucket)))
                    .map_err(from_redb)?;
                bucket += 1;
            }
        }
        put_meta(&txn, &frozen.meta, frozen.lsn)?;
        put_encoded(
            &mut txn.open_table(META).map_err(from_redb)?,
            META_LOG_START,
            &log_start,
        )?;
        txn.commit().map_err(from_redb)?;
        self.checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        let mut mem = self.mem_after_commit();
        mem.frozen = None;
        mem.redb_log_start = log_start;
        mem.durable_lsn = mem.durable_lsn.max(frozen.lsn);
        Ok(())
    }

    /// Makes every commit so far durable in redb: checkpoints the frozen
    /// memtable, then freezes and checkpoints the active one. Afterwards
    /// both are empty until the caller releases the log.
    fn checkpoint_all(&self, wal: &mut Wal) -> Result<(), StoreError> {
        self.checkpoint()?;
        let pending = self.mem().pending();
        if pending {
            self.freeze(wal);
            self.checkpoint()?;
        }
        Ok(())
    }

    /// After the log refused a record (`Wal::append` failed, which poisons
    /// it): the refused record may still be on disk as commit `lsn`, so a
    /// durable redb commit claims that number, after the memtables — the
    /// next open then skips the record instead of replaying a write that
    /// was refused. Best effort: if this fails too, the node must stop
    /// before it restarts on the same files (the error says so).
    fn burn_lsn(&self, wal: &mut Wal, lsn: u64) {
        let mut burn = || -> Result<(), StoreError> {
            self.checkpoint_all(wal)?;
            let txn = self.db.begin_write().map_err(from_redb)?;
            put_encoded(
                &mut txn.open_table(META).map_err(from_redb)?,
                META_LSN,
                &lsn,
            )?;
            txn.commit().map_err(from_redb)
        };
        match burn() {
            Ok(()) => {
                wal.lsn = lsn;
                self.mem_mut().durable_lsn = lsn;
            }
            Err(e) => tracing::error!(
                error = %e,
                lsn,
                "could not mark a refused write-ahead record as void; a restart may replay it"
            ),
        }
    }

    /// A commit holding a row too large to log: written to redb directly and durably,
    /// after [`Inner::checkpoint_all`] emptied the memtables (so redb holds
    /// the newest state of every key it writes).
    fn commit_direct(
        &self,
        wal: &mut Wal,
        rows: &Rows,
        new_ends: BTreeMap<RegionName, u64>,
        lsn: u64,
    ) -> Result<(), StoreError> {
        let mut after = self.mem().stored.clone();
        after.apply(rows, new_ends.clone());
        let started = Instant::now();
        let txn = self.db.begin_write().map_err(from_redb)?;
        insert_rows(&txn, rows)?;
        put_meta(&txn, &after, lsn)?;
        txn.commit().map_err(from_redb)?;
        self.checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        wal.lsn = lsn;
        let mut mem = self.mem_after_commit();
        // Applied to the live metadata, not replaced by `after`: a
        // truncation may have moved `log_start` meanwhile.
        mem.stored.apply(rows, new_ends);
        mem.durable_lsn = lsn;
        Ok(())
    }
}

/// The paired check of `log_end`: each origin's recorded end must be the
/// last entry of its last bucket (or, for a fully collected log, just below
/// `log_start`). Catches a `meta` and a log that disagree before a commit
/// builds on them.
fn check_log_ends(txn: &WriteTransaction, stored: &StoredMeta) -> Result<(), StoreError> {
    for (origin, &end) in &stored.log_end {
        let start = stored.log_start(origin);
        if start > end + 1 {
            return Err(StoreError::Corrupt(format!(
                "log of {origin} starts at {start} but ends at {end}"
            )));
        }
        if start == end + 1 {
            continue;
        }
        let name = log_table_name(origin, bucket_of(end));
        let table = txn
            .open_table(log_table(&name))
            .map_err(|e| missing_bucket(origin, &name, e))?;
        let last = table.last().map_err(from_redb)?.map(|(k, _)| k.value());
        if last != Some(end) {
            return Err(StoreError::Corrupt(format!(
                "log of {origin} should end at {end}, its last stored entry is {last:?}"
            )));
        }
    }
    Ok(())
}

/// Both segments of the write-ahead log of the store at `path`:
/// `<path>.wal` and `<path>.wal.1`.
pub fn wal_paths(path: &Path) -> [PathBuf; 2] {
    let mut first = path.as_os_str().to_owned();
    first.push(".wal");
    let mut second = first.clone();
    second.push(".1");
    [PathBuf::from(first), PathBuf::from(second)]
}

/// Writes one commit's encoded rows into `txn`: key states and log
/// entries (the metadata is [`put_meta`]'s).
fn insert_rows(txn: &WriteTransaction, rows: &Rows) -> Result<(), StoreError> {
    let mut data = txn.open_table(DATA).map_err(from_redb)?;
    for (key, value) in &rows.states {
        data.insert(key.as_slice(), value.as_slice())
            .map_err(from_redb)?;
    }
    drop(data);
    // Entries are in sequence order per origin.
    let mut i = 0;
    while i < rows.log.len() {
        let origin = &rows.log[i].0;
        let run = rows.log[i..]
            .iter()
            .take_while(|(o, _, _)| o == origin)
            .count();
        insert_entries(
            txn,
            origin,
            rows.log[i..i + run]
                .iter()
                .map(|(_, seq, bytes)| (*seq, bytes.as_slice())),
        )?;
        i += run;
    }
    Ok(())
}

/// Writes the metadata after commit `lsn` into `txn`: the vector, floor,
/// peers' vectors, log ends and the lsn (`log_start` only changes with
/// truncations, which checkpoints write).
fn put_meta(txn: &WriteTransaction, stored: &StoredMeta, lsn: u64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(from_redb)?;
    put_encoded(&mut meta, META_VV, &stored.meta.vv)?;
    put_encoded(&mut meta, META_HLC_FLOOR, &stored.meta.hlc_floor)?;
    put_encoded(&mut meta, META_PEER_VVS, &stored.meta.peer_vvs)?;
    put_encoded(&mut meta, META_LOG_END, &stored.log_end)?;
    put_encoded(&mut meta, META_LSN, &lsn)?;
    Ok(())
}

/// Inserts `origin`'s entries, in sequence order, each bucket table opened
/// once for its run.
fn insert_entries<'a>(
    txn: &WriteTransaction,
    origin: &RegionName,
    entries: impl Iterator<Item = (u64, &'a [u8])>,
) -> Result<(), StoreError> {
    let mut open: Option<(u64, redb::Table<'_, u64, &'static [u8]>)> = None;
    for (seq, bytes) in entries {
        // Seq 0 never exists; check_commit rejects it, replay never sees it.
        let bucket = bucket_of(seq.max(1));
        let table = match &mut open {
            Some((b, table)) if *b == bucket => table,
            _ => {
                let name = log_table_name(origin, bucket);
                let table = txn.open_table(log_table(&name)).map_err(from_redb)?;
                &mut open.insert((bucket, table)).1
            }
        };
        let old = table.insert(seq, bytes).map_err(from_redb)?;
        debug_assert!(old.is_none(), "{origin}/{seq} was stored twice");
    }
    Ok(())
}

fn bucket_of(seq: u64) -> u64 {
    debug_assert!(seq >= 1, "sequences start at 1");
    (seq - 1) / LOG_BUCKET_ENTRIES
}

/// The last sequence bucket `bucket` can hold.
fn bucket_last_seq(bucket: u64) -> u64 {
    (bucket + 1) * LOG_BUCKET_ENTRIES
}

fn log_table_name(origin: &RegionName, bucket: u64) -> String {
    // Region names are `[a-z0-9-]`, so `/` cannot be confused with them.
    format!("log/{origin}/{bucket:010}")
}

fn log_table(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

fn data_prefix(table: &str) -> Vec<u8> {
    debug_assert!(table.len() <= TABLE_NAME_BYTES_MAX);
    let mut k = Vec::with_capacity(1 + table.len());
    k.push(table.len() as u8);
    k.extend_from_slice(table.as_bytes());
    k
}

fn data_key(table: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + table.len() + key.len());
    put_data_key(&mut k, table, key);
    k
}

/// Replaces `buf` with the data key of `table`/`key` (see the layout).
fn put_data_key(buf: &mut Vec<u8>, table: &str, key: &[u8]) {
    debug_assert!(table.len() <= TABLE_NAME_BYTES_MAX);
    buf.clear();
    buf.push(table.len() as u8);
    buf.extend_from_slice(table.as_bytes());
    buf.extend_from_slice(key);
}

/// Maps redb's errors onto what the caller can act on: damaged files stop
/// the node, a value redb cannot hold rejects the batch, everything else
/// (failing or full disk, lock held by another process) is an I/O error.
fn from_redb(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    match e {
        redb::Error::Corrupted(m) => StoreError::Corrupt(m),
        redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }
        // Every table a read opens exists by construction.
        | redb::Error::TableDoesNotExist(_) => StoreError::Corrupt(e.to_string()),
        redb::Error::ValueTooLarge(_) => StoreError::Invalid(e.to_string()),
        other => StoreError::Io(other.to_string()),
    }
}

fn missing_bucket(origin: &RegionName, name: &str, e: redb::TableError) -> StoreError {
    match e {
        redb::TableError::TableDoesNotExist(_) => {
            StoreError::Corrupt(format!("log of {origin}: bucket table {name} is missing"))
        }
        other => from_redb(other),
    }
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    // Most states and entries fit in 256 bytes: one allocation, not a
    // doubling series.
    postcard::to_extend(value, Vec::with_capacity(256))
        .map_err(|e| StoreError::Invalid(format!("cannot encode {what}: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: impl fmt::Display) -> Result<T, StoreError> {
    postcard::from_bytes(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} does not decode: {e}")))
}

fn get_decoded<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key).map_err(from_redb)? {
        Some(v) => decode(v.value(), format_args!("meta `{key}`")).map(Some),
        None => Ok(None),
    }
}

fn put_encoded<T: Serialize>(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = encode(value, key)?;
    table.insert(key, bytes.as_slice()).map_err(from_redb)?;
    Ok(())
}

fn load_meta(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<StoredMeta, StoreError> {
    Ok(StoredMeta {
        meta: Meta {
            vv: get_decoded::<VersionVector>(table, META_VV)?.unwrap_or_default(),
            hlc_floor: get_decoded::<Hlc>(table, META_HLC_FLOOR)?.unwrap_or_default(),
            peer_vvs: get_decoded(table, META_PEER_VVS)?.unwrap_or_default(),
            log_start: get_decoded(table, META_LOG_START)?.unwrap_or_default(),
        },
        log_end: get_decoded(table, META_LOG_END)?.unwrap_or_default(),
    })
}

impl Backend for RedbStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<KeyState>, StoreError> {
        Ok(self.get_many(&[(table, key)])?.pop().flatten())
    }

    fn get_many(&self, keys: &[(&str, &[u8])]) -> Result<Vec<Option<KeyState>>, StoreError> {
        let inner = &self.inner;
        let what = |table: &str, key: &[u8]| format!("state of {table}/{}", key.escape_ascii());
        let mut out = Vec::with_capacity(keys.len());
        let mut misses = Vec::new();
        let mut k = Vec::new();
        let data = {
            let mem = inner.mem();
            for (i, (table, key)) in keys.iter().enumerate() {
                if table.len() > TABLE_NAME_BYTES_MAX {
                    // No commit can have stored it.
                    out.push(None);
                    continue;
                }
                put_data_key(&mut k, table, key);
                let held = mem
                    .active
                    .state(&k)
                    .or_else(|| mem.frozen.as_ref().and_then(|f| f.table.state(&k)));
                match held {
                    Some(bytes) => out.push(Some(decode(bytes, what(table, key))?)),
                    None => {
                        out.push(None);
                        misses.push(i);
                    }
                }
            }
            if misses.is_empty() {
                return Ok(out);
            }
            // Under the lock: redb as of the memtables just read.
            inner.data(&mem)?
        };
        for i in misses {
            let (table, key) = keys[i];
            put_data_key(&mut k, table, key);
            if let Some(v) = data.get(k.as_slice()).map_err(from_redb)? {
                out[i] = Some(decode(v.value(), what(table, key))?);
            }
        }
        Ok(out)
    }

    fn scan(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyState)>, StoreError> {
        if table.len() > TABLE_NAME_BYTES_MAX || limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = data_prefix(table);
        let start = match after {
            Some(a) => data_key(table, a),
            None => prefix.clone(),
        };
        let lower = match after {
            Some(_) => Bound::Excluded(start.as_slice()),
            None => Bound::Included(start.as_slice()),
        };
        let decode_row = |k: &[u8], v: &[u8]| -> Result<(Vec<u8>, KeyState), StoreError> {
            let user_key = &k[prefix.len()..];
            let state = decode(
                v,
                format_args!("state of {table}/{}", user_key.escape_ascii()),
            )?;
            Ok((user_key.to_vec(), state))
        };
        // Each source's first `limit` keys hold the merged first `limit`;
        // newer sources replace older ones' states.
        let mut merged = BTreeMap::new();
        let (held, data) = {
            let mem = self.inner.mem();
            let mut held = Vec::new();
            if let Some(frozen) = &mem.frozen {
                for (k, v) in frozen.table.states_from(lower, &prefix, limit) {
                    held.push(decode_row(k, v)?);
                }
            }
            for (k, v) in mem.active.states_from(lower, &prefix, limit) {
                held.push(decode_row(k, v)?);
            }
            (held, self.inner.data(&mem)?)
        };
        for item in data
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(from_redb)?
            .take(limit)
        {
            let (k, v) = item.map_err(from_redb)?;
            if !k.value().starts_with(&prefix) {
                break; // the next table's keys
            }
            let (key, state) = decode_row(k.value(), v.value())?;
            merged.insert(key, state);
        }
        merged.extend(held);
        Ok(merged.into_iter().take(limit).collect())
    }

    fn read_log(
        &self,
        origin: &RegionName,
        from_seq: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        // The entries the memtables hold are copied, within the same
        // budget, and redb's read transaction begun under the same lock:
        // redb holds exactly the entries before the memtables' first.
        let (mut seq, held, redb_end, txn) = {
            let mem = self.inner.mem();
            let seq = contract::check_read_from(origin, from_seq, mem.stored.log_start(origin))?;
            let end = mem.stored.log_end(origin);
            let frozen = mem.frozen.as_ref().map(|f| &f.table);
            let first_held = frozen
                .and_then(|f| f.first_seq(origin))
                .or_else(|| mem.active.first_seq(origin))
                .unwrap_or(end + 1);
            let mut budget = LogReadBudget::new(max_entries, max_bytes);
            let mut held = Vec::new();
            let from_held = seq.max(first_held);
            for (s, bytes) in frozen
                .into_iter()
                .flat_map(|f| f.entries_from(origin, from_held))
                .chain(mem.active.entries_from(origin, from_held))
            {
                if s > end || !budget.take(bytes.len()) {
                    break;
                }
                held.push((s, bytes.clone()));
            }
            let txn = if seq < first_held {
                Some(self.inner.db.begin_read().map_err(from_redb)?)
            } else {
                None
            };
            (seq, held, first_held - 1, txn)
        };
        let mut budget = LogReadBudget::new(max_entries, max_bytes);
        let mut out = Vec::new();
        if let Some(txn) = txn {
            while seq <= redb_end && !budget.exhausted() {
                let name = log_table_name(origin, bucket_of(seq));
                let table = txn
                    .open_table(log_table(&name))
                    .map_err(|e| missing_bucket(origin, &name, e))?;
                let last = bucket_last_seq(bucket_of(seq)).min(redb_end);
                for item in table.range(seq..=last).map_err(from_redb)? {
                    let (k, v) = item.map_err(from_redb)?;
                    if k.value() != seq {
                        return Err(StoreError::Corrupt(format!(
                            "log of {origin} jumps from {} to {}",
                            seq - 1,
                            k.value()
                        )));
                    }
                    let bytes = v.value();
                    if !budget.take(bytes.len()) {
                        return Ok(out);
                    }
                    let entry: LogEntry = decode(bytes, format_args!("log entry {origin}/{seq}"))?;
                    debug_assert!(entry.origin == *origin && entry.seq == seq);
                    out.push(entry);
                    seq += 1;
                }
                if seq <= last && !budget.exhausted() {
                    return Err(StoreError::Corrupt(format!(
                        "log of {origin} should hold {seq} (redb holds it through {redb_end}), {name} stops before it"
                    )));
                }
            }
        }
        for (s, bytes) in held {
            if budget.exhausted() || !budget.take(bytes.len()) {
                break;
            }
            debug_assert_eq!(s, seq, "the memtables continue redb's entries");
            out.push(decode(&bytes, format_args!("log entry {origin}/{s}"))?);
            seq = s + 1;
        }
        Ok(out)
    }

    fn commit(&self, batch: &CommitBatch, durability: Durability) -> Result<(), StoreError> {
        let inner = &self.inner;
        // Encode outside the log's lock, which excludes other writers.
        let rows = Rows {
            states: batch
                .states
                .iter()
                .map(|(table, key, state)| {
                    contract::check_table_name(table)?;
                    Ok((data_key(table, key), encode(state, "a key state")?))
                })
                .collect::<Result<Vec<_>, StoreError>>()?,
            log: batch
                .log
                .iter()
                .map(|e| Ok((e.origin.clone(), e.seq, encode(e, "a log entry")?)))
                .collect::<Result<Vec<_>, StoreError>>()?,
            vv: batch.vv.clone(),
            hlc_floor: batch.hlc_floor,
            peer_vvs: batch.peer_vvs.clone(),
        };

        let mut wal = inner.wal()?;
        wal.refuse_if_poisoned()?;
        let (new_ends, full, frozen, durable_lsn) = {
            let mem = inner.mem();
            // On error nothing has changed.
            let new_ends = contract::check_commit(
                batch,
                &CommitBase {
                    vv: &mem.stored.meta.vv,
                    hlc_floor: mem.stored.meta.hlc_floor,
                    log_end: &mem.stored.log_end,
                },
            )?;
            (
                new_ends,
                mem.active.bytes >= MEMTABLE_FLUSH_BYTES,
                mem.frozen.is_some(),
                mem.durable_lsn,
            )
        };
        let large = rows.largest_row() > LOGGED_ROW_BYTES_MAX;
        // A logged commit must not follow unlogged ones a crash would lose
        // (it would be replayed over a store without what it built on), and
        // a large one goes to redb, which must hold everything before it.
        if large || (durability == Durability::Fsync && wal.unlogged_lsn > durable_lsn) {
            inner.checkpoint_all(&mut wal)?;
        } else if full {
            // The active memtable is full. If the one before it is still
            // being written, the writer waits for that checkpoint (a write
            // stall: memory stays bounded by two memtables); then it
            // freezes the full one itself rather than wait for the
            // checkpoint thread to be scheduled.
            if frozen {
                inner.checkpoint()?;
            }
            inner.freeze(&mut wal);
            inner.kick();
        }
        let lsn = wal.lsn + 1;
        if large {
            return inner.commit_direct(&mut wal, &rows, new_ends, lsn);
        }
        if durability == Durability::Fsync {
            let record = rows.to_record(lsn)?;
            if let Err(e) = wal.append(&record) {
                if wal.poisoned() {
                    inner.burn_lsn(&mut wal, lsn);
                }
                return Err(e);
            }
            inner
                .logged_commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            wal.unlogged_lsn = lsn;
        }
        wal.lsn = lsn;
        let full = {
            let mut mem = inner.mem_mut();
            mem.stored.apply(&rows, new_ends);
            mem.active.insert(rows);
            mem.active.bytes >= MEMTABLE_FLUSH_BYTES
        };
        if full {
            inner.kick();
        }
        Ok(())
    }

    fn truncate_log(&self, origin: &RegionName, through_seq: u64) -> Result<u64, StoreError> {
        // In memory at once (reads obey it); in redb with the next
        // checkpoint. A crash before it brings the entries back, which
        // costs nothing but disk: everyone has them.
        let mut mem = self.inner.mem_mut();
        let start = mem.stored.log_start(origin);
        let end = mem.stored.log_end(origin);
        match contract::check_truncate(origin, through_seq, start, end)? {
            None => Ok(start),
            Some(new_start) => {
                mem.stored.meta.log_start.insert(origin.clone(), new_start);
                Ok(new_start)
            }
        }
    }

    fn withhold_table(
        &self,
        table: &str,
        through: &VersionVector,
    ) -> Result<(u64, u64), StoreError> {
        contract::check_table_name(table)?;
        let inner = &self.inner;
        // Durable at once, and with nothing of the table left in memory:
        // everything before is checkpointed first, and commits wait.
        let mut wal = inner.wal()?;
        wal.refuse_if_poisoned()?;
        inner.checkpoint_all(&mut wal)?;
        let lsn = wal.lsn + 1;
        let txn = inner.db.begin_write().map_err(from_redb)?;
        let counts = {
            let stored = load_meta(&txn.open_table(META).map_err(from_redb)?)?;
            put_encoded(
                &mut txn.open_table(META).map_err(from_redb)?,
                META_LSN,
                &lsn,
            )?;
            let mut rewritten = 0;
            for (origin, end) in &stored.log_end {
                let end = (*end).min(through.get(origin));
                if end == 0 {
                    continue;
                }
                // Whole buckets: the one holding the first kept entry may
                // still hold truncated ones before it.
                for bucket in bucket_of(stored.log_start(origin).min(end))..=bucket_of(end) {
                    let name = log_table_name(origin, bucket);
                    let mut log = txn.open_table(log_table(&name)).map_err(from_redb)?;
                    let mut placeholders = Vec::new();
                    for item in log.range(..=end).map_err(from_redb)? {
                        let (seq, bytes) = item.map_err(from_redb)?;
                        let entry: LogEntry = decode(
                            bytes.value(),
                            format_args!("log entry {origin}/{}", seq.value()),
                        )?;
                        if entry.table == table && entry.op != meridian_core::Op::Withheld {
                            placeholders
                                .push((seq.value(), encode(&entry.withheld(), "a log entry")?));
                        }
                    }
                    for (seq, bytes) in &placeholders {
                        log.insert(*seq, bytes.as_slice()).map_err(from_redb)?;
                    }
                    rewritten += placeholders.len() as u64;
                }
            }
            let mut data = txn.open_table(DATA).map_err(from_redb)?;
            let prefix = data_prefix(table);
            let mut dropped = 0u64;
            loop {
                // In slices, so a huge table never sits in memory at once.
                let keys: Vec<Vec<u8>> = data
                    .range(prefix.as_slice()..)
                    .map_err(from_redb)?
                    .map_while(|item| {
                        item.ok()
                            .map(|(k, _)| k.value().to_vec())
                            .filter(|k| k.starts_with(&prefix))
                    })
                    .take(WITHHOLD_SLICE_KEYS)
                    .collect();
                if keys.is_empty() {
                    break;
                }
                for k in &keys {
                    data.remove(k.as_slice()).map_err(from_redb)?;
                }
                dropped += keys.len() as u64;
            }
            (rewritten, dropped)
        };
        txn.commit().map_err(from_redb)?;
        wal.lsn = lsn;
        inner.mem_after_commit().durable_lsn = lsn;
        Ok(counts)
    }

    fn meta(&self) -> Result<Meta, StoreError> {
        Ok(self.inner.mem().stored.meta.clone())
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        let path = &self.inner.path;
        let file = std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
        Ok(file + self.log_stats().map_or(0, |s| s.log_bytes))
    }

    fn log_stats(&self) -> Option<LogStats> {
        let inner = &self.inner;
        let snapshot = inner.checkpoint_seconds.snapshot();
        let current_segment = inner.wal().map(|w| w.len()).unwrap_or(0);
        let mem = inner.mem();
        let frozen = mem.frozen.as_ref();
        Some(LogStats {
            logged_commits: inner
                .logged_commits
                .load(std::sync::atomic::Ordering::Relaxed),
            checkpoints: snapshot.count,
            checkpoint_seconds: snapshot,
            log_bytes: current_segment + frozen.map_or(0, |f| f.log_bytes),
            memtable_bytes: (mem.active.bytes + frozen.map_or(0, |f| f.table.bytes)) as u64,
        })
    }
}
