//! The thin async driver around [`Replicator`], and the apply loops.
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
//!
//! Entry point: [`spawn`], which returns a [`ReplHandle`] for status
//! ([`ReplStatus`]), closed timestamps and calls. The wire format is
//! [`crate::wire`]; anti-entropy messages are handed to
//! [`crate::anti_entropy`]; the purger is [`crate::purge`] (both re-exported
//! here under their old paths).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::{Hlc, LogEntry, RegionName, VersionVector};
use meridian_store::db::{Applied, Db, EnqueueError, RemoteOutcome, RemoteReply};
use meridian_wan::{InboundFrame, PeerMesh};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub use crate::anti_entropy::{
    spawn_anti_entropy, ANTI_ENTROPY_BUCKETS_PER_ROUND, ANTI_ENTROPY_REPLY_BYTES_MAX,
};
pub use crate::purge::{spawn_purger, PURGE_INTERVAL, PURGE_SCAN_KEYS_MAX};
pub use crate::wire::ReplMessage;

use crate::anti_entropy::anti_entropy_message;
use crate::calls::Calls;
use crate::closed::ClosedTimestamps;
use crate::machine::{Command, Event, PeerCounters, ReplConfig, Replicator};
use crate::residency::Residency;
use crate::wire::{decode, encode};

/// How often an idle region advances and announces its clock, so peers can
/// close its time (and purge expired keys) without waiting for a write.
/// Costs one small fsync per interval when idle.
pub const CLOSED_TIMESTAMP_INTERVAL: Duration = Duration::from_secs(1);

/// How often the driver checks links and stalls.
pub const TICK: Duration = Duration::from_millis(20);

/// Bytes of entries per shipped frame (beyond the first entry). 1 MiB keeps
/// one frame's serialisation short and leaves room for acks between frames.
pub const SHIP_BYTES_MAX: usize = 1024 * 1024;

/// Batches of one peer queued at the writer and not yet durable. They
/// share group commits; the bound keeps one peer from filling the queue.
pub const APPLY_IN_FLIGHT_MAX: usize = 32;

/// Entries merged into one apply request when frames pile up.
pub const APPLY_COALESCE_ENTRIES_MAX: usize = 4096;

/// Incoming batches queued per peer before the mesh is back-pressured.
pub const APPLY_QUEUE_FRAMES_MAX: usize = 64;

/// Events queued for the machine.
const EVENT_QUEUE_MAX: usize = 4096;

/// Replication state of one peer, as `/status` and `/metrics` show it.
#[derive(Clone, Debug, Default)]
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
#[derive(Clone, Debug, Default)]
pub struct ReplStatus {
    /// Per peer.
    pub peers: BTreeMap<RegionName, PeerReplication>,
    /// How far each origin's log is truncated.
    pub truncated: BTreeMap<RegionName, u64>,
    /// Per peer: the time up to which this region holds all its writes.
    pub closed_ms: BTreeMap<RegionName, u64>,
}

/// Handle to a running replicator.
#[derive(Clone)]
pub struct ReplHandle {
    status: Arc<Mutex<ReplStatus>>,
    closed: ClosedTimestamps,
    calls: Calls,
}

impl ReplHandle {
    /// The latest status.
    pub fn status(&self) -> ReplStatus {
        let mut s = self
            .status
            .lock()
            .expect("status lock is never poisoned")
            .clone();
        s.closed_ms = self.closed.per_peer();
        s
    }

    /// Closed timestamps of the peers.
    pub fn closed(&self) -> &ClosedTimestamps {
        &self.closed
    }

    /// Calls to and from peers.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }
}

/// Starts replication for `db` over `mesh`, consuming the mesh's inbound
/// frames, until `shutdown`.
pub fn spawn(
    db: Db,
    mesh: PeerMesh,
    inbound: mpsc::Receiver<InboundFrame>,
    config: ReplConfig,
    residency: Residency,
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
    let peers: Vec<RegionName> = config
        .regions
        .iter()
        .filter(|r| **r != config.me)
        .cloned()
        .collect();
    let closed = ClosedTimestamps::new(peers.iter().cloned());
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE_MAX);
    let calls = Calls::new(mesh.clone());
    let routes = InboundRoutes {
        appliers: spawn_appliers(&db, &mesh, &peers, &residency, &shutdown),
        events: events_tx.clone(),
        closed: closed.clone(),
        calls: calls.clone(),
        residency: residency.clone(),
    };
    tokio::spawn(dispatch_inbound(
        db.clone(),
        inbound,
        routes,
        shutdown.clone(),
    ));
    let last_hlc = db.subscribe().borrow().hlc;
    let driver = Driver {
        last_clock_advance: Instant::now(),
        db,
        closed: closed.clone(),
        last_hlc,
        mesh,
        machine,
        events_tx,
        status: status.clone(),
        started: Instant::now(),
        link_up: BTreeMap::new(),
        residency,
    };
    tokio::spawn(driver.run(events_rx, shutdown));
    Ok(ReplHandle {
        status,
        closed,
        calls,
    })
}

/// One apply loop per peer; returns each one's queue.
fn spawn_appliers(
    db: &Db,
    mesh: &PeerMesh,
    peers: &[RegionName],
    residency: &Residency,
    shutdown: &CancellationToken,
) -> BTreeMap<RegionName, mpsc::Sender<Vec<LogEntry>>> {
    let mut appliers = BTreeMap::new();
    for peer in peers {
        let (tx, rx) = mpsc::channel(APPLY_QUEUE_FRAMES_MAX);
        appliers.insert(peer.clone(), tx);
        tokio::spawn(apply_loop(
            db.clone(),
            mesh.clone(),
            peer.clone(),
            rx,
            residency.clone(),
            shutdown.clone(),
        ));
    }
    appliers
}

/// Where [`dispatch_inbound`] sends each kind of message.
struct InboundRoutes {
    /// Each peer's apply queue.
    appliers: BTreeMap<RegionName, mpsc::Sender<Vec<LogEntry>>>,
    /// The machine's events.
    events: mpsc::Sender<Event>,
    closed: ClosedTimestamps,
    calls: Calls,
    residency: Residency,
}

/// Decodes every inbound frame and routes its message, until `shutdown` or
/// the end of the mesh's stream.
async fn dispatch_inbound(
    db: Db,
    mut inbound: mpsc::Receiver<InboundFrame>,
    routes: InboundRoutes,
    shutdown: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return,
            f = inbound.recv() => match f { Some(f) => f, None => return },
        };
        let msg = match decode(&frame.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(peer = %frame.from, error = %e, "undecodable replication frame dropped");
                continue;
            }
        };
        if !routes.deliver(&db, frame.from, msg).await {
            return;
        }
    }
}

impl InboundRoutes {
    /// Hands `msg` from `from` to whoever handles it; `false` once the apply
    /// loops are gone (shutdown).
    async fn deliver(&self, db: &Db, from: RegionName, msg: ReplMessage) -> bool {
        match msg {
            ReplMessage::Entries(entries) => return self.queue_entries(from, entries),
            ReplMessage::Ack { vv, hlc } => self.ack(db, from, vv, hlc).await,
            msg @ (ReplMessage::DigestRequest { .. }
            | ReplMessage::DigestReply { .. }
            | ReplMessage::BucketRequest { .. }
            | ReplMessage::BucketReply { .. }) => {
                tokio::spawn(anti_entropy_message(
                    db.clone(),
                    self.calls.mesh().clone(),
                    self.residency.clone(),
                    from,
                    msg,
                ));
            }
            ReplMessage::Resend { origin, from_seq } => {
                let _ = self
                    .events
                    .send(Event::Resend {
                        peer: from,
                        origin,
                        from_seq,
                    })
                    .await;
            }
            ReplMessage::Call { id, body } => self.calls.incoming(from, id, body),
            ReplMessage::Answer { id, result } => self.calls.answered(id, result),
        }
        true
    }

    /// Queues a batch at its peer's apply loop; `false` once that loop is
    /// gone.
    fn queue_entries(&self, from: RegionName, entries: Vec<LogEntry>) -> bool {
        let Some(tx) = self.appliers.get(&from) else {
            return true;
        };
        // Never wait here: one slow peer would hold every other peer's acks
        // behind it. A batch that finds its peer's queue full is dropped;
        // the next batch shows a gap (or the sender's stall timer fires) and
        // it is sent again.
        match tx.try_send(entries) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(peer = %from, "apply queue full: batch dropped, will be resent");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// A peer's acknowledgement: a closed-timestamp claim, a durable record
    /// of its vector, and an event for the machine.
    async fn ack(&self, db: &Db, from: RegionName, vv: VersionVector, hlc: Hlc) {
        self.closed
            .claim(&from, vv.get(&from), hlc.wall_ms(), &db.applied());
        db.record_peer_ack(from.clone(), vv.clone());
        let _ = self.events.send(Event::PeerVv { peer: from, vv }).await;
    }
}

/// Applies `peer`'s batches in order, several in flight at the writer at
/// once, until `shutdown`.
async fn apply_loop(
    db: Db,
    mesh: PeerMesh,
    peer: RegionName,
    mut rx: mpsc::Receiver<Vec<LogEntry>>,
    residency: Residency,
    shutdown: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(APPLY_IN_FLIGHT_MAX));
    loop {
        let mut entries = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = rx.recv() => match e { Some(e) => e, None => return },
        };
        coalesce(&mut entries, &mut rx);
        let keep = residency.acceptable_prefix(db.region(), &entries);
        if keep < entries.len() {
            // Only a peer with another residency config sends this; what
            // follows the placeholder comes again from a region that has it.
            tracing::warn!(%peer, table = %entries[keep].table, "a withheld placeholder arrived for a table this region holds; batch cut there");
            entries.truncate(keep);
            if entries.is_empty() {
                continue;
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(reply) = enqueue(&db, entries).await else {
            return;
        };
        tokio::spawn(answer_apply(
            db.clone(),
            mesh.clone(),
            peer.clone(),
            reply,
            permit,
        ));
    }
}

/// Appends whatever else already arrived from this peer: fewer, larger
/// commits under load.
fn coalesce(entries: &mut Vec<LogEntry>, rx: &mut mpsc::Receiver<Vec<LogEntry>>) {
    while entries.len() < APPLY_COALESCE_ENTRIES_MAX {
        match rx.try_recv() {
            Ok(more) => entries.extend(more),
            Err(_) => break,
        }
    }
}

/// Queues `entries` at the writer, waiting while its queue is full; `None`
/// once the writer has stopped.
async fn enqueue(db: &Db, mut entries: Vec<LogEntry>) -> Option<RemoteReply> {
    loop {
        match db.enqueue_remote(entries) {
            Ok(reply) => return Some(reply),
            Err(EnqueueError::Full(back)) => {
                entries = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(EnqueueError::Stopped) => return None,
        }
    }
}

/// Waits for one batch's commit and tells `peer` what it needs to hear:
/// an ack when nothing new was applied, a resend request at a gap. The
/// permit is released when the batch is durable (or failed).
async fn answer_apply(
    db: Db,
    mesh: PeerMesh,
    peer: RegionName,
    reply: RemoteReply,
    permit: OwnedSemaphorePermit,
) {
    match reply.await {
        Ok(Ok(outcome)) => {
            for msg in apply_answers(&outcome, || db.subscribe().borrow().clone()) {
                let _ = mesh.send(&peer, encode(&msg));
            }
        }
        // Not applied, not acknowledged: the sender retransmits after its
        // stall timeout. Keep going; the disk may recover.
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "applying replicated entries failed")
        }
        Err(_) => {}
    }
    drop(permit);
}

/// What to send back after a batch applied with `outcome`; `applied` reads
/// our current vector, only when an ack is due.
fn apply_answers(outcome: &RemoteOutcome, applied: impl FnOnce() -> Applied) -> Vec<ReplMessage> {
    let mut answers = Vec::new();
    if outcome.applied == 0 && outcome.duplicates > 0 && outcome.gap.is_none() {
        // Nothing new: our vector did not move, so no commit will ack. The
        // sender may have lost our last ack.
        let a = applied();
        answers.push(ReplMessage::Ack {
            vv: a.vv,
            hlc: a.hlc,
        });
    }
    if let Some((origin, from_seq)) = outcome.gap.clone() {
        answers.push(ReplMessage::Resend { origin, from_seq });
    }
    answers
}

struct Driver {
    last_clock_advance: Instant,
    db: Db,
    closed: ClosedTimestamps,
    last_hlc: Hlc,
    mesh: PeerMesh,
    machine: Replicator,
    events_tx: mpsc::Sender<Event>,
    status: Arc<Mutex<ReplStatus>>,
    started: Instant,
    link_up: BTreeMap<RegionName, bool>,
    residency: Residency,
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
                _ = tick.tick() => self.on_tick(),
                changed = applied.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let a = applied.borrow_and_update().clone();
                    self.on_commit(a);
                }
                Some(event) = events.recv() => self.handle(event),
            }
        }
    }

    /// Link changes, the machine's timers, and the idle clock advance.
    fn on_tick(&mut self) {
        for s in self.mesh.status() {
            let was = self
                .link_up
                .insert(s.region.clone(), s.outbound_up)
                .unwrap_or(false);
            if s.outbound_up && !was {
                self.handle(Event::PeerUp(s.region));
            } else if !s.outbound_up && was {
                self.handle(Event::PeerDown(s.region));
            }
        }
        self.handle(Event::Tick);
        if self.last_clock_advance.elapsed() >= CLOSED_TIMESTAMP_INTERVAL {
            self.last_clock_advance = Instant::now();
            self.db.advance_clock();
        }
    }

    /// A commit of ours (local or replicated) became durable.
    fn on_commit(&mut self, a: Applied) {
        self.closed.applied(&a.vv);
        self.last_hlc = a.hlc;
        if self.machine.vv().covers(&a.vv) {
            // Only the clock moved: tell peers our time is closed up to it
            // (the machine acks only progress).
            self.claim_time(&a.vv);
        } else {
            self.handle(Event::LocalVv(a.vv));
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
                let msg = ReplMessage::Ack {
                    vv,
                    hlc: self.last_hlc,
                };
                let _ = self.mesh.send(&peer, encode(&msg));
            }
            Command::Ship {
                peer,
                origin,
                from_seq,
                max_entries,
            } => {
                let ship = Shipment {
                    peer,
                    origin,
                    from_seq,
                    max_entries: max_entries as usize,
                };
                let (db, mesh, residency) =
                    (self.db.clone(), self.mesh.clone(), self.residency.clone());
                let events = self.events_tx.clone();
                tokio::spawn(async move {
                    let event = ship.run(db, mesh, residency).await;
                    let _ = events.send(event).await;
                });
            }
            Command::Truncate {
                origin,
                through_seq,
            } => {
                let db = self.db.clone();
                tokio::task::spawn_blocking(move || truncate(&db, &origin, through_seq));
            }
        }
    }

    fn claim_time(&self, vv: &VersionVector) {
        let msg = encode(&ReplMessage::Ack {
            vv: vv.clone(),
            hlc: self.last_hlc,
        });
        for (peer, up) in &self.link_up {
            if *up {
                let _ = self.mesh.send(peer, msg.clone());
            }
        }
    }

    fn publish(&self) {
        let me = self.db.region().clone();
        let mut status = ReplStatus {
            peers: BTreeMap::new(),
            truncated: self.machine.truncated().clone(),
            closed_ms: BTreeMap::new(),
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

/// One [`Command::Ship`]: a log read and the frame that carries it.
struct Shipment {
    peer: RegionName,
    origin: RegionName,
    from_seq: u64,
    max_entries: usize,
}

impl Shipment {
    /// Reads the entries on the blocking pool, sends them, and returns the
    /// event that tells the machine how it went.
    async fn run(self, db: Db, mesh: PeerMesh, residency: Residency) -> Event {
        let Shipment {
            peer,
            origin,
            from_seq,
            max_entries,
        } = self;
        let read = {
            let origin = origin.clone();
            tokio::task::spawn_blocking(move || {
                db.read_log(&origin, from_seq, max_entries, SHIP_BYTES_MAX)
            })
            .await
        };
        let read = read.map(|r| r.map(|entries| residency.outgoing(&peer, entries)));
        match read {
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
        }
    }
}

/// Drops `origin`'s log through `through_seq` (every peer has it).
fn truncate(db: &Db, origin: &RegionName, through_seq: u64) {
    if let Err(e) = db.backend().truncate_log(origin, through_seq) {
        tracing::warn!(%origin, through_seq, error = %e, "log truncation failed");
    }
    // The checkpoints count our own log only.
    if origin == db.region() {
        db.forget_own_bytes_through(through_seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied_at(seq: u64) -> Applied {
        let mut vv = VersionVector::default();
        vv.advance(&RegionName::new("us-east").unwrap(), seq);
        Applied {
            vv,
            hlc: Hlc::new(1000, 0),
        }
    }

    #[test]
    fn a_batch_of_duplicates_is_acked_again() {
        let outcome = RemoteOutcome {
            applied: 0,
            duplicates: 3,
            gap: None,
        };
        let answers = apply_answers(&outcome, || applied_at(7));
        assert!(
            matches!(&answers[..], [ReplMessage::Ack { vv, .. }] if vv.get(&RegionName::new("us-east").unwrap()) == 7),
            "{answers:?}"
        );
    }

    #[test]
    fn a_gap_asks_for_a_resend_and_new_entries_need_no_answer() {
        let origin = RegionName::new("eu-west").unwrap();
        let gap = RemoteOutcome {
            applied: 0,
            duplicates: 1,
            gap: Some((origin.clone(), 5)),
        };
        let answers = apply_answers(&gap, || unreachable!("no ack at a gap"));
        assert!(
            matches!(&answers[..], [ReplMessage::Resend { origin: o, from_seq: 5 }] if *o == origin),
            "{answers:?}"
        );
        let fresh = RemoteOutcome {
            applied: 2,
            duplicates: 0,
            gap: None,
        };
        assert!(apply_answers(&fresh, || unreachable!()).is_empty());
    }
}
