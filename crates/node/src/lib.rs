//! `meridian-node`: what one region's process does (`meridian node`).
//!
//! [`run()`] binds the region's listeners, starts one emulated WAN link per
//! peer when the topology asks for emulation, joins the peer mesh, opens
//! the store, starts replication, serves the Redis endpoint and the HTTP
//! API, and stops cleanly when its shutdown token is cancelled.
//!
//! # Layout
//! - [`run`](mod@run): start-up and wiring ([`StartError`] says why a
//!   start failed); [`state`]: [`Node`], what the
//!   HTTP API reads.
//! - [`http`]: the admin/data/table routes, their auth, errors and metrics.
//! - [`remote`]: the Redis endpoint's cross-region requests over the
//!   replicator's calls, and the handler that answers peers'.
//! - [`info`]: the cluster lines of the Redis endpoint's `INFO`; [`lag`]:
//!   replication lag per origin, for it and for `/status`.
//! - [`links`], [`residency`]: emulated links and their capture; following
//!   which tables this region holds.
//! - [`load`]: the paced write generator the benchmarks drive.
//! - [`edge`](mod@edge): the edge proxy's WAN links, start and drain marker.
//! - [`metrics`]: every layer's Prometheus collectors in one registry.
//!
//! It speaks to tools only through [`meridian_api`]'s types and never
//! imports the tools (`meridian-lab`).

#![warn(missing_docs)]

pub mod edge;
pub mod error;
pub mod http;
pub mod info;
pub mod lag;
pub mod links;
pub mod load;
pub mod metrics;
pub mod remote;
pub mod residency;
pub mod run;
pub mod state;

pub use error::StartError;
pub use run::{run, NodeOptions};
pub use state::Node;
