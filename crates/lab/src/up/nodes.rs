//! The node processes of `meridian up`: one `meridian node` per region,
//! started, stopped by pid (SIGTERM, SIGKILL after [`STOP_GRACE`]) and
//! watched for an exit. App instances are [`crate::apps`]'.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use meridian_core::{Durability, RegionName};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::process::{self, log_tail};

/// How long nodes get to answer and link up (and, with apps, their edges
/// to serve) before `up` gives up; also how long a restarted node gets to
/// answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a node gets to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where `--capture-links` puts the link captures, inside the cluster
/// directory.
pub const CAPTURE_DIR: &str = "capture";

struct NodeProcess {
    child: Option<Child>,
    log: PathBuf,
}

/// How every node is started.
pub(super) struct NodeLaunch {
    pub exe: PathBuf,
    pub anti_entropy_ms: u64,
    pub durability: Durability,
    pub capture_links: bool,
    /// The topology file.
    pub config: PathBuf,
    /// The cluster directory.
    pub dir: PathBuf,
}

/// Owns the node processes.
pub(super) struct Nodes {
    launch: NodeLaunch,
    procs: Mutex<BTreeMap<RegionName, NodeProcess>>,
}

impl Nodes {
    /// No node runs yet; each region logs to `DIR/logs/<region>.log`.
    pub fn new(launch: NodeLaunch, regions: &[RegionName]) -> Nodes {
        let procs = regions
            .iter()
            .map(|r| {
                let log = launch.dir.join("logs").join(format!("{r}.log"));
                (r.clone(), NodeProcess { child: None, log })
            })
            .collect();
        Nodes {
            launch,
            procs: Mutex::new(procs),
        }
    }

    /// The node log of `region`.
    pub fn log(&self, region: &RegionName) -> PathBuf {
        self.launch.dir.join("logs").join(format!("{region}.log"))
    }

    /// Starts `region`'s node; an error if it is already running.
    pub async fn spawn(&self, region: &RegionName) -> anyhow::Result<()> {
        let mut procs = self.procs.lock().await;
        let entry = procs
            .get_mut(region)
            .with_context(|| format!("unknown region `{region}`"))?;
        if let Some(child) = entry.child.as_mut() {
            if child.try_wait()?.is_none() {
                bail!("region `{region}` is already running");
            }
        }
        let l = &self.launch;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&entry.log)?;
        let mut cmd = Command::new(&l.exe);
        cmd.arg("node")
            .arg("--config")
            .arg(&l.config)
            .arg("--region")
            .arg(region.as_str())
            .arg("--data-dir")
            .arg(l.dir.join("data").join(region.as_str()))
            .arg("--anti-entropy-interval-ms")
            .arg(l.anti_entropy_ms.to_string())
            .arg("--durability")
            .arg(l.durability.as_str());
        if l.capture_links {
            cmd.arg("--capture-links").arg(l.dir.join(CAPTURE_DIR));
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        process::die_with_parent(&mut cmd, false);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", l.exe.display()))?;
        tracing::info!(%region, pid = child.id(), "node started");
        entry.child = Some(child);
        Ok(())
    }

    /// Sends `signal` and waits up to `grace` for exit, then SIGKILLs.
    pub async fn stop(
        &self,
        region: &RegionName,
        signal: i32,
        grace: Duration,
    ) -> anyhow::Result<()> {
        // The child leaves the map before the wait, so the traffic loops
        // and the other regions' requests, which read pids, do not wait
        // for a stopping node (it has no pid meanwhile).
        let child = {
            let mut procs = self.procs.lock().await;
            let entry = procs
                .get_mut(region)
                .with_context(|| format!("unknown region `{region}`"))?;
            entry.child.take()
        };
        let Some(mut child) = child else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            process::send_signal(pid, signal, false);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::warn!(%region, "node did not stop in {grace:?}; killing it");
            child.kill().await?;
        }
        Ok(())
    }

    /// The running node's pid.
    pub async fn pid(&self, region: &RegionName) -> Option<u32> {
        let mut procs = self.procs.lock().await;
        let child = procs.get_mut(region)?.child.as_mut()?;
        match child.try_wait() {
            Ok(None) => child.id(),
            _ => None,
        }
    }

    /// The first region whose process has exited, with its log tail.
    pub async fn exited(&self) -> Option<(RegionName, String)> {
        let mut procs = self.procs.lock().await;
        for (name, p) in procs.iter_mut() {
            if let Some(child) = p.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some((name.clone(), format!("{status}\n{}", log_tail(&p.log))));
                }
            }
        }
        None
    }

    /// Shutdown, first step: SIGTERM to every node.
    pub async fn terminate_all(&self) {
        let procs = self.procs.lock().await;
        for p in procs.values() {
            if let Some(pid) = p.child.as_ref().and_then(Child::id) {
                process::send_signal(pid, libc::SIGTERM, false);
            }
        }
    }

    /// Shutdown, second step: waits for every node until `deadline`,
    /// SIGKILLing the ones still running then.
    pub async fn wait_all(&self, deadline: tokio::time::Instant) {
        let mut procs = self.procs.lock().await;
        for (region, p) in procs.iter_mut() {
            let Some(mut child) = p.child.take() else {
                continue;
            };
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(%region, "node did not stop in {STOP_GRACE:?}; killing it");
                let _ = child.kill().await;
            }
        }
    }
}
