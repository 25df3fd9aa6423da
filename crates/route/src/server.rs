//! The edge's listener: accepts client connections up to
//! `edge.client_connections_max` (beyond, a plain 503 and close), speaks
//! HTTP/1.1 with keep-alive or HTTP/2 (chosen by the connection preface),
//! and bounds every connection: `edge.header_timeout_ms` to send a request
//! head (slowloris; hyper starts that timer when the connection begins to
//! wait for a request, so it also bounds the keep-alive wait),
//! `edge.header_bytes_max` for it (431), and `edge.idle_timeout_ms` with
//! no request in flight, when that is shorter.

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

/// Concurrent HTTP/2 streams per client connection.
pub const H2_STREAMS_MAX: u32 = 256;

/// hyper's smallest read buffer; the header limit cannot go below it.
const H1_BUF_MIN: usize = 8192;

/// The answer to a connection over the limit, written raw: no HTTP state
/// is spent on it.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 58\r\nconnection: close\r\n\r\ntoo many connections to this edge (edge.client_connections_max)\n";

/// Accepts connections on `listener` until the edge's shutdown.
pub async fn serve(edge: Arc<Edge>, listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        edge.set_listen(addr);
        tracing::info!(region = %edge.region, %addr, "edge listening");
    }
    let builder = Arc::new(builder(&edge));
    loop {
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
        tokio::spawn(connection(edge.clone(), builder.clone(), stream, client));
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

/// When the connection last started or finished a request, and how many
/// it has in flight.
#[derive(Default)]
struct Activity {
    in_flight: AtomicU64,
    last_ms: AtomicU64,
}

async fn connection(
    edge: Arc<Edge>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    client: SocketAddr,
) {
    edge.stats.connections_open.fetch_add(1, Relaxed);
    let born = Instant::now();
    let activity = Arc::new(Activity::default());
    let svc = {
        let (edge, activity) = (edge.clone(), activity.clone());
        service_fn(move |req| {
            let (edge, activity) = (edge.clone(), activity.clone());
            async move {
                activity.in_flight.fetch_add(1, Relaxed);
                let resp = crate::proxy::handle(edge, client, req).await;
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
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = edge.shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep(tick), if !closing => {
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
