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
//! | `GET /edge`, `PUT /admin/edge/backends`, `POST /admin/edge/drain`, `…/undrain`, `GET /health/regions` | token for changes | the edge proxy and region health | [`edge`] |
//! | `POST /admin/bench/load` | token | the benchmark load generator | [`load`] |
//! | `POST /admin/faults/…`, `POST /admin/replication/reset-lag` | token | fault injection, lag reset | [`faults`] |
//!
//! Mutating and fault-injection routes need `Authorization: Bearer <token>`
//! with the cluster's `admin_token` ([`auth`]); without one configured they
//! refuse everyone. Errors are JSON `{"error": "..."}` with the HTTP status
//! chosen in one place ([`error`]). `router` maps routes to handlers and
//! serves them; the handlers' shared state ([`AdminState`]) sits here,
//! below both.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::state::Node;

pub mod auth;
pub mod data;
pub mod digest;
pub mod edge;
pub mod error;
pub mod faults;
pub mod links;
pub mod load;
pub mod metrics;
mod router;
pub mod status;
pub mod tables;

pub use error::ApiError;
pub use router::serve;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    node: Arc<Node>,
    /// Requests refused for a missing or wrong token, for `/metrics`.
    pub(crate) unauthorized: Arc<AtomicU64>,
    /// Every layer's metric collectors, encoded at scrape time.
    metrics: Arc<prometheus_client::registry::Registry>,
}

impl AdminState {
    /// The node served.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// State for `node`.
    pub fn new(node: Arc<Node>) -> Self {
        let unauthorized = Arc::<AtomicU64>::default();
        let metrics = Arc::new(crate::metrics::registry(&node, unauthorized.clone()));
        AdminState {
            node,
            unauthorized,
            metrics,
        }
    }
}
