//! The Redis-protocol endpoint (DESIGN.md §2 `resp`): sessions, carts and
//! counters kept in Meridian's replicated tables, reached with any Redis
//! client.
//!
//! - [`proto`] frames requests (RESP multibulk and inline) under named
//!   limits; [`reply`] encodes answers in RESP2 or RESP3.
//! - [`cmd`] is the command table: each command is checked (arity, auth,
//!   the key's table policy), then either read from the local store or
//!   turned into a [`cmd::WritePlan`] that the storage engine's writer
//!   decides atomically against the keys' current states.
//! - [`forward`] sends writes to a single-master table's home region and
//!   asks it for strong reads' commit point, through a node-provided
//!   [`forward::Remote`].
//! - [`modes`] holds the table modes as this region applies them: the
//!   config plus replicated run-time changes with epochs that fence writes,
//!   and the planned switchover of a single-master table's home.
//! - [`exec`] is one client's command path (routing, token waits, strong
//!   reads, write acknowledgement), used by connections and by
//!   [`Shared::execute`] for callers without one (the admin data API).
//! - [`server`] runs connections: pipelined writes are queued to the engine
//!   back to back (many share one fsync), replies go out in order.
//!
//! It knows the storage engine's API (`meridian_store::db::Db`) and the
//! record model, not how replication works: cross-region facts (peer
//! acknowledgements for `WAIT`, the `# Replication` section of `INFO`)
//! come from the engine and from the [`ClusterInfo`] the node provides.

pub mod cmd;
pub mod exec;
pub mod forward;
pub mod glob;
pub mod modes;
pub mod proto;
pub mod reply;
pub mod server;
pub mod session;

pub use reply::Reply;
pub use server::{serve, ClusterInfo, Shared};
pub use session::Session;
