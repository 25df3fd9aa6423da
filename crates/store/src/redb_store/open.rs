//! Opening a [`RedbStore`]: the file, its layout check, the paired check
//! of the log ends, and the replay of the write-ahead log.
//!
//! Owns what happens once per open, before any reader or writer can reach
//! the store; hands the result to the checkpoint thread it starts. Does not
//! own the steady state: reads, commits and checkpoints are their own
//! files' concern.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;

use redb::{Database, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::layout::{
    bucket_of, from_redb, get_decoded, insert_rows, load_meta, log_table, log_table_name,
    missing_bucket, open_data, put_encoded, put_meta, wal_paths, StoredMeta, DATA, LAYOUT_VERSION,
    META, META_LAYOUT, META_LSN,
};
use super::state::{Inner, Mem, RedbOptions, Wake};
use super::RedbStore;
use crate::backend::StoreError;
use crate::memtable::Memtable;
use crate::wal::{Rows, Wal};

/// redb's page cache. Its default (1 GiB) is per database, and `meridian up`
/// runs several nodes on one machine; 256 MiB holds the hot part of a
/// multi-GB data set and the recent log buckets replication reads.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

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
        open(path, options)
    }
}

/// Opens (or creates) the store at `path`: checks the file, replays the
/// log into redb, and starts the checkpoint thread.
fn open(path: &Path, options: RedbOptions) -> Result<RedbStore, StoreError> {
    // Integrity checking on every open is off (redb's default): it reads
    // the whole file, so start-up would grow with the data. redb still
    // checks and repairs after an unclean shutdown.
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(from_redb)?;
    let (durable_lsn, mut stored) = check_file(&db, path)?;
    let (mut wal, replay) = Wal::open(wal_paths(path), durable_lsn)?;
    let lsn = durable_lsn + replay.len() as u64;
    if !replay.is_empty() {
        replay_into(&db, &replay, &mut stored, lsn)?;
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

/// In one write transaction: creates the tables, checks (or upgrades) the
/// layout, loads `meta` and checks the log ends against it. Returns the lsn
/// redb holds durably and the metadata.
fn check_file(db: &Database, path: &Path) -> Result<(u64, StoredMeta), StoreError> {
    let txn = db.begin_write().map_err(from_redb)?;
    let (durable_lsn, stored) = {
        // Opening creates the tables, so readers can rely on them.
        txn.open_table(DATA).map_err(from_redb)?;
        let mut meta = txn.open_table(META).map_err(from_redb)?;
        check_layout(&mut meta, path)?;
        let stored = load_meta(&meta)?;
        // What redb holds after a crash is its last durable commit, which
        // is what this transaction reads.
        let lsn = get_decoded::<u64>(&meta, META_LSN)?.unwrap_or(0);
        drop(meta);
        check_log_ends(&txn, &stored)?;
        (lsn, stored)
    };
    txn.commit().map_err(from_redb)?;
    Ok((durable_lsn, stored))
}

/// Accepts this build's layout, upgrades an older one (or stamps a new
/// file), refuses a newer one or metadata without a layout.
fn check_layout(
    meta: &mut redb::Table<'_, &'static str, &'static [u8]>,
    path: &Path,
) -> Result<(), StoreError> {
    match get_decoded::<u32>(meta, META_LAYOUT)? {
        Some(LAYOUT_VERSION) => {}
        Some(1 | 2) => put_encoded(meta, META_LAYOUT, &LAYOUT_VERSION)?,
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
            put_encoded(meta, META_LAYOUT, &LAYOUT_VERSION)?;
        }
    }
    Ok(())
}

/// Writes the logged commits `replay` (the ones after redb's lsn) into
/// redb, through commit `lsn`, and into `stored`.
fn replay_into(
    db: &Database,
    replay: &[Rows],
    stored: &mut StoredMeta,
    lsn: u64,
) -> Result<(), StoreError> {
    // One durable transaction: either every logged commit is back in redb,
    // or none is and the next open replays them again.
    let txn = db.begin_write().map_err(from_redb)?;
    for rows in replay {
        let mut new_ends = BTreeMap::new();
        for (origin, seq, _) in &rows.log {
            new_ends.insert(origin.clone(), *seq);
        }
        insert_rows(&txn, rows)?;
        stored.apply(rows, new_ends);
    }
    put_meta(&txn, stored, lsn)?;
    txn.commit().map_err(from_redb)
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
