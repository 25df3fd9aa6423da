//! [`Db`]: the handle to the single writer. Every change — a local write
//! or a batch of replicated entries — is a request to one writer thread.
//! The thread takes whatever requests are waiting (up to
//! [`BATCH_REQUESTS_MAX`]) and hands them to the [`Engine`], which merges
//! and commits them in one backend transaction: one fsync for many writers
//! (group commit). Only then are the requests answered, so a write is
//! acknowledged only once durable under the configured
//! [`crate::Durability`].
//!
//! A local write is a *decision* run on the writer thread against the key's
//! current state: it returns the [`meridian_core::Op`] to log (or none,
//! e.g. `SET NX` on an existing key, or a refusal such as WRONGTYPE).
//! Read-modify-write commands are therefore atomic without locks.
//!
//! Owns the writer thread and its loop, the bounded queue in front of it
//! (back-pressure: [`QUEUE_REQUESTS_MAX`]), publishing the applied version
//! vector ([`Applied`]) after each commit, and the peers' acknowledged
//! vectors that `WAIT` watches. Does not merge or decide anything: the
//! [`Engine`] does.
//!
//! Why a thread and a std channel, not a tokio task: backend commits block
//! (fsync), and a dedicated thread keeps them off the async workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use meridian_core::hlc::PhysicalClock;
use meridian_core::record::KeyState;
use meridian_core::{LogEntry, RegionName, VersionVector};
use tokio::sync::{oneshot, watch};

use crate::backend::{Backend, StoreError};
use crate::engine::{DbConfig, Engine};
use crate::error::DbError;
use crate::request::{Decide, DecideMany, LocalOutcome, RemoteOutcome, Request, Response};
use crate::stats::DbStats;

/// Requests merged into one commit at most. Bounds a commit's size and the
/// latency the first request in it waits for the others.
pub const BATCH_REQUESTS_MAX: usize = 1024;

/// Requests waiting for the writer; beyond it callers wait (back-pressure).
pub const QUEUE_REQUESTS_MAX: usize = 8192;

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
        let peer_acks = Arc::new(watch::Sender::new(engine.known_peer_vvs().clone()));
        let withheld = engine.withheld().clone();
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
        self.stats.own_bytes_after(seq)
    }

    /// Drops pending-bytes checkpoints every peer is past.
    pub fn forget_own_bytes_through(&self, seq: u64) {
        self.stats.forget_own_bytes_through(seq);
    }

    /// Engine counters.
    pub fn stats(&self) -> &DbStats {
        &self.stats
    }
}

/// The writer thread: takes the waiting requests (a group commit), has the
/// engine process them, publishes what became durable, then answers.
fn writer_loop<C: PhysicalClock>(
    mut engine: Engine<C>,
    rx: mpsc::Receiver<(Request, Reply)>,
    applied: watch::Sender<Applied>,
    published: Arc<AtomicU64>,
) {
    while let Ok(first) = rx.recv() {
        let (requests, replies) = take_batch(first, &rx);
        let responses = engine.process(requests);
        // Publish before answering: whoever is told "written" and then
        // waits on the vector must find it already covered.
        if publish(&engine, &applied) {
            published.fetch_add(1, Ordering::Release);
        }
        for (reply, response) in replies.into_iter().zip(responses) {
            reply.send(response);
        }
    }
    tracing::debug!(region = %engine.region(), "writer stopped");
}

/// `first` and whatever requests are waiting behind it, up to
/// [`BATCH_REQUESTS_MAX`], with their replies in the same order.
fn take_batch(
    first: (Request, Reply),
    rx: &mpsc::Receiver<(Request, Reply)>,
) -> (Vec<Request>, Vec<Reply>) {
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
    (requests, replies)
}

/// Publishes the engine's vector and clock floor if they changed; returns
/// whether they did.
fn publish<C: PhysicalClock>(engine: &Engine<C>, applied: &watch::Sender<Applied>) -> bool {
    applied.send_if_modified(|a| {
        let changed = a.vv != *engine.vv() || a.hlc != engine.hlc_floor();
        if changed {
            *a = Applied {
                vv: engine.vv().clone(),
                hlc: engine.hlc_floor(),
            };
        }
        changed
    })
}

impl Reply {
    /// Answers with `response` (a caller that stopped waiting is ignored).
    fn send(self, response: Response) {
        match (self, response) {
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
