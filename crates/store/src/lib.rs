//! Meridian's durable local state: key states, per-origin replication logs,
//! the version vector and the HLC floor, kept so a node resumes exactly
//! where it stopped.
//!
//! # Layout
//! - [`backend`]: the [`Backend`] trait every storage engine implements and
//!   the types it moves ([`CommitBatch`], [`Meta`], [`StoreError`],
//!   [`Durability`]).
//! - [`mem`]: [`MemStore`], in memory, for tests and deterministic
//!   simulation.
//! - [`redb_store`]: [`RedbStore`], the production backend on one redb file.
//! - [`wal`]: the write-ahead log that makes [`RedbStore`]'s commits durable
//!   with one small sequential fdatasync.
//! - [`memtable`]: the last second's commits in memory; a background thread
//!   writes them to redb in a few durable transactions (a checkpoint).
//! - [`writer`]: [`Db`], the handle to the single writer thread (group
//!   commit, back-pressure, the published version vector, peers' acks).
//! - [`engine`]: [`Engine`], the writer's synchronous core: merges a batch
//!   of [`Request`]s (HLC, merge, version vector) and commits it once.
//! - [`request`]: the [`Request`]s and [`Response`]s the two exchange and
//!   the outcomes callers receive; [`error`]: [`DbError`], why a request was
//!   refused; [`stats`]: [`DbStats`], the writer's counters.
//! - [`metrics`]: [`StoreMetrics`], the store's Prometheus families.
//! - [`db`]: the old path of everything in `writer`, `engine`, `request`,
//!   `error` and `stats` (re-exports only).
//! - [`digest`]: convergence digests of what a table shows readers.
//! - [`histogram`]: fixed-bucket latency histograms for metrics.
//! - `contract` (private): the commit, truncation and log-read rules both
//!   backends check identically.
//!
//! Backends are deliberately dumb: merging, clocks and group commit live
//! above them. `tests/conformance.rs` is the suite every backend must pass.

#![warn(missing_docs)]

pub mod backend;
mod contract;
pub mod db;
pub mod digest;
pub mod engine;
pub mod error;
pub mod histogram;
pub mod mem;
pub mod memtable;
pub mod metrics;
pub mod redb_store;
pub mod request;
pub mod stats;
pub mod wal;
pub mod writer;

pub use backend::*;
pub use contract::TABLE_NAME_BYTES_MAX;
pub use engine::{DbConfig, Engine};
pub use error::DbError;
pub use mem::MemStore;
pub use metrics::StoreMetrics;
pub use redb_store::RedbStore;
pub use request::{Decide, DecideMany, LocalOutcome, RemoteOutcome, Request, Response};
pub use stats::DbStats;
pub use writer::Db;
