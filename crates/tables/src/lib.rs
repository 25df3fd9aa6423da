//! Table modes at run time: who may write a table now, under which epoch,
//! and how that changes — replicated, so every region learns it.
//!
//! The topology config gives each table its first mode (epoch 0). A change
//! is a record in the control table [`CONTROL_TABLE`] (key: the table's
//! name; value: `multi_master@7` or `single_master:eu-west@8`), written like
//! any other replicated write, so it is durable, survives restarts, and
//! reaches every region in the writer's log order. Each region's [`Modes`]
//! is the config overlaid with the records it has applied.
//!
//! **Who changes a table.** Only its *coordinator*: the home of a
//! single-master table, otherwise the cluster's master region. Changes of
//! one table are therefore made one at a time by one region, each after
//! the last one was applied there, so epochs only grow and a later record
//! always carries a later HLC than the one it replaces (last-writer-wins
//! picks it everywhere).
//!
//! **Epochs fence writes.** Each write to a configured table is stamped,
//! when it is planned, with its table's epoch; the storage writer re-checks the
//! stamp just before deciding it and refuses the write if the epoch moved
//! or the table is fenced for a move. A forwarded write carries the
//! forwarding region's epoch; the home refuses an older one (the client
//! retries and is forwarded to the new home) and briefly waits to learn a
//! newer one. So a home that gave its table away never decides another
//! write for it.
//!
//! **Planned switchover** (`move_home`, at the current home `H`, to `N`):
//! fence the table at `H` (its writes get `TRYAGAIN`), write the record
//! `single_master:N@e+1` at `H` — every write `H` decided for the table is
//! before it in `H`'s log, so `N` has applied them all once it applies the
//! record — then wait until `N` acknowledges the record. `N` takes writes
//! from the moment it applies the record; `H` forwards to `N` from the
//! moment the record is committed. Nothing acknowledged is lost (RPO 0),
//! and the write unavailability is the record's commit plus `H`→`N`
//! one-way delay, reported by the move.
//!
//! **Residency at run time.** A table made pinned (or pinned to fewer
//! regions) is given up by every region now outside: the node tells its
//! replicator (placeholders from then on, in and out) and its store (the
//! table's states dropped, its stored log entries rewritten as
//! placeholders). A region that gains a table gets its earlier data back
//! through anti-entropy. Bytes of the dropped data may stay in the store
//! file's free pages until they are reused.
//!
//! # Layout
//!
//! - [`spec`]: [`ModeSpec`], a mode as it is set and shown, and
//!   [`ModeRecord`], its stored form with its epoch.
//! - [`view`]: [`View`], the modes one region applies at one moment.
//! - [`modes`]: [`Modes`], a region's current view — the config overlaid
//!   with the control table's records — and the watcher that re-reads them.
//! - [`thread_copy`]: each thread's copy of the newest view, for the hot path.
//! - [`fence`]: the rules that refuse a write planned under an older mode.
//! - [`change`]: the coordinator's mode change and planned switchover.
//! - [`error`]: [`ChangeError`] (a change not made) and [`WriteRefused`]
//!   (a write fenced by its table's mode).
//! - [`metrics`]: [`TablesMetrics`], the epochs for `/metrics`.
//!
//! It knows the storage engine's API (`meridian_store::db::Db`) and the
//! topology, not the Redis protocol or how regions talk: the node carries a
//! change to its coordinator.

#![warn(missing_docs)]

use std::time::Duration;

pub mod change;
pub mod error;
pub mod fence;
pub mod metrics;
pub mod modes;
pub mod spec;
pub mod thread_copy;
pub mod view;

pub use change::ChangeReport;
pub use error::{ChangeError, WriteRefused};
pub use meridian_core::config::CONTROL_TABLE;
pub use metrics::TablesMetrics;
pub use modes::{spawn_watcher, Modes, ModesHook};
pub use spec::{ModeRecord, ModeSpec};
pub use view::View;

/// How long a switchover waits for the new home to apply the change (it
/// is committed either way; this only bounds how long the caller waits to
/// hear that the new home serves).
pub const MOVE_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Shortest time between two re-reads of the control table: under load
/// every commit changes the applied vector, and one read per commit would
/// be waste; a mode change is seen at most this much later.
pub const REFRESH_INTERVAL_MIN: Duration = Duration::from_millis(5);

/// Mode records kept: one per table, and no more tables than this.
pub const CONTROL_RECORDS_MAX: usize = 4096;

#[cfg(test)]
pub(crate) mod test_support;
