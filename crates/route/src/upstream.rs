//! [`Upstream`]: the HTTP/1.1 client the edge sends requests with — to the
//! region's instances and to other regions' edges (through the emulated
//! WAN link's local end). One keep-alive pool per destination, a connect
//! timeout, and a request timeout until the response head; failures are
//! told apart by whether the request may have been sent, because only a
//! request that was never sent may go elsewhere whatever its method.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

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

/// The client.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<HttpConnector, OutBody>,
    request_timeout: Duration,
}

impl Upstream {
    /// A client with these timeouts.
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(IDLE_PER_DESTINATION_MAX)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Upstream {
            client,
            request_timeout,
        }
    }

    /// Sends `req` (its URI names the destination), waiting up to the
    /// request timeout, or `timeout` when given, for the response head.
    pub async fn send(
        &self,
        req: Request<OutBody>,
        timeout: Option<Duration>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let limit = timeout.unwrap_or(self.request_timeout);
        match tokio::time::timeout(limit, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(limit)),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect(error_chain(&e))),
            Ok(Err(e)) => Err(UpstreamError::Broken(error_chain(&e))),
        }
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
