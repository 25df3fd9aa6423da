//! Meridian's vocabulary, free of I/O.
//!
//! # Layout
//! - [`region`]: [`RegionName`], the validated identity every layer keys on.
//! - [`geo`]: the region catalogue, great-circle distances and the default
//!   latency profile of DESIGN.md §6, with the fibre physics floor.
//! - [`config`]: the topology file ([`TopologyConfig`]) and its validation into
//!   a [`Topology`], or every problem at once as [`ConfigErrors`].
//!
//! - [`hlc`]: the hybrid logical clock ([`Hlc`], [`HlcClock`]) with an
//!   injectable physical clock.
//! - [`record`]: [`LogEntry`], [`Op`], [`Version`], [`VersionVector`], and
//!   [`record::apply`], the pure, order-independent merge of a write into a
//!   key's state (LWW incarnations, PN-counters, per-field LWW hashes,
//!   add-wins sets, TTL).
//!
//! Owns no sockets, files or clocks: callers hand it text and values.

#![warn(missing_docs)]

pub mod config;
pub mod durability;
pub mod geo;
pub mod hlc;
pub mod mode;
pub mod record;
pub mod region;

pub use config::{
    ConfigError, ConfigErrors, LinkConditions, LinkFigures, Topology, TopologyConfig,
};
pub use durability::Durability;
pub use hlc::{Hlc, HlcClock, PhysicalClock, SystemClock};
pub use mode::ModeSpec;
pub use record::{LogEntry, Op, Version, VersionVector};
pub use region::RegionName;
