//! One request's path through the edge:
//!
//! 1. the edge's own health answer, the hop header (a request that comes
//!    back to a region it passed is a loop: 508), the rate limits (429);
//! 2. the body (413 beyond `edge.body_bytes_max`);
//! 3. where it must go: a write on a `writes_to_home_of` route goes to the
//!    table's home; anything else to the local pool, unless the region is
//!    drained or has no instance that can serve, then to the nearest
//!    healthy region's edge;
//! 4. locally, instances are tried until one answers: a connect failure
//!    (never sent) moves on at once; a 5xx, timeout or reset is retried
//!    once the budget allows, after a jittered backoff, and only for an
//!    idempotent request whose body was buffered; passive checks see every
//!    outcome;
//! 5. an app's `meridian-replay: region=R` answer replays the request there.
//!
//! A request forwarded to another edge carries `x-meridian-hop`, and an
//! edge that sees it serves locally or fails: it never forwards again.

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, COOKIE, RETRY_AFTER, SET_COOKIE};
use hyper::{Request, Response, StatusCode};
use meridian_api::edge::{HOP_HEADER, REPLAY_HEADER};
use meridian_core::RegionName;

use crate::edge::Edge;
use crate::limit::{retry_after_secs, Limited, Scope};
use crate::outbound::{names, BodyError, Client, Outbound};
use crate::policy::replay::{parse_hops, parse_replay};
use crate::policy::retry::backoff;
use crate::policy::routes::{home_elsewhere, placement_of, Placement};
use crate::policy::sticky;
use crate::pool::{NoPick, Outcome};
use crate::stats::{EdgeStats, Rejection};
use crate::upstream::Upstream;

pub use crate::upstream::EdgeBody;

/// Most instances one request tries in its region.
pub const LOCAL_ATTEMPTS_MAX: usize = 4;

/// Most other regions one request is sent to before the edge gives up.
pub const FORWARD_REGIONS_MAX: usize = 2;

/// Serves one request from `client`.
pub async fn handle(
    edge: Arc<Edge>,
    up: Upstream,
    client: Arc<Client>,
    req: Request<Incoming>,
) -> Result<Response<EdgeBody>, Infallible> {
    if req.uri().path() == meridian_api::edge::EDGE_HEALTH_PATH {
        return Ok(health_response(&edge));
    }
    edge.stats.requests.fetch_add(1, Relaxed);
    let mut resp = route(&edge, &up, &client, req).await;
    if !resp.headers().contains_key(&names::REGION) {
        resp.headers_mut()
            .insert(names::REGION, edge.region_header.clone());
    }
    edge.stats.response(resp.status().as_u16());
    Ok(resp)
}

/// The edge's own health answer, read by other regions' probes.
fn health_response(edge: &Edge) -> Response<EdgeBody> {
    let body = serde_json::to_vec(&edge.health()).expect("health always encodes");
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(names::REGION, edge.region_header.clone());
    resp
}

/// An answer the edge makes itself: JSON `{"error", "region"}`.
pub fn own_answer(
    edge: &Edge,
    status: StatusCode,
    why: Rejection,
    message: String,
) -> Response<EdgeBody> {
    edge.stats.reject(why);
    let body = serde_json::json!({"error": message, "region": edge.region.as_str(), "reason": why.as_str()});
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body.to_string()))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn too_many(edge: &Edge, l: Limited) -> Response<EdgeBody> {
    let (why, what) = match l.scope {
        Scope::Client => (
            Rejection::RateLimitedClient,
            "this client's rate limit (edge.rate_limit_per_client)",
        ),
        Scope::Route => (
            Rejection::RateLimitedRoute,
            "this route's rate limit (routes.rate_limit)",
        ),
    };
    let secs = retry_after_secs(l.retry_after);
    let mut resp = own_answer(
        edge,
        StatusCode::TOO_MANY_REQUESTS,
        why,
        format!("over {what}; retry in {secs} s"),
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    resp
}

async fn route(
    edge: &Arc<Edge>,
    up: &Upstream,
    client: &Client,
    req: Request<Incoming>,
) -> Response<EdgeBody> {
    let (parts, body) = req.into_parts();
    let hops = match parts
        .headers
        .get(&names::HOP)
        .map(|v| parse_hops(v.as_bytes()))
    {
        None => Vec::new(),
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            return own_answer(
                edge,
                StatusCode::BAD_REQUEST,
                Rejection::BadHopHeader,
                format!("bad {HOP_HEADER} header: {e}"),
            )
        }
    };
    if hops.contains(&edge.region) {
        let msg = format!(
            "request came back to {} (hops: {hops:?}); refusing to loop",
            edge.region
        );
        return own_answer(edge, StatusCode::LOOP_DETECTED, Rejection::Loop, msg);
    }
    // One route lookup per request: its limit now, its placement below.
    let route = edge.routes.find(parts.uri.path());
    let placement = placement_of(route.map(|(_, r)| r), parts.method.as_str());
    if let Err(l) = edge.limits.check(client.addr.ip(), route.map(|(i, _)| i)) {
        return too_many(edge, l);
    }
    let c = &edge.config;
    let mut out = match Outbound::read(
        parts,
        body,
        client,
        hops,
        c.body_bytes_max,
        c.replay_body_bytes_max,
    )
    .await
    {
        Ok(o) => o,
        Err(e @ BodyError::TooLarge { .. }) => {
            return own_answer(
                edge,
                StatusCode::PAYLOAD_TOO_LARGE,
                Rejection::BodyTooLarge,
                e.to_string(),
            )
        }
        Err(e @ BodyError::Broken(_)) => {
            return own_answer(
                edge,
                StatusCode::BAD_REQUEST,
                Rejection::UpstreamFailed,
                e.to_string(),
            )
        }
    };
    if let Placement::HomeOf(table) = placement {
        if let Some(home) = home_elsewhere((edge.home_of)(&table).as_ref(), &edge.region) {
            if out.hops.is_empty() {
                return to_home(edge, up, &mut out, &table, home).await;
            }
        }
    }
    let first_edge = out.hops.is_empty();
    if edge.is_draining() && first_edge {
        return elsewhere(edge, up, &mut out, "drained").await;
    }
    match serve_local(edge, up, &mut out).await {
        Local::Answered(resp) => after_local(edge, up, &mut out, resp).await,
        Local::Final(resp) => resp,
        Local::Unavailable { why, elsewhere_ok }
            if first_edge && elsewhere_ok && why != NoPick::AllBusy =>
        {
            elsewhere(edge, up, &mut out, "no healthy instance").await
        }
        Local::Unavailable { why, .. } => unavailable(edge, why),
    }
}

fn unavailable(edge: &Edge, why: NoPick) -> Response<EdgeBody> {
    match why {
        NoPick::AllBusy => own_answer(
            edge,
            StatusCode::SERVICE_UNAVAILABLE,
            Rejection::BreakerOpen,
            format!(
                "circuit open: every healthy instance has {} requests in flight (edge.max_pending_per_backend)",
                edge.config.max_pending_per_backend.min(edge.config.max_connections_per_backend)
            ),
        ),
        NoPick::NoneHealthy => own_answer(
            edge,
            StatusCode::SERVICE_UNAVAILABLE,
            Rejection::NoInstance,
            format!("no healthy instance in {}", edge.region),
        ),
    }
}

/// What the local pool made of a request.
enum Local {
    /// An instance answered (maybe 5xx, when no retry was left).
    Answered(Response<EdgeBody>),
    /// A final error answer.
    Final(Response<EdgeBody>),
    /// No instance took it; `elsewhere_ok` when it may still go to
    /// another region (never sent anywhere, or safe to repeat).
    Unavailable { why: NoPick, elsewhere_ok: bool },
}

async fn serve_local(edge: &Arc<Edge>, up: &Upstream, out: &mut Outbound) -> Local {
    let idempotent = out.idempotent;
    let pinned = edge.config.sticky_cookie.as_deref().and_then(|name| {
        out.headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| sticky::pinned(v, name))
    });
    let mut rng = fastrand::Rng::new();
    let mut tried: Vec<u64> = Vec::new();
    // Whether every failure so far was a connect failure (nothing sent).
    let mut nothing_sent = true;
    edge.count_request(Instant::now());
    for attempt in 0..LOCAL_ATTEMPTS_MAX {
        let picked = match edge.pool.pick(pinned, &tried, Instant::now(), &mut rng) {
            Ok(p) => p,
            Err(why) => {
                let elsewhere_ok = nothing_sent || (idempotent && out.replayable());
                return Local::Unavailable { why, elsewhere_ok };
            }
        };
        if attempt > 0 && !nothing_sent {
            edge.stats.retries.fetch_add(1, Relaxed);
            tokio::time::sleep(backoff(
                Duration::from_millis(edge.config.retry_backoff_ms),
                attempt as u32,
                &mut rng,
            ))
            .await;
        }
        let b = picked.backend;
        let Some(req) = out.to(None) else {
            return Local::Final(own_answer(
                edge,
                StatusCode::BAD_GATEWAY,
                Rejection::UpstreamFailed,
                "the streamed body was already sent once".into(),
            ));
        };
        b.in_flight.fetch_add(1, Relaxed);
        let result = up.send(b.addr, req, None).await;
        b.in_flight.fetch_sub(1, Relaxed);
        tried.push(b.id);
        let now = Instant::now();
        match result {
            Ok(resp) if !resp.status().is_server_error() => {
                edge.pool.record(&b, Outcome::Success, now);
                edge.stats.served_local.fetch_add(1, Relaxed);
                let mut resp = resp.map(Either::Left);
                if picked.repin {
                    if let Some(name) = &edge.config.sticky_cookie {
                        if let Ok(v) = HeaderValue::from_str(&sticky::set_cookie(name, b.id)) {
                            resp.headers_mut().append(SET_COOKIE, v);
                        }
                    }
                }
                return Local::Answered(resp);
            }
            Ok(resp) => {
                edge.pool.record(&b, Outcome::Failure, now);
                nothing_sent = false;
                if !(idempotent && out.replayable() && edge.take_retry(now)) {
                    edge.stats.served_local.fetch_add(1, Relaxed);
                    return Local::Answered(resp.map(Either::Left));
                }
            }
            Err(e) => {
                edge.pool.record(&b, Outcome::Failure, now);
                edge.stats.upstream_error(e.kind());
                tracing::debug!(backend = %b.addr, error = %e, "instance failed");
                if e.never_sent() && out.sendable() {
                    continue;
                }
                nothing_sent = false;
                if !(idempotent && out.replayable() && edge.take_retry(now)) {
                    let status = if matches!(e, crate::upstream::UpstreamError::Timeout(_)) {
                        StatusCode::GATEWAY_TIMEOUT
                    } else {
                        StatusCode::BAD_GATEWAY
                    };
                    return Local::Final(own_answer(
                        edge,
                        status,
                        Rejection::UpstreamFailed,
                        format!("instance {} failed: {e}", b.addr),
                    ));
                }
            }
        }
    }
    Local::Unavailable {
        why: NoPick::NoneHealthy,
        elsewhere_ok: nothing_sent || (idempotent && out.replayable()),
    }
}

/// Handles an app's `meridian-replay` answer, else passes the answer on.
async fn after_local(
    edge: &Arc<Edge>,
    up: &Upstream,
    out: &mut Outbound,
    resp: Response<EdgeBody>,
) -> Response<EdgeBody> {
    let Some(value) = resp.headers().get(&names::REPLAY) else {
        return resp;
    };
    if !out.hops.is_empty() {
        // A replayed or forwarded request is answered where it landed.
        let mut resp = resp;
        resp.headers_mut().remove(&names::REPLAY);
        return resp;
    }
    let target = match parse_replay(value.as_bytes()) {
        Ok(r) => r,
        Err(e) => {
            return own_answer(
                edge,
                StatusCode::BAD_GATEWAY,
                Rejection::BadReplayHeader,
                format!("the app answered a bad {REPLAY_HEADER} header: {e}"),
            )
        }
    };
    if target == edge.region || !edge.regions.peers.contains_key(&target) {
        return own_answer(
            edge,
            StatusCode::BAD_GATEWAY,
            Rejection::BadReplayHeader,
            format!("the app asked to replay in {target}, which is this region or has no edge"),
        );
    }
    if !out.replayable() {
        return own_answer(
            edge,
            StatusCode::BAD_GATEWAY,
            Rejection::BadReplayHeader,
            format!(
                "cannot replay: the body is larger than edge.replay_body_bytes_max ({} bytes)",
                edge.config.replay_body_bytes_max
            ),
        );
    }
    match forward(edge, up, out, std::slice::from_ref(&target), true).await {
        Ok(resp) => {
            EdgeStats::bump(&edge.stats.replayed, &target);
            resp
        }
        Err(e) => own_answer(
            edge,
            StatusCode::BAD_GATEWAY,
            Rejection::UpstreamFailed,
            format!("replay in {target} failed: {e}"),
        ),
    }
}

/// Sends a write to its table's home.
async fn to_home(
    edge: &Arc<Edge>,
    up: &Upstream,
    out: &mut Outbound,
    table: &str,
    home: RegionName,
) -> Response<EdgeBody> {
    if !edge.regions.peers.contains_key(&home) {
        return own_answer(
            edge,
            StatusCode::SERVICE_UNAVAILABLE,
            Rejection::NoInstance,
            format!("table {table}'s home {home} runs no edge"),
        );
    }
    match forward(edge, up, out, std::slice::from_ref(&home), false).await {
        Ok(resp) => {
            EdgeStats::bump(&edge.stats.to_home, &home);
            resp
        }
        Err(e) => own_answer(
            edge,
            StatusCode::SERVICE_UNAVAILABLE,
            Rejection::UpstreamFailed,
            format!("writes to {table} go to its home {home}, which did not answer: {e}"),
        ),
    }
}

/// Sends a request this region cannot serve to the nearest healthy region.
async fn elsewhere(
    edge: &Arc<Edge>,
    up: &Upstream,
    out: &mut Outbound,
    why: &str,
) -> Response<EdgeBody> {
    let (order, fail_open) = edge.forward_order();
    if order.is_empty() {
        return own_answer(
            edge,
            StatusCode::SERVICE_UNAVAILABLE,
            Rejection::NoInstance,
            format!("{} is {why} and no other region runs an edge", edge.region),
        );
    }
    if fail_open {
        tracing::debug!(region = %edge.region, "every region looks down: trying them all (fail open)");
    }
    match forward(edge, up, out, &order, false).await {
        Ok(resp) => resp,
        Err(e) => own_answer(
            edge,
            StatusCode::SERVICE_UNAVAILABLE,
            Rejection::NoInstance,
            format!(
                "{} is {why}, and no other region answered: {e}",
                edge.region
            ),
        ),
    }
}

/// Sends `out` to the first of `regions` that answers (at most
/// [`FORWARD_REGIONS_MAX`]); moves on after a connect failure, or after
/// any failure when the request is safe to repeat and the budget allows.
async fn forward(
    edge: &Arc<Edge>,
    up: &Upstream,
    out: &mut Outbound,
    regions: &[RegionName],
    replay: bool,
) -> Result<Response<EdgeBody>, String> {
    let idempotent = out.idempotent;
    let mut last = String::from("no region to send to");
    for region in regions.iter().take(FORWARD_REGIONS_MAX) {
        let Some(dial) = edge.regions.peers.get(region).copied() else {
            continue;
        };
        let Some(req) = out.to(Some(&edge.region)) else {
            return Err("the streamed body was already sent once".into());
        };
        match up.send(dial, req, None).await {
            Ok(resp) => {
                if !replay {
                    EdgeStats::bump(&edge.stats.forwarded, region);
                }
                return Ok(resp.map(Either::Left));
            }
            Err(e) => {
                tracing::debug!(%region, error = %e, "forward failed");
                // A failed forward counts as a failed probe of that region
                // in this node's own view (passive health for regions):
                // after `fall` of them, requests stop trying it until a
                // probe passes again, instead of each paying for the dead
                // region until the quorum verdict comes.
                let changed = edge.regions.board().probed(region, None, Instant::now());
                for (r, v) in changed {
                    tracing::warn!(region = %r, down = v.down, "region verdict changed (failed forwards)");
                }
                last = format!("{region}: {e}");
                let again = e.never_sent()
                    || (idempotent && out.replayable() && edge.take_retry(Instant::now()));
                if !again || !out.sendable() {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}
