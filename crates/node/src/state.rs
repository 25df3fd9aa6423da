//! [`Node`]: a running node's shared state, what the HTTP API and the
//! metrics read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use meridian_core::{RegionName, Topology};
use meridian_repl::ReplHandle;
use meridian_store::db::Db;
use meridian_wan::{LinkControl, PeerMesh};

/// A running node's shared state, read by the admin API.
pub struct Node {
    /// This node's region.
    pub region: RegionName,
    /// The validated topology it runs.
    pub topology: Topology,
    /// The peer mesh.
    pub mesh: PeerMesh,
    /// The storage engine.
    pub db: Db,
    /// The replicator.
    pub repl: ReplHandle,
    /// Emulated links by peer; empty when emulation is off.
    pub links: BTreeMap<RegionName, LinkControl>,
    /// When the node started.
    pub started: Instant,
    /// The Redis endpoint's shared state (counters for `/metrics`).
    pub resp: Arc<meridian_resp::Shared>,
    /// The edge proxy, when the region has an `edge` listener.
    pub edge: Option<Arc<meridian_route::Edge>>,
    /// The data directory (the drain marker lives there).
    pub data_dir: std::path::PathBuf,
}
