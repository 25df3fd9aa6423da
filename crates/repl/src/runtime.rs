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
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::{LogEntry, RegionName, VersionVector};
use meridian_store::db::{Db, EnqueueError};
use meridian_wan::{InboundFrame, PeerMesh};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::calls::Calls;
use crate::closed::ClosedTimestamps;
use crate::machine::{Command, Event, PeerCounters, ReplConfig, Replicator};
use crate::residency::Residency;

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

/// What travels between replicators, inside mesh frames.
#[derive(Debug, Serialize, Deserialize)]
pub enum ReplMessage {
    /// Entries of one or more origins, each origin's in sequence.
    Entries(Vec<LogEntry>),
    /// The sender's applied vector and its HLC floor at that commit (a
    /// closed-timestamp claim, see [`crate::closed`]).
    Ack {
        /// Applied vector.
        vv: VersionVector,
        /// HLC floor when `vv` was committed.
        hlc: meridian_core::Hlc,
    },
    /// Anti-entropy: send me your per-bucket digests of `table`.
    DigestRequest {
        /// Table.
        table: String,
    },
    /// Per-bucket digests, taken while the sender's vector was `vv`.
    DigestReply {
        /// Table.
        table: String,
        /// The sender's applied vector around the digests.
        vv: VersionVector,
        /// One SHA-256 per bucket.
        buckets: Vec<[u8; 32]>,
    },
    /// Anti-entropy: send me your states of one bucket.
    BucketRequest {
        /// Table.
        table: String,
        /// Bucket.
        bucket: u8,
    },
    /// States of one bucket (bounded; a larger bucket is finished in later
    /// rounds).
    BucketReply {
        /// Table.
        table: String,
        /// `(key, state)` pairs.
        states: Vec<(Vec<u8>, meridian_core::record::KeyState)>,
    },
    /// The sender needs `origin`'s entries from `from_seq` again.
    Resend {
        /// The origin.
        origin: RegionName,
        /// First sequence needed.
        from_seq: u64,
    },
    /// A request for the node's call handler (see [`crate::calls`]).
    Call {
        /// The caller's id, echoed in the answer.
        id: u64,
        /// Opaque to replication.
        body: Vec<u8>,
    },
    /// The answer to a [`ReplMessage::Call`], or why there is none.
    Answer {
        /// The call's id.
        id: u64,
        /// The handler's answer.
        result: Result<Vec<u8>, String>,
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
    /// Per peer: the time up to which this region holds all its writes.
    #[serde(default)]
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

pub(crate) fn encode(msg: &ReplMessage) -> Vec<u8> {
    postcard::to_stdvec(msg).expect("replication messages always encode")
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
    let closed = ClosedTimestamps::new(config.regions.iter().filter(|r| **r != config.me).cloned());
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE_MAX);
    let calls = Calls::new(mesh.clone());

    let mut appliers = BTreeMap::new();
    for peer in config.regions.iter().filter(|r| **r != config.me) {
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
    let routes = InboundRoutes {
        appliers,
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

async fn dispatch_inbound(
    db: Db,
    mut inbound: mpsc::Receiver<InboundFrame>,
    routes: InboundRoutes,
    shutdown: CancellationToken,
) {
    let InboundRoutes {
        appliers,
        events,
        closed,
        calls,
        residency,
    } = routes;
    let mesh = calls.mesh().clone();
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
                    // Never wait here: one slow peer would hold every other
                    // peer's acks behind it. A batch that finds its peer's
                    // queue full is dropped; the next batch shows a gap (or
                    // the sender's stall timer fires) and it is sent again.
                    match tx.try_send(entries) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            tracing::debug!(peer = %frame.from, "apply queue full: batch dropped, will be resent");
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
            ReplMessage::Ack { vv, hlc } => {
                closed.claim(
                    &frame.from,
                    vv.get(&frame.from),
                    hlc.wall_ms(),
                    &db.applied(),
                );
                db.record_peer_ack(frame.from.clone(), vv.clone());
                let _ = events
                    .send(Event::PeerVv {
                        peer: frame.from,
                        vv,
                    })
                    .await;
            }
            msg @ (ReplMessage::DigestRequest { .. }
            | ReplMessage::DigestReply { .. }
            | ReplMessage::BucketRequest { .. }
            | ReplMessage::BucketReply { .. }) => {
                tokio::spawn(anti_entropy_message(
                    db.clone(),
                    mesh.clone(),
                    residency.clone(),
                    frame.from.clone(),
                    msg,
                ));
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
            ReplMessage::Call { id, body } => calls.incoming(frame.from, id, body),
            ReplMessage::Answer { id, result } => calls.answered(id, result),
        }
    }
}

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
        // Whatever else already arrived from this peer goes in the same
        // request: fewer, larger commits under load.
        while entries.len() < APPLY_COALESCE_ENTRIES_MAX {
            match rx.try_recv() {
                Ok(more) => entries.extend(more),
                Err(_) => break,
            }
        }
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
        let reply = loop {
            match db.enqueue_remote(entries) {
                Ok(reply) => break reply,
                Err(EnqueueError::Full(back)) => {
                    entries = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(EnqueueError::Stopped) => return,
            }
        };
        let (db, mesh, peer) = (db.clone(), mesh.clone(), peer.clone());
        tokio::spawn(async move {
            match reply.await {
                Ok(Ok(outcome)) => {
                    if outcome.applied == 0 && outcome.duplicates > 0 && outcome.gap.is_none() {
                        // Nothing new: our vector did not move, so no commit
                        // will ack. The sender may have lost our last ack.
                        let a = db.subscribe().borrow().clone();
                        let _ = mesh.send(
                            &peer,
                            encode(&ReplMessage::Ack {
                                vv: a.vv,
                                hlc: a.hlc,
                            }),
                        );
                    }
                    if let Some((origin, from_seq)) = outcome.gap {
                        let _ = mesh.send(&peer, encode(&ReplMessage::Resend { origin, from_seq }));
                    }
                }
                // Not applied, not acknowledged: the sender retransmits after
                // its stall timeout. Keep going; the disk may recover.
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "applying replicated entries failed")
                }
                Err(_) => {}
            }
            drop(permit);
        });
    }
}

struct Driver {
    last_clock_advance: Instant,
    db: Db,
    closed: ClosedTimestamps,
    last_hlc: meridian_core::Hlc,
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
                    if self.last_clock_advance.elapsed() >= CLOSED_TIMESTAMP_INTERVAL {
                        self.last_clock_advance = Instant::now();
                        self.db.advance_clock();
                    }
                }
                changed = applied.changed() => {
                    if changed.is_err() {
                        return;
                    }
                                        let a = applied.borrow_and_update().clone();
                    self.closed.applied(&a.vv);
                    self.last_hlc = a.hlc;
                    if self.machine.vv().covers(&a.vv) {
                        // Only the clock moved: tell peers our time is
                        // closed up to it (the machine acks only progress).
                        self.claim_time(&a.vv);
                    } else {
                        self.handle(Event::LocalVv(a.vv));
                    }
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
                let db = self.db.clone();
                let mesh = self.mesh.clone();
                let events = self.events_tx.clone();
                let residency = self.residency.clone();
                tokio::spawn(async move {
                    let read = {
                        let (db, origin) = (db.clone(), origin.clone());
                        tokio::task::spawn_blocking(move || {
                            db.read_log(&origin, from_seq, max_entries as usize, SHIP_BYTES_MAX)
                        })
                        .await
                    };
                    let read = read.map(|r| r.map(|entries| residency.outgoing(&peer, entries)));
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
                    // The checkpoints count our own log only.
                    if origin == *db.region() {
                        db.forget_own_bytes_through(through_seq);
                    }
                });
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

/// How often the purge sweep runs.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Keys examined per table per sweep: bounds the sweep's cost (a million
/// keys are covered every 100 s) and the size of one purge request.
pub const PURGE_SCAN_KEYS_MAX: usize = 10_000;

/// Sweeps `tables` for expired keys and purges them locally once closed
/// timestamps show no write to them can still arrive. Not replicated: every
/// region purges on its own at the same deadline. A table whose last whole
/// pass met no key with an expiry rests until a state with an expiry is
/// committed anywhere (`DbStats::expiring_states`): a table without TTLs
/// costs no decoding.
pub fn spawn_purger(
    db: Db,
    closed: ClosedTimestamps,
    tables: Vec<String>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut passes: BTreeMap<String, PurgePass> = tables
            .iter()
            .map(|t| (t.clone(), PurgePass::default()))
            .collect();
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(closed_ms) = closed.closed_ms() else {
                continue;
            };
            // Our own writes are all here: cap at our clock.
            let now = wall_ms();
            let closed_ms = closed_ms.min(now);
            let expiring_states = db.stats().expiring_states.load(Ordering::Relaxed);
            for (table, pass) in passes.iter_mut() {
                if pass.resting_at == Some(expiring_states) {
                    continue;
                }
                if pass.cursor.is_none() {
                    // A pass starts: what it must cover is everything
                    // committed up to this count.
                    pass.started_at = expiring_states;
                    pass.saw_expiry = false;
                    pass.resting_at = None;
                }
                let (db2, t, after) = (db.clone(), table.clone(), pass.cursor.clone());
                let page = tokio::task::spawn_blocking(move || {
                    db2.scan(&t, after.as_deref(), PURGE_SCAN_KEYS_MAX)
                })
                .await;
                let Ok(Ok(page)) = page else { continue };
                pass.cursor = if page.len() < PURGE_SCAN_KEYS_MAX {
                    None
                } else {
                    page.last().map(|(k, _)| k.clone())
                };
                let expired: Vec<Vec<u8>> = page
                    .into_iter()
                    .filter(|(_, s)| !s.purged && s.expires_at_ms().is_some())
                    .inspect(|_| pass.saw_expiry = true)
                    .filter(|(_, s)| s.expires_at_ms().is_some_and(|at| at < closed_ms))
                    .map(|(k, _)| k)
                    .collect();
                if pass.cursor.is_none() && !pass.saw_expiry {
                    // A whole pass without a key that will expire: nothing
                    // to do until a state with an expiry is committed.
                    pass.resting_at = Some(pass.started_at);
                }
                if expired.is_empty() {
                    continue;
                }
                match db.purge(table, expired, closed_ms).await {
                    Ok(n) if n > 0 => tracing::debug!(%table, purged = n, "purged expired keys"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%table, error = %e, "purging expired keys failed"),
                }
            }
        }
    });
}

/// Where the purger is in one table.
#[derive(Default)]
struct PurgePass {
    /// The last key of the previous page; `None` between passes.
    cursor: Option<Vec<u8>>,
    /// `DbStats::expiring_states` when this pass started.
    started_at: u64,
    /// This pass met a key with an expiry (expired or not).
    saw_expiry: bool,
    /// The pass that ended at this count found no key with an expiry: the
    /// table is skipped until the count moves.
    resting_at: Option<u64>,
}

/// Differing buckets repaired per table per round; the rest wait for the
/// next round, so one round's cost stays bounded.
pub const ANTI_ENTROPY_BUCKETS_PER_ROUND: usize = 16;

/// Encoded bytes of states in one bucket reply.
pub const ANTI_ENTROPY_REPLY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Wall-clock ms since the Unix epoch (the driver's `now_ms` is monotonic).
fn wall_ms() -> u64 {
    meridian_core::PhysicalClock::now_ms(&meridian_core::SystemClock)
}

/// Per-bucket digests of `table` with the vector they were taken at; `None`
/// when writes landed meanwhile (the digests would describe no one state).
async fn digests_at_rest(db: &Db, table: &str) -> Option<(VersionVector, Vec<[u8; 32]>)> {
    let before = db.applied();
    let (backend, t) = (db.backend().clone(), table.to_string());
    let buckets = tokio::task::spawn_blocking(move || {
        meridian_store::digest::bucket_digests(backend.as_ref(), &t, wall_ms())
    })
    .await
    .ok()?
    .ok()?;
    (db.applied() == before).then_some((before, buckets))
}

async fn anti_entropy_message(
    db: Db,
    mesh: PeerMesh,
    residency: Residency,
    peer: RegionName,
    msg: ReplMessage,
) {
    let table = match &msg {
        ReplMessage::DigestRequest { table }
        | ReplMessage::DigestReply { table, .. }
        | ReplMessage::BucketRequest { table, .. }
        | ReplMessage::BucketReply { table, .. } => table,
        _ => return,
    };
    if !residency.holds(&peer, table) || !residency.holds(db.region(), table) {
        // A pinned table is compared only between regions that hold it.
        tracing::warn!(%peer, %table, "anti-entropy for a pinned table refused: one side may not hold it");
        return;
    }
    match msg {
        ReplMessage::DigestRequest { table } => {
            if let Some((vv, buckets)) = digests_at_rest(&db, &table).await {
                let _ = mesh.send(
                    &peer,
                    encode(&ReplMessage::DigestReply { table, vv, buckets }),
                );
            }
        }
        ReplMessage::DigestReply { table, vv, buckets } => {
            // Only regions that applied the same writes should agree;
            // otherwise the difference is replication still in flight.
            let Some((mine_vv, mine)) = digests_at_rest(&db, &table).await else {
                return;
            };
            if mine_vv != vv || mine.len() != buckets.len() {
                return;
            }
            let differing: Vec<u8> = (0..mine.len())
                .filter(|i| mine[*i] != buckets[*i])
                .map(|i| i as u8)
                .collect();
            if differing.is_empty() {
                return;
            }
            tracing::warn!(%peer, %table, buckets = differing.len(), "anti-entropy: data differs despite equal version vectors; repairing");
            for bucket in differing.into_iter().take(ANTI_ENTROPY_BUCKETS_PER_ROUND) {
                let _ = mesh.send(
                    &peer,
                    encode(&ReplMessage::BucketRequest {
                        table: table.clone(),
                        bucket,
                    }),
                );
            }
        }
        ReplMessage::BucketRequest { table, bucket } => {
            let (backend, t) = (db.backend().clone(), table.clone());
            let states = tokio::task::spawn_blocking(move || {
                meridian_store::digest::bucket_states(backend.as_ref(), &t, bucket, usize::MAX)
            })
            .await;
            let Ok(Ok(states)) = states else { return };
            let mut bytes = 0usize;
            let states: Vec<_> = states
                .into_iter()
                .take_while(|s| {
                    bytes += postcard::to_stdvec(s).map(|b| b.len()).unwrap_or(0);
                    bytes <= ANTI_ENTROPY_REPLY_BYTES_MAX
                })
                .collect();
            let _ = mesh.send(&peer, encode(&ReplMessage::BucketReply { table, states }));
        }
        ReplMessage::BucketReply { table, states } => match db.join_states(&table, states).await {
            Ok(n) if n > 0 => tracing::warn!(%peer, %table, keys = n, "anti-entropy repaired keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(%peer, %table, error = %e, "anti-entropy repair failed"),
        },
        _ => {}
    }
}

/// Every `interval`, asks the next reachable peer (round robin) for its
/// bucket digests of every table. Repairs follow in `anti_entropy_message`.
pub fn spawn_anti_entropy(
    mesh: PeerMesh,
    me: RegionName,
    tables: Vec<String>,
    residency: Residency,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        let mut turn = 0usize;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let up: Vec<RegionName> = mesh
                .status()
                .into_iter()
                .filter(|s| s.outbound_up)
                .map(|s| s.region)
                .collect();
            if up.is_empty() {
                continue;
            }
            let peer = &up[turn % up.len()];
            turn += 1;
            // A pinned table only between regions that both hold it now.
            for table in tables
                .iter()
                .filter(|t| residency.holds(peer, t) && residency.holds(&me, t))
            {
                let _ = mesh.send(
                    peer,
                    encode(&ReplMessage::DigestRequest {
                        table: table.clone(),
                    }),
                );
            }
        }
    });
}
