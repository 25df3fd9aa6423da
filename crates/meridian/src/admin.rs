//! The admin HTTP API of a node (axum).
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /health` | none | liveness and readiness (200, or 503 while not ready) |
//! | `GET /status` | none | [`NodeStatus`] as JSON |
//! | `GET /metrics` | none | Prometheus text format |
//! | `GET /admin/links` | token | emulated links |
//! | `PUT /admin/links/{peer}` | token | change one link: [`LinkPatch`] |
//!
//! Mutating and fault-injection routes need `Authorization: Bearer <token>`
//! with the cluster's `admin_token`; without one configured they refuse
//! everyone. Errors are JSON `{"error": "..."}` with the HTTP status mapped
//! here, in one place.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use meridian_core::{LinkFigures, RegionName};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::data_api;
use crate::node::Node;
use crate::prom::{Kind, PromText};
use crate::report::{
    EmulatedLink, LagReport, LinkPatch, NodeStatus, PeerReport, ReplicationReport,
};
use meridian_store::digest::{table_digest, TableDigest};

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    node: Arc<Node>,
    unauthorized: Arc<AtomicU64>,
}

impl AdminState {
    /// The node served.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// State for `node`.
    pub fn new(node: Arc<Node>) -> Self {
        AdminState {
            node,
            unauthorized: Arc::default(),
        }
    }
}

/// Serves the API on `listener` until `shutdown`, finishing open requests.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/admin/links", get(list_links))
        .route("/admin/links/{peer}", put(patch_link))
        .route(
            "/data/{table}/{key}",
            put(data_api::put)
                .get(data_api::get)
                .delete(data_api::delete),
        )
        .route("/data/{table}/{key}/incr", post(data_api::incr))
        .route("/conflicts", get(data_api::conflicts))
        .route("/digest", get(digest))
        .route("/tables", get(crate::tables_api::list))
        .route("/admin/tables/{table}/mode", put(crate::tables_api::change))
        .route("/admin/bench/load", post(bench_load))
        .route("/admin/faults/forget/{table}/{key}", post(forget_key))
        .route("/admin/replication/reset-lag", post(reset_lag))
        // Values up to the limit plus room for nothing else: the data API
        // takes raw bodies.
        .layer(DefaultBodyLimit::max(data_api::VALUE_BYTES_MAX + 1))
        .with_state(state)
}

/// An error with its HTTP status; the body is `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl ApiError {
    /// An error answering `status` with `message`.
    pub fn new(status: StatusCode, message: String) -> Self {
        ApiError(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// Proof that the request carried the admin token.
pub struct AdminAuth;

impl FromRequestParts<AdminState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = match (&state.node.topology.admin_token, presented) {
            (Some(expected), Some(given)) => {
                constant_time_eq(expected.as_bytes(), given.as_bytes())
            }
            _ => false,
        };
        if ok {
            return Ok(AdminAuth);
        }
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        let why = if state.node.topology.admin_token.is_none() {
            "admin endpoints are disabled: set cluster.admin_token in the topology"
        } else {
            "missing or wrong admin token: send `Authorization: Bearer <admin_token>`"
        };
        Err(ApiError(StatusCode::UNAUTHORIZED, why.into()))
    }
}

/// Compares without an early exit, so timing does not leak the token.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(s): State<AdminState>) -> Response {
    let peers = s.node.mesh.status();
    let up = peers.iter().filter(|p| p.outbound_up).count();
    // A region serves its own clients whether or not peers are reachable
    // (multi-master), so readiness does not wait for the mesh.
    Json(json!({
        "status": "ok",
        "ready": true,
        "region": s.node.region,
        "peers_up": up,
        "peers_total": peers.len(),
    }))
    .into_response()
}

fn node_status(node: &Node) -> NodeStatus {
    NodeStatus {
        cluster: node.topology.cluster_name.clone(),
        region: node.region.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_s: node.started.elapsed().as_secs_f64(),
        emulate_wan: node.topology.emulate_wan,
        peers: node
            .mesh
            .status()
            .into_iter()
            .map(|link| {
                let emulated = node.links.get(&link.region).map(|c| {
                    let state = c.state();
                    EmulatedLink {
                        figures: LinkFigures::from(state.outbound),
                        partitioned: state.partitioned,
                        stats: c.stats(),
                    }
                });
                PeerReport { link, emulated }
            })
            .collect(),
        replication: Some(replication_report(node)),
    }
}

/// Replication lag per origin, quantiles to 0.1 ms since start (or the
/// last reset): for `/status` and the Redis endpoint's `INFO`.
pub(crate) fn lag_by_origin(db: &meridian_store::db::Db) -> BTreeMap<String, LagReport> {
    db.stats()
        .replication_latency
        .lock()
        .expect("stats lock is never poisoned")
        .iter()
        .map(|(origin, h)| {
            let ms = |q: f64| h.quantile(q).map(|s| s * 1000.0);
            (
                origin.to_string(),
                LagReport {
                    count: h.count(),
                    p50_ms: ms(0.5),
                    p99_ms: ms(0.99),
                    p999_ms: ms(0.999),
                    max_ms: (h.count() > 0).then(|| h.max() * 1000.0),
                    cdf_ms: {
                        let qs = crate::report::cdf_quantiles();
                        h.quantiles(&qs)
                            .map(|v| qs.iter().zip(v).map(|(q, s)| [*q, s * 1000.0]).collect())
                            .unwrap_or_default()
                    },
                },
            )
        })
        .collect()
}

fn replication_report(node: &Node) -> ReplicationReport {
    let repl = node.repl.status();
    let lag = lag_by_origin(&node.db);
    ReplicationReport {
        applied: node
            .db
            .applied()
            .iter()
            .map(|(r, s)| (r.to_string(), s))
            .collect(),
        peers: repl
            .peers
            .into_iter()
            .map(|(r, p)| (r.to_string(), p))
            .collect(),
        lag_from: lag,
    }
}

async fn status(State(s): State<AdminState>) -> Json<NodeStatus> {
    Json(node_status(&s.node))
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let node = &s.node;
    let region = node.region.as_str();
    let status = node_status(node);
    let mut p = PromText::default();
    p.family(
        "meridian_build_info",
        Kind::Gauge,
        "Always 1; labels carry the version and region.",
    );
    p.sample(
        "meridian_build_info",
        &[("version", &status.version), ("region", region)],
        1.0,
    );
    p.family(
        "meridian_uptime_seconds",
        Kind::Gauge,
        "Seconds since the node started.",
    );
    p.sample("meridian_uptime_seconds", &[], status.uptime_s);

    p.family(
        "meridian_peer_link_up",
        Kind::Gauge,
        "1 while the authenticated connection to or from the peer is alive.",
    );
    for peer in &status.peers {
        let r = peer.link.region.as_str();
        let out = f64::from(u8::from(peer.link.outbound_up));
        let inb = f64::from(u8::from(peer.link.inbound_up));
        p.sample(
            "meridian_peer_link_up",
            &[("peer", r), ("direction", "outbound")],
            out,
        );
        p.sample(
            "meridian_peer_link_up",
            &[("peer", r), ("direction", "inbound")],
            inb,
        );
    }
    p.family(
        "meridian_peer_link_rtt_seconds",
        Kind::Gauge,
        "Last heartbeat round-trip time to the peer.",
    );
    for peer in &status.peers {
        if let Some(rtt) = peer.link.rtt_ms {
            p.sample(
                "meridian_peer_link_rtt_seconds",
                &[("peer", peer.link.region.as_str())],
                rtt / 1000.0,
            );
        }
    }
    p.family(
        "meridian_peer_connects_total",
        Kind::Counter,
        "Successful authenticated connects to the peer.",
    );
    for peer in &status.peers {
        let r = peer.link.region.as_str();
        p.sample(
            "meridian_peer_connects_total",
            &[("peer", r)],
            peer.link.connects_total as f64,
        );
    }
    p.family(
        "meridian_peer_auth_failures_total",
        Kind::Counter,
        "Peer connections refused for bad credentials.",
    );
    p.sample(
        "meridian_peer_auth_failures_total",
        &[],
        node.mesh.auth_failures() as f64,
    );
    p.family(
        "meridian_admin_unauthorized_total",
        Kind::Counter,
        "Admin requests refused for a missing or wrong token.",
    );
    p.sample(
        "meridian_admin_unauthorized_total",
        &[],
        s.unauthorized.load(Ordering::Relaxed) as f64,
    );

    let emulated: Vec<_> = status
        .peers
        .iter()
        .filter_map(|p| p.emulated.as_ref().map(|e| (p.link.region.as_str(), e)))
        .collect();
    p.family(
        "meridian_wan_link_partitioned",
        Kind::Gauge,
        "1 while the emulated link to the peer is cut.",
    );
    for (r, e) in &emulated {
        p.sample(
            "meridian_wan_link_partitioned",
            &[("peer", r)],
            f64::from(u8::from(e.partitioned)),
        );
    }
    p.family(
        "meridian_wan_link_one_way_delay_seconds",
        Kind::Gauge,
        "Emulated one-way delay to the peer.",
    );
    for (r, e) in &emulated {
        p.sample(
            "meridian_wan_link_one_way_delay_seconds",
            &[("peer", r)],
            e.figures.rtt_ms / 2000.0,
        );
    }
    p.family(
        "meridian_wan_link_bytes_total",
        Kind::Counter,
        "Bytes carried by the emulated link on connections this node opened.",
    );
    for (r, e) in &emulated {
        p.sample(
            "meridian_wan_link_bytes_total",
            &[("peer", r), ("direction", "outbound")],
            e.stats.bytes_out as f64,
        );
        p.sample(
            "meridian_wan_link_bytes_total",
            &[("peer", r), ("direction", "inbound")],
            e.stats.bytes_in as f64,
        );
    }
    p.family(
        "meridian_wan_link_connections_refused_total",
        Kind::Counter,
        "Connections the emulated link refused (partitioned or target unreachable).",
    );
    for (r, e) in &emulated {
        p.sample(
            "meridian_wan_link_connections_refused_total",
            &[("peer", r)],
            e.stats.connections_refused as f64,
        );
    }
    replication_metrics(&mut p, node);
    endpoint_metrics(&mut p, node);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        p.finish(),
    )
        .into_response()
}

/// One unlabelled counter family.
fn counter(p: &mut PromText, name: &str, help: &str, v: u64) {
    p.family(name, Kind::Counter, help);
    p.sample(name, &[], v as f64);
}

/// The Redis endpoint's counters, its requests to other regions and the
/// table modes it applies.
fn endpoint_metrics(p: &mut PromText, node: &Node) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &node.resp.stats;
    let counters: [(&str, &str, u64); 6] = [
        (
            "meridian_redis_connections_received_total",
            "Redis connections accepted.",
            stats.connections_received.load(Relaxed),
        ),
        (
            "meridian_redis_connections_rejected_total",
            "Redis connections refused at resp.connections_max.",
            stats.rejected_connections.load(Relaxed),
        ),
        (
            "meridian_redis_commands_total",
            "Redis commands run.",
            stats.commands_processed.load(Relaxed),
        ),
        (
            "meridian_redis_error_replies_total",
            "Redis error replies sent.",
            stats.error_replies.load(Relaxed),
        ),
        (
            "meridian_redis_protocol_errors_total",
            "Redis connections closed for a protocol error.",
            stats.protocol_errors.load(Relaxed),
        ),
        (
            "meridian_redis_auth_failures_total",
            "Failed AUTH / HELLO AUTH.",
            stats.auth_failures.load(Relaxed),
        ),
    ];
    for (name, help, v) in counters {
        counter(p, name, help, v);
    }
    p.family(
        "meridian_redis_connections",
        Kind::Gauge,
        "Redis connections open now.",
    );
    p.sample(
        "meridian_redis_connections",
        &[],
        stats.connected.load(Relaxed) as f64,
    );
    for (map, what, help) in [
        (
            &stats.forwarded,
            "forwarded",
            "Commands sent to the region that serves their keys (a single-master home, an allowed region of a pinned table): send to answer.",
        ),
        (
            &stats.commit_points,
            "commit_point",
            "Strong reads' questions to a single-master home for its commit point: send to answer.",
        ),
    ] {
        let map = map.lock().expect("stats lock is never poisoned");
        let seconds = format!("meridian_{what}_request_seconds");
        p.family(&seconds, Kind::Histogram, help);
        for (to, r) in map.iter() {
            let h = r.seconds.snapshot();
            p.histogram(&seconds, &[("to", to.as_str())], &h.buckets, h.sum, h.count);
        }
        let total = format!("meridian_{what}_requests_total");
        p.family(
            &total,
            Kind::Counter,
            "Requests by outcome: answered, not_sent (link down: nothing ran), no_answer (timed out: a write may have run).",
        );
        for (to, r) in map.iter() {
            for (outcome, n) in [
                ("answered", r.answered),
                ("not_sent", r.not_sent),
                ("no_answer", r.no_answer),
            ] {
                p.sample(&total, &[("to", to.as_str()), ("outcome", outcome)], n as f64);
            }
        }
    }
    p.family(
        "meridian_table_epoch",
        Kind::Gauge,
        "Epoch of each table's mode as this region applies it (0: as configured; +1 per run-time change).",
    );
    let view = node.resp.modes.view();
    for t in &view.topology.tables {
        p.sample(
            "meridian_table_epoch",
            &[("table", &t.name)],
            view.epoch(&t.name) as f64,
        );
    }
}

fn replication_metrics(p: &mut PromText, node: &Node) {
    let me = node.region.as_str();
    let stats = node.db.stats();
    p.family(
        "meridian_replication_latency_seconds",
        Kind::Histogram,
        "Apply time at the destination minus commit time at the origin.",
    );
    for (origin, h) in stats
        .replication_latency
        .lock()
        .expect("stats lock is never poisoned")
        .iter()
    {
        let s = h.snapshot();
        p.histogram(
            "meridian_replication_latency_seconds",
            &[("from", origin.as_str()), ("to", me)],
            &s.buckets,
            s.sum,
            s.count,
        );
    }
    p.family(
        "meridian_store_commit_seconds",
        Kind::Histogram,
        "Time to merge and durably commit one batch (one fsync under the fsync policy).",
    );
    let c = stats.commit_seconds.snapshot();
    p.histogram(
        "meridian_store_commit_seconds",
        &[],
        &c.buckets,
        c.sum,
        c.count,
    );
    let repl = node.repl.status();
    p.family(
        "meridian_replication_pending_operations",
        Kind::Gauge,
        "Writes of this region the destination has not acknowledged.",
    );
    for (peer, r) in &repl.peers {
        p.sample(
            "meridian_replication_pending_operations",
            &[("from", me), ("to", peer.as_str())],
            r.pending_operations as f64,
        );
    }
    p.family(
        "meridian_replication_pending_bytes",
        Kind::Gauge,
        "Approximate bytes of those writes.",
    );
    for (peer, r) in &repl.peers {
        p.sample(
            "meridian_replication_pending_bytes",
            &[("from", me), ("to", peer.as_str())],
            r.pending_bytes as f64,
        );
    }
    p.family(
        "meridian_replication_failed_operations_total",
        Kind::Counter,
        "Writes whose delivery failed (lost link, stalled acknowledgements, gaps) and were sent again.",
    );
    for (peer, r) in &repl.peers {
        p.sample(
            "meridian_replication_failed_operations_total",
            &[("from", me), ("to", peer.as_str())],
            r.counters.retransmitted as f64,
        );
    }
    p.family(
        "meridian_replication_relayed_operations_total",
        Kind::Counter,
        "Other regions' writes this region relayed to the peer.",
    );
    for (peer, r) in &repl.peers {
        p.sample(
            "meridian_replication_relayed_operations_total",
            &[("via", me), ("to", peer.as_str())],
            r.counters.relayed as f64,
        );
    }
    p.family(
        "meridian_replication_applied_sequence",
        Kind::Gauge,
        "Version vector: highest contiguous sequence applied per origin.",
    );
    for (origin, seq) in node.db.applied().iter() {
        p.sample(
            "meridian_replication_applied_sequence",
            &[("origin", origin.as_str())],
            seq as f64,
        );
    }
    p.family(
        "meridian_conflicts_total",
        Kind::Counter,
        "Concurrent writes overwritten by another, detected in this region.",
    );
    for (table, n) in stats
        .conflicts
        .lock()
        .expect("stats lock is never poisoned")
        .iter()
    {
        p.sample("meridian_conflicts_total", &[("table", table)], *n as f64);
    }
    use std::sync::atomic::Ordering::Relaxed;
    counter(
        p,
        "meridian_hlc_remote_ahead_total",
        "Remote HLC stamps beyond the max clock offset (counted, not adopted).",
        stats.hlc_remote_ahead.load(Relaxed),
    );
    counter(
        p,
        "meridian_anti_entropy_repaired_keys_total",
        "Keys whose data anti-entropy repaired from a peer (should stay 0 without faults).",
        stats.repaired_keys.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_withheld_states_total",
        "Key states dropped because this region stopped holding their table (made pinned elsewhere at run time).",
        stats.withheld_states.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_withheld_entries_total",
        "Stored log entries rewritten as placeholders for the same reason.",
        stats.withheld_entries.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_purged_keys_total",
        "Expired keys whose data this region dropped (locally, never replicated).",
        stats.purged_keys.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_local_writes_total",
        "Writes accepted in this region.",
        stats.local_writes.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_remote_applied_total",
        "Replicated writes applied here.",
        stats.remote_applied.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_commits_total",
        "Storage commits (one fsync each under the fsync policy).",
        stats.commits.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_commit_failures_total",
        "Storage commits that failed; their writes were refused.",
        stats.commit_failures.load(Relaxed),
    );
    if let Some(log) = node.db.backend().log_stats() {
        counter(
            p,
            "meridian_store_logged_commits_total",
            "Commits made durable by one fdatasync of their write-ahead log record.",
            log.logged_commits,
        );
        p.family(
            "meridian_store_checkpoint_seconds",
            Kind::Histogram,
            "Checkpoints: the memtable (or a commit holding a value too large to log) made durable in the database file itself, in the background.",
        );
        let c = &log.checkpoint_seconds;
        p.histogram(
            "meridian_store_checkpoint_seconds",
            &[],
            &c.buckets,
            c.sum,
            c.count,
        );
        p.family(
            "meridian_store_wal_bytes",
            Kind::Gauge,
            "Write-ahead log bytes not yet checkpointed (replayed after a crash).",
        );
        p.sample("meridian_store_wal_bytes", &[], log.log_bytes as f64);
        p.family(
            "meridian_store_memtable_bytes",
            Kind::Gauge,
            "Bytes of commits held in memory until their checkpoint writes them to the database file.",
        );
        p.sample(
            "meridian_store_memtable_bytes",
            &[],
            log.memtable_bytes as f64,
        );
    }
}

/// `GET /digest`: per table this region holds, the keys readers see and a
/// hash of them (a pinned table appears only in its allowed regions).
async fn digest(
    State(s): State<AdminState>,
) -> Result<Json<BTreeMap<String, TableDigest>>, ApiError> {
    let node = s.node.clone();
    tokio::task::spawn_blocking(move || {
        let now = meridian_core::PhysicalClock::now_ms(&meridian_core::SystemClock);
        let mut out = BTreeMap::new();
        for table in node.resp.topology().tables_held_by(&node.region) {
            let d = table_digest(node.db.backend().as_ref(), &table, now)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            out.insert(table, d);
        }
        Ok(Json(out))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// `POST /admin/bench/load`: see [`crate::load`].
async fn bench_load(
    _: AdminAuth,
    State(s): State<AdminState>,
    Json(spec): Json<crate::load::LoadSpec>,
) -> Result<Json<crate::load::LoadReport>, ApiError> {
    spec.validate()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    tracing::info!(?spec, "benchmark load starting");
    Ok(Json(crate::load::run(s.node.db.clone(), spec).await))
}

/// `POST /admin/faults/forget/{table}/{key}`: fault injection — this
/// region loses the key's local state, as a damaged disk would. Nothing is
/// logged or replicated; anti-entropy must bring it back.
async fn forget_key(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.node
        .db
        .forget(&table, key.as_bytes())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    tracing::warn!(%table, %key, "fault injected: key state forgotten locally");
    Ok(Json(json!({ "forgotten": key })))
}

/// `POST /admin/replication/reset-lag`: forget lag samples (benchmarks
/// measure one phase at a time).
async fn reset_lag(_: AdminAuth, State(s): State<AdminState>) -> Json<serde_json::Value> {
    for h in s
        .node
        .db
        .stats()
        .replication_latency
        .lock()
        .expect("stats lock is never poisoned")
        .values()
    {
        h.reset();
    }
    Json(json!({ "reset": true }))
}

async fn list_links(_: AdminAuth, State(s): State<AdminState>) -> Json<NodeStatus> {
    Json(node_status(&s.node))
}

async fn patch_link(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path(peer): Path<String>,
    Json(patch): Json<LinkPatch>,
) -> Result<Json<PeerReport>, ApiError> {
    let node = &s.node;
    let name = RegionName::new(peer.clone())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    if node.topology.region(&name).is_none() || name == node.region {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("`{peer}` is not a peer of region {}", node.region),
        ));
    }
    let Some(control) = node.links.get(&name) else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "link emulation is off on this node: set wan.emulate = true to inject link faults"
                .into(),
        ));
    };
    let state = control.state();
    let mut figures = LinkFigures::from(state.outbound);
    if let Some(v) = patch.rtt_ms {
        figures.rtt_ms = v;
    }
    if let Some(v) = patch.jitter_ms {
        figures.jitter_ms = v;
    }
    if let Some(v) = patch.loss_pct {
        figures.loss_pct = v;
    }
    if let Some(v) = patch.bandwidth_mbit {
        figures.bandwidth_mbit = (v != 0.0).then_some(v);
    }
    let conditions = figures.to_conditions("link").map_err(|errors| {
        let msg = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ApiError(StatusCode::BAD_REQUEST, msg)
    })?;
    control.set_conditions(conditions, conditions);
    if let Some(p) = patch.partitioned {
        control.set_partitioned(p);
    }
    tracing::info!(peer = %name, ?patch, "link changed through the admin API");
    let report = node_status(node)
        .peers
        .into_iter()
        .find(|p| p.link.region == name)
        .expect("a configured peer always has a mesh entry");
    Ok(Json(report))
}
