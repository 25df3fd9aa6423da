//! The thin async driver around [`Replicator`].
//!
//! One task owns the machine and feeds it events: link changes (polled from
//! the mesh every [`TICK`]), acknowledgements and resend requests from peers,
//! and our own commits (the `Db`'s version-vector watch). It executes the
//! machine's commands: log reads run on the blocking pool and their batches
//! go out through the mesh; acknowledgements are small frames.
//!
//! Incoming batches are applied by one task per sending peer, so each peer's
//! frames apply in the order they were sent; a batch that skips ahead of
//! what we applied is answered with a resend request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::{LogEntry, RegionName, VersionVector};
use meridian_store::db::Db;
use meridian_wan::{InboundFrame, PeerMesh};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::machine::{Command, Event, PeerCounters, ReplConfig, Replicator};

/// How often the driver checks links and stalls.
pub const TICK: Duration = Duration::from_millis(20);

/// Bytes of entries per shipped frame (beyond the first entry). 1 MiB keeps
/// one frame's serialisation short and leaves room for acks between frames.
pub const SHIP_BYTES_MAX: usize = 1024 * 1024;

/// Incoming batches queued per peer before the mesh is back-pressured.
pub const APPLY_QUEUE_FRAMES_MAX: usize = 64;

/// Events queued for the machine.
const EVENT_QUEUE_MAX: usize = 4096;

/// What travels between replicators, inside mesh frames.
#[derive(Debug, Serialize, Deserialize)]
pub enum ReplMessage {
    /// Entries of one or more origins, each origin's in sequence.
    Entries(Vec<LogEntry>),
    /// The sender's applied vector.
    Ack(VersionVector),
    /// The sender needs `origin`'s entries from `from_seq` again.
    Resend {
        /// The origin.
        origin: RegionName,
        /// First sequence needed.
        from_seq: u64,
    },
}

/// Replication state of one peer, as `/status` and `/metrics` show it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerReplication {
    /// The peer's applied vector as it last told us.
    pub acked: VersionVector,
    /// Our own entries it has not acknowledged.
    pub pending_operations: u64,
    /// Their approximate bytes.
    pub pending_bytes: u64,
    /// Shipping counters.
    pub counters: PeerCounters,
}

/// Shared view of the replicator, updated after every event.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplStatus {
    /// Per peer.
    pub peers: BTreeMap<RegionName, PeerReplication>,
    /// How far each origin's log is truncated.
    pub truncated: BTreeMap<RegionName, u64>,
}

/// Handle to a running replicator.
#[derive(Clone)]
pub struct ReplHandle {
    status: Arc<Mutex<ReplStatus>>,
}

impl ReplHandle {
    /// The latest status.
    pub fn status(&self) -> ReplStatus {
        self.status
            .lock()
            .expect("status lock is never poisoned")
            .clone()
    }
}

fn encode(msg: &ReplMessage) -> Vec<u8> {
    postcard::to_stdvec(msg).expect("replication messages always encode")
}

/// Starts replication for `db` over `mesh`, consuming the mesh's inbound
/// frames, until `shutdown`.
pub fn spawn(
    db: Db,
    mesh: PeerMesh,
    inbound: mpsc::Receiver<InboundFrame>,
    config: ReplConfig,
    shutdown: CancellationToken,
) -> Result<ReplHandle, meridian_store::StoreError> {
    let meta = db.backend().meta()?;
    let truncated = meta
        .log_start
        .iter()
        .map(|(o, start)| (o.clone(), start.saturating_sub(1)))
        .collect();
    let machine = Replicator::new(config.clone(), db.applied(), &meta.peer_vvs, truncated);
    let status = Arc::new(Mutex::new(ReplStatus::default()));
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE_MAX);

    let mut appliers = BTreeMap::new();
    for peer in config.regions.iter().filter(|r| **r != config.me) {
        let (tx, rx) = mpsc::channel(APPLY_QUEUE_FRAMES_MAX);
        appliers.insert(peer.clone(), tx);
        tokio::spawn(apply_loop(
            db.clone(),
            mesh.clone(),
            peer.clone(),
            rx,
            shutdown.clone(),
        ));
    }
    tokio::spawn(dispatch_inbound(
        db.clone(),
        inbound,
        appliers,
        events_tx.clone(),
        shutdown.clone(),
    ));
    let driver = Driver {
        db,
        mesh,
        machine,
        events_tx,
        status: status.clone(),
        started: Instant::now(),
        link_up: BTreeMap::new(),
    };
    tokio::spawn(driver.run(events_rx, shutdown));
    Ok(ReplHandle { status })
}

async fn dispatch_inbound(
    db: Db,
    mut inbound: mpsc::Receiver<InboundFrame>,
    appliers: BTreeMap<RegionName, mpsc::Sender<Vec<LogEntry>>>,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return,
            f = inbound.recv() => match f { Some(f) => f, None => return },
        };
        let msg = match postcard::from_bytes::<ReplMessage>(&frame.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(peer = %frame.from, error = %e, "undecodable replication frame dropped");
                continue;
            }
        };
        match msg {
            ReplMessage::Entries(entries) => {
                if let Some(tx) = appliers.get(&frame.from) {
                    // Awaiting here back-pressures the peer through TCP.
                    if tx.send(entries).await.is_err() {
                        return;
                    }
                }
            }
            ReplMessage::Ack(vv) => {
                db.record_peer_ack(frame.from.clone(), vv.clone());
                let _ = events
                    .send(Event::PeerVv {
                        peer: frame.from,
                        vv,
                    })
                    .await;
            }
            ReplMessage::Resend { origin, from_seq } => {
                let _ = events
                    .send(Event::Resend {
                        peer: frame.from,
                        origin,
                        from_seq,
                    })
                    .await;
            }
        }
    }
}

async fn apply_loop(
    db: Db,
    mesh: PeerMesh,
    peer: RegionName,
    mut rx: mpsc::Receiver<Vec<LogEntry>>,
    shutdown: CancellationToken,
) {
    loop {
        let entries = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = rx.recv() => match e { Some(e) => e, None => return },
        };
        match db.apply_remote(entries).await {
            Ok(outcome) => {
                if let Some((origin, from_seq)) = outcome.gap {
                    let _ = mesh.send(&peer, encode(&ReplMessage::Resend { origin, from_seq }));
                }
            }
            Err(e) => {
                // Not applied, not acknowledged: the sender retransmits after
                // its stall timeout. Keep going; the disk may recover.
                tracing::warn!(%peer, error = %e, "applying replicated entries failed");
            }
        }
    }
}

struct Driver {
    db: Db,
    mesh: PeerMesh,
    machine: Replicator,
    events_tx: mpsc::Sender<Event>,
    status: Arc<Mutex<ReplStatus>>,
    started: Instant,
    link_up: BTreeMap<RegionName, bool>,
}

impl Driver {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn run(mut self, mut events: mpsc::Receiver<Event>, shutdown: CancellationToken) {
        let mut applied = self.db.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let initial = self.db.applied();
        self.handle(Event::LocalVv(initial));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    for s in self.mesh.status() {
                        let was = self.link_up.insert(s.region.clone(), s.outbound_up).unwrap_or(false);
                        if s.outbound_up && !was {
                            self.handle(Event::PeerUp(s.region));
                        } else if !s.outbound_up && was {
                            self.handle(Event::PeerDown(s.region));
                        }
                    }
                    self.handle(Event::Tick);
                }
                changed = applied.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let vv = applied.borrow_and_update().clone();
                    self.handle(Event::LocalVv(vv));
                }
                Some(event) = events.recv() => self.handle(event),
            }
        }
    }

    fn handle(&mut self, event: Event) {
        let now = self.now_ms();
        let commands = self.machine.handle(now, event);
        debug_assert!({
            self.machine.validate();
            true
        });
        for c in commands {
            self.execute(c);
        }
        self.publish();
    }

    fn execute(&self, command: Command) {
        match command {
            Command::Ack { peer, vv } => {
                // Lost acks are harmless: the next commit sends another.
                let _ = self.mesh.send(&peer, encode(&ReplMessage::Ack(vv)));
            }
            Command::Ship {
                peer,
                origin,
                from_seq,
                max_entries,
            } => {
                let db = self.db.clone();
                let mesh = self.mesh.clone();
                let events = self.events_tx.clone();
                tokio::spawn(async move {
                    let read = {
                        let (db, origin) = (db.clone(), origin.clone());
                        tokio::task::spawn_blocking(move || {
                            db.read_log(&origin, from_seq, max_entries as usize, SHIP_BYTES_MAX)
                        })
                        .await
                    };
                    let event = match read {
                        Ok(Ok(entries)) if !entries.is_empty() => {
                            let through_seq = entries.last().map(|e| e.seq).unwrap_or(from_seq);
                            match mesh.send(&peer, encode(&ReplMessage::Entries(entries))) {
                                Ok(()) => Event::Sent {
                                    peer,
                                    origin,
                                    through_seq,
                                },
                                Err(_) => Event::ShipFailed { peer, origin },
                            }
                        }
                        Ok(Ok(_)) => Event::ShipFailed { peer, origin },
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, %origin, from_seq, error = %e, "reading the log to ship failed");
                            Event::ShipFailed { peer, origin }
                        }
                        Err(_) => Event::ShipFailed { peer, origin },
                    };
                    let _ = events.send(event).await;
                });
            }
            Command::Truncate {
                origin,
                through_seq,
            } => {
                let db = self.db.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = db.backend().truncate_log(&origin, through_seq) {
                        tracing::warn!(%origin, through_seq, error = %e, "log truncation failed");
                    }
                    db.forget_own_bytes_through(through_seq);
                });
            }
        }
    }

    fn publish(&self) {
        let me = self.db.region().clone();
        let mut status = ReplStatus {
            peers: BTreeMap::new(),
            truncated: self.machine.truncated().clone(),
        };
        for (peer, _) in self.link_up.iter() {
            let acked = self.machine.peer_vv(peer).cloned().unwrap_or_default();
            let pending_operations = self.machine.pending_ops(peer);
            status.peers.insert(
                peer.clone(),
                PeerReplication {
                    pending_bytes: self.db.own_bytes_after(acked.get(&me)),
                    acked,
                    pending_operations,
                    counters: self.machine.counters(peer).cloned().unwrap_or_default(),
                },
            );
        }
        *self.status.lock().expect("status lock is never poisoned") = status;
    }
}
