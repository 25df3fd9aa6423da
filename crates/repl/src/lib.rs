//! Log shipping between regions.
//!
//! # Layout
//! - [`machine`]: [`Replicator`], the pure state machine deciding what to
//!   ship, relay, retransmit and garbage-collect.
//! - [`runtime`]: the async driver between the `Db`, the peer mesh and the
//!   machine; [`runtime::ReplMessage`] is the wire format.
//!
//! Knows nothing of storage formats or client protocols: it moves
//! `LogEntry`s between a `Db` and the peer mesh.

#![warn(missing_docs)]

pub mod machine;
pub mod runtime;

pub use machine::{Command, Event, ReplConfig, Replicator};
pub use runtime::{ReplHandle, ReplMessage, ReplStatus};
