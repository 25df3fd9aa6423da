//! The Redis-protocol endpoint (DESIGN.md §2 `resp`): sessions, carts and
//! counters kept in Meridian's replicated tables, reached with any Redis
//! client.
//!
//! # Layout
//!
//! From the bottom up (each file imports only the ones above it, except
//! that commands and sessions name each other's types):
//!
//! - [`proto`] frames requests (RESP multibulk and inline) under named
//!   limits; [`reply`] encodes answers in RESP2 or RESP3; [`error`] makes
//!   every error reply ([`ErrorReply`], kind [`ErrorKind`]).
//! - [`shared`] is the state every connection shares ([`Shared`]); its
//!   counters are [`stats`], exposed by [`metrics`] ([`RespMetrics`]).
//! - [`remote`] is how the endpoint reaches other regions (a node-provided
//!   [`remote::Remote`]) and the data that crosses them.
//! - [`plan`] is a write as a [`plan::WritePlan`] that the storage engine's
//!   writer decides atomically against the keys' current states, queued
//!   under its tables' epochs.
//! - [`policy`] maps keys to tables and checks each table's mode,
//!   residency and conflict policy; it routes commands to other regions.
//! - [`cmd`] is the command table: lookup, arity and auth checks, and the
//!   commands, which read the local store or build write plans.
//! - [`exec`] is one client's command path (routing, token waits, strong
//!   reads, write acknowledgement), used by connections and by
//!   [`Shared::execute`] for callers without one (the admin data API);
//!   [`forward`] serves commands forwarded from other regions.
//! - [`server`] runs the listener and connections: pipelined writes are
//!   queued to the engine back to back (many share one fsync), replies go
//!   out in order.
//! - [`modes`] re-exports the `meridian-tables` crate: table modes, epochs
//!   and switchover, as this region applies them.
//!
//! It knows the storage engine's API (`meridian_store::db::Db`) and the
//! record model, not how replication works: cross-region facts (peer
//! acknowledgements for `WAIT`, the `# Replication` section of `INFO`)
//! come from the engine and from the [`ClusterInfo`] the node provides.

#![warn(missing_docs)]

pub mod cmd;
pub mod error;
pub mod exec;
pub mod forward;
pub mod glob;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod proto;
pub mod remote;
pub mod reply;
pub mod server;
pub mod session;
pub mod shared;
pub mod stats;

/// Table modes, epochs and switchover: the `meridian-tables` crate, under
/// the path it had when it was this crate's `modes` module.
pub use meridian_tables as modes;

pub use error::{ErrorKind, ErrorReply};
pub use metrics::RespMetrics;
pub use reply::Reply;
pub use server::serve;
pub use session::Session;
pub use shared::{ClusterInfo, Shared};
