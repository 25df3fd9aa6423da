//! Log shipping between regions.
//!
//! # Layout
//! - [`machine`]: [`Replicator`], the pure state machine deciding what to
//!   ship, relay, retransmit and garbage-collect.
//!
//! Knows nothing of storage formats or client protocols: it moves
//! `LogEntry`s between a `Db` and the peer mesh.

#![warn(missing_docs)]

pub mod machine;

pub use machine::{Command, Event, ReplConfig, Replicator};
