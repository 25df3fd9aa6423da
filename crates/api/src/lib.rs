//! `meridian-api`: what crosses HTTP between a Meridian node and the tools
//! that drive it, as an operator's own tools would see it.
//!
//! The node (`meridian-node`) serves these types and the tools
//! (`meridian-lab`: `up`, `status`, `chaos`, `table`, the benchmarks and
//! chaos runs) read them; neither shares any other type with the other.
//! Only this crate derives serde types for HTTP: the layers below the node
//! keep their own types, and the node converts them here. The types are
//! built from `meridian-core`'s vocabulary (region names, version vectors,
//! link figures, table modes).
//!
//! # Layout
//! - [`status`]: `GET /status`, `GET /health`, link changes.
//! - [`data`]: the data routes' parameters and answers, conflicts, digests.
//! - [`edge`]: the edge's pool, region health, drain, the probe body.
//! - [`tables`]: `GET /tables` and mode changes.
//! - [`load`]: the benchmark load generator's request and report.
//! - [`supervisor`]: the API `meridian up` serves (kill, restart, app
//!   stops and starts, scale events).
//! - [`cluster`]: `DIR/cluster.json`, how tools find a local cluster.
//! - [`client`]: the bounded JSON-over-HTTP client the tools use.
//! - [`auth`]: the bearer token check and the error body.

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod cluster;
pub mod data;
pub mod edge;
pub mod load;
pub mod status;
pub mod supervisor;
pub mod tables;

pub use client::{AdminClient, ClientError};
pub use cluster::ClusterFile;
