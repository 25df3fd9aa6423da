//! The listener and the connection loop.
//!
//! Each connection reads requests into a buffer and decodes every complete
//! one before writing. Writes are queued to the storage engine without
//! waiting for each other (the engine decides them in queue order), so a
//! pipeline of 16 `SET`s shares one group commit; any other command first
//! waits for the connection's queued writes, so it reads what they wrote.
//! Replies leave in request order.
//!
//! Limits, all from `[resp]`: request framing ([`crate::proto::Limits`]),
//! the largest reply (a bigger one is refused with an error, not sent),
//! and connections per node (the next one gets Redis's "max number of
//! clients reached" and is closed).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use meridian_core::config::{RespConfig, WriteAck};
use meridian_core::{RegionName, Topology, VersionVector};
use meridian_store::db::{Db, DbError, DecideMany, LocalReply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::cmd::{self, Handler, WritePlan};
use crate::forward::Remote;
use crate::modes::Modes;
use crate::proto::{Limits, RequestDecoder};
use crate::reply::Reply;
use crate::session::Session;

/// SCAN cursors a node keeps; the oldest is forgotten first.
pub const CURSORS_MAX: usize = 10_000;

/// Writes a connection may have queued before it waits for the oldest.
pub const WRITES_IN_FLIGHT_MAX: usize = 1024;

/// How long a write acknowledged globally waits for the regions it needs,
/// unless the connection set another timeout (`MERIDIAN.ACK`).
pub const GLOBAL_ACK_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// Reply bytes buffered before they are written out mid-pipeline.
const FLUSH_BYTES: usize = 64 * 1024;

/// Bytes read from the socket at a time (at least).
const READ_CHUNK: usize = 16 * 1024;

/// What the node tells the endpoint about the cluster, for `INFO`.
pub trait ClusterInfo: Send + Sync + 'static {
    /// `# Replication` lines after `role`: regions, links, lag.
    fn replication(&self) -> Vec<(String, String)>;
    /// `# Memory` lines.
    fn memory(&self) -> Vec<(String, String)>;
}

/// Counters for `INFO stats` and `/metrics`.
#[derive(Default, Debug)]
pub struct RespStats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused at `connections_max`.
    pub rejected_connections: AtomicU64,
    /// Commands run.
    pub commands_processed: AtomicU64,
    /// Error replies sent.
    pub error_replies: AtomicU64,
    /// Connections closed for a protocol error.
    pub protocol_errors: AtomicU64,
    /// Failed `AUTH`/`HELLO AUTH`.
    pub auth_failures: AtomicU64,
    /// Connections open now.
    pub connected: AtomicUsize,
    /// Connections blocked in `WAIT` now.
    pub blocked: AtomicUsize,
    /// Commands forwarded to other regions, per region.
    pub forwarded: Mutex<BTreeMap<RegionName, RemoteStats>>,
    /// Strong reads' commit-point questions, per home region.
    pub commit_points: Mutex<BTreeMap<RegionName, RemoteStats>>,
}

/// Requests to one other region: how long they took and how they ended.
#[derive(Default)]
pub struct RemoteStats {
    /// Send to answer, for the requests that got one.
    pub seconds: meridian_store::histogram::Histogram,
    /// Answered (the answer may be an error reply of the command).
    pub answered: u64,
    /// Not sent: link down, queue full, too large.
    pub not_sent: u64,
    /// Sent, no answer in time (a write's outcome is unknown).
    pub no_answer: u64,
}

impl std::fmt::Debug for RemoteStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStats")
            .field("answered", &self.answered)
            .field("not_sent", &self.not_sent)
            .field("no_answer", &self.no_answer)
            .finish_non_exhaustive()
    }
}

impl RespStats {
    /// Records one request to `region` in `map`.
    pub fn record_remote(
        map: &Mutex<BTreeMap<RegionName, RemoteStats>>,
        region: &RegionName,
        took: Duration,
        outcome: Result<(), bool>,
    ) {
        let mut map = map.lock().expect("stats lock is never poisoned");
        let s = map.entry(region.clone()).or_default();
        match outcome {
            Ok(()) => {
                s.answered += 1;
                s.seconds.observe(took.as_secs_f64());
            }
            Err(true) => s.no_answer += 1,
            Err(false) => s.not_sent += 1,
        }
    }
}

/// SCAN positions by cursor id.
#[derive(Default)]
pub struct Cursors {
    next: u64,
    order: VecDeque<u64>,
    positions: HashMap<u64, (usize, Vec<u8>)>,
}

impl Cursors {
    /// Stores a position and returns its cursor (never 0).
    pub fn put(&mut self, pos: (usize, Vec<u8>)) -> u64 {
        // Ids are not guessable in order from other connections' ids, and
        // never 0 (the start cursor).
        self.next = self.next.wrapping_add(0x9E37_79B9_7F4A_7C15) | 1;
        let id = self.next & ((1 << 53) - 1);
        if self.order.len() >= CURSORS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.positions.remove(&old);
            }
        }
        self.order.push_back(id);
        self.positions.insert(id, pos);
        id
    }

    /// The position of a cursor, if it is still known. It stays known: a
    /// client may retry the same SCAN call.
    pub fn get(&self, id: u64) -> Option<(usize, Vec<u8>)> {
        self.positions.get(&id).cloned()
    }
}

/// What every connection of the node shares.
pub struct Shared {
    /// The storage engine.
    pub db: Db,
    /// Table modes now: the topology with run-time changes (see
    /// [`crate::modes`]).
    pub modes: Arc<Modes>,
    /// This region.
    pub region: RegionName,
    /// Auth and limits.
    pub resp: RespConfig,
    /// Framing limits, from `resp`.
    pub limits: SharedLimits,
    /// `fsync` or `none`, for `INFO persistence`.
    pub durability: String,
    /// Cluster facts for `INFO`.
    pub cluster: Arc<dyn ClusterInfo>,
    /// SCAN cursors.
    pub cursors: Mutex<Cursors>,
    /// Counters.
    pub stats: RespStats,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Other regions, for forwarded writes and strong reads (`None`: a
    /// single-master table's writes outside its home are refused).
    pub remote: Option<Arc<dyn Remote>>,
    next_id: AtomicU64,
    started: Instant,
}

/// The limits connections apply.
#[derive(Clone, Copy, Debug)]
pub struct SharedLimits {
    /// Largest bulk string.
    pub bulk_bytes_max: usize,
    /// Largest reply.
    pub reply_bytes_max: usize,
    /// Framing.
    pub proto: Limits,
}

impl Shared {
    /// State for a node's endpoint, with the table modes it applies (read
    /// from the store before anything is served).
    pub fn new(
        db: Db,
        modes: Arc<Modes>,
        region: RegionName,
        durability: String,
        cluster: Arc<dyn ClusterInfo>,
        addr: SocketAddr,
    ) -> Self {
        let resp = modes.topology().resp.clone();
        let limits = SharedLimits {
            bulk_bytes_max: resp.bulk_bytes_max,
            reply_bytes_max: resp.reply_bytes_max,
            proto: Limits {
                bulk_bytes_max: resp.bulk_bytes_max,
                array_len_max: resp.array_len_max,
                inline_bytes_max: resp.inline_bytes_max,
            },
        };
        Shared {
            db,
            modes,
            region,
            resp,
            limits,
            durability,
            cluster,
            cursors: Mutex::new(Cursors::default()),
            stats: RespStats::default(),
            addr,
            remote: None,
            next_id: AtomicU64::new(1),
            started: Instant::now(),
        }
    }

    /// The topology as this region applies it now (tables, modes,
    /// policies, regions).
    pub fn topology(&self) -> Arc<Topology> {
        self.modes.topology()
    }

    /// The same endpoint, forwarding through `remote`.
    pub fn with_remote(mut self, remote: Arc<dyn Remote>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Queues a write plan at the engine: the commit to wait for and the
    /// reply its decision chose.
    pub(crate) async fn queue_plan(
        &self,
        plan: WritePlan,
    ) -> Result<(LocalReply, oneshot::Receiver<Reply>), Reply> {
        let (tx, rx) = oneshot::channel();
        let decide = plan.decide;
        let stamp = self
            .modes
            .stamp(plan.keys.iter().map(|(table, _)| table.as_str()));
        let modes = self.modes.clone();
        let here = self.region.clone();
        let decide: DecideMany = Box::new(move |states, now| {
            // Decided under the mode it was planned in, or not at all.
            if let Some(why) = modes.refuse(&stamp, &here) {
                return Err(why);
            }
            let (ops, reply) = decide(states, now)?;
            let _ = tx.send(reply);
            Ok(ops)
        });
        let commit = self
            .db
            .submit_many(plan.keys, decide)
            .await
            .map_err(|e| Reply::err(format!("write not stored: {e}")))?;
        Ok((commit, rx))
    }

    /// How writes to these tables are acknowledged by default: the
    /// strictest of their tables' settings.
    pub fn table_ack<'a>(&self, tables: impl Iterator<Item = &'a str>) -> WriteAck {
        self.modes.with_topology(|topology| {
            let mut ack = WriteAck::Local;
            for name in tables {
                if let Some(t) = topology.tables.iter().find(|t| t.name == name) {
                    ack = match (ack, t.write_ack) {
                        (WriteAck::Global { regions: a }, WriteAck::Global { regions: b }) => {
                            WriteAck::Global { regions: a.max(b) }
                        }
                        (WriteAck::Local, other) => other,
                        (global, WriteAck::Local) => global,
                    };
                }
            }
            ack
        })
    }

    /// Waits until `regions` regions — this one and peers — have applied
    /// `write`, for at most `timeout`; returns how many have.
    pub async fn wait_applied(
        &self,
        write: &VersionVector,
        regions: usize,
        timeout: Duration,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let here = self.db.covers(write) || self.db.wait_for(write, timeout).await;
        if !here {
            return self.db.peers_covering(write);
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let peers = regions.saturating_sub(1);
        let have = if peers == 0 {
            self.db.peers_covering(write)
        } else {
            self.db
                .wait_for_peers(write, peers, Some(left.max(Duration::from_millis(1))))
                .await
        };
        1 + have
    }

    /// `INFO server`.
    pub fn info_server(&self) -> Vec<(String, String)> {
        let up = self.started.elapsed().as_secs();
        vec![
            ("redis_version".into(), cmd::server::REDIS_VERSION.into()),
            ("meridian_version".into(), env!("CARGO_PKG_VERSION").into()),
            ("redis_mode".into(), "standalone".into()),
            ("arch_bits".into(), (usize::BITS).to_string()),
            ("process_id".into(), std::process::id().to_string()),
            ("tcp_port".into(), self.addr.port().to_string()),
            ("uptime_in_seconds".into(), up.to_string()),
            ("uptime_in_days".into(), (up / 86_400).to_string()),
        ]
    }

    /// `INFO clients`.
    pub fn info_clients(&self) -> Vec<(String, String)> {
        vec![
            (
                "connected_clients".into(),
                self.stats.connected.load(Ordering::Relaxed).to_string(),
            ),
            ("maxclients".into(), self.resp.connections_max.to_string()),
            (
                "blocked_clients".into(),
                self.stats.blocked.load(Ordering::Relaxed).to_string(),
            ),
        ]
    }

    /// `INFO stats`.
    pub fn info_stats(&self) -> Vec<(String, String)> {
        let s = &self.stats;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        vec![
            (
                "total_connections_received".into(),
                n(&s.connections_received),
            ),
            ("total_commands_processed".into(), n(&s.commands_processed)),
            ("rejected_connections".into(), n(&s.rejected_connections)),
            ("total_error_replies".into(), n(&s.error_replies)),
            ("protocol_errors".into(), n(&s.protocol_errors)),
            ("auth_failures".into(), n(&s.auth_failures)),
        ]
    }

    /// `CONFIG GET` parameters.
    pub fn config_params(&self) -> Vec<(&'static str, String)> {
        let r = &self.resp;
        vec![
            ("maxclients", r.connections_max.to_string()),
            ("proto-max-bulk-len", r.bulk_bytes_max.to_string()),
            ("databases", "1".into()),
            (
                "appendonly",
                if self.durability == "fsync" {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            ),
            (
                "appendfsync",
                if self.durability == "fsync" {
                    "always"
                } else {
                    "no"
                }
                .into(),
            ),
            ("save", String::new()),
            ("timeout", "0".into()),
            ("port", self.addr.port().to_string()),
            ("bind", self.addr.ip().to_string()),
            ("maxmemory", "0".into()),
            (
                "requirepass",
                if r.auth_required() { "********" } else { "" }.into(),
            ),
        ]
    }
}

/// Serves the endpoint on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(shared.resp.connections_max));
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "resp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        shared
            .stats
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            shared
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shared.stats.connected.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = connection(&shared, stream, addr, shutdown).await {
                tracing::debug!(%addr, error = %e, "resp connection ended");
            }
            shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// A reply in order: ready, or waiting for its write to be durable (and,
/// acknowledged globally, applied in enough regions).
enum Pending {
    Ready(Reply),
    Write {
        commit: LocalReply,
        reply: oneshot::Receiver<Reply>,
        ack: WriteAck,
    },
}

/// Waits for a write queued in `region`: its reply, and the write itself as
/// a token, `region:seq` of its newest entry (`None` if it wrote nothing or
/// failed).
pub(crate) async fn settle(
    region: &RegionName,
    commit: LocalReply,
    mut reply: oneshot::Receiver<Reply>,
) -> (Reply, Option<VersionVector>) {
    match commit.await {
        Ok(Ok(outcomes)) => {
            let write = outcomes
                .iter()
                .filter_map(|o| o.entry.as_ref().map(|e| e.seq))
                .max()
                .map(|seq| {
                    let mut write = VersionVector::new();
                    write.advance(region, seq);
                    write
                });
            let reply = reply
                .try_recv()
                .unwrap_or_else(|_| Reply::err("internal error: no reply decided"));
            (reply, write)
        }
        Ok(Err(DbError::Rejected(msg))) => (Reply::Error(msg), None),
        Ok(Err(e)) => (Reply::err(format!("write not stored: {e}")), None),
        Err(_) => (
            Reply::err("write not stored: the storage engine stopped"),
            None,
        ),
    }
}

/// One connection's loop.
struct Conn<'a> {
    shared: &'a Shared,
    session: Session,
    stream: TcpStream,
    out: BytesMut,
    pending: VecDeque<Pending>,
    writes_in_flight: usize,
}

impl Conn<'_> {
    /// Encodes a reply, refusing one larger than the reply limit.
    fn encode(&mut self, reply: Reply) {
        let max = self.shared.limits.reply_bytes_max;
        let reply = if reply.encoded_len() > max {
            Reply::err(format!(
                "reply of about {} bytes exceeds resp.reply_bytes_max ({max})",
                reply.encoded_len()
            ))
        } else {
            reply
        };
        if reply.is_error() {
            self.shared
                .stats
                .error_replies
                .fetch_add(1, Ordering::Relaxed);
        }
        reply.encode(self.session.proto, &mut self.out);
    }

    /// Queues a reply behind the pending ones.
    fn emit(&mut self, reply: Reply) {
        if self.pending.is_empty() {
            self.encode(reply);
        } else {
            self.pending.push_back(Pending::Ready(reply));
        }
    }

    /// Resolves the oldest pending reply.
    async fn resolve_one(&mut self) {
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        let reply = match p {
            Pending::Ready(r) => r,
            Pending::Write { commit, reply, ack } => {
                self.writes_in_flight -= 1;
                self.shared
                    .finish_write(&mut self.session, commit, reply, ack)
                    .await
                    .reply
            }
        };
        self.encode(reply);
    }

    /// Resolves every pending reply.
    async fn resolve_all(&mut self) {
        while !self.pending.is_empty() {
            self.resolve_one().await;
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Queues a write plan to the engine.
    async fn submit(&mut self, plan: WritePlan) -> Result<(), Reply> {
        let ack = self.session.ack_for(
            self.shared
                .table_ack(plan.keys.iter().map(|(table, _)| table.as_str())),
        );
        let (commit, reply) = self.shared.queue_plan(plan).await?;
        self.pending
            .push_back(Pending::Write { commit, reply, ack });
        self.writes_in_flight += 1;
        if self.writes_in_flight > WRITES_IN_FLIGHT_MAX {
            self.resolve_one().await;
        }
        Ok(())
    }

    /// `WAIT numregions timeout`: how many other regions have applied this
    /// connection's last write (every region counts for a connection that
    /// has not written). A timeout of 0 waits without limit.
    async fn wait(&mut self, args: &[bytes::Bytes], shutdown: &CancellationToken) -> Reply {
        let regions = match cmd::int_arg(&args[1]) {
            Ok(n) if n >= 0 => n as usize,
            Ok(_) => return Reply::err("numreplicas must be non-negative"),
            Err(r) => return r,
        };
        let timeout = match cmd::int_arg(&args[2]) {
            Ok(ms) if ms >= 0 => ms as u64,
            Ok(_) => return Reply::err("timeout is negative"),
            Err(r) => return r,
        };
        let token = self.session.last_write.clone();
        let timeout = (timeout > 0).then(|| Duration::from_millis(timeout));
        self.shared.stats.blocked.fetch_add(1, Ordering::Relaxed);
        let n = tokio::select! {
            n = self.shared.db.wait_for_peers(&token, regions, timeout) => n,
            _ = shutdown.cancelled() => self.shared.db.peers_covering(&token),
        };
        self.shared.stats.blocked.fetch_sub(1, Ordering::Relaxed);
        Reply::Int(n as i64)
    }
}

async fn connection(
    shared: &Shared,
    stream: TcpStream,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let laddr = stream.local_addr()?;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let open = !shared.resp.auth_required();
    let mut decoder = RequestDecoder::new(shared.limits.proto, open);
    let mut conn = Conn {
        shared,
        session: Session::new(id, addr, laddr, open),
        stream,
        out: BytesMut::with_capacity(4096),
        pending: VecDeque::new(),
        writes_in_flight: 0,
    };
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        loop {
            let args = match decoder.decode(&mut inbuf) {
                Ok(Some(args)) => args,
                Ok(None) => break,
                Err(e) => {
                    shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    conn.resolve_all().await;
                    conn.encode(Reply::Error(e.0));
                    return conn.flush().await;
                }
            };
            shared
                .stats
                .commands_processed
                .fetch_add(1, Ordering::Relaxed);
            let close = run(&mut conn, &args, &shutdown).await;
            decoder.authenticated = conn.session.authenticated;
            if close {
                conn.resolve_all().await;
                return conn.flush().await;
            }
            if conn.out.len() >= FLUSH_BYTES {
                conn.flush().await?;
            }
        }
        conn.resolve_all().await;
        conn.flush().await?;
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 4 {
            inbuf.reserve(READ_CHUNK);
        }
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            n = conn.stream.read_buf(&mut inbuf) => n?,
        };
        if n == 0 {
            return Ok(());
        }
        // Once per read, not per command (like Redis's cached clock).
        conn.session.last_command = Instant::now();
    }
}

/// Runs one command; returns whether to close the connection after it.
async fn run(conn: &mut Conn<'_>, args: &[bytes::Bytes], shutdown: &CancellationToken) -> bool {
    let spec = match cmd::lookup(&conn.session, args) {
        Ok(s) => s,
        Err(reply) => {
            conn.emit(reply);
            return false;
        }
    };
    conn.session.last_spec = Some(spec);
    match conn.shared.prepare(&mut conn.session, spec, args).await {
        Ok(None) => {}
        Ok(Some(region)) => {
            // Forwarded commands go one at a time, in order.
            conn.resolve_all().await;
            let done = conn
                .shared
                .forward(&mut conn.session, spec, &region, args)
                .await;
            conn.emit(done.reply);
            return false;
        }
        Err(reply) => {
            conn.emit(reply);
            return false;
        }
    }
    match spec.handler {
        Handler::Write(plan) => match plan(conn.shared, args) {
            Ok(plan) => {
                if let Err(reply) = conn.submit(plan).await {
                    conn.emit(reply);
                }
            }
            Err(reply) => conn.emit(reply),
        },
        Handler::Read(_) => {
            conn.resolve_all().await;
            let reply = conn.shared.read(&mut conn.session, spec, args).await;
            conn.emit(reply);
        }
        Handler::Conn(f) => {
            conn.resolve_all().await;
            let reply = f(conn.shared, &mut conn.session, args);
            conn.emit(reply);
        }
        Handler::Wait => {
            conn.resolve_all().await;
            let reply = conn.wait(args, shutdown).await;
            conn.emit(reply);
        }
        Handler::Quit => {
            conn.emit(Reply::Ok);
            return true;
        }
    }
    false
}
