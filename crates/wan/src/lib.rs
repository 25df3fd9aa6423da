//! Everything that crosses regions.
//!
//! # Layout
//! - [`link`]: WAN emulation. [`LinkProxy`] forwards TCP connections through
//!   a [`LinkControl`] that applies latency, jitter, bandwidth, loss and
//!   partitions. Byte-level, so any protocol can cross an emulated link.
//!
//! Knows nothing of what the bytes mean: replication, SQL and object traffic
//! are the callers' business.

#![warn(missing_docs)]

pub mod link;

pub use link::{LinkControl, LinkProxy, LinkState, LinkStats};
