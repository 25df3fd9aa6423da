//! The JSON of a node's `GET /status`, `GET /health` and
//! `PUT /admin/links/{peer}`: written by the node (which converts its
//! layers' own types into these), read by `meridian status`, `chaos`, the
//! benchmarks and any operator's script.
//!
//! These are serializable counterparts of types in `wan` and `repl`, kept
//! here so the tools need none of the node's crates; the field names are
//! the wire format and never change silently.

use std::collections::BTreeMap;

use meridian_core::{LinkFigures, RegionName, VersionVector};
use serde::{Deserialize, Serialize};

/// One node's view of itself and its links.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Cluster name.
    pub cluster: String,
    /// This node's region.
    pub region: String,
    /// Binary version.
    pub version: String,
    /// Process id, so tools can tell restarts apart.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Whether inter-region links are emulated.
    pub emulate_wan: bool,
    /// One entry per peer region.
    pub peers: Vec<PeerReport>,
    /// Replication state.
    #[serde(default)]
    pub replication: Option<ReplicationReport>,
}

/// What `/status` says about replication.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplicationReport {
    /// Version vector: highest contiguous sequence applied per origin.
    pub applied: BTreeMap<String, u64>,
    /// Per destination peer: what it acknowledged, what is pending.
    pub peers: BTreeMap<String, PeerReplication>,
    /// Replication lag of writes from each origin into this region.
    pub lag_from: BTreeMap<String, LagReport>,
}

/// Lag quantiles to 0.1 ms, since start or the last reset.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LagReport {
    /// Writes measured.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile, ms.
    #[serde(default)]
    pub p999_ms: Option<f64>,
    /// Largest, ms.
    #[serde(default)]
    pub max_ms: Option<f64>,
    /// The distribution: `[quantile, ms]` points from 0 to 1 (the last is
    /// the maximum), for plotting.
    #[serde(default)]
    pub cdf_ms: Vec<[f64; 2]>,
}

/// The quantiles `cdf_ms` holds: every 2.5 % and the tail.
pub fn cdf_quantiles() -> Vec<f64> {
    let mut qs: Vec<f64> = (0..40).map(|i| i as f64 / 40.0).collect();
    qs.extend([0.99, 0.995, 0.999, 1.0]);
    qs
}

/// Replication state of one destination peer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerReplication {
    /// The peer's applied vector as it last told us.
    pub acked: VersionVector,
    /// Our own entries it has not acknowledged.
    pub pending_operations: u64,
    /// Their approximate bytes.
    pub pending_bytes: u64,
    /// Shipping counters.
    pub counters: ShippingCounters,
}

/// Shipping counters of one destination peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingCounters {
    /// Entries shipped (including retransmissions and relays).
    pub shipped: u64,
    /// Entries re-sent after a stall, a gap or a lost link.
    pub retransmitted: u64,
    /// Batches that could not be handed to the link.
    pub failed: u64,
    /// Entries relayed on behalf of another origin.
    pub relayed: u64,
}

/// One peer link.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerReport {
    /// Mesh state: up/down, RTT, connects.
    #[serde(flatten)]
    pub link: PeerLink,
    /// The emulated link's settings and counters, when emulation is on.
    pub emulated: Option<EmulatedLink>,
}

/// An emulated link's settings (this node's outbound direction) and counters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmulatedLink {
    /// RTT, jitter, bandwidth, loss.
    pub figures: LinkFigures,
    /// Whether it is cut.
    pub partitioned: bool,
    /// Bytes and connections carried.
    pub stats: LinkCounters,
}

/// One peer link as the mesh sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerLink {
    /// The peer's region.
    pub region: RegionName,
    /// Our authenticated connection to it is alive.
    pub outbound_up: bool,
    /// Its authenticated connection to us is alive.
    pub inbound_up: bool,
    /// Last heartbeat round trip, in ms.
    pub rtt_ms: Option<f64>,
    /// Successful outbound connects since start.
    pub connects_total: u64,
    /// Why the outbound link last went down or failed to come up.
    pub last_error: Option<String>,
}

/// Counters of one emulated link, all monotonic but `connections_open`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCounters {
    /// Bytes delivered to the target.
    pub bytes_out: u64,
    /// Bytes delivered back to the connecting side.
    pub bytes_in: u64,
    /// Connections currently forwarded.
    pub connections_open: u64,
    /// Connections accepted and forwarded since start.
    pub connections_total: u64,
    /// Connections refused because the link was partitioned or the target
    /// could not be reached.
    pub connections_refused: u64,
}

/// `GET /health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the node answers.
    pub status: String,
    /// Whether the node serves clients (a region serves its own clients
    /// whether or not peers are reachable, so this does not wait for the
    /// mesh).
    pub ready: bool,
    /// The node's region.
    pub region: RegionName,
    /// Peers whose outbound link is up.
    pub peers_up: usize,
    /// Peers in the topology.
    pub peers_total: usize,
}

/// A change to an emulated link (`PUT /admin/links/{peer}`); absent fields
/// stay as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkPatch {
    /// Cut (`true`) or heal (`false`) the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<bool>,
    /// New round-trip time in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// New jitter bound in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    /// New loss in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
    /// New bandwidth cap in Mbit/s; 0 removes the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbit: Option<f64>,
}
