//! The JSON of the supervisor API that `meridian up` serves (its address is
//! `supervisor` in `cluster.json`): the regions' processes, kill and
//! restart of nodes, stop and start of a region's app instances, and the
//! history of scale decisions. Every route needs the cluster's admin token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cluster::AppInstance;

/// `GET /regions`: each region's node process and app instances.
pub type Regions = BTreeMap<String, RegionProcess>;

/// One region's node process and app instances.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionProcess {
    /// Its process id; `None` while it is not running.
    pub pid: Option<u32>,
    /// The app instances registered with its edge.
    #[serde(default)]
    pub apps: Vec<AppInstance>,
    /// Whether chaos stopped its apps (`stop-apps`); scaling leaves it at
    /// none until `start-apps`.
    #[serde(default)]
    pub apps_stopped: bool,
}

/// `POST /regions/{region}/kill`: the region's node got SIGKILL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Killed {
    /// The region.
    pub region: String,
    /// The process killed; `None` if none was running.
    pub killed_pid: Option<u32>,
}

/// `POST /regions/{region}/restart`: the region's node was stopped and
/// started again, and answers its health check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Restarted {
    /// The region.
    pub region: String,
    /// The new process.
    pub pid: Option<u32>,
}

/// `POST /regions/{region}/stop-apps`: every app instance of the region
/// got SIGKILL (a crash, the edge is not told first). The node keeps
/// running.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppsStopped {
    /// The region.
    pub region: String,
    /// The processes killed (none if its apps were already stopped).
    pub killed_pids: Vec<u32>,
}

/// `POST /regions/{region}/start-apps`: the region runs `--apps-min`
/// fresh instances again (new ports), and scaling resumes. 409 when its
/// apps were not stopped.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppsStarted {
    /// The region.
    pub region: String,
    /// The instances started; the edge learns them within one
    /// registration tick.
    pub apps: Vec<AppInstance>,
}

/// `GET /scale/events`: the last scale decisions, oldest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScaleEvents {
    /// The events (at most 100; older ones are only in `up`'s log).
    pub events: Vec<ScaleEvent>,
}

/// One scale decision of `up`'s autoscaler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// Increasing with each decision of this `up`.
    pub id: u64,
    /// The region.
    pub region: String,
    /// Instances before.
    pub from: usize,
    /// Instances after.
    pub to: usize,
    /// The edge's `load_per_instance` that decided it.
    pub load_per_instance: f64,
    /// When it was decided, ms since the Unix epoch.
    pub at_unix_ms: u64,
    /// How long after the decision the edge first had exactly `to` of
    /// `up`'s instances registered and up, ms; `None` until then (or when
    /// another decision came first).
    pub settled_after_ms: Option<u64>,
}
