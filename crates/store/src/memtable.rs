//! The memtable in front of [`crate::RedbStore`]: the commits of the last
//! second, in memory, until a checkpoint writes them to redb at once.
//!
//! A redb write transaction copies every B-tree page it touches, so
//! committing each group commit to redb cost ~13 µs per random key, on the
//! writer thread, and the once-a-second durable commit held the writer up
//! for its whole fsync. Now a commit is one log record ([`crate::wal`]) and
//! an insert here; a background thread writes a frozen memtable to redb in
//! a few durable transactions ([`CHECKPOINT_TXN_PAGES`]), copying each page
//! about once per checkpoint instead of once per commit, while the writer
//! fills the next memtable.
//!
//! Readers look in the active memtable, then the frozen one, then redb —
//! all three taken under one lock, so what they see is one moment of the
//! store (see [`crate::RedbStore`]).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use meridian_core::RegionName;

use crate::wal::Rows;

/// Time between checkpoints under a steady stream of commits. Bounds how
/// much log a restart replays.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Memtable bytes at which a checkpoint starts without waiting for
/// [`CHECKPOINT_INTERVAL`]: bounds how much one checkpoint writes. At most
/// two memtables exist — one being checkpointed, one filling — so a commit
/// that finds the filling one this full while the other is still being
/// written waits for that checkpoint: memory and log outside redb stay
/// under about twice this.
pub const MEMTABLE_FLUSH_BYTES: usize = 16 * 1024 * 1024;

/// Estimated B-tree pages one checkpoint transaction may change before it
/// commits and the checkpoint goes on in the next (each key state counts a
/// leaf, plus a page per 4 KiB of it). A durable redb commit writes every
/// page it changed, at scattered places, and fsyncs them; on our virtual
/// disk (~10k random 4 KiB writes/s) one 30 MiB checkpoint kept the disk
/// busy for ~250 ms, and every write-ahead fdatasync issued meanwhile
/// waited behind it: that wait made the local write p99 (72–84 ms at 3k
/// writes/s per region; 27–30 ms with transactions of 512 pages, ~2 MiB,
/// the same as with 128, which cost more CPU at 10k/s).
pub const CHECKPOINT_TXN_PAGES: usize = 512;

/// Bytes in the active memtable at which a checkpoint in progress counts
/// as behind the writers and puts the rest of its states in one
/// transaction: at high write rates small transactions cost the disk and
/// the CPU more than the writers can wait (measured at 10k writes/s per
/// region: ~10 % less throughput with them throughout).
pub const CHECKPOINT_BEHIND_BYTES: usize = MEMTABLE_FLUSH_BYTES / 4;

/// redb's page size, for the estimate above.
pub const PAGE_BYTES: usize = 4096;

/// A commit holding a row (key state or log entry) larger than this is
/// written to redb directly, durably, rather than logged and kept here:
/// its large value would otherwise be written twice (log, then redb), and
/// one large durable redb commit costs about what its log record would. A
/// group commit of many small rows is logged however large it is.
pub const LOGGED_ROW_BYTES_MAX: usize = 256 * 1024;

/// Bookkeeping bytes counted per row besides its key and value (B-tree
/// node share and `Vec` headers), so many tiny rows still count.
const ROW_OVERHEAD_BYTES: usize = 64;

/// Rows committed since the last checkpoint, encoded as redb stores them.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    /// Data key → encoded key state.
    pub states: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Per origin, a contiguous run of sequences → encoded log entry.
    pub log: BTreeMap<RegionName, BTreeMap<u64, Vec<u8>>>,
    /// Approximate memory held, for the limits above.
    pub bytes: usize,
}

impl Memtable {
    /// Takes a commit's rows (its metadata is the store's business).
    pub fn insert(&mut self, rows: Rows) {
        for (key, state) in rows.states {
            let key_len = key.len();
            self.bytes += key_len + state.len() + ROW_OVERHEAD_BYTES;
            if let Some(old) = self.states.insert(key, state) {
                // The map keeps one key; the old state is gone.
                self.bytes -= key_len + old.len() + ROW_OVERHEAD_BYTES;
            }
        }
        for (origin, seq, entry) in rows.log {
            self.bytes += entry.len() + ROW_OVERHEAD_BYTES;
            self.log.entry(origin).or_default().insert(seq, entry);
        }
    }

    /// Whether nothing was committed into it.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty() && self.log.is_empty()
    }

    /// The encoded state of a data key.
    pub fn state(&self, data_key: &[u8]) -> Option<&[u8]> {
        self.states.get(data_key).map(Vec::as_slice)
    }

    /// Up to `limit` rows with data keys in `(lower, ..)` that start with
    /// `prefix`, in key order.
    pub fn states_from<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        prefix: &'a [u8],
        limit: usize,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)> + 'a {
        self.states
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .take(limit)
    }

    /// The first sequence of `origin` held here.
    pub fn first_seq(&self, origin: &RegionName) -> Option<u64> {
        self.log
            .get(origin)
            .and_then(|l| l.first_key_value())
            .map(|(s, _)| *s)
    }

    /// The entries of `origin` from `from` on, in order.
    pub fn entries_from<'a>(
        &'a self,
        origin: &RegionName,
        from: u64,
    ) -> impl Iterator<Item = (u64, &'a Vec<u8>)> + 'a {
        self.log
            .get(origin)
            .into_iter()
            .flat_map(move |l| l.range(from..).map(|(s, e)| (*s, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(states: &[(&[u8], usize)], log: &[(&str, u64)]) -> Rows {
        Rows {
            states: states
                .iter()
                .map(|(k, n)| (k.to_vec(), vec![7; *n]))
                .collect(),
            log: log
                .iter()
                .map(|(o, s)| (RegionName::new(*o).unwrap(), *s, vec![1; 10]))
                .collect(),
            ..Rows::default()
        }
    }

    #[test]
    fn later_states_replace_earlier_ones_and_bytes_follow() {
        let mut m = Memtable::default();
        assert!(m.is_empty());
        m.insert(rows(&[(b"\x01ta", 100)], &[("us-east", 1)]));
        let one = m.bytes;
        assert!(one >= 100 + 10 + 2 * ROW_OVERHEAD_BYTES);
        m.insert(rows(&[(b"\x01ta", 10)], &[("us-east", 2)]));
        assert_eq!(m.state(b"\x01ta"), Some(&[7u8; 10][..]));
        // The key's old state (100 bytes) is gone, the new entry counted.
        assert_eq!(m.bytes, one - 90 + 10 + ROW_OVERHEAD_BYTES);
        assert_eq!(m.first_seq(&RegionName::new("us-east").unwrap()), Some(1));
        let us = RegionName::new("us-east").unwrap();
        assert_eq!(
            m.entries_from(&us, 2).map(|(s, _)| s).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn states_from_stays_inside_the_prefix_and_limit() {
        let mut m = Memtable::default();
        m.insert(rows(
            &[
                (b"\x01ta", 1),
                (b"\x01tb", 1),
                (b"\x01tc", 1),
                (b"\x02tta", 1),
            ],
            &[],
        ));
        let keys = |lower, limit| {
            m.states_from(lower, b"\x01t", limit)
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(Bound::Included(&b"\x01t"[..]), 10),
            vec![b"\x01ta".to_vec(), b"\x01tb".to_vec(), b"\x01tc".to_vec()]
        );
        assert_eq!(
            keys(Bound::Excluded(&b"\x01ta"[..]), 1),
            vec![b"\x01tb".to_vec()]
        );
    }
}
