//! Everything that crosses regions.
//!
//! # Layout
//! - [`link`]: WAN emulation. [`LinkProxy`] forwards TCP connections through
//!   a [`LinkControl`] that applies latency, jitter, bandwidth, loss and
//!   partitions. Byte-level, so any protocol can cross an emulated link.
//! - [`auth`]: mutual HMAC challenge–response proving the cluster secret.
//! - [`timer`]: sub-millisecond sleeps for emulated delays.
//! - [`mesh`]: [`PeerMesh`], the full mesh of authenticated links with
//!   heartbeats, RTT measurement, redial with backoff, and opaque frames.
//! - [`metrics`]: [`WanMetrics`], the peer-link and emulated-link families
//!   of `/metrics`.
//!
//! Knows nothing of what the frames mean: replication, SQL and object traffic
//! are the callers' business.

#![warn(missing_docs)]

pub mod auth;
pub mod link;
pub mod mesh;
pub mod metrics;
pub mod timer;

pub use auth::{AuthError, PeerIdentity};
pub use link::{Direction, LinkControl, LinkProxy, LinkState, LinkStats, LinkTap};
pub use mesh::{InboundFrame, PeerLinkStatus, PeerMesh, PeerTarget, SendError};
pub use metrics::WanMetrics;
