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
//!
//! # Files
//! - this one: [`RedbStore`] and its [`Backend`] impl, which delegates to:
//! - `state`: the shared state (`Inner`, the memtables' `Mem`), the locks,
//!   and [`RedbOptions`].
//! - `open`: opening the file, the layout check, replaying the log.
//! - `read`: `get_many`, `scan` and `read_log` across memtables and redb.
//! - `write`: commits (logged, or direct for large rows), truncation, and
//!   table withdrawal.
//! - `checkpoint`: the checkpoint thread, freezing, and writing a frozen
//!   memtable to redb in bounded transactions.
//! - `layout`: the tables, key and value encodings, and `meta`.

mod checkpoint;
mod layout;
mod open;
mod read;
mod state;
mod write;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError};

use meridian_core::record::KeyState;
use meridian_core::{LogEntry, RegionName, VersionVector};

use crate::backend::{Backend, CommitBatch, Durability, LogStats, Meta, StoreError};
use state::Inner;

pub use layout::{wal_paths, LOG_BUCKET_ENTRIES};
pub use state::RedbOptions;

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

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
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

impl Backend for RedbStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<KeyState>, StoreError> {
        Ok(self.get_many(&[(table, key)])?.pop().flatten())
    }

    fn get_many(&self, keys: &[(&str, &[u8])]) -> Result<Vec<Option<KeyState>>, StoreError> {
        self.inner.get_many(keys)
    }

    fn scan(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyState)>, StoreError> {
        self.inner.scan(table, after, limit)
    }

    fn read_log(
        &self,
        origin: &RegionName,
        from_seq: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.inner
            .read_log(origin, from_seq, max_entries, max_bytes)
    }

    fn commit(&self, batch: &CommitBatch, durability: Durability) -> Result<(), StoreError> {
        self.inner.commit(batch, durability)
    }

    fn truncate_log(&self, origin: &RegionName, through_seq: u64) -> Result<u64, StoreError> {
        self.inner.truncate_log(origin, through_seq)
    }

    fn withhold_table(
        &self,
        table: &str,
        through: &VersionVector,
    ) -> Result<(u64, u64), StoreError> {
        self.inner.withhold_table(table, through)
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
