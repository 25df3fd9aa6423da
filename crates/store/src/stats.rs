//! The writer's counters: what the engine has done, read by `/metrics`,
//! `GET /conflicts` and replication's pending-bytes figure.
//!
//! Owns [`DbStats`] (atomics, histograms and the conflict log) and the
//! bookkeeping that turns a commit's entries, conflicts and latencies into
//! those figures. Does not decide anything: the [`crate::engine::Engine`]
//! records here after each commit; [`crate::metrics`] encodes the figures.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use meridian_core::record::{Conflict, KeyState};
use meridian_core::{LogEntry, RegionName};

use crate::histogram::{FineHistogram, Histogram};

/// Conflicts kept for `GET /conflicts`: the newest, a ring buffer.
pub const CONFLICT_LOG_MAX: usize = 1000;

/// Bytes of a losing value kept in the conflict log.
pub const CONFLICT_VALUE_PREVIEW_BYTES: usize = 64;

/// One overwritten concurrent write, as `GET /conflicts` lists it.
#[derive(Clone, Debug)]
pub struct ConflictRecord {
    /// Table.
    pub table: String,
    /// Key, lossy UTF-8.
    pub key: String,
    /// The surviving write.
    pub winner: String,
    /// The overwritten write.
    pub loser: String,
    /// Start of the loser's value when it was a string (lossy UTF-8).
    pub loser_value: Option<String>,
    /// When this region detected it, ms since the Unix epoch.
    pub detected_at_ms: u64,
}

/// Own entries between two checkpoints of the pending-bytes accounting.
const OWN_BYTES_CHECKPOINT_EVERY: u64 = 64;

/// Cumulative approximate bytes of our own log, checkpointed every
/// [`OWN_BYTES_CHECKPOINT_EVERY`] entries, so "pending bytes to a peer" costs
/// 16 bytes per 64 unacknowledged entries of memory, not a copy of the log.
#[derive(Default)]
struct OwnBytes {
    total: u64,
    last_seq: u64,
    checkpoints: VecDeque<(u64, u64)>,
}

/// Counters and histograms the engine keeps, read by `/metrics`.
#[derive(Default)]
pub struct DbStats {
    /// Local writes committed.
    pub local_writes: AtomicU64,
    /// Remote entries applied.
    pub remote_applied: AtomicU64,
    /// Backend commits (each one fsync with `Durability::Fsync`).
    pub commits: AtomicU64,
    /// Commits that failed.
    pub commit_failures: AtomicU64,
    /// Remote stamps beyond the HLC max offset.
    pub hlc_remote_ahead: AtomicU64,
    /// Expired keys purged locally.
    pub purged_keys: AtomicU64,
    /// Key states carrying an expiry committed (local writes, applies,
    /// repairs): the purger rests while none arrive and its last pass found
    /// none.
    pub expiring_states: AtomicU64,
    /// Keys changed by anti-entropy repair.
    pub repaired_keys: AtomicU64,
    /// Key states dropped because this region gave their table up.
    pub withheld_states: AtomicU64,
    /// Stored log entries rewritten as placeholders for the same reason.
    pub withheld_entries: AtomicU64,
    /// Conflicts per table.
    pub conflicts: Mutex<BTreeMap<String, u64>>,
    /// The newest conflicts.
    pub conflict_log: Mutex<VecDeque<ConflictRecord>>,
    /// Apply time here minus commit time at the origin, per origin, seconds.
    pub replication_latency: Mutex<BTreeMap<RegionName, FineHistogram>>,
    /// Time from a commit's start to its end, seconds.
    pub commit_seconds: Histogram,
    own_bytes: Mutex<OwnBytes>,
}

/// A conflict as the engine detected it, before it is recorded: table, key,
/// the conflict, and the key's state before the losing write was merged.
pub(crate) type DetectedConflict = (String, Vec<u8>, Conflict, Option<KeyState>);

impl DbStats {
    /// Counts `conflicts` per table and keeps them (the newest
    /// [`CONFLICT_LOG_MAX`]) for `GET /conflicts`, detected at `now_ms`.
    pub(crate) fn record_conflicts(&self, conflicts: Vec<DetectedConflict>, now_ms: u64) {
        if conflicts.is_empty() {
            return;
        }
        let mut counts = self.conflicts.lock().expect("stats lock is never poisoned");
        let mut log = self
            .conflict_log
            .lock()
            .expect("stats lock is never poisoned");
        for (table, key, c, before) in conflicts {
            *counts.entry(table.clone()).or_default() += 1;
            if log.len() == CONFLICT_LOG_MAX {
                log.pop_front();
            }
            log.push_back(ConflictRecord::new(table, &key, &c, before, now_ms));
        }
    }

    /// Adds `region`'s own entries of a commit to the pending-bytes
    /// accounting.
    pub(crate) fn record_own_bytes(&self, region: &RegionName, log: &[LogEntry]) {
        self.own_bytes().record(region, log);
    }

    /// Observes each `(origin, seconds)` replication latency.
    pub(crate) fn record_latencies(&self, latencies: Vec<(RegionName, f64)>) {
        if latencies.is_empty() {
            return;
        }
        let mut h = self
            .replication_latency
            .lock()
            .expect("stats lock is never poisoned");
        for (origin, seconds) in latencies {
            h.entry(origin).or_default().observe(seconds);
        }
    }

    /// Approximate bytes of our own entries after `seq` (see
    /// [`crate::writer::Db::own_bytes_after`]).
    pub(crate) fn own_bytes_after(&self, seq: u64) -> u64 {
        self.own_bytes().bytes_after(seq)
    }

    /// Drops pending-bytes checkpoints every peer is past.
    pub(crate) fn forget_own_bytes_through(&self, seq: u64) {
        self.own_bytes().forget_through(seq);
    }

    fn own_bytes(&self) -> std::sync::MutexGuard<'_, OwnBytes> {
        self.own_bytes.lock().expect("stats lock is never poisoned")
    }
}

impl ConflictRecord {
    /// The record of conflict `c` on `table`/`key`; `before` is the key's
    /// state before the merge, whose value is previewed if it was the loser's.
    fn new(
        table: String,
        key: &[u8],
        c: &Conflict,
        before: Option<KeyState>,
        detected_at_ms: u64,
    ) -> Self {
        let loser_value = before
            .filter(|s| s.last == c.loser)
            .and_then(|s| s.bytes())
            .map(|b| {
                String::from_utf8_lossy(&b[..b.len().min(CONFLICT_VALUE_PREVIEW_BYTES)])
                    .into_owned()
            });
        ConflictRecord {
            table,
            key: String::from_utf8_lossy(key).into_owned(),
            winner: format!("{}@{}", c.winner.origin, c.winner.hlc),
            loser: format!("{}@{}", c.loser.origin, c.loser.hlc),
            loser_value,
            detected_at_ms,
        }
    }
}

impl OwnBytes {
    fn record(&mut self, region: &RegionName, log: &[LogEntry]) {
        for e in log.iter().filter(|e| e.origin == *region) {
            self.total += e.approx_bytes() as u64;
            self.last_seq = e.seq;
            if e.seq % OWN_BYTES_CHECKPOINT_EVERY == 0 {
                self.checkpoints.push_back((e.seq, self.total));
            }
        }
    }

    fn bytes_after(&self, seq: u64) -> u64 {
        if seq >= self.last_seq {
            return 0;
        }
        // Bytes up to `seq`: the last checkpoint at or before it, plus the
        // average entry size since then.
        let (cp_seq, cp_bytes) = self
            .checkpoints
            .iter()
            .take_while(|(s, _)| *s <= seq)
            .last()
            .copied()
            .unwrap_or((0, 0));
        let per_entry = (self.total - cp_bytes) as f64 / (self.last_seq - cp_seq).max(1) as f64;
        let upto = cp_bytes as f64 + per_entry * (seq - cp_seq) as f64;
        self.total.saturating_sub(upto as u64)
    }

    fn forget_through(&mut self, seq: u64) {
        while self.checkpoints.len() > 1 && self.checkpoints[1].0 <= seq {
            self.checkpoints.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_bytes_interpolate_from_the_last_checkpoint() {
        let mut own = OwnBytes {
            total: 6400,
            last_seq: 128,
            checkpoints: VecDeque::from([(64, 3200), (128, 6400)]),
        };
        assert_eq!(own.bytes_after(128), 0);
        assert_eq!(own.bytes_after(64), 3200);
        assert_eq!(own.bytes_after(96), 1600);
        own.forget_through(128);
        assert_eq!(own.checkpoints, [(128, 6400)]);
    }
}
