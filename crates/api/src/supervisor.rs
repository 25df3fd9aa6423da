//! The JSON of the supervisor API that `meridian up` serves (its address is
//! `supervisor` in `cluster.json`): the regions' processes, kill and
//! restart. Every route needs the cluster's admin token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /regions`: each region's node process.
pub type Regions = BTreeMap<String, RegionProcess>;

/// One region's node process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionProcess {
    /// Its process id; `None` while it is not running.
    pub pid: Option<u32>,
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
