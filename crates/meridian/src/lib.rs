//! The `meridian` binary's library: every subcommand and the node runtime.
//!
//! # Layout
//! - [`node`]: `meridian node`, one region's process (listeners, emulated
//!   links, peer mesh, admin API).
//! - [`admin`]: the node's admin HTTP API (health, status, metrics, faults).
//! - [`load`]: the node-side write generator benchmarks drive.
//! - [`data_api`]: put/get/delete/incr and conflicts on the admin port.
//! - [`up`]: `meridian up`, a supervised local multi-region cluster.
//! - [`bench`](mod@bench): `meridian bench`, the benchmark suites and report.
//! - [`chaos`], [`status`]: operator commands against a running cluster.
//! - [`cluster_file`]: `DIR/cluster.json`, how tools find a local cluster.
//! - [`report`]: the JSON shapes of `/status` and link changes.
//! - [`http_client`], [`prom`], [`logging`]: small plumbing.
//!
//! Architecture invariant: only this crate reads files, environment and
//! signals; the library crates below it take values.

#![warn(missing_docs)]

pub mod admin;
pub mod bench;
pub mod bench_consistency;
pub mod bench_disk;
pub mod bench_redis;
pub mod bench_scale;
pub mod chaos;
pub mod chaos_run;
pub mod cluster_file;
pub mod data_api;
pub mod history;
pub mod http_client;
pub mod load;
pub mod logging;
pub mod node;
pub mod plot;
pub mod prom;
pub mod remote;
pub mod report;
pub mod resp_client;
pub mod resp_info;
pub mod status;
pub mod tables_api;
pub mod up;
