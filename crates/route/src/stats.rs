//! [`EdgeStats`]: the edge's live counters, bumped on the request path with
//! relaxed atomics and read by `/metrics` ([`crate::RouteMetrics`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use meridian_core::RegionName;

/// Why the edge answered a request itself with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// 429: the client's rate limit.
    RateLimitedClient,
    /// 429: the route's rate limit.
    RateLimitedRoute,
    /// 413: the body is larger than `edge.body_bytes_max`.
    BodyTooLarge,
    /// 400: a malformed `x-meridian-hop` header.
    BadHopHeader,
    /// 508: the request came back to a region it passed.
    Loop,
    /// 503: every healthy instance is at the breaker's limit.
    BreakerOpen,
    /// 503: no instance here and no region to forward to.
    NoInstance,
    /// 502: an app's `meridian-replay` header did not parse.
    BadReplayHeader,
    /// 502/504: the instance or the region failed and no retry was left.
    UpstreamFailed,
    /// 503: the edge's client connection limit.
    TooManyConnections,
}

impl Rejection {
    /// Every reason, for the metric's series.
    pub const ALL: [Rejection; 10] = [
        Rejection::RateLimitedClient,
        Rejection::RateLimitedRoute,
        Rejection::BodyTooLarge,
        Rejection::BadHopHeader,
        Rejection::Loop,
        Rejection::BreakerOpen,
        Rejection::NoInstance,
        Rejection::BadReplayHeader,
        Rejection::UpstreamFailed,
        Rejection::TooManyConnections,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::RateLimitedClient => "rate_limited_client",
            Rejection::RateLimitedRoute => "rate_limited_route",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::BadHopHeader => "bad_hop_header",
            Rejection::Loop => "loop",
            Rejection::BreakerOpen => "breaker_open",
            Rejection::NoInstance => "no_instance",
            Rejection::BadReplayHeader => "bad_replay_header",
            Rejection::UpstreamFailed => "upstream_failed",
            Rejection::TooManyConnections => "too_many_connections",
        }
    }
}

/// The edge's counters.
#[derive(Debug)]
pub struct EdgeStats {
    /// Requests received (the edge's own health answers excluded).
    pub requests: AtomicU64,
    /// Responses by status class: 1xx..5xx at index 0..4.
    pub responses: [AtomicU64; 5],
    /// Requests answered by a local instance.
    pub served_local: AtomicU64,
    /// Retries on another instance (or region) after a failure.
    pub retries: AtomicU64,
    /// Retries the budget refused.
    pub retries_refused: AtomicU64,
    /// Requests sent to another region, by region.
    pub forwarded: BTreeMap<RegionName, AtomicU64>,
    /// Requests replayed on an app's `meridian-replay`, by region.
    pub replayed: BTreeMap<RegionName, AtomicU64>,
    /// Writes sent to a table's home, by region.
    pub to_home: BTreeMap<RegionName, AtomicU64>,
    /// Errors the edge answered itself, by reason.
    pub rejected: [AtomicU64; Rejection::ALL.len()],
    /// Failed sends to instances: connect, timeout, broken.
    pub upstream_errors: [AtomicU64; 3],
    /// Client connections accepted.
    pub connections: AtomicU64,
    /// Client connections open now.
    pub connections_open: AtomicU64,
    /// Client connections that ended in a protocol error: malformed
    /// request, header too large, header timeout (hyper answers 400/431 or
    /// closes), by kind.
    pub connection_errors: [AtomicU64; 4],
}

/// Labels of [`EdgeStats::connection_errors`].
pub const CONNECTION_ERROR_KINDS: [&str; 4] =
    ["malformed", "header_too_large", "header_timeout", "other"];

/// Labels of [`EdgeStats::upstream_errors`].
pub const UPSTREAM_ERROR_KINDS: [&str; 3] = ["connect", "timeout", "broken"];

impl EdgeStats {
    /// Counters for an edge whose other regions are `peers`.
    pub fn new(peers: &[RegionName]) -> Self {
        let map = || {
            peers
                .iter()
                .map(|p| (p.clone(), AtomicU64::new(0)))
                .collect()
        };
        EdgeStats {
            requests: AtomicU64::new(0),
            responses: Default::default(),
            served_local: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            retries_refused: AtomicU64::new(0),
            forwarded: map(),
            replayed: map(),
            to_home: map(),
            rejected: Default::default(),
            upstream_errors: Default::default(),
            connections: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connection_errors: Default::default(),
        }
    }

    /// Counts one rejection.
    pub fn reject(&self, why: Rejection) {
        let i = Rejection::ALL
            .iter()
            .position(|r| *r == why)
            .expect("ALL lists every reason");
        self.rejected[i].fetch_add(1, Relaxed);
    }

    /// Counts one response of `status`.
    pub fn response(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Relaxed);
    }

    /// Counts one failed send of `kind` (an [`UPSTREAM_ERROR_KINDS`] label).
    pub fn upstream_error(&self, kind: &str) {
        if let Some(i) = UPSTREAM_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.upstream_errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Bumps `region`'s counter in `map` (one of the per-region maps).
    pub fn bump(map: &BTreeMap<RegionName, AtomicU64>, region: &RegionName) {
        if let Some(c) = map.get(region) {
            c.fetch_add(1, Relaxed);
        }
    }
}
