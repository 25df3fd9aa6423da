//! Meridian's vocabulary, free of I/O.
//!
//! # Layout
//! - [`region`]: [`RegionName`], the validated identity every layer keys on.
//! - [`geo`]: the region catalogue, great-circle distances and the default
//!   latency profile of DESIGN.md §6, with the fibre physics floor.
//! - [`config`]: the topology file ([`TopologyConfig`]) and its validation into
//!   a [`Topology`], or every problem at once as [`ConfigErrors`].
//!
//! Owns no sockets, files or clocks: callers hand it text and values. Later
//! issues add the hybrid logical clock, versions and records here.

#![warn(missing_docs)]

pub mod config;
pub mod geo;
pub mod region;

pub use config::{
    ConfigError, ConfigErrors, LinkConditions, LinkFigures, Topology, TopologyConfig,
};
pub use region::RegionName;
