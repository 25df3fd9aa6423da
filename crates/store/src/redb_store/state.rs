//! The shared state of a [`super::RedbStore`]: what its readers, its
//! writer and its checkpoint thread share, and the locks around it.
//!
//! Owns [`Inner`] (the redb database, the write-ahead log's mutex, the
//! memtables' lock, the checkpoint thread's wake-ups and counters),
//! [`Mem`] (the active and frozen memtables and the live metadata),
//! [`Frozen`], and [`RedbOptions`]. Does not own what is done under the
//! locks: `read`, `write`, `checkpoint` and `open` do that.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::{Duration, Instant};

use meridian_core::RegionName;
use redb::Database;

use super::layout::{open_data, DataTable, StoredMeta};
use crate::backend::StoreError;
use crate::memtable::{Memtable, CHECKPOINT_INTERVAL, CHECKPOINT_TXN_PAGES};
use crate::wal::Wal;

/// How a [`super::RedbStore`] checkpoints.
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

pub(super) struct Inner {
    pub(super) db: Database,
    pub(super) path: PathBuf,
    pub(super) options: RedbOptions,
    /// Held through every commit, freeze and direct redb write.
    pub(super) wal: Mutex<Wal>,
    pub(super) mem: RwLock<Mem>,
    /// Held while a frozen memtable is written to redb.
    pub(super) checkpointing: Mutex<()>,
    /// Wakes the checkpoint thread early: a memtable outgrew
    /// [`crate::memtable::MEMTABLE_FLUSH_BYTES`], or the store closes.
    pub(super) wake: Mutex<Wake>,
    pub(super) wake_cv: Condvar,
    pub(super) logged_commits: AtomicU64,
    pub(super) checkpoint_seconds: crate::histogram::Histogram,
}

#[derive(Default)]
pub(super) struct Wake {
    pub(super) kicked: bool,
    pub(super) stop: bool,
}

/// What is not (yet) in redb, and the store's metadata.
pub(super) struct Mem {
    /// Commits since the last freeze.
    pub(super) active: Memtable,
    /// The memtable being checkpointed.
    pub(super) frozen: Option<Arc<Frozen>>,
    /// The metadata as of the last commit, with truncations not yet in
    /// redb: what readers and the commit checks use.
    pub(super) stored: StoredMeta,
    /// `log_start` as redb holds it.
    pub(super) redb_log_start: BTreeMap<RegionName, u64>,
    /// The lsn of the last commit redb holds durably.
    pub(super) durable_lsn: u64,
    pub(super) last_freeze: Instant,
    /// redb's data table as of its last commit that wrote key states,
    /// shared by every reader: beginning a read transaction and opening
    /// the table per read cost about a fifth of a pipelined `GET`'s CPU.
    /// Replaced under this lock by every such commit (with the memtable
    /// change that goes with it), so readers never see a stale one; `None`
    /// if opening it failed, when each read begins its own transaction.
    /// Holding it keeps redb from reusing the pages freed since, until the
    /// next checkpoint replaces it.
    pub(super) data: Option<Arc<DataTable>>,
}

impl Mem {
    /// Whether anything is not yet in redb besides a frozen memtable:
    /// commits in the active one, or truncations.
    pub(super) fn pending(&self) -> bool {
        !self.active.is_empty() || self.stored.meta.log_start != self.redb_log_start
    }
}

/// A memtable on its way into redb.
pub(super) struct Frozen {
    pub(super) table: Memtable,
    /// The metadata after its last commit.
    pub(super) meta: StoredMeta,
    /// The store's lsn when it was frozen.
    pub(super) lsn: u64,
    /// The log bytes that hold it (the segment left at the freeze).
    pub(super) log_bytes: u64,
    /// Whether it holds commits that were not logged
    /// (`Durability::None`): a crash must lose all of them or none, so
    /// it is checkpointed in one transaction.
    pub(super) unlogged: bool,
}

impl Inner {
    /// The write-ahead log. A poisoned lock means a commit panicked between
    /// appending its record and taking its rows into the memtable: the
    /// log's lsn and the memtables no longer agree, so nothing more is
    /// written until a restart.
    pub(super) fn wal(&self) -> Result<MutexGuard<'_, Wal>, StoreError> {
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
    pub(super) fn mem(&self) -> RwLockReadGuard<'_, Mem> {
        self.mem.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn mem_mut(&self) -> RwLockWriteGuard<'_, Mem> {
        self.mem.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The memtables' lock after a redb commit that wrote key states, with
    /// the readers' data table replaced by one as of that commit: the
    /// caller makes the memtable change that goes with the commit under
    /// the same lock.
    pub(super) fn mem_after_commit(&self) -> RwLockWriteGuard<'_, Mem> {
        let data = open_data(&self.db).ok();
        let mut mem = self.mem_mut();
        mem.data = data;
        mem
    }

    /// redb's data table as of the memtables `mem` holds.
    pub(super) fn data(&self, mem: &Mem) -> Result<Arc<DataTable>, StoreError> {
        match &mem.data {
            Some(data) => Ok(data.clone()),
            None => open_data(&self.db),
        }
    }
}
