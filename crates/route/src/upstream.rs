//! [`Upstream`]: the HTTP/1.1 client the edge sends requests with — to the
//! region's instances and to other regions' edges (through the emulated
//! WAN link's local end). Keep-alive connections per destination and
//! thread, a connect timeout, and a request timeout until the response
//! head; failures are told apart by whether the request may have been
//! sent, because only a request that was never sent may go elsewhere
//! whatever its method.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// A request body going out: buffered (can be sent again) or streamed
/// once from the client, capped at `edge.body_bytes_max`.
pub type OutBody = Either<Full<Bytes>, Limited<Incoming>>;

/// What the edge answers a client with: an upstream's body passed
/// through, or its own.
pub type EdgeBody = Either<Incoming, Full<Bytes>>;

/// Idle keep-alive connections kept per destination. Enough for the
/// concurrency one instance sees in the benchmarks; beyond it, connections
/// close after their request.
pub const IDLE_PER_DESTINATION_MAX: usize = 512;

/// How long an idle pooled connection is kept. Below the usual app
/// server's keep-alive (60 s+), so the edge closes first and never sends
/// on a connection the app is closing.
pub const POOL_IDLE: Duration = Duration::from_secs(30);

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Could not connect: the request was never sent.
    #[error("connect failed: {0}")]
    Connect(String),
    /// No response head within the request timeout: it may have run.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The connection broke (reset, closed, garbage): it may have run.
    #[error("{0}")]
    Broken(String),
}

impl UpstreamError {
    /// Whether the request certainly never reached the destination.
    pub fn never_sent(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }

    /// The metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Broken(_) => "broken",
        }
    }
}

/// The client: a per-thread pool of HTTP/1.1 connections per destination.
///
/// Written on hyper's connection API rather than hyper-util's pooled
/// client: the edge's profile against haproxy showed that client's
/// checkout (a shared map behind a lock, hashed per request) among the
/// largest costs of a forwarded request. Each thread keeps its own
/// connections (the edge's threads never share them, so there is no lock),
/// a request that the connection never took (it closed first) is sent
/// again on a fresh one, and whether a failed request may have run is
/// known from hyper's answer rather than guessed.
#[derive(Clone, Debug)]
pub struct Upstream {
    connect_timeout: Duration,
    request_timeout: Duration,
}

type Sender = hyper::client::conn::http1::SendRequest<OutBody>;

/// One destination's connections, each with when it was last put back.
type Idle = Vec<(SocketAddr, Vec<(Sender, Instant)>)>;

thread_local! {
    /// This thread's connections by destination, with when each was last
    /// put back. Senders busy with a response body stay listed; they are
    /// skipped until they are ready again.
    static IDLE: std::cell::RefCell<Idle> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A ready connection to `dest` from this thread's pool, dropping closed
/// and expired ones on the way.
fn take_idle(dest: SocketAddr, now: Instant) -> Option<Sender> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let (_, list) = idle.iter_mut().find(|(d, _)| *d == dest)?;
        list.retain(|(s, at)| !s.is_closed() && now.duration_since(*at) < POOL_IDLE);
        let i = list.iter().rposition(|(s, _)| s.is_ready())?;
        Some(list.swap_remove(i).0)
    })
}

/// Puts `sender` back for later requests to `dest` (dropped, closing its
/// connection after the exchange in flight, if the pool is full).
fn put_idle(dest: SocketAddr, sender: Sender, now: Instant) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let i = match idle.iter().position(|(d, _)| *d == dest) {
            Some(i) => i,
            None => {
                idle.push((dest, Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[i].1;
        if list.len() < IDLE_PER_DESTINATION_MAX {
            list.push((sender, now));
        }
    });
}

impl Upstream {
    /// A client with these timeouts.
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        Upstream {
            connect_timeout,
            request_timeout,
        }
    }

    async fn connect(&self, dest: SocketAddr) -> Result<Sender, UpstreamError> {
        let stream =
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(dest))
                .await
                .map_err(|_| {
                    UpstreamError::Connect(format!(
                        "no connection to {dest} within {:?}",
                        self.connect_timeout
                    ))
                })?
                .map_err(|e| UpstreamError::Connect(format!("{dest}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends `req` (origin-form URI, with a `Host` header) to `dest`,
    /// waiting up to the request timeout, or `timeout` when given, for the
    /// response head.
    pub async fn send(
        &self,
        dest: SocketAddr,
        req: Request<OutBody>,
        timeout: Option<Duration>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let limit = timeout.unwrap_or(self.request_timeout);
        let deadline = tokio::time::Instant::now() + limit;
        let mut req = req;
        // A pooled connection may close before it takes the request; then
        // the request comes back unsent and goes once more, on a new one.
        for fresh in [false, true] {
            let pooled = if fresh {
                None
            } else {
                take_idle(dest, Instant::now())
            };
            let mut sender = match pooled {
                Some(s) => s,
                None => tokio::time::timeout_at(deadline, self.connect(dest))
                    .await
                    .map_err(|_| {
                        UpstreamError::Connect(format!("no connection to {dest} within {limit:?}"))
                    })??,
            };
            match tokio::time::timeout_at(deadline, sender.try_send_request(req)).await {
                // Dropping the exchange closes that connection: it is not reused.
                Err(_) => return Err(UpstreamError::Timeout(limit)),
                Ok(Ok(resp)) => {
                    put_idle(dest, sender, Instant::now());
                    return Ok(resp);
                }
                Ok(Err(mut e)) => match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    Some(_) => return Err(UpstreamError::Connect(error_chain(e.error()))),
                    None => return Err(UpstreamError::Broken(error_chain(e.error()))),
                },
            }
        }
        unreachable!("the second attempt always returns")
    }
}

/// An error and its sources in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
