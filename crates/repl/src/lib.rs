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
//! - [`runtime`]: the async driver between the `Db`, the peer mesh and the
//!   machine; [`runtime::ReplMessage`] is the wire format.
//!
//! Knows nothing of storage formats or client protocols: it moves
//! `LogEntry`s between a `Db` and the peer mesh.

#![warn(missing_docs)]

pub mod calls;
pub mod closed;
pub mod machine;
pub mod residency;
pub mod runtime;

pub use calls::{CallError, CallHandler, Calls};
pub use machine::{Command, Event, ReplConfig, Replicator};
pub use residency::Residency;
pub use runtime::{ReplHandle, ReplMessage, ReplStatus};
