//! `meridian-lab`: Meridian's tools. Each is a user of the product: it
//! talks to nodes over their HTTP and Redis endpoints with
//! [`meridian_api`]'s types, as an operator's own tools would, and imports
//! nothing of the node.
//!
//! # Layout
//! - [`up`]: `meridian up`, a supervised local multi-region cluster, its
//!   traffic loop and its supervisor API; [`apps`]: the app instances it
//!   runs behind each region's edge; [`autoscale`]: the pure decision of
//!   how many; [`ports`]: the addresses it gives out; [`process`]: what its
//!   child processes share.
//! - [`region`]: `meridian region drain|undrain`.
//! - [`status`], [`chaos`] (with [`faults`]), [`tables`]: operator commands
//!   against a running cluster.
//! - [`bench`](mod@bench): `meridian bench`, the benchmark suites and their
//!   report; [`plot`]: its SVG charts.
//! - [`chaos_run`]: `meridian chaos run`, a workload under a fault schedule,
//!   and [`history`], the checker of what its clients saw.
//! - [`resp_client`]: the Redis client the workloads use.

#![warn(missing_docs)]

pub mod apps;
pub mod autoscale;
pub mod bench;
pub mod chaos;
pub mod chaos_run;
pub mod faults;
pub mod history;
pub mod plot;
pub mod ports;
pub mod process;
pub mod region;
pub mod resp_client;
pub mod status;
pub mod tables;
pub mod up;
