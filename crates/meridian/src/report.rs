//! The JSON a node's `GET /status` returns, shared by the admin API that
//! writes it and the `status` and `chaos` commands that read it.

use std::collections::BTreeMap;

use meridian_core::LinkFigures;
pub use meridian_repl::runtime::PeerReplication;
use meridian_wan::{LinkStats, PeerLinkStatus};
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

/// One peer link.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerReport {
    /// Mesh state: up/down, RTT, connects.
    #[serde(flatten)]
    pub link: PeerLinkStatus,
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
    pub stats: LinkStats,
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
