//! `meridian-route`: the traffic layer. Every node runs an edge proxy in
//! front of its region's app instances: it balances requests over the
//! healthy ones, checks them actively and passively, retries idempotent
//! requests within a budget, breaks circuits, limits rates and sizes, and
//! when the region cannot serve, forwards to the nearest healthy region's
//! edge over the (emulated) WAN. Every node probes every other region's
//! edge; a region is down only by a quorum of observers.
//!
//! # Layout
//! - [`policy`]: the pure decisions (health hysteresis, outlier ejection,
//!   balancing, stickiness, retries, quorum, routes, headers).
//! - the runtime, thin: `pool` (instances and their live state), `checker`
//!   (active checks), `probe` (region probes and the board), `upstream`
//!   (the HTTP client to instances and other edges), `limit` (rate
//!   limits), `proxy` (one request's path), `edge` ([`Edge`], the whole,
//!   and its server), `metrics` ([`RouteMetrics`]).
//!
//! Does not own: the table modes (the node passes a [`HomeOf`] lookup), the
//! admin API (the node serves [`Edge`]'s views), the app processes (`up`).

#![warn(missing_docs)]

pub mod checker;
pub mod edge;
pub mod limit;
pub mod outbound;
pub mod policy;
pub mod pool;
pub mod probe;
pub mod proxy;
pub mod server;
pub mod stats;
pub mod upstream;

pub use edge::{Edge, EdgeError, EdgeSetup, HomeOf};
pub mod metrics;
pub use metrics::RouteMetrics;
