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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use meridian_core::config::WriteAck;
use meridian_store::db::LocalReply;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::cmd::{self, Handler};
use crate::error::ErrorReply;
use crate::plan::WritePlan;
use crate::proto::RequestDecoder;
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

// The shared state's items lived here before `shared.rs` and `stats.rs`
// held them; their old paths still name them.
pub use crate::shared::{
    ClusterInfo, Cursors, SharedLimits, CURSORS_MAX, GLOBAL_ACK_TIMEOUT_MS_DEFAULT,
};
pub use crate::stats::{RemoteStats, RespStats};

/// Writes a connection may have queued before it waits for the oldest.
pub const WRITES_IN_FLIGHT_MAX: usize = 1024;

/// Reply bytes buffered before they are written out mid-pipeline.
const FLUSH_BYTES: usize = 64 * 1024;

/// Bytes read from the socket at a time (at least).
const READ_CHUNK: usize = 16 * 1024;

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
                    conn.encode(Reply::Error(ErrorReply::from(e)));
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
