//! Writes to a [`super::RedbStore`]: commits, truncations and table
//! withdrawals.
//!
//! A commit is logged (one record appended and fdatasynced, see
//! [`crate::wal`]) and kept in the active memtable until a checkpoint; a
//! commit holding a row too large to log, and a table withdrawal, are
//! written to redb directly, after a checkpoint of everything before them.
//! A truncation changes the in-memory metadata at once and reaches redb
//! with the next checkpoint. Owns the order of those steps under the log's
//! lock; does not own checkpointing itself (`checkpoint`) or reads (`read`).

use std::collections::BTreeMap;
use std::time::Instant;

use meridian_core::{LogEntry, RegionName, VersionVector};
use redb::{ReadableTable, WriteTransaction};

use super::layout::{
    bucket_of, data_key, data_prefix, decode, encode, from_redb, insert_rows, load_meta, log_table,
    log_table_name, put_encoded, put_meta, StoredMeta, DATA, META, META_LSN,
};
use super::state::Inner;
use crate::backend::{CommitBatch, Durability, StoreError};
use crate::contract::{self, CommitBase};
use crate::memtable::{LOGGED_ROW_BYTES_MAX, MEMTABLE_FLUSH_BYTES};
use crate::wal::{Rows, Wal};

/// Keys a table withdrawal deletes per slice.
const WITHHOLD_SLICE_KEYS: usize = 10_000;

impl Inner {
    pub(super) fn commit(
        &self,
        batch: &CommitBatch,
        durability: Durability,
    ) -> Result<(), StoreError> {
        // Encode outside the log's lock, which excludes other writers.
        let rows = encode_rows(batch)?;

        let mut wal = self.wal()?;
        wal.refuse_if_poisoned()?;
        let (new_ends, full, frozen, durable_lsn) = {
            let mem = self.mem();
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
            self.checkpoint_all(&mut wal)?;
        } else if full {
            // The active memtable is full. If the one before it is still
            // being written, the writer waits for that checkpoint (a write
            // stall: memory stays bounded by two memtables); then it
            // freezes the full one itself rather than wait for the
            // checkpoint thread to be scheduled.
            if frozen {
                self.checkpoint()?;
            }
            self.freeze(&mut wal);
            self.kick();
        }
        let lsn = wal.lsn + 1;
        if large {
            return self.commit_direct(&mut wal, &rows, new_ends, lsn);
        }
        if durability == Durability::Fsync {
            let record = rows.to_record(lsn)?;
            if let Err(e) = wal.append(&record) {
                if wal.poisoned() {
                    self.burn_lsn(&mut wal, lsn);
                }
                return Err(e);
            }
            self.logged_commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            wal.unlogged_lsn = lsn;
        }
        wal.lsn = lsn;
        let full = {
            let mut mem = self.mem_mut();
            mem.stored.apply(&rows, new_ends);
            mem.active.insert(rows);
            mem.active.bytes >= MEMTABLE_FLUSH_BYTES
        };
        if full {
            self.kick();
        }
        Ok(())
    }

    pub(super) fn truncate_log(
        &self,
        origin: &RegionName,
        through_seq: u64,
    ) -> Result<u64, StoreError> {
        // In memory at once (reads obey it); in redb with the next
        // checkpoint. A crash before it brings the entries back, which
        // costs nothing but disk: everyone has them.
        let mut mem = self.mem_mut();
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

    pub(super) fn withhold_table(
        &self,
        table: &str,
        through: &VersionVector,
    ) -> Result<(u64, u64), StoreError> {
        contract::check_table_name(table)?;
        // Durable at once, and with nothing of the table left in memory:
        // everything before is checkpointed first, and commits wait.
        let mut wal = self.wal()?;
        wal.refuse_if_poisoned()?;
        self.checkpoint_all(&mut wal)?;
        let lsn = wal.lsn + 1;
        let txn = self.db.begin_write().map_err(from_redb)?;
        let counts = {
            let stored = load_meta(&txn.open_table(META).map_err(from_redb)?)?;
            put_encoded(
                &mut txn.open_table(META).map_err(from_redb)?,
                META_LSN,
                &lsn,
            )?;
            let rewritten = withhold_entries(&txn, &stored, table, through)?;
            (rewritten, drop_states(&txn, table)?)
        };
        txn.commit().map_err(from_redb)?;
        wal.lsn = lsn;
        self.mem_after_commit().durable_lsn = lsn;
        Ok(counts)
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

/// Encodes a batch's rows (outside the log's lock, which excludes other
/// writers), checking each table name.
fn encode_rows(batch: &CommitBatch) -> Result<Rows, StoreError> {
    Ok(Rows {
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
    })
}

/// Rewrites `table`'s stored log entries with `seq <= through[origin]` as
/// placeholders; returns how many.
fn withhold_entries(
    txn: &WriteTransaction,
    stored: &StoredMeta,
    table: &str,
    through: &VersionVector,
) -> Result<u64, StoreError> {
    let mut rewritten = 0;
    for (origin, end) in &stored.log_end {
        let end = (*end).min(through.get(origin));
        if end == 0 {
            continue;
        }
        // Whole buckets: the one holding the first kept entry may still
        // hold truncated ones before it.
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
                    placeholders.push((seq.value(), encode(&entry.withheld(), "a log entry")?));
                }
            }
            for (seq, bytes) in &placeholders {
                log.insert(*seq, bytes.as_slice()).map_err(from_redb)?;
            }
            rewritten += placeholders.len() as u64;
        }
    }
    Ok(rewritten)
}

/// Deletes every key state of `table`; returns how many.
fn drop_states(txn: &WriteTransaction, table: &str) -> Result<u64, StoreError> {
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
    Ok(dropped)
}
