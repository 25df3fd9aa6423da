//! [`MemStore`]: the in-memory [`Backend`], for tests and deterministic
//! simulation.
//!
//! It keeps the same contract as [`crate::RedbStore`] — the same checks
//! (shared in `contract`), the same errors, the same byte accounting for
//! `read_log`'s `max_bytes` (postcard-encoded entry sizes) — so a simulation
//! on `MemStore` says something about production. It does not persist
//! anything and does not bucket its logs: truncation drops exactly the
//! entries asked for, which the contract allows.

use std::collections::BTreeMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use meridian_core::record::KeyState;
use meridian_core::{LogEntry, RegionName};

use crate::backend::{Backend, CommitBatch, Durability, Meta, StoreError};
use crate::contract::{self, CommitBase, LogReadBudget};

/// An in-memory [`Backend`]: `BTreeMap`s behind one `RwLock`, so readers
/// see a commit entirely or not at all.
///
/// A std `RwLock`, not a tokio one: no lock is held across an await, and
/// every critical section is a few map operations.
#[derive(Debug, Default)]
pub struct MemStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per table, key → (state, its encoded size for `size_bytes`).
    data: BTreeMap<String, BTreeMap<Vec<u8>, (KeyState, usize)>>,
    /// Per origin, seq → (entry, its encoded size for `max_bytes`).
    logs: BTreeMap<RegionName, BTreeMap<u64, (LogEntry, usize)>>,
    /// Per origin, the sequence its log ends at; kept after truncation.
    log_end: BTreeMap<RegionName, u64>,
    meta: Meta,
    /// Sum of the encoded sizes of everything held, for `size_bytes`.
    bytes: u64,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Inner>, StoreError> {
        self.inner.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>, StoreError> {
        self.inner.write().map_err(|_| poisoned())
    }
}

/// A panic while holding the lock. Commits validate and encode everything
/// before they touch the maps, so this means a bug, and the state cannot be
/// trusted: stop the node, as for corrupt data.
fn poisoned() -> StoreError {
    StoreError::Corrupt("the in-memory store was poisoned by a panic".into())
}

fn encoded_len<T: serde::Serialize>(value: &T, what: &str) -> Result<usize, StoreError> {
    postcard::experimental::serialized_size(value)
        .map_err(|e| StoreError::Invalid(format!("cannot encode {what}: {e}")))
}

impl Inner {
    fn log_start(&self, origin: &RegionName) -> u64 {
        self.meta.log_start.get(origin).copied().unwrap_or(1)
    }

    fn log_end(&self, origin: &RegionName) -> u64 {
        self.log_end.get(origin).copied().unwrap_or(0)
    }
}

impl Backend for MemStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<KeyState>, StoreError> {
        let inner = self.read()?;
        Ok(inner
            .data
            .get(table)
            .and_then(|t| t.get(key))
            .map(|(s, _)| s.clone()))
    }

    fn scan(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyState)>, StoreError> {
        use std::ops::Bound;
        let inner = self.read()?;
        let Some(t) = inner.data.get(table) else {
            return Ok(Vec::new());
        };
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        Ok(t.range::<[u8], _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|(k, (s, _))| (k.clone(), s.clone()))
            .collect())
    }

    fn read_log(
        &self,
        origin: &RegionName,
        from_seq: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let inner = self.read()?;
        let first = contract::check_read_from(origin, from_seq, inner.log_start(origin))?;
        let Some(log) = inner.logs.get(origin) else {
            return Ok(Vec::new());
        };
        let mut budget = LogReadBudget::new(max_entries, max_bytes);
        let mut out = Vec::new();
        for (seq, (entry, len)) in log.range(first..) {
            debug_assert_eq!(*seq, first + out.len() as u64, "gap in the log of {origin}");
            if !budget.take(*len) {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn commit(&self, batch: &CommitBatch, _durability: Durability) -> Result<(), StoreError> {
        // Encode before locking and before changing anything: an entry that
        // cannot be encoded must fail the commit as it would on disk.
        let state_lens = batch
            .states
            .iter()
            .map(|(_, _, s)| encoded_len(s, "a key state"))
            .collect::<Result<Vec<_>, _>>()?;
        let entry_lens = batch
            .log
            .iter()
            .map(|e| encoded_len(e, "a log entry"))
            .collect::<Result<Vec<_>, _>>()?;

        let mut inner = self.write()?;
        let new_ends = contract::check_commit(
            batch,
            &CommitBase {
                vv: &inner.meta.vv,
                hlc_floor: inner.meta.hlc_floor,
                log_end: &inner.log_end,
            },
        )?;

        let inner = &mut *inner;
        for ((table, key, state), len) in batch.states.iter().zip(state_lens) {
            let t = inner.data.entry(table.clone()).or_default();
            let added = (table.len() + key.len() + len) as u64;
            if let Some((_, old)) = t.insert(key.clone(), (state.clone(), len)) {
                inner.bytes -= (table.len() + key.len() + old) as u64;
            }
            inner.bytes += added;
        }
        for (entry, len) in batch.log.iter().zip(entry_lens) {
            let log = inner.logs.entry(entry.origin.clone()).or_default();
            let old = log.insert(entry.seq, (entry.clone(), len));
            debug_assert!(old.is_none(), "check_commit let a duplicate through");
            inner.bytes += len as u64;
        }
        inner.log_end.extend(new_ends);
        inner.meta.vv = batch.vv.clone();
        inner.meta.hlc_floor = batch.hlc_floor;
        for (peer, vv) in &batch.peer_vvs {
            inner.meta.peer_vvs.insert(peer.clone(), vv.clone());
        }
        Ok(())
    }

    fn truncate_log(&self, origin: &RegionName, through_seq: u64) -> Result<u64, StoreError> {
        let mut inner = self.write()?;
        let start = inner.log_start(origin);
        let Some(new_start) =
            contract::check_truncate(origin, through_seq, start, inner.log_end(origin))?
        else {
            return Ok(start);
        };
        let inner = &mut *inner;
        if let Some(log) = inner.logs.get_mut(origin) {
            let kept = log.split_off(&new_start);
            let dropped = std::mem::replace(log, kept);
            inner.bytes -= dropped.values().map(|(_, len)| *len as u64).sum::<u64>();
        }
        inner.meta.log_start.insert(origin.clone(), new_start);
        Ok(new_start)
    }

    fn withhold_table(
        &self,
        table: &str,
        through: &meridian_core::VersionVector,
    ) -> Result<(u64, u64), StoreError> {
        contract::check_table_name(table)?;
        let mut inner = self.write()?;
        let inner = &mut *inner;
        let mut rewritten = 0;
        for (origin, log) in inner.logs.iter_mut() {
            let upto = through.get(origin);
            for (entry, len) in log.range_mut(..=upto).map(|(_, v)| v) {
                if entry.table == table && entry.op != meridian_core::Op::Withheld {
                    let placeholder = entry.withheld();
                    let new_len = encoded_len(&placeholder, "a log entry")?;
                    inner.bytes = inner.bytes - *len as u64 + new_len as u64;
                    (*entry, *len) = (placeholder, new_len);
                    rewritten += 1;
                }
            }
        }
        let dropped = inner.data.remove(table).unwrap_or_default();
        inner.bytes -= dropped.values().map(|(_, len)| *len as u64).sum::<u64>();
        Ok((rewritten, dropped.len() as u64))
    }

    fn meta(&self) -> Result<Meta, StoreError> {
        Ok(self.read()?.meta.clone())
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.read()?.bytes)
    }
}
