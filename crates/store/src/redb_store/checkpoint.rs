//! Checkpoints of a [`super::RedbStore`]: the background thread that
//! freezes the active memtable and writes the frozen one to redb, in
//! durable transactions of a bounded size.
//!
//! Owns the checkpoint thread's loop and wake-ups, freezing (which moves
//! the write-ahead log to its other segment), writing a frozen memtable
//! with the truncations made since, and [`Inner::checkpoint_all`], which
//! the write paths call before writing to redb directly. Does not own the
//! commit path that fills the memtables (`write`).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use meridian_core::RegionName;
use redb::WriteTransaction;

use super::layout::{
    bucket_last_seq, bucket_of, from_redb, insert_entries, log_table, log_table_name, put_encoded,
    put_meta, StoredMeta, DATA, META, META_LOG_START,
};
use super::state::{Frozen, Inner};
use crate::backend::StoreError;
use crate::memtable::{CHECKPOINT_BEHIND_BYTES, MEMTABLE_FLUSH_BYTES, PAGE_BYTES};
use crate::wal::Wal;

impl Inner {
    /// The checkpoint thread: freezes and checkpoints the active memtable
    /// every `checkpoint_interval`, or when woken because it outgrew
    /// [`MEMTABLE_FLUSH_BYTES`]; retries a failed checkpoint a full
    /// interval later.
    pub(super) fn run_checkpoints(&self) {
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

    pub(super) fn kick(&self) {
        self.wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kicked = true;
        self.wake_cv.notify_one();
    }

    pub(super) fn checkpoint_if_due(&self) -> Result<(), StoreError> {
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
    pub(super) fn freeze(&self, wal: &mut Wal) {
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
    /// never wait behind one large flush (see [`crate::memtable::CHECKPOINT_TXN_PAGES`]) —
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
    pub(super) fn checkpoint(&self) -> Result<(), StoreError> {
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
        let log_start = reachable_log_start(log_start, &frozen.meta);
        let started = Instant::now();
        let txn = self.write_states(&frozen)?;
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
        drop_collected_buckets(&txn, &log_start, &redb_log_start)?;
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

    /// Writes the frozen memtable's key states in durable transactions of
    /// at most `checkpoint_txn_pages` estimated pages, and returns the last
    /// one, still open, for the entries and metadata.
    fn write_states(&self, frozen: &Frozen) -> Result<WriteTransaction, StoreError> {
        let mut pages_max = if frozen.unlogged {
            usize::MAX
        } else {
            self.options.checkpoint_txn_pages.max(1)
        };
        let mut states = frozen.table.states.iter().peekable();
        loop {
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
                return Ok(txn);
            }
            txn.commit().map_err(from_redb)?;
            if let Some(hook) = &self.options.after_partial_checkpoint {
                hook();
            }
        }
    }

    /// Makes every commit so far durable in redb: checkpoints the frozen
    /// memtable, then freezes and checkpoints the active one. Afterwards
    /// both are empty until the caller releases the log.
    pub(super) fn checkpoint_all(&self, wal: &mut Wal) -> Result<(), StoreError> {
        self.checkpoint()?;
        let pending = self.mem().pending();
        if pending {
            self.freeze(wal);
            self.checkpoint()?;
        }
        Ok(())
    }
}

/// Truncations reach redb no further than the entries it will hold: each
/// origin's start, at most just past the frozen memtable's last entry.
fn reachable_log_start(
    log_start: BTreeMap<RegionName, u64>,
    frozen: &StoredMeta,
) -> BTreeMap<RegionName, u64> {
    log_start
        .into_iter()
        .map(|(origin, start)| {
            let end = frozen.log_end(&origin);
            (origin, start.min(end + 1))
        })
        .collect()
}

/// Drops every bucket that now lies wholly below its origin's start;
/// buckets below redb's start were dropped before. A bucket whose entries
/// were all skipped was never created.
fn drop_collected_buckets(
    txn: &WriteTransaction,
    log_start: &BTreeMap<RegionName, u64>,
    redb_log_start: &BTreeMap<RegionName, u64>,
) -> Result<(), StoreError> {
    for (origin, &start) in log_start {
        let mut bucket = bucket_of(redb_log_start.get(origin).copied().unwrap_or(1));
        while bucket_last_seq(bucket) < start {
            txn.delete_table(log_table(&log_table_name(origin, bucket)))
                .map_err(from_redb)?;
            bucket += 1;
        }
    }
    Ok(())
}
