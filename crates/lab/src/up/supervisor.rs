//! What `up`'s supervisor API and traffic loop share: the node processes,
//! each region's app instances, the scale history and `cluster.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex as StdMutex;

use meridian_api::cluster::{ClusterFile, RegionEndpoints};
use meridian_core::{RegionName, Topology};
use tokio::sync::Mutex;

use super::nodes::{Nodes, STOP_GRACE};
use crate::apps::{AppLauncher, AppOptions, RegionApps, APP_STOP_GRACE};
use crate::autoscale::ScaleHistory;

/// The state of one `up`.
pub(super) struct Supervisor {
    pub nodes: Nodes,
    /// Each region's app instances; one lock per region, so the regions'
    /// traffic loops never wait for each other.
    pub apps: BTreeMap<RegionName, Mutex<RegionApps>>,
    pub launcher: AppLauncher,
    pub app_options: AppOptions,
    pub topology: Topology,
    pub dir: PathBuf,
    /// The topology file.
    pub config: PathBuf,
    pub admin_token: String,
    /// `cluster.json` once the cluster is ready (`None` before: nothing
    /// is written until then).
    pub cluster_file: Mutex<Option<ClusterFile>>,
    pub scale_history: StdMutex<ScaleHistory>,
}

impl Supervisor {
    /// The app instances of `region` (one of the topology's).
    pub fn region_apps(&self, region: &RegionName) -> &Mutex<RegionApps> {
        &self.apps[region]
    }

    /// `cluster.json` as of now, with the supervisor API at `supervisor`.
    pub async fn cluster_file_now(&self, supervisor: String) -> ClusterFile {
        let mut regions = BTreeMap::new();
        for r in &self.topology.regions {
            regions.insert(
                r.name.to_string(),
                RegionEndpoints {
                    resp: r.resp.to_string(),
                    admin: format!("http://{}", r.admin),
                    peer: r.peer.to_string(),
                    edge: r.edge.map(|a| format!("http://{a}")),
                    apps: self.region_apps(&r.name).lock().await.instances(),
                    pid: self.nodes.pid(&r.name).await,
                    log: self.nodes.log(&r.name),
                },
            );
        }
        ClusterFile {
            cluster: self.topology.cluster_name.clone(),
            config: self.config.clone(),
            up_pid: std::process::id(),
            supervisor,
            admin_token: self.admin_token.clone(),
            regions,
        }
    }

    /// Rewrites `cluster.json` with the nodes' pids and the app instances
    /// now (after a kill, restart, chaos on apps or a scale step).
    pub async fn refresh_cluster_file(&self) -> anyhow::Result<()> {
        let mut guard = self.cluster_file.lock().await;
        let Some(file) = guard.as_mut() else {
            return Ok(());
        };
        for (name, endpoints) in file.regions.iter_mut() {
            let region = RegionName::new(name.clone())?;
            endpoints.pid = self.nodes.pid(&region).await;
            endpoints.apps = self.region_apps(&region).lock().await.instances();
        }
        Ok(file.store(&self.dir)?)
    }

    /// SIGTERMs every app instance and node first, then waits for each
    /// (SIGKILL after its grace), so they all stop in parallel.
    pub async fn stop_all(&self) {
        for apps in self.apps.values() {
            apps.lock().await.terminate_all();
        }
        self.nodes.terminate_all().await;
        let now = tokio::time::Instant::now();
        for apps in self.apps.values() {
            apps.lock().await.wait_all(now + APP_STOP_GRACE).await;
        }
        self.nodes.wait_all(now + STOP_GRACE).await;
    }
}
