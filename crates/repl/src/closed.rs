//! Closed timestamps: up to what time this region holds every write of
//! each origin.
//!
//! Every ack a peer sends carries its version vector and its HLC floor,
//! taken together at one commit: "all my writes stamped at or below `hlc`
//! have sequences at or below `vv[me]`". Once this region has applied that
//! sequence of the peer, it holds every write the peer stamped up to `hlc`:
//! the peer's time is *closed* here up to `hlc`. The minimum over all peers
//! (and our own clock) is the time before which no write can still arrive —
//! what makes purging expired keys safe (`KeyState::purge_expired`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use meridian_core::{RegionName, VersionVector};

/// Unconfirmed (sequence, time) claims kept per peer. Acks arrive ahead of
/// the entries they describe; under steady load a few are always pending.
/// When full, the oldest goes: claims only ever move time forward, so
/// losing one only delays closing.
const CANDIDATES_MAX: usize = 64;

#[derive(Default)]
struct PeerClock {
    candidates: VecDeque<(u64, u64)>,
    closed_ms: u64,
}

/// Shared closed-timestamp tracker. Cheap to clone.
#[derive(Clone, Default)]
pub struct ClosedTimestamps {
    peers: Arc<Mutex<BTreeMap<RegionName, PeerClock>>>,
}

impl ClosedTimestamps {
    /// A tracker for these peers (none closed yet).
    pub fn new(peers: impl IntoIterator<Item = RegionName>) -> Self {
        let map = peers
            .into_iter()
            .map(|p| (p, PeerClock::default()))
            .collect();
        ClosedTimestamps {
            peers: Arc::new(Mutex::new(map)),
        }
    }

    /// `peer` says: all its writes up to `wall_ms` have sequence ≤ `seq`.
    /// `applied` is what this region holds now.
    pub fn claim(&self, peer: &RegionName, seq: u64, wall_ms: u64, applied: &VersionVector) {
        let mut peers = self
            .peers
            .lock()
            .expect("closed-timestamp lock is never poisoned");
        let Some(p) = peers.get_mut(peer) else { return };
        if p.candidates.len() == CANDIDATES_MAX {
            p.candidates.pop_front();
        }
        p.candidates.push_back((seq, wall_ms));
        promote(peer, p, applied);
    }

    /// This region's applied vector moved: confirm the claims it covers.
    pub fn applied(&self, applied: &VersionVector) {
        let mut peers = self
            .peers
            .lock()
            .expect("closed-timestamp lock is never poisoned");
        for (peer, p) in peers.iter_mut() {
            promote(peer, p, applied);
        }
    }

    /// The time before which every peer's writes are here; `None` while
    /// some peer has closed nothing yet. (Our own writes are always here.)
    pub fn closed_ms(&self) -> Option<u64> {
        let peers = self
            .peers
            .lock()
            .expect("closed-timestamp lock is never poisoned");
        let min = peers.values().map(|p| p.closed_ms).min();
        match min {
            None => Some(u64::MAX),
            Some(0) => None,
            Some(ms) => Some(ms),
        }
    }

    /// Per peer, for status.
    pub fn per_peer(&self) -> BTreeMap<RegionName, u64> {
        let peers = self
            .peers
            .lock()
            .expect("closed-timestamp lock is never poisoned");
        peers
            .iter()
            .map(|(r, p)| (r.clone(), p.closed_ms))
            .collect()
    }
}

fn promote(peer: &RegionName, p: &mut PeerClock, applied: &VersionVector) {
    let have = applied.get(peer);
    while let Some(&(seq, ms)) = p.candidates.front() {
        if seq > have {
            break;
        }
        p.closed_ms = p.closed_ms.max(ms);
        p.candidates.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RegionName {
        RegionName::new(s).unwrap()
    }

    fn vv(origin: &str, seq: u64) -> VersionVector {
        let mut v = VersionVector::new();
        v.advance(&r(origin), seq);
        v
    }

    #[test]
    fn a_claim_closes_time_only_once_its_writes_are_applied() {
        let c = ClosedTimestamps::new([r("b"), r("c")]);
        assert_eq!(c.closed_ms(), None);
        c.claim(&r("b"), 5, 1000, &vv("b", 3));
        c.claim(&r("c"), 0, 900, &VersionVector::new());
        assert_eq!(
            c.per_peer()[&r("b")],
            0,
            "b's writes 4..=5 are not here yet"
        );
        c.applied(&vv("b", 5));
        assert_eq!(c.per_peer()[&r("b")], 1000);
        assert_eq!(c.closed_ms(), Some(900), "the slowest peer bounds it");
        // Later claims while earlier ones wait.
        c.claim(&r("b"), 9, 2000, &vv("b", 5));
        c.claim(&r("b"), 7, 1500, &vv("b", 5));
        c.applied(&vv("b", 8));
        assert_eq!(c.per_peer()[&r("b")], 1000, "claims confirm in order");
        c.applied(&vv("b", 9));
        assert_eq!(c.per_peer()[&r("b")], 2000);
    }

    #[test]
    fn a_lone_region_is_always_closed() {
        assert_eq!(ClosedTimestamps::new([]).closed_ms(), Some(u64::MAX));
    }
}
