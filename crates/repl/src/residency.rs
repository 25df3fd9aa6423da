//! Data residency on the wire: a pinned table's entries reach only its
//! allowed regions.
//!
//! Every origin's log is dense, so a region outside a pinned table's allowed
//! regions still needs each of its sequence numbers to advance its version
//! vector. It gets them as [`LogEntry::withheld`] placeholders: origin,
//! sequence, stamp and table name, but no key, value or observed version.
//! The placeholder is made on the sending side, from the full entry, at the
//! last moment before it is encoded, so the full entry never enters a frame
//! bound for such a region.
//!
//! A placeholder must never stand in for the real entry at a region that
//! holds the table (it would advance that region's vector past a write it
//! never stored). Two guards keep that from happening:
//! - a sender cuts a batch before the first placeholder bound for a region
//!   that holds its table (a region outside relaying to one inside), so
//!   such a peer gets that origin's entries from a region that has them;
//! - a receiver that holds the table cuts an incoming batch at such a
//!   placeholder and applies only what came before it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use meridian_core::record::{LogEntry, Op};
use meridian_core::RegionName;

/// Pinned table → its allowed regions. Tables not listed go everywhere.
pub type Pinned = BTreeMap<String, BTreeSet<RegionName>>;

/// Which regions may hold which tables' data. Clones share one map, which
/// [`Residency::set`] replaces when a table's mode changes at run time.
#[derive(Clone, Debug, Default)]
pub struct Residency {
    pinned: Arc<RwLock<Pinned>>,
}

impl Residency {
    /// Residency for these pinned tables.
    pub fn new(pinned: Pinned) -> Self {
        Residency {
            pinned: Arc::new(RwLock::new(pinned)),
        }
    }

    /// Replaces the pinned tables (every clone sees the new map).
    pub fn set(&self, pinned: Pinned) {
        *self
            .pinned
            .write()
            .expect("residency lock is never poisoned") = pinned;
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, Pinned> {
        self.pinned
            .read()
            .expect("residency lock is never poisoned")
    }

    /// Whether `region` may hold `table`'s data.
    pub fn holds(&self, region: &RegionName, table: &str) -> bool {
        held(&self.map(), region, table)
    }

    /// `entries` (one origin's, in sequence) as they may be sent to `peer`:
    /// entries of tables the peer may not hold become placeholders, and
    /// the batch ends before a placeholder the peer would have to take for
    /// a table it holds. May return fewer entries, or none.
    pub fn outgoing(&self, peer: &RegionName, entries: Vec<LogEntry>) -> Vec<LogEntry> {
        let pinned = self.map();
        if pinned.is_empty() {
            return entries;
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let holds = held(&pinned, peer, &entry.table);
            match (holds, entry.op == Op::Withheld) {
                (true, false) => out.push(entry),
                (true, true) => break,
                (false, false) => out.push(entry.withheld()),
                (false, true) => out.push(entry),
            }
        }
        out
    }

    /// How many of `entries` (from a peer) `me` may apply: all, unless a
    /// placeholder stands for a write of a table `me` holds.
    pub fn acceptable_prefix(&self, me: &RegionName, entries: &[LogEntry]) -> usize {
        let pinned = self.map();
        entries
            .iter()
            .position(|e| e.op == Op::Withheld && held(&pinned, me, &e.table))
            .unwrap_or(entries.len())
    }
}

fn held(pinned: &Pinned, region: &RegionName, table: &str) -> bool {
    pinned
        .get(table)
        .is_none_or(|allowed| allowed.contains(region))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::Hlc;

    fn r(s: &str) -> RegionName {
        RegionName::new(s).unwrap()
    }

    fn entry(seq: u64, table: &str) -> LogEntry {
        LogEntry {
            origin: r("eu"),
            seq,
            hlc: Hlc::new(1_000 + seq, 0),
            table: table.into(),
            key: format!("secret-key-{seq}").into_bytes(),
            observed: None,
            op: Op::Put {
                value: b"secret-value".to_vec(),
                expires_at_ms: None,
            },
        }
    }

    fn residency() -> Residency {
        Residency::new(BTreeMap::from([(
            "gdpr".to_string(),
            BTreeSet::from([r("eu"), r("de")]),
        )]))
    }

    #[test]
    fn a_region_outside_gets_placeholders_with_no_key_or_value() {
        let batch = vec![entry(1, "default"), entry(2, "gdpr"), entry(3, "default")];
        let out = residency().outgoing(&r("us"), batch.clone());
        assert_eq!(out.len(), 3, "every sequence number still travels");
        assert_eq!(out[0], batch[0]);
        assert_eq!(out[2], batch[2]);
        assert_eq!(out[1].op, Op::Withheld);
        assert_eq!(out[1].seq, 2);
        assert!(out[1].key.is_empty() && out[1].observed.is_none());
        let bytes = postcard::to_stdvec(&out[1]).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"secret"), "{bytes:?}");
    }

    #[test]
    fn an_allowed_region_gets_everything() {
        let batch = vec![entry(1, "gdpr"), entry(2, "default")];
        assert_eq!(residency().outgoing(&r("de"), batch.clone()), batch);
    }

    #[test]
    fn placeholders_are_never_relayed_to_an_allowed_region() {
        let relayed = vec![
            entry(1, "default"),
            entry(2, "gdpr").withheld(),
            entry(3, "default"),
        ];
        let out = residency().outgoing(&r("de"), relayed.clone());
        assert_eq!(out, relayed[..1].to_vec(), "cut before the placeholder");
        // …but go on to other regions outside.
        assert_eq!(residency().outgoing(&r("jp"), relayed.clone()), relayed);
    }

    #[test]
    fn an_allowed_receiver_applies_only_what_precedes_a_placeholder() {
        let got = vec![entry(1, "default"), entry(2, "gdpr").withheld()];
        assert_eq!(residency().acceptable_prefix(&r("eu"), &got), 1);
        assert_eq!(residency().acceptable_prefix(&r("us"), &got), 2);
    }

    #[test]
    fn without_pinned_tables_nothing_changes() {
        let batch = vec![entry(1, "gdpr")];
        assert_eq!(
            Residency::default().outgoing(&r("us"), batch.clone()),
            batch
        );
    }
}
