//! Emulated WAN links: a fault-injecting TCP forwarder.
//!
//! A [`LinkProxy`] listens on a local address and forwards every connection to
//! a target, shaping each direction by the [`LinkConditions`] held in its
//! [`LinkControl`]: one-way delay, jitter, a bandwidth cap, loss and partition.
//! It is deliberately byte-level and knows nothing of what it carries, so the
//! peer links, PostgreSQL replication streams and S3 body copies of later
//! issues all cross regions through the same mechanism.
//!
//! How each effect is emulated, and why that way:
//! - **Delay**: every chunk read at time `t` is written at `t + one_way_delay`.
//! - **Bandwidth**: each direction has one serialiser clock shared by every
//!   connection on the link, as a real pipe is shared; a chunk of `n` bytes
//!   occupies it for `n / bandwidth`.
//! - **Jitter**: a uniform extra delay in `0..=jitter` per chunk, but never
//!   earlier than the chunk before it: TCP delivers bytes in order.
//! - **Loss**: TCP never loses bytes, it retransmits them. A lost chunk
//!   therefore arrives one retransmission timeout late (`max(200 ms, RTT)`,
//!   doubling on each repeated loss, as Linux's RTO does), holding back the
//!   bytes behind it.
//! - **Partition**: bytes on open connections are held, as a sender would keep
//!   retransmitting them, and flow again on heal unless an endpoint gives up
//!   first; new connections are refused at once.
//! - **Handshake**: a new connection reaches the target one emulated RTT after
//!   it was accepted, as SYN and SYN-ACK would take.
//!
//! Delays are timed by [`crate::timer`], not tokio's millisecond timer, so an
//! emulated 80 ms RTT measures 80 ms, not 82–83 ms.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_core::LinkConditions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest chunk read in one go. Small enough that a bandwidth cap is smooth
/// at 1 Mbit/s (16 KiB = 131 ms), large enough for GB/s on loopback.
pub const CHUNK_BYTES_MAX: usize = 16 * 1024;

/// Chunks in flight per direction of one connection; with
/// [`CHUNK_BYTES_MAX`] that bounds the bytes held per direction at 4 MiB,
/// after which the sender is back-pressured like a full TCP window.
pub const CHUNKS_IN_FLIGHT_MAX: usize = 256;

/// How long the forwarder waits for the target to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Linux's minimum retransmission timeout, the floor of the loss penalty.
pub const RTO_MIN: Duration = Duration::from_millis(200);

/// Cap on one chunk's total loss penalty (Linux caps RTO at 120 s; beyond a
/// minute an application has long given up).
pub const LOSS_PENALTY_MAX: Duration = Duration::from_secs(60);

/// The two directions of a link, seen from the side that owns the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting (local) side to the target.
    Outbound,
    /// From the target back to the connecting side.
    Inbound,
}

/// What a link does now; changed at run time by chaos commands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkState {
    /// Conditions on bytes going to the target.
    pub outbound: LinkConditions,
    /// Conditions on bytes coming back.
    pub inbound: LinkConditions,
    /// Whether the link is cut.
    pub partitioned: bool,
}

/// Counters of one link, all monotonic but `connections_open`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes delivered to the target.
    pub bytes_out: u64,
    /// Bytes delivered back to the connecting side.
    pub bytes_in: u64,
    /// Connections currently forwarded.
    pub connections_open: u64,
    /// Connections accepted and forwarded since start.
    pub connections_total: u64,
    /// Connections refused because the link was partitioned or the target
    /// could not be reached.
    pub connections_refused: u64,
}

#[derive(Default)]
struct Counters {
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
}

/// Sees every byte a link delivers, in delivery order per direction: an
/// audit hook (a residency check records what crossed). It runs on the
/// delivering task, so it must be quick and must not block for long.
pub type LinkTap = Arc<dyn Fn(Direction, &[u8]) + Send + Sync>;

/// Shared handle to a link's state and counters. Cheap to clone.
#[derive(Clone)]
pub struct LinkControl {
    state: watch::Sender<LinkState>,
    counters: Arc<Counters>,
    /// When each direction's serialiser is next free (bandwidth cap).
    serialiser_free_at: Arc<[Mutex<Instant>; 2]>,
    tap: Option<LinkTap>,
}

impl LinkControl {
    /// A link with the given conditions per direction, not partitioned.
    pub fn new(outbound: LinkConditions, inbound: LinkConditions) -> Self {
        let now = Instant::now();
        LinkControl {
            state: watch::Sender::new(LinkState {
                outbound,
                inbound,
                partitioned: false,
            }),
            counters: Arc::default(),
            serialiser_free_at: Arc::new([Mutex::new(now), Mutex::new(now)]),
            tap: None,
        }
    }

    /// This link, with every delivered byte also shown to `tap`.
    pub fn with_tap(mut self, tap: LinkTap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The same link (state, counters, bandwidth shared) without the tap:
    /// for traffic that shares the WAN link but is not the audited
    /// replication stream (the edge's HTTP forwards and probes).
    pub fn without_tap(&self) -> Self {
        LinkControl {
            tap: None,
            ..self.clone()
        }
    }

    /// A link with the same conditions both ways.
    pub fn symmetric(conditions: LinkConditions) -> Self {
        LinkControl::new(conditions, conditions)
    }

    /// The current state.
    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// Cuts or heals the link.
    pub fn set_partitioned(&self, partitioned: bool) {
        self.state.send_modify(|s| s.partitioned = partitioned);
    }

    /// Replaces the conditions of both directions.
    pub fn set_conditions(&self, outbound: LinkConditions, inbound: LinkConditions) {
        self.state.send_modify(|s| {
            s.outbound = outbound;
            s.inbound = inbound;
        });
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LinkStats {
        let c = &self.counters;
        LinkStats {
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            connections_open: c.connections_open.load(Ordering::Relaxed),
            connections_total: c.connections_total.load(Ordering::Relaxed),
            connections_refused: c.connections_refused.load(Ordering::Relaxed),
        }
    }

    fn conditions(&self, direction: Direction) -> LinkConditions {
        let s = self.state.borrow();
        match direction {
            Direction::Outbound => s.outbound,
            Direction::Inbound => s.inbound,
        }
    }

    /// When a chunk of `len` bytes read now leaves the serialiser.
    fn serialise(
        &self,
        direction: Direction,
        len: usize,
        bandwidth: Option<u64>,
        now: Instant,
    ) -> Instant {
        let Some(bytes_per_sec) = bandwidth else {
            return now;
        };
        let busy = Duration::from_secs_f64(len as f64 / bytes_per_sec as f64);
        let mut free_at = self.serialiser_free_at[direction as usize]
            .lock()
            .expect("serialiser clock lock is never poisoned: no code panics while holding it");
        let done = (*free_at).max(now) + busy;
        *free_at = done;
        done
    }

    /// Waits until the link is not partitioned; returns at once if it is not.
    async fn healed(&self) {
        let mut rx = self.state.subscribe();
        // Err means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|s| !s.partitioned).await;
    }
}

/// The loss penalty for one chunk: a retransmission timeout per loss, doubling.
fn loss_penalty(conditions: &LinkConditions, rng: &mut fastrand::Rng) -> Duration {
    let mut penalty = Duration::ZERO;
    if conditions.loss <= 0.0 {
        return penalty;
    }
    let mut rto = RTO_MIN.max(conditions.one_way_delay * 2);
    while rng.f64() < conditions.loss && penalty < LOSS_PENALTY_MAX {
        penalty += rto;
        rto *= 2;
    }
    penalty.min(LOSS_PENALTY_MAX)
}

/// A TCP forwarder that applies a [`LinkControl`] to everything it carries.
pub struct LinkProxy;

impl LinkProxy {
    /// Forwards every connection accepted on `listener` to `target` until
    /// `shutdown` is cancelled; open connections are closed then too.
    pub fn spawn(
        listener: TcpListener,
        target: SocketAddr,
        control: LinkControl,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (client, from) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // rather than spin, and keep serving.
                        tracing::warn!(error = %e, "link proxy accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if control.state().partitioned {
                    control
                        .counters
                        .connections_refused
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, %target, "link partitioned: connection refused");
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(
                    client,
                    target,
                    control.clone(),
                    shutdown.child_token(),
                ));
            }
        })
    }
}

async fn forward(
    client: TcpStream,
    target: SocketAddr,
    control: LinkControl,
    cancel: CancellationToken,
) {
    // SYN out and SYN-ACK back before the target sees the connection.
    let handshake = control.conditions(Direction::Outbound).one_way_delay
        + control.conditions(Direction::Inbound).one_way_delay;
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = crate::timer::sleep_until(std::time::Instant::now() + handshake) => {}
    }
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            control
                .counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%target, error = %e, "link target unreachable");
            return;
        }
        Err(_) => {
            control
                .counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%target, "link target connect timed out");
            return;
        }
    };
    // Nagle would add its own delay on top of the emulated one.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    control
        .counters
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    control
        .counters
        .connections_open
        .fetch_add(1, Ordering::Relaxed);

    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let out = pump(
        client_read,
        upstream_write,
        Direction::Outbound,
        control.clone(),
        cancel.clone(),
    );
    let back = pump(
        upstream_read,
        client_write,
        Direction::Inbound,
        control.clone(),
        cancel.clone(),
    );
    tokio::join!(out, back);
    control
        .counters
        .connections_open
        .fetch_sub(1, Ordering::Relaxed);
}

enum Chunk {
    Data { bytes: Vec<u8>, deliver_at: Instant },
    Eof,
}

/// Moves one direction: a reader stamps chunks with their delivery time, a
/// writer delivers them on time. An I/O error on either side cancels the whole
/// connection, as a reset would.
async fn pump<R, W>(
    reader: R,
    writer: W,
    direction: Direction,
    control: LinkControl,
    cancel: CancellationToken,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT_MAX);
    tokio::join!(
        read_side(reader, tx, direction, control.clone(), cancel.clone()),
        write_side(rx, writer, direction, control, cancel),
    );
}

/// Reads what the sender writes and stamps each chunk with when it
/// arrives at the far end.
async fn read_side<R>(
    mut reader: R,
    tx: mpsc::Sender<Chunk>,
    direction: Direction,
    control: LinkControl,
    cancel: CancellationToken,
) where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut rng = fastrand::Rng::new();
    let mut last_delivery = Instant::now();
    let mut buf = vec![0u8; CHUNK_BYTES_MAX];
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return,
            n = reader.read(&mut buf) => n,
        };
        let n = match n {
            Ok(0) => {
                let _ = tx.send(Chunk::Eof).await;
                return;
            }
            Ok(n) => n,
            Err(_) => {
                cancel.cancel();
                return;
            }
        };
        let now = Instant::now();
        let c = control.conditions(direction);
        let serialised = control.serialise(direction, n, c.bandwidth_bytes_per_sec, now);
        let deliver_at = delivery_time(&c, serialised, last_delivery, &mut rng);
        last_delivery = deliver_at;
        let chunk = Chunk::Data {
            bytes: buf[..n].to_vec(),
            deliver_at,
        };
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
}

/// When a chunk whose last byte leaves at `serialised` arrives: after the
/// delay, jitter and any loss penalty, and never before the chunk ahead of
/// it (`last_delivery`), so byte order is kept as TCP would.
fn delivery_time(
    c: &LinkConditions,
    serialised: Instant,
    last_delivery: Instant,
    rng: &mut fastrand::Rng,
) -> Instant {
    let jitter = if c.jitter.is_zero() {
        Duration::ZERO
    } else {
        c.jitter.mul_f64(rng.f64())
    };
    (serialised + c.one_way_delay + jitter + loss_penalty(c, rng)).max(last_delivery)
}

/// Delivers the stamped chunks on time, holding them while the link is
/// partitioned.
async fn write_side<W>(
    mut rx: mpsc::Receiver<Chunk>,
    mut writer: W,
    direction: Direction,
    control: LinkControl,
    cancel: CancellationToken,
) where
    W: tokio::io::AsyncWrite + Unpin,
{
    while let Some(chunk) = rx.recv().await {
        let (bytes, deliver_at) = match chunk {
            Chunk::Eof => {
                let _ = writer.shutdown().await;
                return;
            }
            Chunk::Data { bytes, deliver_at } => (bytes, deliver_at),
        };
        if !wait_for_delivery(deliver_at, direction, &control, &cancel).await {
            return;
        }
        if writer.write_all(&bytes).await.is_err() {
            cancel.cancel();
            return;
        }
        if let Some(tap) = &control.tap {
            tap(direction, &bytes);
        }
        let counter = match direction {
            Direction::Outbound => &control.counters.bytes_out,
            Direction::Inbound => &control.counters.bytes_in,
        };
        counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}

/// Waits until a chunk due at `deliver_at` may be written: `false` when the
/// connection was cancelled meanwhile.
async fn wait_for_delivery(
    mut deliver_at: Instant,
    direction: Direction,
    control: &LinkControl,
    cancel: &CancellationToken,
) -> bool {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = crate::timer::sleep_until(deliver_at.into_std()) => {}
        }
        if !control.state().partitioned {
            return true;
        }
        // Held during the partition; after heal the bytes still need to
        // cross the link.
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = control.healed() => {}
        }
        deliver_at = Instant::now() + control.conditions(direction).one_way_delay;
    }
}

#[cfg(test)]
mod tests;
