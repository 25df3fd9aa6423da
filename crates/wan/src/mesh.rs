//! The full mesh of authenticated peer links.
//!
//! Every node dials every peer (one outbound connection per ordered pair) and
//! accepts the peers' dials. Outbound connections carry the caller's frames
//! and heartbeat pings; the acceptor answers pongs. A link is *up* while its
//! outbound connection is authenticated and heartbeats come back within
//! [`HEARTBEAT_TIMEOUT`]; a lost link is redialled with capped exponential
//! backoff and jitter, so a healed partition or restarted peer reconnects on
//! its own.
//!
//! Frames handed to [`PeerMesh::send`] are opaque bytes; they are delivered
//! in order while a connection lasts and dropped when it breaks. Callers that
//! need delivery (replication) resend from their own logs on reconnect.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meridian_core::RegionName;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, PeerIdentity, PeerStream};

/// How often a dialer pings its peer.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// A link with no pong for this long is declared down and redialled. Six
/// missed heartbeats: long enough to ride out a loaded machine, short enough
/// that failover logic (later issues) sees a dead region within seconds.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// First redial delay after a failure.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Longest redial delay, so a healed link is back within seconds.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How long a dial may take before it counts as a failure.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an inbound link checks that bytes are still arriving.
pub const PROGRESS_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Frames queued per peer while its link is up; beyond it `send` reports
/// back-pressure rather than buffering without bound.
pub const OUTBOUND_QUEUE_FRAMES_MAX: usize = 1024;

/// Frames received and not yet taken by the caller; beyond it peers are
/// back-pressured through TCP.
pub const INBOUND_QUEUE_FRAMES_MAX: usize = 4096;

/// A peer to dial: its region and the address to dial (direct, or the local
/// end of an emulated link).
#[derive(Clone, Debug)]
pub struct PeerTarget {
    /// The peer's region.
    pub region: RegionName,
    /// Where to dial it.
    pub dial: SocketAddr,
}

/// A frame a peer sent us.
#[derive(Debug)]
pub struct InboundFrame {
    /// Who sent it.
    pub from: RegionName,
    /// The caller-defined payload.
    pub payload: Vec<u8>,
}

/// One peer link as seen from this node.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerLinkStatus {
    /// The peer's region.
    pub region: RegionName,
    /// Our authenticated connection to it is alive.
    pub outbound_up: bool,
    /// Its authenticated connection to us is alive.
    pub inbound_up: bool,
    /// Last heartbeat round trip, in ms.
    pub rtt_ms: Option<f64>,
    /// Successful outbound connects since start.
    pub connects_total: u64,
    /// Why the outbound link last went down or failed to come up.
    pub last_error: Option<String>,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The region is not a peer of this node.
    #[error("`{0}` is not a peer of this node")]
    UnknownPeer(RegionName),
    /// The link is down; retry after it comes back.
    #[error("link to `{0}` is down")]
    LinkDown(RegionName),
    /// The link's queue is full; retry later.
    #[error("link to `{0}` is back-pressured")]
    Backpressure(RegionName),
}

#[derive(Serialize, Deserialize)]
enum WireFrame {
    Ping { id: u64 },
    Pong { id: u64 },
    Data(Vec<u8>),
}

fn encode(frame: &WireFrame) -> tokio_util::bytes::Bytes {
    postcard::to_stdvec(frame)
        .expect("wire frames always encode")
        .into()
}

struct PeerSlot {
    status: Mutex<PeerLinkStatus>,
    queue: mpsc::Sender<Vec<u8>>,
    inbound_generation: AtomicU64,
}

struct Shared {
    identity: PeerIdentity,
    peers: BTreeMap<RegionName, PeerSlot>,
    auth_failures: AtomicU64,
}

impl Shared {
    fn update(&self, region: &RegionName, f: impl FnOnce(&mut PeerLinkStatus)) {
        if let Some(slot) = self.peers.get(region) {
            f(&mut slot.status.lock().expect("status lock is never poisoned"));
        }
    }
}

/// Handle to the running mesh. Cheap to clone.
#[derive(Clone)]
pub struct PeerMesh {
    shared: Arc<Shared>,
}

impl PeerMesh {
    /// Starts dialing every target and accepting on `listener` until
    /// `shutdown` is cancelled. Returns the handle and the inbound frames.
    pub fn start(
        identity: PeerIdentity,
        targets: Vec<PeerTarget>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> (PeerMesh, mpsc::Receiver<InboundFrame>) {
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE_FRAMES_MAX);
        let mut peers = BTreeMap::new();
        let mut queues = Vec::new();
        for t in &targets {
            let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE_FRAMES_MAX);
            peers.insert(
                t.region.clone(),
                PeerSlot {
                    status: Mutex::new(PeerLinkStatus {
                        region: t.region.clone(),
                        outbound_up: false,
                        inbound_up: false,
                        rtt_ms: None,
                        connects_total: 0,
                        last_error: None,
                    }),
                    queue: tx,
                    inbound_generation: AtomicU64::new(0),
                },
            );
            queues.push(rx);
        }
        let shared = Arc::new(Shared {
            identity,
            peers,
            auth_failures: AtomicU64::new(0),
        });
        for (target, queue) in targets.into_iter().zip(queues) {
            tokio::spawn(dial_loop(shared.clone(), target, queue, shutdown.clone()));
        }
        tokio::spawn(accept_loop(shared.clone(), listener, inbound_tx, shutdown));
        (PeerMesh { shared }, inbound_rx)
    }

    /// Every peer link's status, ordered by region.
    pub fn status(&self) -> Vec<PeerLinkStatus> {
        self.shared
            .peers
            .values()
            .map(|s| {
                s.status
                    .lock()
                    .expect("status lock is never poisoned")
                    .clone()
            })
            .collect()
    }

    /// Whether every outbound link is up.
    pub fn all_up(&self) -> bool {
        self.status().iter().all(|s| s.outbound_up)
    }

    /// Handshakes refused for bad credentials since start.
    pub fn auth_failures(&self) -> u64 {
        self.shared.auth_failures.load(Ordering::Relaxed)
    }

    /// Queues `payload` for `to`. Fails at once when the link is down or full.
    pub fn send(&self, to: &RegionName, payload: Vec<u8>) -> Result<(), SendError> {
        let slot = self
            .shared
            .peers
            .get(to)
            .ok_or_else(|| SendError::UnknownPeer(to.clone()))?;
        if !slot
            .status
            .lock()
            .expect("status lock is never poisoned")
            .outbound_up
        {
            return Err(SendError::LinkDown(to.clone()));
        }
        slot.queue.try_send(payload).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Backpressure(to.clone()),
            mpsc::error::TrySendError::Closed(_) => SendError::LinkDown(to.clone()),
        })
    }
}

async fn dial_loop(
    shared: Arc<Shared>,
    target: PeerTarget,
    mut queue: mpsc::Receiver<Vec<u8>>,
    shutdown: CancellationToken,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    loop {
        let attempt = async {
            let stream = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(target.dial))
                .await
                .map_err(|_| "dial timed out".to_string())?
                .map_err(|e| format!("dial failed: {e}"))?;
            let _ = stream.set_nodelay(true);
            auth::connect(stream, &shared.identity, &target.region).await.map_err(|e| {
                if e.is_credential_failure() {
                    tracing::warn!(peer = %target.region, error = %e, "peer refused our credentials");
                }
                e.to_string()
            })
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = attempt => r,
        };
        match result {
            Ok(stream) => {
                backoff = RECONNECT_BACKOFF_MIN;
                shared.update(&target.region, |s| {
                    s.outbound_up = true;
                    s.connects_total += 1;
                    s.last_error = None;
                });
                tracing::info!(peer = %target.region, "peer link up");
                let why =
                    run_outbound(&shared, &target.region, stream, &mut queue, &shutdown).await;
                // Frames queued for a dead connection are dropped: callers
                // resend from their logs after reconnecting.
                while queue.try_recv().is_ok() {}
                shared.update(&target.region, |s| {
                    s.outbound_up = false;
                    s.rtt_ms = None;
                    s.last_error = Some(why.clone());
                });
                if shutdown.is_cancelled() {
                    return;
                }
                tracing::warn!(peer = %target.region, reason = %why, "peer link down");
            }
            Err(e) => {
                tracing::debug!(peer = %target.region, error = %e, "peer dial failed");
                shared.update(&target.region, |s| s.last_error = Some(e));
            }
        }
        // Full jitter on the capped backoff spreads redials after a heal.
        let sleep = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Drives one authenticated outbound connection until it fails; returns why.
async fn run_outbound(
    shared: &Shared,
    peer: &RegionName,
    mut stream: PeerStream,
    queue: &mut mpsc::Receiver<Vec<u8>>,
    shutdown: &CancellationToken,
) -> String {
    let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_ping: u64 = 0;
    let mut pings_in_flight: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return "shutting down".into(),
            _ = ticker.tick() => {
                if last_heard.elapsed() > HEARTBEAT_TIMEOUT {
                    return format!("no heartbeat for {HEARTBEAT_TIMEOUT:?}");
                }
                next_ping += 1;
                pings_in_flight.insert(next_ping, Instant::now());
                // Bound the map: pings older than the timeout can never matter.
                while pings_in_flight.len() > 64 {
                    pings_in_flight.pop_first();
                }
                if let Err(e) = stream.send(encode(&WireFrame::Ping { id: next_ping })).await {
                    return format!("send failed: {e}");
                }
            }
            frame = queue.recv() => {
                let Some(payload) = frame else { return "queue closed".into() };
                if let Err(e) = stream.send(encode(&WireFrame::Data(payload))).await {
                    return format!("send failed: {e}");
                }
            }
            frame = stream.next() => {
                let frame = match frame {
                    None => return "peer closed the connection".into(),
                    Some(Err(e)) => return format!("receive failed: {e}"),
                    Some(Ok(f)) => f,
                };
                last_heard = Instant::now();
                match postcard::from_bytes::<WireFrame>(&frame) {
                    Ok(WireFrame::Pong { id }) => {
                        if let Some(sent) = pings_in_flight.remove(&id) {
                            let rtt = sent.elapsed().as_secs_f64() * 1000.0;
                            shared.update(peer, |s| s.rtt_ms = Some(rtt));
                        }
                    }
                    Ok(_) => return "peer sent an unexpected frame on an outbound link".into(),
                    Err(e) => return format!("undecodable frame: {e}"),
                }
            }
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    inbound: mpsc::Sender<InboundFrame>,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, from) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let inbound = inbound.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let known = |r: &RegionName| shared.peers.contains_key(r);
            let (region, stream) = match auth::accept(stream, &shared.identity, known).await {
                Ok(pair) => pair,
                Err(e) => {
                    if e.is_credential_failure() {
                        shared.auth_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%from, error = %e, "refused peer connection");
                    } else {
                        tracing::debug!(%from, error = %e, "peer handshake failed");
                    }
                    return;
                }
            };
            let slot = &shared.peers[&region];
            let generation = slot.inbound_generation.fetch_add(1, Ordering::Relaxed) + 1;
            shared.update(&region, |s| s.inbound_up = true);
            let why = run_inbound(&region, stream, &inbound, &shutdown).await;
            tracing::debug!(peer = %region, reason = %why, "inbound peer connection closed");
            // A newer connection from the same peer may already be up.
            if slot.inbound_generation.load(Ordering::Relaxed) == generation {
                shared.update(&region, |s| s.inbound_up = false);
            }
        });
    }
}

async fn run_inbound(
    peer: &RegionName,
    mut stream: PeerStream,
    inbound: &mpsc::Sender<InboundFrame>,
    shutdown: &CancellationToken,
) -> String {
    // Liveness is "bytes keep arriving", not "a whole frame arrives every
    // few seconds": a large batch over a slow (or bandwidth-capped) link may
    // take longer than the heartbeat timeout, and pings queue behind it.
    // `Framed` keeps a partial frame in its read buffer, so a growing buffer
    // is progress; `next()` is cancel-safe, so waking to look loses nothing.
    let mut last_progress = Instant::now();
    let mut buffered = 0usize;
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return "shutting down".into(),
            f = stream.next() => f,
            _ = tokio::time::sleep(PROGRESS_CHECK_INTERVAL) => {
                let now_buffered = stream.read_buffer().len();
                if now_buffered != buffered {
                    buffered = now_buffered;
                    last_progress = Instant::now();
                }
                if last_progress.elapsed() > HEARTBEAT_TIMEOUT {
                    return format!("no bytes for {HEARTBEAT_TIMEOUT:?}");
                }
                continue;
            }
        };
        let frame = match frame {
            None => return "peer closed the connection".into(),
            Some(Err(e)) => return format!("receive failed: {e}"),
            Some(Ok(f)) => f,
        };
        buffered = 0;
        last_progress = Instant::now();
        match postcard::from_bytes::<WireFrame>(&frame) {
            Ok(WireFrame::Ping { id }) => {
                if let Err(e) = stream.send(encode(&WireFrame::Pong { id })).await {
                    return format!("send failed: {e}");
                }
            }
            Ok(WireFrame::Data(payload)) => {
                let frame = InboundFrame {
                    from: peer.clone(),
                    payload,
                };
                if inbound.send(frame).await.is_err() {
                    return "node stopped reading peer frames".into();
                }
                // Time spent waiting for the node to take the frame is not
                // the peer's silence.
                last_progress = Instant::now();
            }
            Ok(WireFrame::Pong { .. }) => return "peer sent a pong on an inbound link".into(),
            Err(e) => return format!("undecodable frame: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{LinkControl, LinkProxy};
    use meridian_core::LinkConditions;

    const SECRET: &[u8] = b"0123456789abcdef-mesh";

    fn name(s: &str) -> RegionName {
        RegionName::new(s).unwrap()
    }

    struct Node {
        mesh: PeerMesh,
        inbound: mpsc::Receiver<InboundFrame>,
    }

    /// Three nodes; every link goes through an emulated 20 ms RTT proxy whose
    /// control is returned, keyed by (from, to).
    async fn three_nodes(
        shutdown: &CancellationToken,
    ) -> (Vec<Node>, BTreeMap<(String, String), LinkControl>) {
        let names = ["a", "b", "c"];
        let mut listeners = Vec::new();
        for _ in names {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut controls = BTreeMap::new();
        let mut nodes = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let mut targets = Vec::new();
            for (j, peer) in names.iter().enumerate() {
                if i == j {
                    continue;
                }
                let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let dial = proxy.local_addr().unwrap();
                let control = LinkControl::symmetric(LinkConditions::from_rtt_ms(20.0));
                LinkProxy::spawn(proxy, addrs[j], control.clone(), shutdown.clone());
                controls.insert((names[i].to_string(), peer.to_string()), control);
                targets.push(PeerTarget {
                    region: name(peer),
                    dial,
                });
            }
            let (mesh, inbound) = PeerMesh::start(
                PeerIdentity::new("t", name(names[i]), SECRET),
                targets,
                listener,
                shutdown.clone(),
            );
            nodes.push(Node { mesh, inbound });
        }
        (nodes, controls)
    }

    async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn mesh_comes_up_measures_rtt_and_carries_frames() {
        let shutdown = CancellationToken::new();
        let (mut nodes, _) = three_nodes(&shutdown).await;
        wait_for("all links up", || nodes.iter().all(|n| n.mesh.all_up())).await;
        wait_for("rtt measured", || {
            nodes[0].mesh.status().iter().all(|s| s.rtt_ms.is_some())
        })
        .await;
        for s in nodes[0].mesh.status() {
            let rtt = s.rtt_ms.unwrap();
            assert!((19.0..40.0).contains(&rtt), "{}: rtt {rtt}", s.region);
        }
        nodes[0].mesh.send(&name("b"), b"hello".to_vec()).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), nodes[1].inbound.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.from.as_str(), got.payload.as_slice()),
            ("a", &b"hello"[..])
        );
        assert_eq!(
            nodes[0].mesh.send(&name("zz"), vec![]),
            Err(SendError::UnknownPeer(name("zz")))
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn partition_takes_links_down_and_heal_brings_them_back() {
        let shutdown = CancellationToken::new();
        let (nodes, controls) = three_nodes(&shutdown).await;
        wait_for("all links up", || nodes.iter().all(|n| n.mesh.all_up())).await;
        controls[&("a".into(), "b".into())].set_partitioned(true);
        controls[&("b".into(), "a".into())].set_partitioned(true);
        let link = |n: usize, peer: &str| {
            nodes[n]
                .mesh
                .status()
                .into_iter()
                .find(|s| s.region.as_str() == peer)
                .unwrap()
        };
        wait_for("a→b down", || {
            !link(0, "b").outbound_up && !link(1, "a").outbound_up
        })
        .await;
        assert!(link(0, "c").outbound_up, "a→c must stay up");
        assert_eq!(
            nodes[0].mesh.send(&name("b"), vec![1]),
            Err(SendError::LinkDown(name("b")))
        );
        controls[&("a".into(), "b".into())].set_partitioned(false);
        controls[&("b".into(), "a".into())].set_partitioned(false);
        wait_for("a→b back", || {
            link(0, "b").outbound_up && link(1, "a").outbound_up
        })
        .await;
        assert!(link(0, "b").connects_total >= 2);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_frame_slower_than_the_heartbeat_timeout_still_arrives() {
        // Found in review: liveness used to require a whole frame every 3 s,
        // so a big batch on a slow link failed and was resent forever.
        let shutdown = CancellationToken::new();
        let (a_listener, b_listener) = (
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        );
        let b_addr = b_listener.local_addr().unwrap();
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dial = proxy.local_addr().unwrap();
        let mut slow = LinkConditions::from_rtt_ms(10.0);
        slow.bandwidth_bytes_per_sec = Some(250_000); // 2 Mbit/s: 1 MiB takes ~4.2 s
        LinkProxy::spawn(
            proxy,
            b_addr,
            LinkControl::symmetric(slow),
            shutdown.clone(),
        );
        let (a, _a_rx) = PeerMesh::start(
            PeerIdentity::new("t", name("a"), SECRET),
            vec![PeerTarget {
                region: name("b"),
                dial,
            }],
            a_listener,
            shutdown.clone(),
        );
        let (_b, mut b_rx) = PeerMesh::start(
            PeerIdentity::new("t", name("b"), SECRET),
            vec![PeerTarget {
                region: name("a"),
                dial: "127.0.0.1:9".parse().unwrap(),
            }],
            b_listener,
            shutdown.clone(),
        );
        wait_for("a→b up", || a.all_up()).await;
        a.send(&name("b"), vec![7u8; 1024 * 1024]).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(15), b_rx.recv())
            .await
            .expect("the big frame never arrived")
            .unwrap();
        assert_eq!(got.payload.len(), 1024 * 1024);
        assert_eq!(
            a.status()[0].connects_total,
            1,
            "the link was dropped and redialled"
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_node_with_the_wrong_secret_is_refused_and_counted() {
        let shutdown = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (good, _rx) = PeerMesh::start(
            PeerIdentity::new("t", name("a"), SECRET),
            vec![PeerTarget {
                region: name("b"),
                dial: "127.0.0.1:9".parse().unwrap(),
            }],
            listener,
            shutdown.clone(),
        );
        let (bad, _rx2) = PeerMesh::start(
            PeerIdentity::new("t", name("b"), b"wrong-secret-wrong-secret"),
            vec![PeerTarget {
                region: name("a"),
                dial: addr,
            }],
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            shutdown.clone(),
        );
        wait_for("refusal counted", || good.auth_failures() >= 2).await;
        let b = &bad.status()[0];
        assert!(!b.outbound_up);
        assert!(
            b.last_error.as_deref().unwrap_or("").contains("refused"),
            "{b:?}"
        );
        assert!(!good.status()[0].inbound_up);
        shutdown.cancel();
    }
}
