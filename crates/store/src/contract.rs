//! The [`Backend`](crate::Backend) contract, checked in one place.
//!
//! Both backends call these functions before they change anything, so a
//! commit, truncation or log read that breaks the contract fails the same way
//! ([`StoreError::Invalid`], [`StoreError::LogTruncated`]) whichever backend
//! runs, and changes nothing. This module owns the rules only; each backend
//! owns how it finds the current state (`MemStore` from its maps, `RedbStore`
//! from its `meta` table inside the same transaction).

use std::collections::BTreeMap;

use meridian_core::{Hlc, RegionName, VersionVector};

use crate::backend::{CommitBatch, StoreError};

/// Longest table name a backend stores. `RedbStore` prefixes every data key
/// with the table name's length in one byte (so that a scan of table `a`
/// never runs into table `ab`); `MemStore` enforces the same bound so the two
/// accept exactly the same batches.
pub const TABLE_NAME_BYTES_MAX: usize = u8::MAX as usize;

/// What a commit is checked against: the backend's state before it.
pub(crate) struct CommitBase<'a> {
    /// The stored version vector.
    pub vv: &'a VersionVector,
    /// The stored HLC floor.
    pub hlc_floor: Hlc,
    /// Per origin, the sequence its log ends at (absent: 0, nothing logged).
    /// It survives truncation: a fully collected log still ends where it did.
    pub log_end: &'a BTreeMap<RegionName, u64>,
}

/// Checks `batch` against the contract of [`crate::Backend::commit`].
///
/// Returns the log ends after the commit for every origin the batch appends
/// to, so both backends record them identically.
pub(crate) fn check_commit(
    batch: &CommitBatch,
    base: &CommitBase<'_>,
) -> Result<BTreeMap<RegionName, u64>, StoreError> {
    for (table, _, _) in &batch.states {
        check_table_name(table)?;
    }

    let mut new_ends: BTreeMap<RegionName, u64> = BTreeMap::new();
    for entry in &batch.log {
        check_table_name(&entry.table)?;
        let end = new_ends
            .get(&entry.origin)
            .copied()
            .unwrap_or_else(|| base.log_end.get(&entry.origin).copied().unwrap_or(0));
        let expected = end + 1;
        if entry.seq != expected {
            let what = if entry.seq <= end {
                "is already logged"
            } else {
                "would leave a gap"
            };
            return Err(StoreError::Invalid(format!(
                "log entry {}/{} {what}: the log of {} ends at {end}, the next entry must be {expected}",
                entry.origin, entry.seq, entry.origin
            )));
        }
        // An entry is logged in the same commit that applies it, so the
        // vector written with it must cover it; otherwise a restart would
        // resume below an entry that is already in the log.
        let applied = batch.vv.get(&entry.origin);
        if entry.seq > applied {
            return Err(StoreError::Invalid(format!(
                "log entry {}/{} is beyond the batch's version vector ({} applied through {applied})",
                entry.origin, entry.seq, entry.origin
            )));
        }
        new_ends.insert(entry.origin.clone(), entry.seq);
    }

    if !batch.vv.covers(base.vv) {
        let back: Vec<String> = base
            .vv
            .iter()
            .filter(|(o, s)| batch.vv.get(o) < *s)
            .map(|(o, s)| format!("{o}: {s} -> {}", batch.vv.get(o)))
            .collect();
        return Err(StoreError::Invalid(format!(
            "version vector would go backwards ({})",
            back.join(", ")
        )));
    }
    // The floor is what keeps stamps increasing across restarts; lowering it
    // would let a restarted node reissue stamps it already used.
    if batch.hlc_floor < base.hlc_floor {
        return Err(StoreError::Invalid(format!(
            "HLC floor would go backwards from {} to {}",
            base.hlc_floor, batch.hlc_floor
        )));
    }
    Ok(new_ends)
}

/// Whether `table` can be stored; names longer than
/// [`TABLE_NAME_BYTES_MAX`] are refused.
pub(crate) fn check_table_name(table: &str) -> Result<(), StoreError> {
    if table.len() > TABLE_NAME_BYTES_MAX {
        return Err(StoreError::Invalid(format!(
            "table name of {} bytes is longer than {TABLE_NAME_BYTES_MAX}",
            table.len()
        )));
    }
    Ok(())
}

/// Checks a truncation of `origin`'s log through `through_seq`, given the
/// log's first kept sequence and its end.
///
/// Returns the new `log_start`, or `None` when nothing changes because
/// everything through `through_seq` is already collected (truncation is
/// idempotent, so a retried truncation is harmless). Truncating beyond the
/// log's end is refused: those entries were never here, and accepting it
/// would silently open a gap the next append could not close.
pub(crate) fn check_truncate(
    origin: &RegionName,
    through_seq: u64,
    log_start: u64,
    log_end: u64,
) -> Result<Option<u64>, StoreError> {
    debug_assert!(log_start >= 1 && log_start <= log_end + 1);
    if through_seq < log_start {
        return Ok(None);
    }
    if through_seq > log_end {
        return Err(StoreError::Invalid(format!(
            "cannot truncate the log of {origin} through {through_seq}: it ends at {log_end}"
        )));
    }
    Ok(Some(through_seq + 1))
}

/// Checks a log read from `from_seq`, given the first kept sequence, and
/// returns the first sequence to read.
///
/// Sequences start at 1, so `from_seq` 0 means "from the beginning" and only
/// fails if the beginning was collected.
pub(crate) fn check_read_from(
    origin: &RegionName,
    from_seq: u64,
    log_start: u64,
) -> Result<u64, StoreError> {
    let first = from_seq.max(1);
    if first < log_start {
        return Err(StoreError::LogTruncated {
            origin: origin.clone(),
            first_available: log_start,
            requested: from_seq,
        });
    }
    Ok(first)
}

/// The `max_entries` / `max_bytes` limits of one
/// [`crate::Backend::read_log`] call.
pub(crate) struct LogReadBudget {
    entries_left: usize,
    bytes_left: usize,
    taken: usize,
}

impl LogReadBudget {
    /// A budget of `max_entries` entries and `max_bytes` encoded bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        LogReadBudget {
            entries_left: max_entries,
            bytes_left: max_bytes,
            taken: 0,
        }
    }

    /// Whether one more entry of `encoded_bytes` fits, and if so takes it.
    /// The first entry always fits the byte budget, so a reader makes
    /// progress even past an entry larger than its budget.
    pub fn take(&mut self, encoded_bytes: usize) -> bool {
        if self.entries_left == 0 || (self.taken > 0 && encoded_bytes > self.bytes_left) {
            return false;
        }
        self.entries_left -= 1;
        self.bytes_left = self.bytes_left.saturating_sub(encoded_bytes);
        self.taken += 1;
        true
    }

    /// Whether no further entry can fit, so a reader can stop early.
    pub fn exhausted(&self) -> bool {
        self.entries_left == 0 || (self.taken > 0 && self.bytes_left == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_always_admits_the_first_entry() {
        let mut b = LogReadBudget::new(10, 5);
        assert!(b.take(100));
        assert!(!b.take(1));
        assert!(b.exhausted());
    }

    #[test]
    fn budget_counts_bytes_and_entries() {
        let mut b = LogReadBudget::new(3, 30);
        assert!(b.take(10) && b.take(20));
        assert!(!b.take(1), "30 bytes used up");
        let mut b = LogReadBudget::new(2, 1000);
        assert!(b.take(10) && b.take(10) && !b.take(10));
        let mut b = LogReadBudget::new(0, 1000);
        assert!(!b.take(1), "zero entries means none, even the first");
    }

    #[test]
    fn truncation_is_idempotent_and_bounded_by_the_log_end() {
        let o = RegionName::new("us-east").unwrap();
        assert_eq!(check_truncate(&o, 0, 1, 10).unwrap(), None);
        assert_eq!(check_truncate(&o, 4, 5, 10).unwrap(), None);
        assert_eq!(check_truncate(&o, 5, 5, 10).unwrap(), Some(6));
        assert_eq!(check_truncate(&o, 10, 5, 10).unwrap(), Some(11));
        assert!(matches!(
            check_truncate(&o, 11, 5, 10),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn reading_from_zero_means_from_the_beginning() {
        let o = RegionName::new("us-east").unwrap();
        assert_eq!(check_read_from(&o, 0, 1).unwrap(), 1);
        assert!(matches!(
            check_read_from(&o, 0, 2),
            Err(StoreError::LogTruncated {
                first_available: 2,
                requested: 0,
                ..
            })
        ));
    }
}
