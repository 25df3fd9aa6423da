//! The JSON of the traffic layer: the edge's pool (`GET /edge`,
//! `PUT /admin/edge/backends`), region health (`GET /health/regions`), the
//! body of an edge's own health answer that other regions' probes read
//! (`GET /_meridian/health` on the edge listener), and drain
//! (`POST /admin/edge/drain`).
//!
//! Times are given as milliseconds ago (`*_ms_ago`), measured on the node
//! that answers, so no clocks need to agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The path of an edge's own health answer; never proxied to an app.
pub const EDGE_HEALTH_PATH: &str = "/_meridian/health";

/// Request header marking a request one edge forwarded or replayed to
/// another: the regions it has passed, comma-separated. An edge that sees
/// it never forwards again, so a request cannot loop.
pub const HOP_HEADER: &str = "x-meridian-hop";

/// Response header naming the region that served the request.
pub const REGION_HEADER: &str = "x-meridian-region";

/// Response header an app sets to have the edge replay the request in
/// another region: `meridian-replay: region=NAME`.
pub const REPLAY_HEADER: &str = "meridian-replay";

/// `PUT /admin/edge/backends`: the whole set of app instances registered
/// at run time (the topology's static ones stay).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSet {
    /// The instances.
    pub backends: Vec<BackendSpec>,
}

/// One app instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSpec {
    /// `IP:PORT`.
    pub addr: String,
    /// Share under the weighted policy.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// `GET /edge`: the region's pool as the edge sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EdgeStatus {
    /// This region.
    pub region: String,
    /// The edge's listen address, when it has one.
    pub listen: Option<String>,
    /// Whether some instance can take a request now.
    pub serving: bool,
    /// Whether the region is drained (its traffic goes elsewhere).
    pub draining: bool,
    /// Requests in flight to this region's instances, all of them.
    pub in_flight: u64,
    /// Mean requests in flight per up instance over the last second (the
    /// scaling signal; 0 with no instance up).
    pub load_per_instance: f64,
    /// Every instance.
    pub backends: Vec<BackendStatus>,
}

/// One instance in [`EdgeStatus`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackendStatus {
    /// `IP:PORT`.
    pub addr: String,
    /// Its weight.
    pub weight: u32,
    /// From the topology (`static`) or registered at run time (`registered`).
    pub source: String,
    /// Passing its active checks.
    pub up: bool,
    /// Ejected by passive checks, for this many more ms.
    pub ejected_ms: Option<u64>,
    /// Since the last change of `up`, ms ago.
    pub since_ms_ago: u64,
    /// Requests in flight to it.
    pub in_flight: u64,
    /// Requests sent to it.
    pub requests: u64,
    /// Of those, failed (5xx, connect failure, timeout, reset).
    pub failures: u64,
}

/// The body of `GET /_meridian/health` on an edge: what the region says of
/// itself and of the others, read by every other region's probes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EdgeHealth {
    /// The region answering.
    pub region: String,
    /// Whether it has an instance that can take a request.
    pub serving: bool,
    /// Whether it is drained.
    pub draining: bool,
    /// Its own probes' view of each other region.
    pub views: BTreeMap<String, ObserverView>,
}

/// One observer's view of one region.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObserverView {
    /// `up`, `down`, or `unknown` (no fresh report from that observer).
    pub state: String,
    /// Since the observer's last change of state, ms ago.
    pub since_ms_ago: u64,
    /// How old the report is, ms (0 for the node's own probes).
    #[serde(default)]
    pub age_ms: u64,
}

/// `GET /health/regions`: one node's picture of every region.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionsHealth {
    /// The node answering.
    pub observer: String,
    /// Whether the node routes as if every region were up because every
    /// one looked down (fail open).
    pub fail_open: bool,
    /// Per region (the answering one included, from its own pool).
    pub regions: BTreeMap<String, RegionHealth>,
}

/// One region in [`RegionsHealth`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionHealth {
    /// The quorum verdict: `up` or `down`.
    pub verdict: String,
    /// Since the verdict last changed, ms ago.
    pub since_ms_ago: u64,
    /// Observers saying down, and how many it takes.
    pub down_votes: usize,
    /// Votes needed for `down`: a majority of the other regions.
    pub quorum: usize,
    /// Whether the region said it can serve (its last answer to a probe).
    pub serving: bool,
    /// Whether it said it is drained.
    pub draining: bool,
    /// Each observer's view (every region but this one).
    pub observers: BTreeMap<String, ObserverView>,
}

/// `POST /admin/edge/drain` and `/admin/edge/undrain`: the new state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DrainState {
    /// The region.
    pub region: String,
    /// Whether it is drained now.
    pub draining: bool,
}
