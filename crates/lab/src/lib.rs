//! `meridian-lab`: Meridian's tools. Each is a user of the product: it
//! talks to nodes over their HTTP and Redis endpoints with
//! [`meridian_api`]'s types, as an operator's own tools would, and imports
//! nothing of the node.
//!
//! # Layout
//! - [`up`]: `meridian up`, a supervised local multi-region cluster and its
//!   supervisor API.
//! - [`status`], [`chaos`] (with [`faults`]), [`tables`]: operator commands
//!   against a running cluster.
//! - [`bench`](mod@bench): `meridian bench`, the benchmark suites and their
//!   report; [`plot`]: its SVG charts.
//! - [`chaos_run`]: `meridian chaos run`, a workload under a fault schedule,
//!   and [`history`], the checker of what its clients saw.
//! - [`resp_client`]: the Redis client the workloads use.

#![warn(missing_docs)]

pub mod bench;
pub mod chaos;
pub mod chaos_run;
pub mod faults;
pub mod history;
pub mod plot;
pub mod resp_client;
pub mod status;
pub mod tables;
pub mod up;
