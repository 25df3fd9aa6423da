//! `DIR/cluster.json`: where a local cluster started by `meridian up` can be
//! found. Written by `up` (and rewritten when a region restarts), read by
//! `chaos`, `status`, tests and any script.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// File name inside the cluster directory.
pub const CLUSTER_FILE: &str = "cluster.json";

/// The whole file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterFile {
    /// Cluster name.
    pub cluster: String,
    /// The topology file the nodes run.
    pub config: PathBuf,
    /// Process id of the `meridian up` that owns the nodes.
    pub up_pid: u32,
    /// Supervisor API (kill/restart regions), e.g. `http://127.0.0.1:PORT`.
    pub supervisor: String,
    /// Bearer token for the admin and supervisor APIs. The file is written
    /// with mode 0600 for this reason.
    pub admin_token: String,
    /// Endpoints per region.
    pub regions: BTreeMap<String, RegionEndpoints>,
}

/// One region's endpoints and process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionEndpoints {
    /// Redis-protocol address (`host:port`).
    pub resp: String,
    /// Admin API base URL.
    pub admin: String,
    /// Peer-link address.
    pub peer: String,
    /// Node process id while running.
    pub pid: Option<u32>,
    /// The node's log file.
    pub log: PathBuf,
}

impl ClusterFile {
    /// Reads `DIR/cluster.json`, saying what to do when it is missing.
    pub fn load(dir: &Path) -> anyhow::Result<ClusterFile> {
        let path = dir.join(CLUSTER_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: is a cluster running from this directory? Start one with `meridian up --dir {}`",
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cluster file", path.display()))
    }

    /// Writes `DIR/cluster.json` atomically (temp file + rename), mode 0600.
    pub fn store(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(CLUSTER_FILE);
        let tmp = dir.join(format!(".{CLUSTER_FILE}.tmp"));
        write_private(&tmp, serde_json::to_string_pretty(self)?.as_bytes())?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Writes a file readable only by its owner (it holds secrets).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
