//! `DIR/cluster.json`: where a local cluster started by `meridian up` can be
//! found. Written by `up` (and rewritten when a region restarts), read by
//! `chaos`, `status`, tests and any script.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the cluster directory.
pub const CLUSTER_FILE: &str = "cluster.json";

/// A node's database file inside its data directory (`up` gives region R
/// the data directory `DIR/data/R`).
pub const DB_FILE: &str = "meridian.redb";

/// Why the cluster file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    /// Missing or unreadable: most likely no cluster runs from that directory.
    #[error("cannot read {}: is a cluster running from this directory? Start one with `meridian up --dir {}`", path.display(), dir.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Read, but not a cluster file.
    #[error("{} is not a cluster file", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the JSON decoder said.
        #[source]
        source: serde_json::Error,
    },
    /// Could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

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
    /// Edge proxy base URL (`http://127.0.N.1:PORT`: each region's edge
    /// has its own loopback address and the same port, so an address alone
    /// names a region).
    #[serde(default)]
    pub edge: Option<String>,
    /// The app instances `up` runs behind the edge.
    #[serde(default)]
    pub apps: Vec<AppInstance>,
    /// Node process id while running.
    pub pid: Option<u32>,
    /// The node's log file.
    pub log: PathBuf,
}

/// One app instance `up` runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInstance {
    /// Where it listens (`IP:PORT`).
    pub addr: String,
    /// Its process id.
    pub pid: Option<u32>,
}

impl ClusterFile {
    /// Reads `DIR/cluster.json`, saying what to do when it is missing.
    pub fn load(dir: &Path) -> Result<ClusterFile, ClusterFileError> {
        let path = dir.join(CLUSTER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => {
                let dir = dir.to_path_buf();
                return Err(ClusterFileError::Missing { path, dir, source });
            }
        };
        serde_json::from_str(&text).map_err(|source| ClusterFileError::Malformed { path, source })
    }

    /// Writes `DIR/cluster.json` atomically (temp file + rename), mode 0600.
    pub fn store(&self, dir: &Path) -> Result<(), ClusterFileError> {
        let path = dir.join(CLUSTER_FILE);
        let tmp = dir.join(format!(".{CLUSTER_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("a cluster file always encodes");
        write_private(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &path).map_err(|source| ClusterFileError::Write { path, source })
    }
}

/// Writes a file readable only by its owner (it holds secrets).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ClusterFileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|source| ClusterFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}
