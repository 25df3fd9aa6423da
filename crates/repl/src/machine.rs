//! The replication decisions, as a pure state machine.
//!
//! [`Replicator::handle`] takes an [`Event`] and the current monotonic time
//! and returns [`Command`]s; it does no I/O and reads no clock, so every
//! decision is testable and the deterministic simulation drives it directly.
//!
//! What it decides:
//! - **Shipping.** Each origin's entries go to every peer that lacks them,
//!   from the peer's acknowledged position, in batches of at most
//!   `batch_entries_max`, with at most `window_entries_max` unacknowledged
//!   per (peer, origin). Own entries ship at once: no batching delay when
//!   idle; under load batches form naturally because a new batch is only
//!   issued when the previous one is handed off.
//! - **Relay.** Entries of another origin are sent to a peer only when the
//!   peer still lacks what this node had `relay_after` ago: the origin would
//!   have delivered them by then unless its link to the peer is down. So a
//!   partial partition (A–C cut, B reaching both) heals through B, while a
//!   healthy mesh carries each entry once.
//! - **Retransmission.** A (peer, origin) stream whose acknowledgements stop
//!   advancing for `retransmit_after` restarts from the last acknowledged
//!   entry (go-back-N); apply is idempotent by `(origin, seq)`.
//! - **Garbage collection.** An origin's log is truncated through the lowest
//!   position every region has acknowledged, in steps of at least
//!   `gc_min_entries`; a region that stays silent holds GC back (disk, not
//!   RAM, pays for its absence).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use meridian_core::{RegionName, VersionVector};

/// Settings; see the module docs for what each bounds.
#[derive(Clone, Debug)]
pub struct ReplConfig {
    /// This node's region.
    pub me: RegionName,
    /// Every region of the topology, this one included.
    pub regions: Vec<RegionName>,
    /// Entries per shipped batch.
    pub batch_entries_max: u64,
    /// Unacknowledged entries per (peer, origin).
    pub window_entries_max: u64,
    /// How long a peer may lack another origin's entries before we relay.
    pub relay_after: Duration,
    /// How long acknowledgements may stall before a stream restarts.
    pub retransmit_after: Duration,
    /// Smallest log truncation worth doing.
    pub gc_min_entries: u64,
}

impl ReplConfig {
    /// Defaults for `me` in a cluster of `regions`.
    pub fn new(me: RegionName, regions: Vec<RegionName>) -> Self {
        ReplConfig {
            me,
            regions,
            // 1024 entries of ~150 B is ~150 KiB: a frame that amortises
            // framing and commits, well under the 1 MiB shipping cap.
            batch_entries_max: 1024,
            // The bandwidth-delay product of catch-up: 64 batches in flight
            // keep a 216 ms RTT link at ~300k entries/s per origin, while
            // bounding a peer's unacknowledged backlog to ~10 MB.
            window_entries_max: 65_536,
            // Above the largest default RTT (216 ms) plus commit time, so a
            // healthy mesh never relays.
            relay_after: Duration::from_millis(1000),
            retransmit_after: Duration::from_secs(3),
            // Matches the store's log bucket size: truncation drops buckets.
            gc_min_entries: 4096,
        }
    }
}

/// Something that happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Our authenticated link to the peer came up.
    PeerUp(RegionName),
    /// It went down: whatever was in flight is lost.
    PeerDown(RegionName),
    /// The peer told us its applied vector.
    PeerVv {
        /// The peer.
        peer: RegionName,
        /// Its vector.
        vv: VersionVector,
    },
    /// The peer received entries past a gap and asks to resend from here.
    Resend {
        /// The peer.
        peer: RegionName,
        /// The origin.
        origin: RegionName,
        /// First sequence it needs.
        from_seq: u64,
    },
    /// Our applied vector changed (a commit).
    LocalVv(VersionVector),
    /// The driver sent entries `..=through_seq` of `origin` to `peer`.
    Sent {
        /// The peer.
        peer: RegionName,
        /// The origin.
        origin: RegionName,
        /// Last sequence sent.
        through_seq: u64,
    },
    /// The driver could not send a batch (link down or back-pressured).
    ShipFailed {
        /// The peer.
        peer: RegionName,
        /// The origin.
        origin: RegionName,
    },
    /// Time passed.
    Tick,
}

/// Something to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Read `origin`'s log from `from_seq` (at most `max_entries`) and send
    /// it to `peer`; then report [`Event::Sent`] or [`Event::ShipFailed`].
    Ship {
        /// The peer.
        peer: RegionName,
        /// The origin.
        origin: RegionName,
        /// First sequence.
        from_seq: u64,
        /// Most entries.
        max_entries: u64,
    },
    /// Tell `peer` our applied vector.
    Ack {
        /// The peer.
        peer: RegionName,
        /// Our vector.
        vv: VersionVector,
    },
    /// Truncate `origin`'s log through `through_seq`.
    Truncate {
        /// The origin.
        origin: RegionName,
        /// Last sequence to drop.
        through_seq: u64,
    },
}

/// Counters per peer, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Entries shipped (including retransmissions and relays).
    pub shipped: u64,
    /// Entries re-sent after a stall, a gap or a lost link.
    pub retransmitted: u64,
    /// Batches that could not be handed to the link.
    pub failed: u64,
    /// Entries relayed on behalf of another origin.
    pub relayed: u64,
}

#[derive(Clone, Debug, Default)]
struct PeerState {
    up: bool,
    acked: VersionVector,
    sent: BTreeMap<RegionName, u64>,
    shipping: BTreeSet<RegionName>,
    /// After a failed hand-off, no new batch for the origin before this.
    retry_at_ms: BTreeMap<RegionName, u64>,
    last_progress_ms: BTreeMap<RegionName, u64>,
    counters: PeerCounters,
}

impl PeerState {
    /// The link came up: nothing sent on the old one counts, and every
    /// origin's stall timer starts now.
    fn link_up(&mut self, origins: impl Iterator<Item = RegionName>, now_ms: u64) {
        self.up = true;
        self.sent.clear();
        for origin in origins {
            self.last_progress_ms.insert(origin, now_ms);
        }
    }

    /// The peer says it applied `vv`; origins that moved made progress.
    fn acked_through(&mut self, vv: &VersionVector, now_ms: u64) {
        for (origin, seq) in vv.iter() {
            if seq > self.acked.get(origin) {
                self.last_progress_ms.insert(origin.clone(), now_ms);
            }
        }
        self.acked.merge(vv);
    }

    /// The peer needs `origin` from `from_seq` again: what was sent beyond
    /// it counts as retransmitted and is shipped anew.
    fn rewind(&mut self, origin: RegionName, from_seq: u64, now_ms: u64) {
        let sent = self.sent.entry(origin.clone()).or_insert(0);
        let rewind = sent.saturating_sub(from_seq.saturating_sub(1));
        self.counters.retransmitted += rewind;
        *sent = (*sent).min(from_seq.saturating_sub(1));
        self.last_progress_ms.insert(origin, now_ms);
    }

    /// A batch of `origin` could not be handed to the link.
    fn ship_failed(&mut self, origin: RegionName, now_ms: u64) {
        self.shipping.remove(&origin);
        // The link queue is full or down: retry on a later tick rather than
        // re-reading the log at once.
        self.retry_at_ms.insert(origin, now_ms + SHIP_RETRY_MS);
        self.counters.failed += 1;
    }
}

/// Pause after a batch could not be handed to the link.
pub const SHIP_RETRY_MS: u64 = 50;

/// Most samples of our vector kept for relay decisions; older ones are
/// thinned, which only makes relays slightly later.
const VV_HISTORY_MAX: usize = 4096;

/// The replication state machine of one node.
pub struct Replicator {
    config: ReplConfig,
    vv: VersionVector,
    peers: BTreeMap<RegionName, PeerState>,
    truncated: BTreeMap<RegionName, u64>,
    history: VecDeque<(u64, VersionVector)>,
}

impl Replicator {
    /// A machine starting from our applied vector, the peers' last known
    /// vectors, and how far each origin's log is already truncated.
    pub fn new(
        config: ReplConfig,
        vv: VersionVector,
        peer_vvs: &BTreeMap<RegionName, VersionVector>,
        truncated: BTreeMap<RegionName, u64>,
    ) -> Self {
        let peers = config
            .regions
            .iter()
            .filter(|r| **r != config.me)
            .map(|r| {
                let mut acked = peer_vvs.get(r).cloned().unwrap_or_default();
                // A log truncated through T was acknowledged through T by
                // every region, and applied vectors never go back: so every
                // peer has at least T, even if the ack that said so was not
                // persisted before a restart.
                for (origin, through) in &truncated {
                    acked.advance_to_at_least(origin, *through);
                }
                (
                    r.clone(),
                    PeerState {
                        acked,
                        ..PeerState::default()
                    },
                )
            })
            .collect();
        Replicator {
            config,
            vv,
            peers,
            truncated,
            history: VecDeque::new(),
        }
    }

    /// Handles one event at `now_ms` (monotonic) and returns what to do.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        match event {
            Event::PeerUp(peer) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.link_up(self.vv.iter().map(|(o, _)| o.clone()), now_ms);
                    out.push(Command::Ack {
                        peer,
                        vv: self.vv.clone(),
                    });
                }
            }
            Event::PeerDown(peer) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.up = false;
                    p.sent.clear();
                }
            }
            Event::PeerVv { peer, vv } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.acked_through(&vv, now_ms);
                }
                self.collect_garbage(&mut out);
            }
            Event::Resend {
                peer,
                origin,
                from_seq,
            } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.rewind(origin, from_seq, now_ms);
                }
            }
            Event::LocalVv(vv) => self.local_vv(now_ms, &vv, &mut out),
            Event::Sent {
                peer,
                origin,
                through_seq,
            } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.shipping.remove(&origin);
                    let sent = p.sent.entry(origin).or_insert(0);
                    *sent = (*sent).max(through_seq);
                }
            }
            Event::ShipFailed { peer, origin } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.ship_failed(origin, now_ms);
                }
            }
            Event::Tick => self.retransmit_stalled(now_ms),
        }
        self.ship(now_ms, &mut out);
        out
    }

    /// Our applied vector moved to `vv`: acknowledge it to every peer that
    /// is up, and truncate what all have.
    fn local_vv(&mut self, now_ms: u64, vv: &VersionVector, out: &mut Vec<Command>) {
        if self.vv.covers(vv) {
            // Nothing new: acknowledging again would only echo.
            return;
        }
        self.vv.merge(vv);
        self.remember(now_ms);
        for (peer, p) in &self.peers {
            if p.up {
                out.push(Command::Ack {
                    peer: peer.clone(),
                    vv: self.vv.clone(),
                });
            }
        }
        self.collect_garbage(out);
    }

    fn remember(&mut self, now_ms: u64) {
        self.history.push_back((now_ms, self.vv.clone()));
        // Keep exactly one sample at or before the relay horizon.
        let horizon = now_ms.saturating_sub(self.config.relay_after.as_millis() as u64);
        while self.history.len() >= 2 && self.history[1].0 <= horizon {
            self.history.pop_front();
        }
        if self.history.len() > VV_HISTORY_MAX {
            // Thin the middle: drop every other sample.
            let thinned: VecDeque<_> = self
                .history
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 0)
                .map(|(_, s)| s.clone())
                .collect();
            self.history = thinned;
        }
    }

    /// What we had of `origin` `relay_after` ago (0 if we did not know yet).
    fn relay_target(&self, now_ms: u64, origin: &RegionName) -> u64 {
        // Within the first `relay_after` nothing is old enough to relay.
        let Some(horizon) = now_ms.checked_sub(self.config.relay_after.as_millis() as u64) else {
            return 0;
        };
        self.history
            .iter()
            .take_while(|(t, _)| *t <= horizon)
            .last()
            .map(|(_, vv)| vv.get(origin))
            .unwrap_or(0)
    }

    fn ship(&mut self, now_ms: u64, out: &mut Vec<Command>) {
        let origins: Vec<(RegionName, u64)> = self.vv.iter().map(|(o, s)| (o.clone(), s)).collect();
        let targets: BTreeMap<RegionName, u64> = origins
            .iter()
            .map(|(o, have)| {
                let target = if *o == self.config.me {
                    *have
                } else {
                    self.relay_target(now_ms, o)
                };
                (o.clone(), target)
            })
            .collect();
        for (peer, p) in self.peers.iter_mut() {
            if !p.up {
                continue;
            }
            for (origin, _) in &origins {
                if origin == peer || p.shipping.contains(origin) {
                    continue;
                }
                if p.retry_at_ms.get(origin).is_some_and(|t| now_ms < *t) {
                    continue;
                }
                let target = targets[origin];
                let acked = p.acked.get(origin);
                let sent = p.sent.get(origin).copied().unwrap_or(0).max(acked);
                if sent >= target {
                    continue;
                }
                let in_flight = sent - acked;
                if in_flight >= self.config.window_entries_max {
                    continue;
                }
                if in_flight == 0 {
                    // Idle stream restarting: the stall clock starts now.
                    p.last_progress_ms.insert(origin.clone(), now_ms);
                }
                let max_entries = (target - sent)
                    .min(self.config.batch_entries_max)
                    .min(self.config.window_entries_max - in_flight);
                p.shipping.insert(origin.clone());
                p.counters.shipped += max_entries;
                if *origin != self.config.me {
                    p.counters.relayed += max_entries;
                }
                out.push(Command::Ship {
                    peer: peer.clone(),
                    origin: origin.clone(),
                    from_seq: sent + 1,
                    max_entries,
                });
            }
        }
    }

    fn retransmit_stalled(&mut self, now_ms: u64) {
        let stall = self.config.retransmit_after.as_millis() as u64;
        for p in self.peers.values_mut() {
            if !p.up {
                continue;
            }
            for (origin, sent) in p.sent.iter_mut() {
                let acked = p.acked.get(origin);
                let since = p.last_progress_ms.get(origin).copied().unwrap_or(0);
                if *sent > acked && now_ms.saturating_sub(since) >= stall {
                    p.counters.retransmitted += *sent - acked;
                    *sent = acked;
                    p.last_progress_ms.insert(origin.clone(), now_ms);
                }
            }
        }
    }

    fn collect_garbage(&mut self, out: &mut Vec<Command>) {
        for (origin, have) in self.vv.iter() {
            let everyone = self
                .peers
                .values()
                .map(|p| p.acked.get(origin))
                .min()
                .unwrap_or(have)
                .min(have);
            let done = self.truncated.get(origin).copied().unwrap_or(0);
            if everyone >= done + self.config.gc_min_entries {
                self.truncated.insert(origin.clone(), everyone);
                out.push(Command::Truncate {
                    origin: origin.clone(),
                    through_seq: everyone,
                });
            }
        }
    }

    /// Our applied vector as the machine knows it.
    pub fn vv(&self) -> &VersionVector {
        &self.vv
    }

    /// A peer's last acknowledged vector.
    pub fn peer_vv(&self, peer: &RegionName) -> Option<&VersionVector> {
        self.peers.get(peer).map(|p| &p.acked)
    }

    /// Our own entries the peer has not acknowledged.
    pub fn pending_ops(&self, peer: &RegionName) -> u64 {
        let me = &self.config.me;
        self.peers
            .get(peer)
            .map_or(0, |p| self.vv.get(me).saturating_sub(p.acked.get(me)))
    }

    /// A peer's counters.
    pub fn counters(&self, peer: &RegionName) -> Option<&PeerCounters> {
        self.peers.get(peer).map(|p| &p.counters)
    }

    /// How far each origin's log has been truncated.
    pub fn truncated(&self) -> &BTreeMap<RegionName, u64> {
        &self.truncated
    }

    /// Checks the machine's invariants; panics with the broken one. Tests
    /// and the simulation call it after every event.
    pub fn validate(&self) {
        for (peer, p) in &self.peers {
            assert!(!p.up || self.peers.contains_key(peer));
            for (origin, done) in &self.truncated {
                assert!(
                    p.acked.get(origin) >= *done,
                    "truncated {origin} through {done} but {peer} has only {}",
                    p.acked.get(origin)
                );
            }
            for origin in &p.shipping {
                assert!(origin != peer, "shipping {peer}'s own entries back to it");
            }
        }
        for (origin, done) in &self.truncated {
            assert!(
                self.vv.get(origin) >= *done,
                "truncated {origin} beyond what we applied"
            );
        }
    }
}

#[cfg(test)]
mod tests;
