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
//! - [`db`]: [`db::Db`], the single writer (group commit, HLC, merge) over a
//!   backend, and [`db::Engine`], its synchronous core.
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
pub mod histogram;
pub mod mem;
pub mod memtable;
pub mod redb_store;
pub mod wal;

pub use backend::*;
pub use contract::TABLE_NAME_BYTES_MAX;
pub use mem::MemStore;
pub use redb_store::RedbStore;
