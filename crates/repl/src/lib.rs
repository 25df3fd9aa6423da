//! Log shipping between regions.
//!
//! # Layout
//! - [`machine`]: [`Replicator`], the pure state machine deciding what to
//!   ship, relay, retransmit and garbage-collect.
//! - [`closed`]: closed timestamps — up to when every origin's writes are
//!   here — which make purging expired keys safe.
//! - [`calls`]: requests to one peer and their answers (write forwarding,
//!   strong-read commit points), carried next to replication.
//! - [`residency`]: pinned tables' entries reach only their allowed
//!   regions; others get placeholders that keep logs dense.
//! - [`wire`]: [`ReplMessage`], the wire format, and its encoding.
//! - [`runtime`]: the async driver between the `Db`, the peer mesh and the
//!   machine, and the per-peer apply loops; [`ReplHandle`] and
//!   [`ReplStatus`] are its view for `/status`.
//! - [`anti_entropy`]: digest comparison and bucket repair between regions
//!   that applied the same writes.
//! - [`purge`]: the local sweep that drops expired keys once closed
//!   timestamps make it safe.
//! - [`metrics`]: [`ReplMetrics`], the replication families of `/metrics`.
//!
//! Knows nothing of storage formats or client protocols: it moves
//! `LogEntry`s between a `Db` and the peer mesh.

#![warn(missing_docs)]

pub mod anti_entropy;
pub mod calls;
pub mod closed;
pub mod machine;
pub mod metrics;
pub mod purge;
pub mod residency;
pub mod runtime;
pub mod wire;

pub use anti_entropy::spawn_anti_entropy;
pub use calls::{CallError, CallHandler, Calls};
pub use machine::{Command, Event, ReplConfig, Replicator};
pub use metrics::ReplMetrics;
pub use purge::spawn_purger;
pub use residency::Residency;
pub use runtime::{PeerReplication, ReplHandle, ReplStatus};
pub use wire::ReplMessage;
