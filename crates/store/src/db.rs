//! The single writer: group commit, the hybrid logical clock, and merging.
//!
//! Every change — a local write or a batch of replicated entries — is a
//! request to one writer thread. The thread takes whatever requests are
//! waiting (up to [`BATCH_REQUESTS_MAX`]), merges each against the key states
//! as already changed by earlier requests of the same batch, and commits the
//! whole batch in one backend transaction: one fsync for many writers (group
//! commit). Only then are the requests answered, so a write is acknowledged
//! only once durable under the configured [`Durability`].
//!
//! A local write is a *decision* run on the writer thread against the key's
//! current state: it returns the [`Op`] to log (or none, e.g. `SET NX` on an
//! existing key, or a refusal such as WRONGTYPE). Read-modify-write commands
//! are therefore atomic without locks.
//!
//! Why a thread and a std channel, not a tokio task: backend commits block
//! (fsync), and a dedicated thread keeps them off the async workers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use meridian_core::hlc::{HlcClock, PhysicalClock};
use meridian_core::record::{apply, Conflict, KeyState};
use meridian_core::{LogEntry, Op, RegionName, VersionVector};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use crate::backend::{Backend, CommitBatch, Durability, StoreError};
use crate::histogram::{FineHistogram, Histogram};

/// Requests merged into one commit at most. Bounds a commit's size and the
/// latency the first request in it waits for the others.
pub const BATCH_REQUESTS_MAX: usize = 1024;

/// Requests waiting for the writer; beyond it callers wait (back-pressure).
pub const QUEUE_REQUESTS_MAX: usize = 8192;

/// Conflicts kept for `GET /conflicts`: the newest, a ring buffer.
pub const CONFLICT_LOG_MAX: usize = 1000;

/// Bytes of a losing value kept in the conflict log.
pub const CONFLICT_VALUE_PREVIEW_BYTES: usize = 64;

/// What a local write decides, given the key's current state and the time.
pub type Decide = Box<dyn FnOnce(Option<&KeyState>, u64) -> Result<Option<Op>, String> + Send>;

/// What a multi-key local write decides, given each key's current state (in
/// the order asked) and the time: one op (or none) per key, or a refusal
/// that writes nothing.
pub type DecideMany =
    Box<dyn FnOnce(&[Option<KeyState>], u64) -> Result<Vec<Option<Op>>, String> + Send>;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// This node's region: the origin of its local writes.
    pub region: RegionName,
    /// fsync per commit or not.
    pub durability: Durability,
    /// HLC max offset for remote stamps (see `meridian_core::hlc`).
    pub max_offset_ms: u64,
}

/// Why the engine refused a request.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The decision refused the write (WRONGTYPE, not an integer, ...).
    #[error("{0}")]
    Rejected(String),
    /// The backend failed; nothing of the batch was applied.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is shutting down.
    #[error("the storage engine is stopped")]
    Stopped,
}

/// The result of a local write.
#[derive(Clone, Debug)]
pub struct LocalOutcome {
    /// The key's state before.
    pub before: Option<KeyState>,
    /// The key's state after (same as before when nothing was written).
    pub after: Option<KeyState>,
    /// The logged entry; `None` when the decision wrote nothing.
    pub entry: Option<LogEntry>,
}

/// The result of applying replicated entries.
#[derive(Clone, Debug, Default)]
pub struct RemoteOutcome {
    /// Entries newly applied.
    pub applied: u64,
    /// Entries skipped because they were already applied.
    pub duplicates: u64,
    /// Set when the entries skipped ahead of what is applied: the next
    /// sequence this node needs from that origin.
    pub gap: Option<(RegionName, u64)>,
}

/// One overwritten concurrent write, as `GET /conflicts` lists it.
#[derive(Clone, Debug, Serialize)]
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

/// A change for the [`Engine`].
pub enum Request {
    /// A local write: `decide` picks the op from the key's current state.
    Local {
        /// Table.
        table: String,
        /// Key.
        key: Vec<u8>,
        /// The decision.
        decide: Decide,
    },
    /// A local write to several keys at once (`MSET`, `DEL a b`): all in
    /// the same commit, decided together, so all or none are written.
    LocalMany {
        /// `(table, key)` pairs; a key may repeat (its later op sees the
        /// earlier one's result).
        keys: Vec<(String, Vec<u8>)>,
        /// The decision.
        decide: DecideMany,
    },
    /// Replicated entries.
    Remote {
        /// Entries, each origin's in sequence.
        entries: Vec<LogEntry>,
    },
    /// Local purge of expired keys (not replicated).
    Purge {
        /// Table.
        table: String,
        /// Keys to consider.
        keys: Vec<Vec<u8>>,
        /// Time up to which every origin's writes are here.
        closed_ms: u64,
    },
    /// Drop the data of a table this region gave up (see
    /// [`Db::drop_withheld`]).
    Withhold {
        /// Table.
        table: String,
        /// The regions that hold it.
        holders: Vec<RegionName>,
    },
    /// Anti-entropy repair: join a peer's states into ours (not logged; the
    /// peer's writes are already in its log or were collected everywhere).
    Join {
        /// Table.
        table: String,
        /// The peer's `(key, state)` pairs.
        states: Vec<(Vec<u8>, KeyState)>,
    },
    /// Fault injection: lose one key's local state (it reads as absent),
    /// as a damaged disk would. Not logged, not replicated.
    Forget {
        /// Table.
        table: String,
        /// Key.
        key: Vec<u8>,
    },
    /// Advance the HLC to now and persist it, so an idle region can claim
    /// "all my writes up to now are in my vector" (closed timestamps).
    AdvanceClock,
    /// A peer's acknowledged vector, persisted with the batch.
    PeerAck {
        /// The peer.
        peer: RegionName,
        /// Its vector.
        vv: VersionVector,
    },
}

/// The [`Engine`]'s answer to one [`Request`], in request order.
#[derive(Debug)]
pub enum Response {
    /// To a local write (boxed: key states are large next to the others).
    Local(Box<Result<LocalOutcome, DbError>>),
    /// To a multi-key local write: one outcome per key, in order.
    LocalMany(Box<Result<Vec<LocalOutcome>, DbError>>),
    /// To replicated entries.
    Remote(Result<RemoteOutcome, DbError>),
    /// To a purge, join or forget: how many keys it changed.
    Count(Result<u64, DbError>),
    /// To a peer ack (nothing to say).
    Noted,
}

/// How the writer thread answers a request once its batch is durable.
enum Reply {
    Local(oneshot::Sender<Result<LocalOutcome, DbError>>),
    LocalMany(oneshot::Sender<Result<Vec<LocalOutcome>, DbError>>),
    Remote(oneshot::Sender<Result<RemoteOutcome, DbError>>),
    Count(oneshot::Sender<Result<u64, DbError>>),
    None,
}

/// Handle to the engine. Cheap to clone; the writer stops when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Db {
    backend: Arc<dyn Backend>,
    requests: mpsc::SyncSender<(Request, Reply)>,
    applied: watch::Receiver<Applied>,
    /// How many applied vectors were published (bumped after each): a
    /// reader that saw the same count has nothing new to read.
    published: Arc<AtomicU64>,
    stats: Arc<DbStats>,
    region: RegionName,
    /// Every peer's acknowledged vector as far as we know (merged, so
    /// never going back): what `WAIT` counts.
    peer_acks: Arc<watch::Sender<BTreeMap<RegionName, VersionVector>>>,
    /// The engine's set of tables not held here.
    withheld: Arc<std::sync::RwLock<BTreeSet<String>>>,
}

/// Answer to [`Db::submit_many`], once the write is durable.
pub type LocalReply = oneshot::Receiver<Result<Vec<LocalOutcome>, DbError>>;

/// Answer to [`Db::enqueue_remote`], once the batch is durable.
pub type RemoteReply = oneshot::Receiver<Result<RemoteOutcome, DbError>>;

/// Why [`Db::enqueue_remote`] did not queue.
#[derive(Debug)]
pub enum EnqueueError {
    /// The writer's queue is full: retry with these entries.
    Full(Vec<LogEntry>),
    /// The engine is stopped.
    Stopped,
}

/// What a commit made durable: the version vector, and the HLC floor at
/// that commit. Published together, so "every write of this origin stamped
/// at or below `hlc` is covered by `vv`" holds for the pair (the basis of
/// closed timestamps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Highest contiguous sequence applied per origin.
    pub vv: VersionVector,
    /// The clock's floor: every later local write is stamped above it.
    pub hlc: meridian_core::Hlc,
}

impl Db {
    /// Starts the writer thread over `backend`, with `physical` as the clock.
    pub fn start<C: PhysicalClock + 'static>(
        backend: Arc<dyn Backend>,
        config: DbConfig,
        physical: C,
    ) -> Result<Db, StoreError> {
        let engine = Engine::open(backend.clone(), config.clone(), physical)?;
        let (tx, rx) = mpsc::sync_channel::<(Request, Reply)>(QUEUE_REQUESTS_MAX);
        let (vv_tx, vv_rx) = watch::channel(Applied {
            vv: engine.vv().clone(),
            hlc: engine.hlc_floor(),
        });
        let stats = engine.stats().clone();
        let peer_acks = Arc::new(watch::Sender::new(engine.known_peer_vvs.clone()));
        let withheld = engine.withheld.clone();
        let published = Arc::new(AtomicU64::new(1));
        let bump = published.clone();
        std::thread::Builder::new()
            .name(format!("meridian-writer-{}", config.region))
            .spawn(move || writer_loop(engine, rx, vv_tx, bump))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(Db {
            backend,
            requests: tx,
            applied: vv_rx,
            published,
            stats,
            region: config.region,
            peer_acks,
            withheld,
        })
    }

    /// This node's region.
    pub fn region(&self) -> &RegionName {
        &self.region
    }

    /// Runs `decide` against the key's state on the writer thread and, if
    /// it returns an op, logs and applies it durably.
    pub async fn write(
        &self,
        table: &str,
        key: &[u8],
        decide: Decide,
    ) -> Result<LocalOutcome, DbError> {
        let (reply, rx) = oneshot::channel();
        self.submit(
            Request::Local {
                table: table.to_string(),
                key: key.to_vec(),
                decide,
            },
            Reply::Local(reply),
        )
        .await?;
        rx.await.map_err(|_| DbError::Stopped)?
    }

    /// Runs `decide` against the states of `keys` on the writer thread and
    /// writes the ops it returns in one commit: all or nothing.
    pub async fn write_many(
        &self,
        keys: Vec<(String, Vec<u8>)>,
        decide: DecideMany,
    ) -> Result<Vec<LocalOutcome>, DbError> {
        self.submit_many(keys, decide)
            .await?
            .await
            .map_err(|_| DbError::Stopped)?
    }

    /// Queues a [`Db::write_many`] and returns as soon as it is queued; the
    /// receiver answers once the write is durable (or refused). Writes
    /// queued in order are decided in that order, so a connection can
    /// pipeline its writes and still see each one build on the last.
    pub async fn submit_many(
        &self,
        keys: Vec<(String, Vec<u8>)>,
        decide: DecideMany,
    ) -> Result<LocalReply, DbError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Request::LocalMany { keys, decide }, Reply::LocalMany(reply))
            .await?;
        Ok(rx)
    }

    /// Applies replicated entries (any origins, each origin's in sequence).
    pub async fn apply_remote(&self, entries: Vec<LogEntry>) -> Result<RemoteOutcome, DbError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Request::Remote { entries }, Reply::Remote(reply))
            .await?;
        rx.await.map_err(|_| DbError::Stopped)?
    }

    /// Joins a peer's states into ours (anti-entropy); returns how many keys
    /// changed.
    pub async fn join_states(
        &self,
        table: &str,
        states: Vec<(Vec<u8>, KeyState)>,
    ) -> Result<u64, DbError> {
        self.submit_count(Request::Join {
            table: table.to_string(),
            states,
        })
        .await
    }

    /// The tables this region does not hold: from now on their replicated
    /// entries are stored as placeholders, whatever a peer sends. Takes
    /// effect at once, for every batch the writer applies after it.
    pub fn set_withheld(&self, tables: BTreeSet<String>) {
        *self
            .withheld
            .write()
            .expect("withheld lock is never poisoned") = tables;
    }

    /// Drops the data of `table`, which this region gave up: its states,
    /// and its stored log entries every region in `holders` has
    /// acknowledged (rewritten as placeholders; later ones stay whole, a
    /// holder may still need them from here). Ordered with the writer's
    /// commits. Returns the states dropped.
    pub async fn drop_withheld(
        &self,
        table: &str,
        holders: Vec<RegionName>,
    ) -> Result<u64, DbError> {
        self.submit_count(Request::Withhold {
            table: table.to_string(),
            holders,
        })
        .await
    }

    /// Fault injection: loses one key's local state (see [`Request::Forget`]).
    pub async fn forget(&self, table: &str, key: &[u8]) -> Result<(), DbError> {
        self.submit_count(Request::Forget {
            table: table.to_string(),
            key: key.to_vec(),
        })
        .await
        .map(|_| ())
    }

    /// Queues replicated entries without waiting for their commit. The
    /// writer applies requests in queue order, so a peer's batches can be
    /// pipelined behind one another and share group commits; the receiver
    /// answers once the batch is durable. A full queue hands the entries back.
    pub fn enqueue_remote(&self, entries: Vec<LogEntry>) -> Result<RemoteReply, EnqueueError> {
        let (reply, rx) = oneshot::channel();
        match self
            .requests
            .try_send((Request::Remote { entries }, Reply::Remote(reply)))
        {
            Ok(()) => Ok(rx),
            Err(mpsc::TrySendError::Full((Request::Remote { entries }, _))) => {
                Err(EnqueueError::Full(entries))
            }
            Err(_) => Err(EnqueueError::Stopped),
        }
    }

    /// Asks the writer to advance and persist the clock (best effort; used
    /// once a second for closed timestamps).
    pub fn advance_clock(&self) {
        let _ = self.requests.try_send((Request::AdvanceClock, Reply::None));
    }

    /// Records a peer's acknowledged vector; persisted with the next commit.
    pub fn record_peer_ack(&self, peer: RegionName, vv: VersionVector) {
        self.peer_acks.send_if_modified(|acks| {
            let known = acks.entry(peer.clone()).or_default();
            let newer = !known.covers(&vv);
            known.merge(&vv);
            newer
        });
        // Best effort: a full queue drops an ack, a later one supersedes it.
        let _ = self
            .requests
            .try_send((Request::PeerAck { peer, vv }, Reply::None));
    }

    /// Submits a request answered with a count, and waits for it.
    async fn submit_count(&self, req: Request) -> Result<u64, DbError> {
        let (reply, rx) = oneshot::channel();
        self.submit(req, Reply::Count(reply)).await?;
        rx.await.map_err(|_| DbError::Stopped)?
    }

    async fn submit(&self, req: Request, reply: Reply) -> Result<(), DbError> {
        match self.requests.try_send((req, reply)) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(DbError::Stopped),
            Err(mpsc::TrySendError::Full(req)) => {
                // Back-pressure without blocking an async worker.
                let tx = self.requests.clone();
                tokio::task::spawn_blocking(move || tx.send(req).map_err(|_| DbError::Stopped))
                    .await
                    .map_err(|_| DbError::Stopped)?
            }
        }
    }

    /// A key's current state.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<KeyState>, StoreError> {
        self.backend.get(table, key)
    }

    /// Keys of a table in order, after a cursor.
    pub fn scan(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyState)>, StoreError> {
        self.backend.scan(table, after, limit)
    }

    /// Log entries of an origin (for shipping to peers).
    pub fn read_log(
        &self,
        origin: &RegionName,
        from_seq: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.backend
            .read_log(origin, from_seq, max_entries, max_bytes)
    }

    /// The backend, for maintenance (GC, size).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The version vector as of the last commit.
    pub fn applied(&self) -> VersionVector {
        self.applied.borrow().vv.clone()
    }

    /// How many applied vectors have been published, starting at 1. Read
    /// before [`Db::covers`] or [`Db::merge_applied_into`], it names a
    /// vector those read at least: a caller that kept it knows an
    /// unchanged count means there is nothing newer, without reading the
    /// vector's lock (one cache line every reader would write).
    pub fn applied_generation(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Whether the applied vector covers `token` (no copy of the vector).
    pub fn covers(&self, token: &VersionVector) -> bool {
        self.applied.borrow().vv.covers(token)
    }

    /// Raises `token` to at least the applied vector (no copy of it).
    pub fn merge_applied_into(&self, token: &mut VersionVector) {
        token.merge(&self.applied.borrow().vv);
    }

    /// Subscribes to version vector changes (at most one per commit).
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// Purges these expired keys of `table` locally if `closed_ms` allows it
    /// (see `KeyState::purge_expired`). Returns how many were purged.
    pub async fn purge(
        &self,
        table: &str,
        keys: Vec<Vec<u8>>,
        closed_ms: u64,
    ) -> Result<u64, DbError> {
        self.submit_count(Request::Purge {
            table: table.to_string(),
            keys,
            closed_ms,
        })
        .await
    }

    /// Waits until the applied vector covers `token`, or `timeout` passes.
    /// Returns whether it was covered.
    pub async fn wait_for(&self, token: &VersionVector, timeout: std::time::Duration) -> bool {
        let mut rx = self.applied.clone();
        tokio::time::timeout(timeout, rx.wait_for(|a| a.vv.covers(token)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many peers have acknowledged everything in `token`.
    pub fn peers_covering(&self, token: &VersionVector) -> usize {
        self.peer_acks
            .borrow()
            .values()
            .filter(|vv| vv.covers(token))
            .count()
    }

    /// Waits (at most `timeout`) until `peer` has acknowledged `token`.
    pub async fn wait_for_peer(
        &self,
        peer: &RegionName,
        token: &VersionVector,
        timeout: std::time::Duration,
    ) -> bool {
        let mut rx = self.peer_acks.subscribe();
        let wait = rx.wait_for(|acks| acks.get(peer).is_some_and(|vv| vv.covers(token)));
        tokio::time::timeout(timeout, wait)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits (at most `timeout`; forever when `None`) until `peers` peers
    /// have acknowledged `token`; returns how many have.
    pub async fn wait_for_peers(
        &self,
        token: &VersionVector,
        peers: usize,
        timeout: Option<std::time::Duration>,
    ) -> usize {
        let mut rx = self.peer_acks.subscribe();
        let count = |acks: &BTreeMap<RegionName, VersionVector>| {
            acks.values().filter(|vv| vv.covers(token)).count()
        };
        let wait = rx.wait_for(|acks| count(acks) >= peers);
        match timeout {
            Some(t) => {
                let _ = tokio::time::timeout(t, wait).await;
            }
            None => {
                let _ = wait.await;
            }
        }
        let n = count(&rx.borrow());
        n
    }

    /// Approximate bytes of our own entries after `seq` (what a peer that
    /// acknowledged `seq` still lacks).
    pub fn own_bytes_after(&self, seq: u64) -> u64 {
        let own = self
            .stats
            .own_bytes
            .lock()
            .expect("stats lock is never poisoned");
        if seq >= own.last_seq {
            return 0;
        }
        // Bytes up to `seq`: the last checkpoint at or before it, plus the
        // average entry size since then.
        let (cp_seq, cp_bytes) = own
            .checkpoints
            .iter()
            .take_while(|(s, _)| *s <= seq)
            .last()
            .copied()
            .unwrap_or((0, 0));
        let per_entry = (own.total - cp_bytes) as f64 / (own.last_seq - cp_seq).max(1) as f64;
        let upto = cp_bytes as f64 + per_entry * (seq - cp_seq) as f64;
        own.total.saturating_sub(upto as u64)
    }

    /// Drops pending-bytes checkpoints every peer is past.
    pub fn forget_own_bytes_through(&self, seq: u64) {
        let mut own = self
            .stats
            .own_bytes
            .lock()
            .expect("stats lock is never poisoned");
        while own.checkpoints.len() > 1 && own.checkpoints[1].0 <= seq {
            own.checkpoints.pop_front();
        }
    }

    /// Engine counters.
    pub fn stats(&self) -> &DbStats {
        &self.stats
    }
}

fn writer_loop<C: PhysicalClock>(
    mut engine: Engine<C>,
    rx: mpsc::Receiver<(Request, Reply)>,
    applied: watch::Sender<Applied>,
    published: Arc<AtomicU64>,
) {
    while let Ok(first) = rx.recv() {
        let mut requests = vec![first.0];
        let mut replies = vec![first.1];
        while requests.len() < BATCH_REQUESTS_MAX {
            match rx.try_recv() {
                Ok((req, reply)) => {
                    requests.push(req);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let responses = engine.process(requests);
        // Publish before answering: whoever is told "written" and then
        // waits on the vector must find it already covered.
        let changed = applied.send_if_modified(|a| {
            let changed = a.vv != *engine.vv() || a.hlc != engine.hlc_floor();
            if changed {
                *a = Applied {
                    vv: engine.vv().clone(),
                    hlc: engine.hlc_floor(),
                };
            }
            changed
        });
        if changed {
            published.fetch_add(1, Ordering::Release);
        }
        for (reply, response) in replies.into_iter().zip(responses) {
            match (reply, response) {
                (Reply::Local(tx), Response::Local(r)) => {
                    let _ = tx.send(*r);
                }
                (Reply::LocalMany(tx), Response::LocalMany(r)) => {
                    let _ = tx.send(*r);
                }
                (Reply::Remote(tx), Response::Remote(r)) => {
                    let _ = tx.send(r);
                }
                (Reply::Count(tx), Response::Count(r)) => {
                    let _ = tx.send(r);
                }
                _ => {}
            }
        }
    }
    tracing::debug!(region = %engine.config.region, "writer stopped");
}

/// The synchronous heart of [`Db`]: merges a batch of requests and commits
/// it once. The writer thread drives it; the deterministic simulation drives
/// it directly with an in-memory backend and a manual clock.
pub struct Engine<C: PhysicalClock> {
    backend: Arc<dyn Backend>,
    clock: HlcClock<C>,
    vv: VersionVector,
    config: DbConfig,
    stats: Arc<DbStats>,
    /// Every peer's acknowledged vector as merged so far: acks can arrive
    /// late or twice, and the stored copy must never go back.
    known_peer_vvs: BTreeMap<RegionName, VersionVector>,
    /// Peers whose merged vector changed since the last commit.
    peer_vvs: BTreeMap<RegionName, VersionVector>,
    /// Tables this region may not hold (pinned elsewhere): their remote
    /// entries are stored as placeholders, whatever a peer sent. Shared
    /// with [`Db::set_withheld`], which the node updates as modes change.
    withheld: Arc<std::sync::RwLock<BTreeSet<String>>>,
    /// The last batch's maps, emptied, kept for their capacity: allocating
    /// and growing them per batch cost a sixth of the writer's time when
    /// applying a catch-up (rehashing and faulting in fresh pages).
    spare: (Overlay, Overlay),
}

/// Key states by `(table, key)`.
type Overlay = HashMap<(String, Vec<u8>), Option<KeyState>>;

/// Spare maps above this many entries' capacity are shrunk, so one huge
/// batch does not pin its memory.
const SPARE_OVERLAY_CAPACITY_MAX: usize = 16_384;

/// What a batch has changed so far, before its commit.
struct Batch {
    vv: VersionVector,
    /// States this batch wrote; the commit stores them.
    overlay: Overlay,
    /// States read ahead from the backend for replicated entries, as of the
    /// batch's start (only this thread commits, so nothing changes them).
    base: Overlay,
    log: Vec<LogEntry>,
    conflicts: Vec<(String, Vec<u8>, Conflict, Option<KeyState>)>,
    failure: Option<StoreError>,
}

/// A request's answer, held until its batch is durable.
enum Pending {
    Local(Box<Result<LocalOutcome, DbError>>),
    LocalMany(Box<Result<Vec<LocalOutcome>, DbError>>),
    Remote(RemoteOutcome),
    Count(u64),
    Noted,
    /// A table given up: answered after the commit, once its data is gone
    /// (log entries through the vector, which every holder has).
    Withhold(String, VersionVector),
}

impl<C: PhysicalClock> Engine<C> {
    /// Opens the engine over `backend`, resuming from its metadata.
    pub fn open(
        backend: Arc<dyn Backend>,
        config: DbConfig,
        physical: C,
    ) -> Result<Self, StoreError> {
        let meta = backend.meta()?;
        Ok(Engine {
            backend,
            clock: HlcClock::new(physical, config.max_offset_ms, meta.hlc_floor),
            vv: meta.vv,
            config,
            stats: Arc::new(DbStats::default()),
            known_peer_vvs: meta.peer_vvs.clone(),
            peer_vvs: BTreeMap::new(),
            withheld: Arc::default(),
            spare: Default::default(),
        })
    }

    /// The version vector as of the last successful commit.
    pub fn vv(&self) -> &VersionVector {
        &self.vv
    }

    /// The HLC floor: every later local write is stamped above it.
    pub fn hlc_floor(&self) -> meridian_core::Hlc {
        self.clock.last()
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<DbStats> {
        &self.stats
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Merges `batch` and commits it in one transaction; answers in order.
    /// If the commit fails, every request of the batch is refused.
    pub fn process(&mut self, batch: Vec<Request>) -> Vec<Response> {
        let started = Instant::now();
        let (overlay, base) = std::mem::take(&mut self.spare);
        let mut b = Batch {
            vv: self.vv.clone(),
            overlay,
            base,
            log: Vec::new(),
            conflicts: Vec::new(),
            failure: None,
        };
        let mut pending: Vec<Pending> = Vec::new();
        let mut latencies: Vec<(RegionName, f64)> = Vec::new();
        let floor_before = self.clock.last();

        for req in batch {
            match req {
                Request::Purge {
                    table,
                    keys,
                    closed_ms,
                } => {
                    let mut purged = 0;
                    for key in keys {
                        match self.current(&b, &table, &key) {
                            Ok(Some(mut state)) => {
                                if state.purge_expired(closed_ms, self.config.max_offset_ms) {
                                    b.overlay.insert((table.clone(), key), Some(state));
                                    purged += 1;
                                }
                            }
                            Ok(None) => {}
                            Err(e) => {
                                b.failure.get_or_insert(e);
                            }
                        }
                    }
                    self.stats.purged_keys.fetch_add(purged, Ordering::Relaxed);
                    pending.push(Pending::Count(purged));
                }
                Request::Withhold { table, holders } => {
                    // Entries every holder has acknowledged: nobody needs
                    // them whole from here any more.
                    let mut through: Option<VersionVector> = None;
                    for h in &holders {
                        let acked = self.known_peer_vvs.get(h).cloned().unwrap_or_default();
                        through = Some(match through {
                            None => acked,
                            Some(t) => t.min_with(&acked),
                        });
                    }
                    pending.push(Pending::Withhold(table, through.unwrap_or_default()));
                }
                Request::Join { table, states } => {
                    let mut changed = 0;
                    for (key, theirs) in states {
                        let mine = match self.current(&b, &table, &key) {
                            Ok(mine) => mine,
                            Err(e) => {
                                b.failure.get_or_insert(e);
                                continue;
                            }
                        };
                        let merged = match &mine {
                            Some(m) => meridian_core::record::join(m, &theirs),
                            None => theirs,
                        };
                        if mine.as_ref() != Some(&merged) {
                            changed += 1;
                            b.overlay.insert((table.clone(), key), Some(merged));
                        }
                    }
                    self.stats
                        .repaired_keys
                        .fetch_add(changed, Ordering::Relaxed);
                    pending.push(Pending::Count(changed));
                }
                Request::Forget { table, key } => {
                    let lost = match self.current(&b, &table, &key) {
                        Ok(Some(mine)) => {
                            b.overlay
                                .insert((table, key), Some(KeyState::lost(mine.last)));
                            1
                        }
                        _ => 0,
                    };
                    pending.push(Pending::Count(lost));
                }
                Request::AdvanceClock => {
                    self.clock.now();
                    pending.push(Pending::Noted);
                }
                Request::PeerAck { peer, vv } => {
                    let known = self.known_peer_vvs.entry(peer.clone()).or_default();
                    if !known.covers(&vv) {
                        known.merge(&vv);
                        self.peer_vvs.insert(peer, known.clone());
                    }
                    pending.push(Pending::Noted);
                }
                Request::Local { table, key, decide } => {
                    let decide: DecideMany =
                        Box::new(move |states, now| Ok(vec![decide(states[0].as_ref(), now)?]));
                    let outcome = self
                        .local_write(vec![(table, key)], decide, &mut b)
                        .map(|mut v| v.pop().expect("one key, one outcome"));
                    pending.push(Pending::Local(Box::new(outcome)));
                }
                Request::LocalMany { keys, decide } => {
                    let outcome = self.local_write(keys, decide, &mut b);
                    pending.push(Pending::LocalMany(Box::new(outcome)));
                }
                Request::Remote { entries } => {
                    let mut out = RemoteOutcome::default();
                    let now_us = self.clock.physical_us();
                    let withheld = self
                        .withheld
                        .read()
                        .expect("withheld lock is never poisoned")
                        .clone();
                    self.read_ahead(&mut b, &entries, &withheld);
                    for entry in entries {
                        let have = b.vv.get(&entry.origin);
                        if entry.seq <= have {
                            out.duplicates += 1;
                            continue;
                        }
                        if entry.seq != have + 1 {
                            out.gap = Some((entry.origin.clone(), have + 1));
                            break;
                        }
                        debug_assert!(
                            entry.origin != self.config.region,
                            "our own entries came back as remote"
                        );
                        if !self.clock.observe(entry.hlc) {
                            self.stats.hlc_remote_ahead.fetch_add(1, Ordering::Relaxed);
                        }
                        if entry.op == meridian_core::record::Op::Withheld
                            || withheld.contains(&entry.table)
                        {
                            // A pinned table's write this region may not
                            // hold: only its place in the origin's log.
                            b.vv.advance(&entry.origin, entry.seq);
                            b.log
                                .push(if entry.op == meridian_core::record::Op::Withheld {
                                    entry
                                } else {
                                    entry.withheld()
                                });
                            out.applied += 1;
                            continue;
                        }
                        let current = match self.current(&b, &entry.table, &entry.key) {
                            Ok(s) => s,
                            Err(e) => {
                                b.failure.get_or_insert(e);
                                break;
                            }
                        };
                        let applied = apply(current.as_ref(), &entry);
                        if let Some(c) = applied.conflict {
                            b.conflicts.push((
                                entry.table.clone(),
                                entry.key.clone(),
                                c,
                                current.clone(),
                            ));
                        }
                        if applied.changed {
                            b.overlay.insert(
                                (entry.table.clone(), entry.key.clone()),
                                Some(applied.state),
                            );
                        }
                        latencies.push((
                            entry.origin.clone(),
                            now_us.saturating_sub(entry.hlc.wall_ms() * 1000) as f64 / 1e6,
                        ));
                        b.vv.advance(&entry.origin, entry.seq);
                        b.log.push(entry);
                        out.applied += 1;
                    }
                    pending.push(Pending::Remote(out));
                }
            }
        }

        let Batch {
            vv,
            mut overlay,
            mut base,
            log,
            conflicts,
            failure,
        } = b;
        let states = overlay
            .drain()
            .filter_map(|((t, k), s)| s.map(|s| (t, k, s)))
            .collect();
        base.clear();
        for map in [&mut overlay, &mut base] {
            map.shrink_to(SPARE_OVERLAY_CAPACITY_MAX);
        }
        self.spare = (overlay, base);
        let commit = CommitBatch {
            states,
            log,
            vv: vv.clone(),
            hlc_floor: self.clock.last(),
            peer_vvs: std::mem::take(&mut self.peer_vvs),
        };
        let result = match failure {
            Some(e) => Err(e),
            None if commit.states.is_empty()
                && commit.log.is_empty()
                && commit.peer_vvs.is_empty()
                && commit.hlc_floor == floor_before =>
            {
                Ok(())
            }
            None => self.backend.commit(&commit, self.config.durability),
        };
        self.stats
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                let expiring = commit
                    .states
                    .iter()
                    .filter(|(_, _, s)| s.expires_at_ms().is_some())
                    .count() as u64;
                if expiring > 0 {
                    self.stats
                        .expiring_states
                        .fetch_add(expiring, Ordering::Relaxed);
                }
                let locals = commit
                    .log
                    .iter()
                    .filter(|e| e.origin == self.config.region)
                    .count() as u64;
                self.stats.local_writes.fetch_add(locals, Ordering::Relaxed);
                self.stats
                    .remote_applied
                    .fetch_add(commit.log.len() as u64 - locals, Ordering::Relaxed);
                self.record_own_bytes(&commit.log);
                self.record_conflicts(conflicts);
                self.record_latencies(latencies);
                debug_assert!(vv.covers(&self.vv), "version vector went backwards");
                self.vv = vv;
                pending
                    .into_iter()
                    .map(|p| match p {
                        Pending::Local(outcome) => Response::Local(outcome),
                        Pending::LocalMany(outcome) => Response::LocalMany(outcome),
                        Pending::Remote(outcome) => Response::Remote(Ok(outcome)),
                        Pending::Count(n) => Response::Count(Ok(n)),
                        Pending::Noted => Response::Noted,
                        // After the commit: whatever the batch stored of
                        // the table goes too.
                        Pending::Withhold(table, through) => Response::Count(
                            self.backend
                                .withhold_table(&table, &through)
                                .map(|(entries, states)| {
                                    tracing::info!(%table, entries, states, "table given up: its data dropped, its log entries withheld");
                                    self.stats.withheld_states.fetch_add(states, Ordering::Relaxed);
                                    self.stats.withheld_entries.fetch_add(entries, Ordering::Relaxed);
                                    states
                                })
                                .map_err(DbError::Store),
                        ),
                    })
                    .collect()
            }
            Err(e) => {
                // Nothing of the batch is durable: refuse every request in
                // it, keep the last committed vector, and keep running.
                self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "commit failed; the batch's writes were refused");
                self.peer_vvs = commit.peer_vvs;
                let msg = e.to_string();
                pending
                    .into_iter()
                    .map(|p| match p {
                        Pending::Local(outcome) => Response::Local(Box::new(match *outcome {
                            Ok(_) => Err(DbError::Store(StoreError::Io(msg.clone()))),
                            Err(e) => Err(e),
                        })),
                        Pending::LocalMany(outcome) => {
                            Response::LocalMany(Box::new(match *outcome {
                                Ok(_) => Err(DbError::Store(StoreError::Io(msg.clone()))),
                                Err(e) => Err(e),
                            }))
                        }
                        Pending::Remote(_) => {
                            Response::Remote(Err(DbError::Store(StoreError::Io(msg.clone()))))
                        }
                        Pending::Count(_) | Pending::Withhold(..) => {
                            Response::Count(Err(DbError::Store(StoreError::Io(msg.clone()))))
                        }
                        Pending::Noted => Response::Noted,
                    })
                    .collect()
            }
        }
    }

    /// Decides and applies one local write to `keys` inside the batch `b`:
    /// each op is logged with its own sequence number, in key order.
    fn local_write(
        &mut self,
        keys: Vec<(String, Vec<u8>)>,
        decide: DecideMany,
        b: &mut Batch,
    ) -> Result<Vec<LocalOutcome>, DbError> {
        let mut befores = Vec::with_capacity(keys.len());
        for (table, key) in &keys {
            match self.current(b, table, key) {
                Ok(s) => befores.push(s),
                Err(e) => {
                    let msg = e.to_string();
                    b.failure.get_or_insert(e);
                    return Err(DbError::Store(StoreError::Io(msg)));
                }
            }
        }
        let now_ms = self.physical_now();
        let ops = decide(&befores, now_ms).map_err(DbError::Rejected)?;
        if ops.len() != keys.len() {
            return Err(DbError::Rejected(format!(
                "internal error: {} ops decided for {} keys",
                ops.len(),
                keys.len()
            )));
        }
        // A key named twice (`MSET a 1 a 2`): its later op must see the
        // earlier op's result, which only the overlay holds.
        let repeated: Vec<bool> = (0..keys.len())
            .map(|i| keys[..i].contains(&keys[i]))
            .collect();
        let mut outcomes = Vec::with_capacity(keys.len());
        for (i, ((table, key), op)) in keys.into_iter().zip(ops).enumerate() {
            let decided = std::mem::take(&mut befores[i]);
            let before = if repeated[i] {
                b.overlay
                    .get(&(table.clone(), key.clone()))
                    .cloned()
                    .unwrap_or(decided)
            } else {
                decided
            };
            let Some(op) = op else {
                outcomes.push(LocalOutcome {
                    before: before.clone(),
                    after: before,
                    entry: None,
                });
                continue;
            };
            let seq = b.vv.get(&self.config.region) + 1;
            let entry = LogEntry {
                origin: self.config.region.clone(),
                seq,
                hlc: self.clock.now(),
                table: table.clone(),
                key: key.clone(),
                observed: before.as_ref().map(|s| s.last.clone()),
                op,
            };
            let applied = apply(before.as_ref(), &entry);
            // A local write can lose to a remote write stamped far ahead
            // (beyond the clock's max offset, accepted by policy): record it
            // like any other conflict.
            if let Some(c) = applied.conflict.clone() {
                b.conflicts
                    .push((table.clone(), key.clone(), c, before.clone()));
            }
            b.vv.advance(&self.config.region, seq);
            b.overlay.insert((table, key), Some(applied.state.clone()));
            b.log.push(entry.clone());
            outcomes.push(LocalOutcome {
                before,
                after: Some(applied.state),
                entry: Some(entry),
            });
        }
        Ok(outcomes)
    }

    /// Wall time for TTL decisions and lag. The clock's physical source is
    /// the one time source, so simulations control both.
    fn physical_now(&self) -> u64 {
        self.clock.physical_ms()
    }

    /// A key's state as this batch sees it: its own writes first, then
    /// what was read ahead, then the backend.
    fn current(&self, b: &Batch, table: &str, key: &[u8]) -> Result<Option<KeyState>, StoreError> {
        let k = (table.to_string(), key.to_vec());
        if let Some(s) = b.overlay.get(&k).or_else(|| b.base.get(&k)) {
            return Ok(s.clone());
        }
        self.backend.get(table, key)
    }

    /// Reads the states `entries` will merge into in one backend call (one
    /// read transaction instead of one per entry).
    fn read_ahead(&self, b: &mut Batch, entries: &[LogEntry], withheld: &BTreeSet<String>) {
        let wanted: Vec<(&str, &[u8])> = entries
            .iter()
            .filter(|e| {
                e.seq > b.vv.get(&e.origin)
                    && e.op != meridian_core::record::Op::Withheld
                    && !withheld.contains(&e.table)
            })
            .map(|e| (e.table.as_str(), e.key.as_slice()))
            .collect();
        if wanted.len() < 2 {
            return;
        }
        match self.backend.get_many(&wanted) {
            Ok(states) => {
                for ((t, k), state) in wanted.into_iter().zip(states) {
                    b.base.insert((t.to_string(), k.to_vec()), state);
                }
            }
            // Not fatal here: each entry reads its key again, and an
            // error there refuses the batch.
            Err(e) => tracing::warn!(error = %e, "reading ahead for replicated entries failed"),
        }
    }

    fn record_conflicts(&self, conflicts: Vec<(String, Vec<u8>, Conflict, Option<KeyState>)>) {
        if conflicts.is_empty() {
            return;
        }
        let now = self.physical_now();
        let mut counts = self
            .stats
            .conflicts
            .lock()
            .expect("stats lock is never poisoned");
        let mut log = self
            .stats
            .conflict_log
            .lock()
            .expect("stats lock is never poisoned");
        for (table, key, c, before) in conflicts {
            *counts.entry(table.clone()).or_default() += 1;
            let loser_value = before
                .filter(|s| s.last == c.loser)
                .and_then(|s| s.bytes())
                .map(|b| {
                    String::from_utf8_lossy(&b[..b.len().min(CONFLICT_VALUE_PREVIEW_BYTES)])
                        .into_owned()
                });
            if log.len() == CONFLICT_LOG_MAX {
                log.pop_front();
            }
            log.push_back(ConflictRecord {
                table,
                key: String::from_utf8_lossy(&key).into_owned(),
                winner: format!("{}@{}", c.winner.origin, c.winner.hlc),
                loser: format!("{}@{}", c.loser.origin, c.loser.hlc),
                loser_value,
                detected_at_ms: now,
            });
        }
    }

    fn record_own_bytes(&self, log: &[LogEntry]) {
        let mut own = self
            .stats
            .own_bytes
            .lock()
            .expect("stats lock is never poisoned");
        for e in log.iter().filter(|e| e.origin == self.config.region) {
            own.total += e.approx_bytes() as u64;
            own.last_seq = e.seq;
            if e.seq % OWN_BYTES_CHECKPOINT_EVERY == 0 {
                let total = own.total;
                own.checkpoints.push_back((e.seq, total));
            }
        }
    }

    fn record_latencies(&self, latencies: Vec<(RegionName, f64)>) {
        if latencies.is_empty() {
            return;
        }
        let mut h = self
            .stats
            .replication_latency
            .lock()
            .expect("stats lock is never poisoned");
        for (origin, seconds) in latencies {
            h.entry(origin).or_default().observe(seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemStore;
    use meridian_core::SystemClock;

    fn engine() -> Engine<SystemClock> {
        let config = DbConfig {
            region: RegionName::new("us-east").unwrap(),
            durability: Durability::None,
            max_offset_ms: 500,
        };
        Engine::open(Arc::new(MemStore::new()), config, SystemClock).unwrap()
    }

    fn put(v: &str) -> Option<Op> {
        Some(Op::Put {
            value: v.as_bytes().to_vec(),
            expires_at_ms: None,
        })
    }

    fn many(
        e: &mut Engine<SystemClock>,
        keys: &[&str],
        decide: DecideMany,
    ) -> Result<Vec<LocalOutcome>, DbError> {
        let keys = keys
            .iter()
            .map(|k| ("t".to_string(), k.as_bytes().to_vec()))
            .collect();
        match e.process(vec![Request::LocalMany { keys, decide }]).pop() {
            Some(Response::LocalMany(r)) => *r,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_key_named_twice_sees_its_earlier_op() {
        let mut e = engine();
        let out = many(
            &mut e,
            &["a", "b", "a"],
            Box::new(|_, _| Ok(vec![put("1"), put("2"), put("3")])),
        )
        .unwrap();
        assert!(out[0].before.is_none() && out[1].before.is_none());
        assert_eq!(
            out[2].before.as_ref().and_then(|s| s.bytes()),
            Some(b"1".to_vec())
        );
        assert_eq!(
            out.iter()
                .map(|o| o.entry.as_ref().unwrap().seq)
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let a = e.backend().get("t", b"a").unwrap().unwrap();
        assert_eq!(a.bytes(), Some(b"3".to_vec()));
    }

    #[test]
    fn a_refused_multi_key_write_writes_nothing() {
        let mut e = engine();
        let err = many(&mut e, &["a", "b"], Box::new(|_, _| Err("ERR no".into()))).unwrap_err();
        assert!(matches!(err, DbError::Rejected(m) if m == "ERR no"));
        assert!(e.backend().get("t", b"a").unwrap().is_none());
        assert_eq!(e.vv().get(&RegionName::new("us-east").unwrap()), 0);
    }
}
