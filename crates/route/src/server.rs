//! The edge's listener: accepts client connections up to
//! `edge.client_connections_max` (beyond, a plain 503 and close), speaks
//! HTTP/1.1 with keep-alive or HTTP/2 (chosen by the connection preface),
//! and bounds every connection: `edge.header_timeout_ms` to send a request
//! head (slowloris; hyper starts that timer when the connection begins to
//! wait for a request, so it also bounds the keep-alive wait),
//! `edge.header_bytes_max` for it (431), and `edge.idle_timeout_ms` with
//! no request in flight, when that is shorter.
//!
//! The edge runs on threads of its own, each with a single-threaded tokio
//! runtime, its own accept loop on a clone of the listening socket and its
//! own client pools (thread per core, as haproxy and nginx do): a request
//! and its upstream connection's task stay on one thread, so forwarding a
//! request wakes no other thread. Measured on the 2-core machine with wrk
//! against one instance, the node's shared work-stealing runtime reached
//! 37–39k requests/s here against haproxy's 56–65k; the per-thread
//! runtimes remove the cross-thread wake-ups that dominated the profile.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::edge::Edge;
use crate::stats::Rejection;
use crate::upstream::Upstream;

/// Concurrent HTTP/2 streams per client connection.
pub const H2_STREAMS_MAX: u32 = 256;

/// hyper's smallest read buffer; the header limit cannot go below it.
const H1_BUF_MIN: usize = 8192;

/// The answer to a connection over the limit, written raw: no HTTP state
/// is spent on it.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 58\r\nconnection: close\r\n\r\ntoo many connections to this edge (edge.client_connections_max)\n";

/// Most edge threads.
pub const THREADS_MAX: usize = 64;

/// How long a stopping edge thread waits for its open requests.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener could not be shared with a thread.
    #[error("cannot share the edge listener with its threads: {0}")]
    Listener(#[source] std::io::Error),
    /// A thread or its runtime could not start.
    #[error("cannot start an edge thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Serves `listener` on `threads` threads (0: one per core) until the
/// edge's shutdown; returns the threads, which end once their connections
/// drained (at most [`DRAIN_GRACE`]).
pub fn start(
    edge: Arc<Edge>,
    listener: std::net::TcpListener,
    threads: usize,
) -> Result<Vec<std::thread::JoinHandle<()>>, ServeError> {
    let n = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(THREADS_MAX);
    if let Ok(addr) = listener.local_addr() {
        edge.set_listen(addr);
        tracing::info!(region = %edge.region, %addr, threads = n, "edge listening");
    }
    listener
        .set_nonblocking(true)
        .map_err(ServeError::Listener)?;
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let l = listener.try_clone().map_err(ServeError::Listener)?;
        let edge = edge.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ServeError::Thread)?;
        let h = std::thread::Builder::new()
            .name(format!("edge-{i}"))
            .spawn(move || rt.block_on(thread_main(edge, l)))
            .map_err(ServeError::Thread)?;
        handles.push(h);
    }
    Ok(handles)
}

/// One edge thread: its client pools, its accept loop, then the drain.
async fn thread_main(edge: Arc<Edge>, listener: std::net::TcpListener) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "edge thread cannot register its listener");
            return;
        }
    };
    let up = Upstream::new(
        Duration::from_millis(edge.config.connect_timeout_ms),
        Duration::from_millis(edge.config.request_timeout_ms),
    );
    // The edge's cancellation token takes a lock on every poll; a
    // connection's task is polled on every read and write, so connections
    // wait on this thread's `Notify` instead, told once by one task.
    let stop = Arc::new(Stop::default());
    let told = stop.clone();
    let token = edge.shutdown.clone();
    tokio::spawn(async move {
        token.cancelled().await;
        told.stopped.store(true, Relaxed);
        told.notify.notify_waiters();
    });
    tokio::spawn(keep_warm(edge.clone(), up.clone(), stop.clone()));
    let mut conns = tokio::task::JoinSet::new();
    serve(&edge, &up, &stop, listener, &mut conns).await;
    let _ = tokio::time::timeout(DRAIN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// Connections each edge thread keeps open to every other region's edge.
/// A new connection over the WAN costs a round trip before its first
/// request (more with TLS), which a failover would otherwise pay on every
/// request of its first moments: at 100 requests/s over an 80 ms link
/// about 10 are in flight at once, shared by the threads.
pub const WARM_PER_PEER: usize = 8;

/// How often the warm connections are used (a health probe each), so the
/// other edge's keep-alive timeout never closes them.
pub const WARM_INTERVAL: Duration = Duration::from_secs(2);

/// Keeps [`WARM_PER_PEER`] connections from this thread to every other
/// region's edge open until the edge stops.
async fn keep_warm(edge: Arc<Edge>, up: Upstream, stop: Arc<Stop>) {
    let mut tick = tokio::time::interval(WARM_INTERVAL);
    let timeout = Duration::from_millis(edge.config.probe.timeout_ms);
    loop {
        tokio::select! {
            _ = stop.notify.notified() => return,
            _ = tick.tick() => {}
        }
        if stop.stopped.load(Relaxed) {
            return;
        }
        // Concurrent probes, so each takes (or opens) its own connection.
        let mut probes = tokio::task::JoinSet::new();
        for dial in edge.regions.peers.values() {
            for _ in 0..WARM_PER_PEER {
                let (up, me, dial) = (up.clone(), edge.region.clone(), *dial);
                probes
                    .spawn(async move { crate::probe::probe_once(&up, &me, dial, timeout).await });
            }
        }
        while probes.join_next().await.is_some() {}
    }
}

/// Accepts connections on `listener` until the edge's shutdown.
async fn serve(
    edge: &Arc<Edge>,
    up: &Upstream,
    stop: &Arc<Stop>,
    listener: TcpListener,
    conns: &mut tokio::task::JoinSet<()>,
) {
    let builder = Arc::new(builder(edge));
    loop {
        // Reap finished connections so the set stays the size of the open ones.
        while conns.try_join_next().is_some() {}
        let (stream, client) = tokio::select! {
            _ = edge.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "edge accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        edge.stats.connections.fetch_add(1, Relaxed);
        if edge.stats.connections_open.load(Relaxed) >= edge.config.client_connections_max as u64 {
            edge.stats.reject(Rejection::TooManyConnections);
            tokio::spawn(refuse(stream));
            continue;
        }
        let _ = stream.set_nodelay(true);
        conns.spawn(connection(
            edge.clone(),
            up.clone(),
            stop.clone(),
            builder.clone(),
            stream,
            client,
        ));
    }
}

fn builder(edge: &Edge) -> auto::Builder<TokioExecutor> {
    let c = &edge.config;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(c.header_timeout_ms))
        .max_buf_size(c.header_bytes_max.max(H1_BUF_MIN))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS_MAX)
        .max_header_list_size(c.header_bytes_max as u32);
    b
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(OVER_LIMIT)).await;
    let _ = stream.shutdown().await;
}

/// One edge thread's shutdown signal for its connections.
#[derive(Default)]
struct Stop {
    stopped: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

/// When the connection last started or finished a request, and how many
/// it has in flight.
#[derive(Default)]
struct Activity {
    in_flight: AtomicU64,
    last_ms: AtomicU64,
}

async fn connection(
    edge: Arc<Edge>,
    up: Upstream,
    stop: Arc<Stop>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    client: SocketAddr,
) {
    edge.stats.connections_open.fetch_add(1, Relaxed);
    let born = Instant::now();
    let activity = Arc::new(Activity::default());
    // hyper's header timer already closes a connection that waits longer
    // than the header timeout for its next request; only a shorter idle
    // timeout needs a watchdog (and the per-request bookkeeping for it).
    let watch = edge.config.idle_timeout_ms < edge.config.header_timeout_ms;
    let who = Arc::new(crate::outbound::Client::new(client));
    let svc = {
        let (edge, activity) = (edge.clone(), activity.clone());
        service_fn(move |req| {
            let (edge, activity, up, who) =
                (edge.clone(), activity.clone(), up.clone(), who.clone());
            async move {
                activity.in_flight.fetch_add(1, Relaxed);
                let resp = crate::proxy::handle(edge, up, who, req).await;
                activity.in_flight.fetch_sub(1, Relaxed);
                activity
                    .last_ms
                    .store(born.elapsed().as_millis() as u64, Relaxed);
                resp
            }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let idle = Duration::from_millis(edge.config.idle_timeout_ms);
    let tick = (idle / 4).max(Duration::from_millis(10));
    let mut closing = false;
    if stop.stopped.load(Relaxed) {
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = stop.notify.notified(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep(tick), if watch && !closing => {
                if stop.stopped.load(Relaxed) {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    continue;
                }
                let quiet = born.elapsed().saturating_sub(Duration::from_millis(activity.last_ms.load(Relaxed)));
                if activity.in_flight.load(Relaxed) == 0 && quiet >= idle {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    };
    edge.stats.connections_open.fetch_sub(1, Relaxed);
    if let Err(e) = result {
        let kind = classify(&*e);
        edge.stats.connection_errors[kind].fetch_add(1, Relaxed);
        tracing::debug!(%client, error = %e, "client connection ended in an error");
    }
}

/// Index into [`crate::stats::CONNECTION_ERROR_KINDS`].
fn classify(e: &(dyn std::error::Error + 'static)) -> usize {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return 1;
            }
            if h.is_timeout() {
                return 2;
            }
            if h.is_parse() || h.is_parse_status() {
                return 0;
            }
        }
        cur = err.source();
    }
    3
}
