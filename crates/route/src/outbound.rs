//! [`Outbound`]: a client's request as the edge sends it on — to an
//! instance, another region's edge, or a table's home. The body is read
//! once: buffered when it is small enough to send again (a retry, a
//! replay, a cross-region forward), else streamed once. Hop-by-hop headers
//! are dropped and the forwarding headers added (by the first edge only:
//! a later edge would name the link, not the client).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::http::request::Parts;
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Uri, Version};
use meridian_core::RegionName;

use crate::policy::retry::is_idempotent;
use crate::upstream::OutBody;

/// Header names the edge reads or writes, parsed once (a `&str` name is
/// parsed and hashed on every use).
pub mod names {
    use hyper::header::HeaderName;
    use meridian_api::edge::{HOP_HEADER, REGION_HEADER, REPLAY_HEADER};

    /// `x-meridian-hop`.
    pub const HOP: HeaderName = HeaderName::from_static(HOP_HEADER);
    /// `x-meridian-region`.
    pub const REGION: HeaderName = HeaderName::from_static(REGION_HEADER);
    /// `meridian-replay`.
    pub const REPLAY: HeaderName = HeaderName::from_static(REPLAY_HEADER);
    /// `x-forwarded-for`.
    pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    /// `idempotency-key`.
    pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
    /// `keep-alive`.
    pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    /// `proxy-connection`.
    pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
}

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    hyper::header::CONNECTION,
    names::KEEP_ALIVE,
    names::PROXY_CONNECTION,
    hyper::header::PROXY_AUTHENTICATE,
    hyper::header::PROXY_AUTHORIZATION,
    hyper::header::TE,
    hyper::header::TRAILER,
    hyper::header::TRANSFER_ENCODING,
];

/// Why a request body could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit (413).
    #[error("request body is larger than {limit} bytes (edge.body_bytes_max)")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The client stopped sending mid-body (400).
    #[error("request body ended early: {0}")]
    Broken(String),
}

enum Payload {
    Buffered(Bytes),
    /// Streamed from the client; `None` once sent.
    Stream(Option<Limited<Incoming>>),
}

/// A request on its way on.
pub struct Outbound {
    /// Its method.
    pub method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    payload: Payload,
    /// Regions it passed before this edge.
    pub hops: Vec<RegionName>,
    /// Whether it may be sent twice: its method, or an `Idempotency-Key`.
    pub idempotent: bool,
}

impl Outbound {
    /// Takes a client's request: reads the body (buffered up to
    /// `replay_max` bytes, else streamed, never more than `body_max`),
    /// cleans the headers, and adds the forwarding headers when this is the
    /// first edge (`hops` empty).
    pub async fn read(
        parts: Parts,
        body: Incoming,
        client: &Client,
        hops: Vec<RegionName>,
        body_max: usize,
        replay_max: usize,
    ) -> Result<Outbound, BodyError> {
        let hint = body.size_hint();
        if hint.lower() > body_max as u64 {
            return Err(BodyError::TooLarge { limit: body_max });
        }
        let small = hint.upper().is_some_and(|u| u <= replay_max as u64);
        let payload = if hint.exact() == Some(0) {
            // No body (most GETs): nothing to read or copy.
            drop(body);
            Payload::Buffered(Bytes::new())
        } else if small {
            let bytes = Limited::new(body, replay_max)
                .collect()
                .await
                .map_err(|e| BodyError::Broken(e.to_string()))?
                .to_bytes();
            Payload::Buffered(bytes)
        } else {
            Payload::Stream(Some(Limited::new(body, body_max)))
        };
        let mut headers = parts.headers;
        for h in &HOP_BY_HOP {
            headers.remove(h);
        }
        if !headers.contains_key(HOST) {
            // HTTP/2 carries the host in the URI (`:authority`).
            if let Some(v) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                headers.insert(HOST, v);
            }
        }
        if hops.is_empty() {
            add_forwarded(&mut headers, client);
        }
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let idempotent = is_idempotent(
            parts.method.as_str(),
            headers.contains_key(&names::IDEMPOTENCY_KEY),
        );
        Ok(Outbound {
            idempotent,
            method: parts.method,
            path_and_query,
            headers,
            payload,
            hops,
        })
    }

    /// The request path.
    pub fn path(&self) -> &str {
        self.path_and_query.path()
    }

    /// Its headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Whether it can be sent again (its body is buffered).
    pub fn replayable(&self) -> bool {
        matches!(self.payload, Payload::Buffered(_))
    }

    /// Whether it can still be sent at all.
    pub fn sendable(&self) -> bool {
        !matches!(self.payload, Payload::Stream(None))
    }

    /// The request to send on (origin-form: the destination is the
    /// connection's); with `hop_from`, marked as forwarded by that
    /// region (added to the hops it carries). `None` if a streamed body was
    /// already sent.
    pub fn to(&mut self, hop_from: Option<&RegionName>) -> Option<Request<OutBody>> {
        let body = match &mut self.payload {
            Payload::Buffered(b) => Either::Left(Full::new(b.clone())),
            Payload::Stream(s) => Either::Right(s.take()?),
        };
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(Uri::from(self.path_and_query.clone()))
            .version(Version::HTTP_11)
            .body(body)
            .ok()?;
        *req.headers_mut() = self.headers.clone();
        if let Some(me) = hop_from {
            let mut hops: Vec<&str> = self.hops.iter().map(RegionName::as_str).collect();
            hops.push(me.as_str());
            let v = HeaderValue::from_str(&hops.join(",")).ok()?;
            req.headers_mut().insert(names::HOP, v);
        }
        Some(req)
    }
}

/// A client connection's address and its forwarding header values,
/// formatted once per connection rather than per request.
#[derive(Clone, Debug)]
pub struct Client {
    /// The address.
    pub addr: SocketAddr,
    /// Its IP as `X-Forwarded-For` text.
    xff: HeaderValue,
    /// Its `Forwarded` element (RFC 7239).
    forwarded: HeaderValue,
}

impl Client {
    /// The client at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let ip = addr.ip();
        let node = if ip.is_ipv6() {
            format!("\"[{ip}]\"")
        } else {
            ip.to_string()
        };
        Client {
            addr,
            xff: HeaderValue::from_str(&ip.to_string()).expect("an IP is header-safe"),
            forwarded: HeaderValue::from_str(&format!("for={node};proto=http"))
                .expect("an IP is header-safe"),
        }
    }
}

/// Appends the client to `X-Forwarded-For` and adds a `Forwarded` element
/// (RFC 7239).
fn add_forwarded(headers: &mut HeaderMap, client: &Client) {
    let joined = |prev: &HeaderValue, own: &HeaderValue| {
        let mut v = prev.as_bytes().to_vec();
        v.extend_from_slice(b", ");
        v.extend_from_slice(own.as_bytes());
        HeaderValue::from_bytes(&v).ok()
    };
    let xff = match headers.get(&names::X_FORWARDED_FOR) {
        Some(prev) => joined(prev, &client.xff),
        None => Some(client.xff.clone()),
    };
    if let Some(v) = xff {
        headers.insert(names::X_FORWARDED_FOR, v);
    }
    let fwd = match headers.get(hyper::header::FORWARDED) {
        Some(prev) => joined(prev, &client.forwarded),
        None => Some(client.forwarded.clone()),
    };
    if let Some(v) = fwd {
        headers.insert(hyper::header::FORWARDED, v);
    }
}
