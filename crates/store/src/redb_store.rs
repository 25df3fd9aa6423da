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
//! Every commit and truncation is one redb write transaction, and every read
//! one read transaction, so readers see a commit entirely or not at all.
//!
//! Durability comes from the write-ahead log next to the file (`<file>.wal`,
//! [`crate::wal`]): a commit's rows are appended and fdatasynced there, then
//! committed to redb without fsync; every second a commit is made durable in
//! redb itself (a checkpoint) and the log starts over. `meta` holds `lsn`,
//! the number of the last commit redb contains, so opening replays exactly
//! the logged commits a crash took from redb.
//! The contract checks are shared with [`crate::MemStore`] (`contract`).
//!
//! Does not own merging, clocks or group commit: [`crate::Backend`] says why.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

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
/// and, upgraded again, replay over newer data. Opening a layout-1 file
/// upgrades it (nothing to convert: no `lsn` yet means 0); a layout-1 build
/// refuses a layout-2 file.
const LAYOUT_VERSION: u32 = 2;

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

/// A [`Backend`] on a redb database file.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// Held through every write transaction, so the log's order is redb's.
    wal: Mutex<Wal>,
    logged_commits: std::sync::atomic::AtomicU64,
    checkpoint_seconds: crate::histogram::Histogram,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Everything in `meta`, decoded.
#[derive(Default)]
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
}

impl RedbStore {
    /// Opens the database at `path`, creating it if the file does not exist.
    /// The parent directory must exist.
    ///
    /// Checks the layout version and that each origin's recorded log end
    /// matches its last stored entry; a mismatch is [`StoreError::Corrupt`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Integrity checking on every open is off (redb's default): it reads
        // the whole file, so start-up would grow with the data. redb still
        // checks and repairs after an unclean shutdown.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(from_redb)?;
        let txn = db.begin_write().map_err(from_redb)?;
        let durable_lsn = {
            // Opening creates the tables, so readers can rely on them.
            txn.open_table(DATA).map_err(from_redb)?;
            let mut meta = txn.open_table(META).map_err(from_redb)?;
            match get_decoded::<u32>(&meta, META_LAYOUT)? {
                Some(LAYOUT_VERSION) => {}
                Some(1) => put_encoded(&mut meta, META_LAYOUT, &LAYOUT_VERSION)?,
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
            lsn
        };
        txn.commit().map_err(from_redb)?;

        let (mut wal, replay) = Wal::open(&wal_path(path), durable_lsn)?;
        let lsn = durable_lsn + replay.len() as u64;
        if !replay.is_empty() {
            // One durable transaction: either every logged commit is back
            // in redb, or none is and the next open replays them again.
            let txn = db.begin_write().map_err(from_redb)?;
            let mut stored = load_meta(&txn.open_table(META).map_err(from_redb)?)?;
            for (rows, lsn) in replay.iter().zip(durable_lsn + 1..) {
                let mut new_ends = BTreeMap::new();
                for (origin, seq, _) in &rows.log {
                    new_ends.insert(origin.clone(), *seq);
                }
                write_rows(&txn, rows, &mut stored, new_ends, lsn)?;
            }
            txn.commit().map_err(from_redb)?;
            tracing::info!(path = %path.display(), commits = replay.len(), through_lsn = lsn, "replayed the write-ahead log");
        }
        wal.checkpointed(lsn);
        tracing::debug!(path = %path.display(), "opened redb store");
        Ok(RedbStore {
            db,
            path: path.to_path_buf(),
            wal: Mutex::new(wal),
            logged_commits: Default::default(),
            checkpoint_seconds: Default::default(),
        })
    }

    /// The write-ahead log. A poisoned lock means a commit panicked between
    /// appending its record and committing it to redb: the log's position
    /// and lsn no longer agree, so nothing more is written until a restart.
    fn wal(&self) -> Result<MutexGuard<'_, Wal>, StoreError> {
        self.wal.lock().map_err(|_| {
            StoreError::Io(format!(
                "{}: a commit panicked while holding the write-ahead log; restart the node",
                self.path.display()
            ))
        })
    }

    /// After the log refused a record (`Wal::append` or `Wal::void_last`
    /// failed, which poisons it): the refused record may still be on disk
    /// as commit `lsn`, so a durable redb commit claims that number — the
    /// next open then skips the record instead of replaying a write that
    /// was refused. Best effort: if this fails too, the node must stop
    /// before it restarts on the same files (the error says so).
    fn burn_lsn(&self, wal: &mut Wal, lsn: u64) {
        let burn = || -> Result<(), StoreError> {
            let txn = self.db.begin_write().map_err(from_redb)?;
            put_encoded(
                &mut txn.open_table(META).map_err(from_redb)?,
                META_LSN,
                &lsn,
            )?;
            txn.commit().map_err(from_redb)
        };
        match burn() {
            Ok(()) => wal.checkpointed(lsn),
            Err(e) => tracing::error!(
                error = %e,
                lsn,
                "could not mark a refused write-ahead record as void; a restart may replay it"
            ),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
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

/// The write-ahead log of the store at `path`: `<path>.wal`.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

/// Writes one commit's encoded rows into `txn`, with `stored` as `meta`
/// holds it before: states, log entries (each bucket table opened once),
/// the vector, floor, peers' vectors, the log ends and the commit's lsn.
fn write_rows(
    txn: &WriteTransaction,
    rows: &Rows,
    stored: &mut StoredMeta,
    new_ends: BTreeMap<RegionName, u64>,
    lsn: u64,
) -> Result<(), StoreError> {
    let mut data = txn.open_table(DATA).map_err(from_redb)?;
    for (key, value) in &rows.states {
        data.insert(key.as_slice(), value.as_slice())
            .map_err(from_redb)?;
    }
    drop(data);
    // Entries are in sequence order per origin; a run of one origin's
    // bucket goes through one open table.
    let mut i = 0;
    while i < rows.log.len() {
        let (origin, seq, _) = &rows.log[i];
        // Seq 0 never exists; check_commit rejects it, replay never sees it.
        let bucket = bucket_of((*seq).max(1));
        let name = log_table_name(origin, bucket);
        let mut table = txn.open_table(log_table(&name)).map_err(from_redb)?;
        while i < rows.log.len() {
            let (o, seq, bytes) = &rows.log[i];
            if o != origin || bucket_of((*seq).max(1)) != bucket {
                break;
            }
            let old = table.insert(*seq, bytes.as_slice()).map_err(from_redb)?;
            debug_assert!(old.is_none(), "check_commit let {o}/{seq} through twice");
            i += 1;
        }
    }

    let mut meta = txn.open_table(META).map_err(from_redb)?;
    put_encoded(&mut meta, META_VV, &rows.vv)?;
    put_encoded(&mut meta, META_HLC_FLOOR, &rows.hlc_floor)?;
    if !rows.peer_vvs.is_empty() {
        for (peer, vv) in &rows.peer_vvs {
            stored.meta.peer_vvs.insert(peer.clone(), vv.clone());
        }
        put_encoded(&mut meta, META_PEER_VVS, &stored.meta.peer_vvs)?;
    }
    if !new_ends.is_empty() {
        stored.log_end.extend(new_ends);
        put_encoded(&mut meta, META_LOG_END, &stored.log_end)?;
    }
    put_encoded(&mut meta, META_LSN, &lsn)?;
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
        let txn = self.db.begin_read().map_err(from_redb)?;
        let data = txn.open_table(DATA).map_err(from_redb)?;
        let mut k = Vec::new();
        keys.iter()
            .map(|(table, key)| {
                if table.len() > TABLE_NAME_BYTES_MAX {
                    // No commit can have stored it.
                    return Ok(None);
                }
                put_data_key(&mut k, table, key);
                match data.get(k.as_slice()).map_err(from_redb)? {
                    Some(v) => decode(
                        v.value(),
                        format_args!("state of {table}/{}", key.escape_ascii()),
                    )
                    .map(Some),
                    None => Ok(None),
                }
            })
            .collect()
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
        let txn = self.db.begin_read().map_err(from_redb)?;
        let data = txn.open_table(DATA).map_err(from_redb)?;
        let prefix = data_prefix(table);
        let start = match after {
            Some(a) => data_key(table, a),
            None => prefix.clone(),
        };
        let lower = match after {
            Some(_) => Bound::Excluded(start.as_slice()),
            None => Bound::Included(start.as_slice()),
        };
        let mut out = Vec::new();
        for item in data
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(from_redb)?
        {
            let (k, v) = item.map_err(from_redb)?;
            let Some(user_key) = k.value().strip_prefix(prefix.as_slice()) else {
                break; // the next table's keys
            };
            let state = decode(
                v.value(),
                format_args!("state of {table}/{}", user_key.escape_ascii()),
            )?;
            out.push((user_key.to_vec(), state));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn read_log(
        &self,
        origin: &RegionName,
        from_seq: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        // One read transaction for meta and entries: a truncation committed
        // meanwhile is seen entirely or not at all.
        let txn = self.db.begin_read().map_err(from_redb)?;
        let stored = load_meta(&txn.open_table(META).map_err(from_redb)?)?;
        let mut seq = contract::check_read_from(origin, from_seq, stored.log_start(origin))?;
        let end = stored.log_end(origin);
        let mut budget = LogReadBudget::new(max_entries, max_bytes);
        let mut out = Vec::new();
        while seq <= end && !budget.exhausted() {
            let name = log_table_name(origin, bucket_of(seq));
            let table = txn
                .open_table(log_table(&name))
                .map_err(|e| missing_bucket(origin, &name, e))?;
            let last = bucket_last_seq(bucket_of(seq)).min(end);
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
                    "log of {origin} should hold {seq} (it ends at {end}), {name} stops before it"
                )));
            }
        }
        Ok(out)
    }

    fn commit(&self, batch: &CommitBatch, durability: Durability) -> Result<(), StoreError> {
        // Encode outside the write transaction, which excludes other writers.
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

        let mut wal = self.wal()?;
        wal.refuse_if_poisoned()?;
        let lsn = wal.lsn + 1;
        // A checkpoint is the commit made durable in redb itself; every
        // other commit is durable through its log record (or, with
        // `Durability::None`, not at all until the next checkpoint — which
        // is the next fsync'd commit, so it makes them durable too).
        // A commit too large to be worth logging is one too.
        let checkpoint = wal.checkpoint_due()
            || (durability == Durability::Fsync && wal.unlogged)
            || rows.rows_len() > crate::wal::LOGGED_COMMIT_BYTES_MAX;
        let mut txn = self.db.begin_write().map_err(from_redb)?;
        txn.set_durability(if checkpoint {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(from_redb)?;
        {
            let meta = txn.open_table(META).map_err(from_redb)?;
            let mut stored = load_meta(&meta)?;
            drop(meta);
            // On error the transaction is dropped, which aborts it: nothing
            // changes.
            let new_ends = contract::check_commit(
                batch,
                &CommitBase {
                    vv: &stored.meta.vv,
                    hlc_floor: stored.meta.hlc_floor,
                    log_end: &stored.log_end,
                },
            )?;
            write_rows(&txn, &rows, &mut stored, new_ends, lsn)?;
        }
        let logged = if !checkpoint && durability == Durability::Fsync {
            let record = rows.to_record(lsn)?;
            if let Err(e) = wal.append(&record) {
                if wal.poisoned() {
                    drop(txn);
                    self.burn_lsn(&mut wal, lsn);
                }
                return Err(e);
            }
            Some(record.len())
        } else {
            None
        };
        let started = std::time::Instant::now();
        match txn.commit() {
            Ok(()) if checkpoint => {
                self.checkpoint_seconds
                    .observe(started.elapsed().as_secs_f64());
                wal.checkpointed(lsn);
                Ok(())
            }
            Ok(()) => {
                if logged.is_some() {
                    self.logged_commits
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                wal.committed(lsn, logged.is_some());
                Ok(())
            }
            Err(e) => {
                if let Some(len) = logged {
                    if let Err(void) = wal.void_last(len) {
                        self.burn_lsn(&mut wal, lsn);
                        return Err(void);
                    }
                }
                Err(from_redb(e))
            }
        }
    }

    fn truncate_log(&self, origin: &RegionName, through_seq: u64) -> Result<u64, StoreError> {
        // Default durability (immediate): truncations are rare and must not
        // be undone by a crash after the caller acted on them. That makes
        // it a checkpoint too.
        let mut wal = self.wal()?;
        wal.refuse_if_poisoned()?;
        let lsn = wal.lsn + 1;
        let txn = self.db.begin_write().map_err(from_redb)?;
        let new_start = {
            let mut meta = txn.open_table(META).map_err(from_redb)?;
            put_encoded(&mut meta, META_LSN, &lsn)?;
            let mut stored = load_meta(&meta)?;
            let start = stored.log_start(origin);
            let Some(new_start) =
                contract::check_truncate(origin, through_seq, start, stored.log_end(origin))?
            else {
                return Ok(start);
            };
            // Drop every bucket that lies wholly at or below `through_seq`;
            // buckets below `start`'s were dropped by earlier truncations.
            let mut bucket = bucket_of(start);
            while bucket_last_seq(bucket) <= through_seq {
                let name = log_table_name(origin, bucket);
                let existed = txn.delete_table(log_table(&name)).map_err(from_redb)?;
                debug_assert!(existed, "bucket {name} holds kept entries but is missing");
                bucket += 1;
            }
            stored.meta.log_start.insert(origin.clone(), new_start);
            put_encoded(&mut meta, META_LOG_START, &stored.meta.log_start)?;
            new_start
        };
        txn.commit().map_err(from_redb)?;
        wal.checkpointed(lsn);
        Ok(new_start)
    }

    fn withhold_table(
        &self,
        table: &str,
        through: &VersionVector,
    ) -> Result<(u64, u64), StoreError> {
        contract::check_table_name(table)?;
        // Durable, like a truncation: a checkpoint.
        let mut wal = self.wal()?;
        wal.refuse_if_poisoned()?;
        let lsn = wal.lsn + 1;
        let txn = self.db.begin_write().map_err(from_redb)?;
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
        wal.checkpointed(lsn);
        Ok(counts)
    }

    fn meta(&self) -> Result<Meta, StoreError> {
        let txn = self.db.begin_read().map_err(from_redb)?;
        let meta = txn.open_table(META).map_err(from_redb)?;
        Ok(load_meta(&meta)?.meta)
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        let file = std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| StoreError::Io(format!("{}: {e}", self.path.display())))?;
        Ok(file + self.wal()?.len())
    }

    fn log_stats(&self) -> Option<LogStats> {
        let snapshot = self.checkpoint_seconds.snapshot();
        Some(LogStats {
            logged_commits: self
                .logged_commits
                .load(std::sync::atomic::Ordering::Relaxed),
            checkpoints: snapshot.count,
            checkpoint_seconds: snapshot,
            log_bytes: self.wal().map(|w| w.len()).unwrap_or(0),
        })
    }
}
