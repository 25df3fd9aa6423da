//! Reads of a [`super::RedbStore`]: key states and log entries, found in
//! the active memtable, then the frozen one, then redb.
//!
//! Every read takes the memtables and its view of redb under one read lock
//! (see the concurrency notes on [`super::RedbStore`]), so it sees the store
//! as of one commit. Owns `get_many`, `scan` and `read_log`; does not write.

use std::collections::BTreeMap;
use std::ops::Bound;

use meridian_core::record::KeyState;
use meridian_core::{LogEntry, RegionName};
use redb::{ReadTransaction, ReadableDatabase};

use super::layout::{
    bucket_last_seq, bucket_of, data_key, data_prefix, decode, from_redb, log_table,
    log_table_name, missing_bucket, put_data_key,
};
use super::state::Inner;
use crate::backend::StoreError;
use crate::contract::{self, LogReadBudget, TABLE_NAME_BYTES_MAX};

/// What a log read found in the memtables, and where redb's part ends.
struct HeldEntries {
    /// The first sequence to read.
    seq: u64,
    /// The memtables' entries from the read's start, within its budget.
    entries: Vec<(u64, Vec<u8>)>,
    /// The last sequence redb holds (the memtables hold what follows).
    redb_end: u64,
    /// redb as of the memtables read, if the read starts in it.
    txn: Option<ReadTransaction>,
}

impl Inner {
    pub(super) fn get_many(
        &self,
        keys: &[(&str, &[u8])],
    ) -> Result<Vec<Option<KeyState>>, StoreError> {
        let inner = self;
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

    pub(super) fn scan(
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
            let mem = self.mem();
            let mut held = Vec::new();
            if let Some(frozen) = &mem.frozen {
                for (k, v) in frozen.table.states_from(lower, &prefix, limit) {
                    held.push(decode_row(k, v)?);
                }
            }
            for (k, v) in mem.active.states_from(lower, &prefix, limit) {
                held.push(decode_row(k, v)?);
            }
            (held, self.data(&mem)?)
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

    pub(super) fn read_log(
        &self,
        origin: &RegionName,
        from_seq: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let HeldEntries {
            mut seq,
            entries: held,
            redb_end,
            txn,
        } = self.held_entries(origin, from_seq, max_entries, max_bytes)?;
        let mut budget = LogReadBudget::new(max_entries, max_bytes);
        let mut out = Vec::new();
        if let Some(txn) = txn {
            let more = read_redb_entries(&txn, origin, &mut seq, redb_end, &mut budget, &mut out)?;
            if !more {
                return Ok(out);
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

    /// The entries the memtables hold are copied, within the read's budget,
    /// and redb's read transaction begun under the same lock: redb holds
    /// exactly the entries before the memtables' first.
    fn held_entries(
        &self,
        origin: &RegionName,
        from_seq: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<HeldEntries, StoreError> {
        let mem = self.mem();
        let seq = contract::check_read_from(origin, from_seq, mem.stored.log_start(origin))?;
        let end = mem.stored.log_end(origin);
        let frozen = mem.frozen.as_ref().map(|f| &f.table);
        let first_held = frozen
            .and_then(|f| f.first_seq(origin))
            .or_else(|| mem.active.first_seq(origin))
            .unwrap_or(end + 1);
        let mut budget = LogReadBudget::new(max_entries, max_bytes);
        let mut entries = Vec::new();
        let from_held = seq.max(first_held);
        for (s, bytes) in frozen
            .into_iter()
            .flat_map(|f| f.entries_from(origin, from_held))
            .chain(mem.active.entries_from(origin, from_held))
        {
            if s > end || !budget.take(bytes.len()) {
                break;
            }
            entries.push((s, bytes.clone()));
        }
        let txn = if seq < first_held {
            Some(self.db.begin_read().map_err(from_redb)?)
        } else {
            None
        };
        Ok(HeldEntries {
            seq,
            entries,
            redb_end: first_held - 1,
            txn,
        })
    }
}

/// Reads `origin`'s entries from `*seq` through `redb_end` out of redb into
/// `out`, bucket by bucket, within `budget`; advances `*seq`. False when the
/// budget refused an entry (the read is complete), true when the reader
/// may go on to the memtables' entries.
fn read_redb_entries(
    txn: &ReadTransaction,
    origin: &RegionName,
    seq: &mut u64,
    redb_end: u64,
    budget: &mut LogReadBudget,
    out: &mut Vec<LogEntry>,
) -> Result<bool, StoreError> {
    while *seq <= redb_end && !budget.exhausted() {
        let name = log_table_name(origin, bucket_of(*seq));
        let table = txn
            .open_table(log_table(&name))
            .map_err(|e| missing_bucket(origin, &name, e))?;
        let last = bucket_last_seq(bucket_of(*seq)).min(redb_end);
        for item in table.range(*seq..=last).map_err(from_redb)? {
            let (k, v) = item.map_err(from_redb)?;
            if k.value() != *seq {
                return Err(StoreError::Corrupt(format!(
                    "log of {origin} jumps from {} to {}",
                    *seq - 1,
                    k.value()
                )));
            }
            let bytes = v.value();
            if !budget.take(bytes.len()) {
                return Ok(false);
            }
            let entry: LogEntry = decode(bytes, format_args!("log entry {origin}/{}", *seq))?;
            debug_assert!(entry.origin == *origin && entry.seq == *seq);
            out.push(entry);
            *seq += 1;
        }
        if *seq <= last && !budget.exhausted() {
            return Err(StoreError::Corrupt(format!(
                "log of {origin} should hold {} (redb holds it through {redb_end}), {name} stops before it",
                *seq
            )));
        }
    }
    Ok(true)
}
