//! [`Upstream`]: the HTTP/1.1 client the edge sends requests with — to the
//! region's instances and to other regions' edges (through the emulated
//! WAN link's local end). Keep-alive connections per destination and
//! thread, a connect timeout, and a request timeout until the response
//! head; failures are told apart by whether the request may have been
//! sent, because only a request that was never sent may go elsewhere
//! whatever its method.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request body going out: buffered (can be sent again) or streamed
/// once from the client, capped at `edge.body_bytes_max`.
pub type OutBody = Either<Full<Bytes>, Limited<Incoming>>;

/// What the edge answers a client with: an upstream's body passed
/// through, or its own.
pub type EdgeBody = Either<UpBody, Full<Bytes>>;

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

/// The connection's own future: hyper's HTTP/1 state machine over the
/// socket. It is polled by whoever is using the connection — the request's
/// task while it waits for the head, then the response body — never by a
/// task of its own, so a forwarded request wakes no second task and
/// crosses no channel to one (the profile's next cost after the pool).
type Conn = Pin<Box<hyper::client::conn::http1::Connection<TokioIo<TcpStream>, OutBody>>>;

/// An idle connection: the sender, its connection, when it was put back.
type Parked = (Sender, Conn, Instant);

/// One destination's idle connections.
type Idle = Vec<(SocketAddr, Vec<Parked>)>;

thread_local! {
    /// This thread's idle connections by destination. Only connections
    /// whose last response ended are here.
    static IDLE: std::cell::RefCell<Idle> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Polls `conn` once without a waker that matters: lets hyper take in
/// what arrived while it was idle (the other side closing, most often).
/// `false` when the connection is over.
fn nudge(conn: &mut Conn) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    conn.as_mut().poll(&mut cx).is_pending()
}

/// A ready connection to `dest` from this thread's pool, dropping closed
/// and expired ones on the way.
fn take_idle(dest: SocketAddr, now: Instant) -> Option<(Sender, Conn)> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let (_, list) = idle.iter_mut().find(|(d, _)| *d == dest)?;
        while let Some((sender, mut conn, at)) = list.pop() {
            if now.duration_since(at) < POOL_IDLE && nudge(&mut conn) && sender.is_ready() {
                return Some((sender, conn));
            }
        }
        None
    })
}

/// Puts a connection back for later requests to `dest` (dropped, which
/// closes it, if the pool is full).
fn put_idle(dest: SocketAddr, sender: Sender, conn: Conn) {
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
            list.push((sender, conn, Instant::now()));
        }
    });
}

/// A response body that drives its connection: polling the body polls the
/// connection first, and a body that ended puts the connection back into
/// this thread's pool (one dropped before its end closes it).
pub struct UpBody {
    inner: Incoming,
    conn: Option<(Sender, Conn)>,
    dest: SocketAddr,
}

impl std::fmt::Debug for UpBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpBody")
            .field("dest", &self.dest)
            .finish_non_exhaustive()
    }
}

impl UpBody {
    fn park(&mut self) {
        if let Some((sender, conn)) = self.conn.take() {
            put_idle(self.dest, sender, conn);
        }
    }
}

impl hyper::body::Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some((_, conn)) = this.conn.as_mut() {
            if conn.as_mut().poll(cx).is_ready() {
                // Closed or failed: the body gets whatever hyper delivered.
                this.conn = None;
            }
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.park();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpBody {
    fn drop(&mut self) {
        // An empty body (HEAD, 204, 304) may never be polled at all.
        if hyper::body::Body::is_end_stream(&self.inner) {
            self.park();
        }
    }
}

impl Upstream {
    /// A client with these timeouts.
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        Upstream {
            connect_timeout,
            request_timeout,
        }
    }

    async fn connect(&self, dest: SocketAddr) -> Result<(Sender, Conn), UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(dest))
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
        Ok((sender, Box::pin(conn)))
    }

    /// Sends `req` (origin-form URI, with a `Host` header) to `dest`,
    /// waiting up to the request timeout, or `timeout` when given, for the
    /// response head.
    pub async fn send(
        &self,
        dest: SocketAddr,
        req: Request<OutBody>,
        timeout: Option<Duration>,
    ) -> Result<Response<UpBody>, UpstreamError> {
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
            let (mut sender, mut conn) = match pooled {
                Some(c) => c,
                None => tokio::time::timeout_at(deadline, self.connect(dest))
                    .await
                    .map_err(|_| {
                        UpstreamError::Connect(format!("no connection to {dest} within {limit:?}"))
                    })??,
            };
            let exchange = sender.try_send_request(req);
            let mut exchange = std::pin::pin!(exchange);
            let mut alive = true;
            // Drive the connection while waiting for the head; if it ends
            // first, the exchange resolves with hyper's error.
            let answer = std::future::poll_fn(|cx| {
                if alive && conn.as_mut().poll(cx).is_ready() {
                    alive = false;
                }
                exchange.as_mut().poll(cx)
            });
            match tokio::time::timeout_at(deadline, answer).await {
                // Dropping the exchange closes that connection: it is not reused.
                Err(_) => return Err(UpstreamError::Timeout(limit)),
                Ok(Ok(resp)) => {
                    let conn = alive.then_some((sender, conn));
                    return Ok(resp.map(|inner| UpBody { inner, conn, dest }));
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
