//! The node's HTTP API (axum): admin, data and table routes on the admin
//! listener.
//!
//! | route | auth | what | module |
//! |---|---|---|---|
//! | `GET /health` | none | liveness and readiness | [`status`] |
//! | `GET /status` | none | [`NodeStatus`](meridian_api::status::NodeStatus) as JSON | [`status`] |
//! | `GET /metrics` | none | Prometheus text format | [`metrics`] |
//! | `GET /admin/links`, `PUT /admin/links/{peer}` | token | emulated links | [`links`] |
//! | `/data/{table}/{key}`, `/conflicts` | token | the data API | [`data`] |
//! | `GET /digest` | none | convergence digests | [`digest`] |
//! | `GET /tables`, `PUT /admin/tables/{table}/mode` | token for changes | table modes | [`tables`] |
//! | `POST /admin/bench/load` | token | the benchmark load generator | [`load`] |
//! | `POST /admin/faults/…`, `POST /admin/replication/reset-lag` | token | fault injection, lag reset | [`faults`] |
//!
//! Mutating and fault-injection routes need `Authorization: Bearer <token>`
//! with the cluster's `admin_token` ([`auth`]); without one configured they
//! refuse everyone. Errors are JSON `{"error": "..."}` with the HTTP status
//! chosen in one place ([`error`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use meridian_api::data::VALUE_BYTES_MAX;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::Node;

pub mod auth;
pub mod data;
pub mod digest;
pub mod error;
pub mod faults;
pub mod links;
pub mod load;
pub mod metrics;
pub mod status;
pub mod tables;

pub use error::ApiError;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    node: Arc<Node>,
    /// Requests refused for a missing or wrong token, for `/metrics`.
    pub(crate) unauthorized: Arc<AtomicU64>,
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

/// Every route of the admin listener.
fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(status::health))
        .route("/status", get(status::status))
        .route("/metrics", get(metrics::metrics))
        .route("/admin/links", get(links::list))
        .route("/admin/links/{peer}", put(links::patch))
        .route(
            "/data/{table}/{key}",
            put(data::put).get(data::get).delete(data::delete),
        )
        .route("/data/{table}/{key}/incr", post(data::incr))
        .route("/conflicts", get(data::conflicts))
        .route("/digest", get(digest::digest))
        .route("/tables", get(tables::list))
        .route("/admin/tables/{table}/mode", put(tables::change))
        .route("/admin/bench/load", post(load::bench_load))
        .route(
            "/admin/faults/forget/{table}/{key}",
            post(faults::forget_key),
        )
        .route("/admin/replication/reset-lag", post(faults::reset_lag))
        // Values up to the limit plus room for nothing else: the data API
        // takes raw bodies.
        .layer(DefaultBodyLimit::max(VALUE_BYTES_MAX + 1))
        .with_state(state)
}
