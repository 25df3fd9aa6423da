//! The storage trait every backend implements, and the types it moves.
//!
//! A backend is deliberately dumb: reads, and one atomic, durable commit of
//! a [`CommitBatch`] (key states + log entries + metadata). All merge logic,
//! clocks and group commit live above it in [`crate::engine`], so a backend is
//! small enough to be checked completely by the conformance suite
//! (`tests/conformance.rs`), which every implementation must pass.

use std::collections::BTreeMap;

use meridian_core::record::KeyState;
use meridian_core::{Hlc, LogEntry, RegionName, VersionVector};

pub use meridian_core::Durability;

/// Everything one commit writes, atomically.
#[derive(Clone, Debug, Default)]
pub struct CommitBatch {
    /// New states of keys: `(table, key, state)`.
    pub states: Vec<(String, Vec<u8>, KeyState)>,
    /// Log entries to append; per origin, sequences are contiguous and
    /// continue exactly where that origin's log ends.
    pub log: Vec<LogEntry>,
    /// The version vector after this commit.
    pub vv: VersionVector,
    /// The highest HLC issued or adopted, the clock's floor after a restart.
    pub hlc_floor: Hlc,
    /// Peers' acknowledged version vectors learnt since the last commit.
    pub peer_vvs: BTreeMap<RegionName, VersionVector>,
}

/// What a backend remembers besides keys and logs, loaded at open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Highest contiguous sequence applied per origin.
    pub vv: VersionVector,
    /// HLC floor.
    pub hlc_floor: Hlc,
    /// Last known acknowledged vector of each peer.
    pub peer_vvs: BTreeMap<RegionName, VersionVector>,
    /// Per origin, the first sequence still in the log (entries below were
    /// garbage-collected). Absent: nothing collected yet (starts at 1).
    pub log_start: BTreeMap<RegionName, u64>,
}

/// Backend failures. `Io` covers full disks and failing devices: the caller
/// refuses the write and keeps running; `Corrupt` means stop the node.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The device failed or is full; retryable once the operator acts.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// Stored bytes do not decode: the data directory is damaged.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A log read asked for entries that were garbage-collected.
    #[error("log of {origin} starts at {first_available}, entry {requested} was collected")]
    LogTruncated {
        /// The origin.
        origin: RegionName,
        /// The first sequence still kept.
        first_available: u64,
        /// What was asked for.
        requested: u64,
    },
    /// A commit broke the backend's contract (gap in a log, VV going back).
    #[error("commit rejected: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the operation may succeed if tried again unchanged: only an
    /// I/O failure can pass (the device recovers, the operator frees
    /// space). Corrupt data, a collected log range and a broken contract
    /// fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }

    /// Whether the node must stop: its stored data is damaged, and running
    /// on would build on it.
    pub fn is_fatal(&self) -> bool {
        matches!(self, StoreError::Corrupt(_))
    }
}

/// A durable (or in-memory) home for key states, per-origin logs and meta.
///
/// Implementations: [`crate::MemStore`] (tests, simulation) and
/// [`crate::RedbStore`] (production). Reads may run on any thread while a
/// commit is in progress and see the state before or after it, never half.
pub trait Backend: Send + Sync + 'static {
    /// The state of one key.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<KeyState>, StoreError>;

    /// The states of many keys, in order, as of one moment (one read
    /// transaction where the backend has them): what the writer reads
    /// before merging a batch of replicated entries.
    fn get_many(&self, keys: &[(&str, &[u8])]) -> Result<Vec<Option<KeyState>>, StoreError> {
        keys.iter().map(|(t, k)| self.get(t, k)).collect()
    }

    /// Up to `limit` keys of `table` in key order, strictly after `after`.
    fn scan(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyState)>, StoreError>;

    /// Entries of `origin` from `from_seq` on, in order, at most
    /// `max_entries` and — except that the first entry is always returned —
    /// at most `max_bytes` of encoded entries. Empty past the end.
    fn read_log(
        &self,
        origin: &RegionName,
        from_seq: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError>;

    /// Applies the batch atomically with the given durability.
    fn commit(&self, batch: &CommitBatch, durability: Durability) -> Result<(), StoreError>;

    /// Drops `origin`'s log entries up to and including `through_seq`
    /// (everyone has them). May keep a few more for efficiency (bucketed
    /// logs), but `Meta::log_start` and `read_log` must behave as if exactly
    /// those were dropped. Returns the new `log_start`. Need not be durable
    /// at once: a crash may bring collected entries back, which costs disk
    /// only.
    fn truncate_log(&self, origin: &RegionName, through_seq: u64) -> Result<u64, StoreError>;

    /// This region stops holding `table` (it became pinned elsewhere):
    /// drops its key states, and replaces each of its stored log entries
    /// with `seq <= through[origin]` — any origin, including entries a
    /// partly dropped bucket still keeps — by the entry's
    /// `LogEntry::withheld` placeholder. Later entries stay whole: a region
    /// that holds the table may still need them from here. Sequences,
    /// vectors and the rest of the meta are untouched. Returns how many
    /// entries were rewritten and how many states dropped.
    fn withhold_table(
        &self,
        table: &str,
        through: &VersionVector,
    ) -> Result<(u64, u64), StoreError>;

    /// Metadata as of the last commit.
    fn meta(&self) -> Result<Meta, StoreError>;

    /// Approximate bytes on disk (or in memory), for metrics.
    fn size_bytes(&self) -> Result<u64, StoreError>;

    /// The write-ahead log's counters, for backends that keep one.
    fn log_stats(&self) -> Option<LogStats> {
        None
    }
}

/// What a backend's write-ahead log has done (see [`crate::wal`]).
#[derive(Clone, Debug)]
pub struct LogStats {
    /// Commits made durable through a log record.
    pub logged_commits: u64,
    /// Checkpoints: memtables (and commits holding a row too large to
    /// log) made durable in the database file itself. Table withdrawals are
    /// durable too, not counted; truncations ride on checkpoints.
    pub checkpoints: u64,
    /// Time each checkpoint's durable redb commit took (in the
    /// background, except for commits holding a row too large to log).
    pub checkpoint_seconds: crate::histogram::HistogramSnapshot,
    /// Log bytes not yet checkpointed: what a crash would replay.
    pub log_bytes: u64,
    /// Bytes of commits held in memory until their checkpoint.
    pub memtable_bytes: u64,
}
