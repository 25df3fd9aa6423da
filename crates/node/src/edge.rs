//! The node's edge proxy: where it dials the other regions' edges (through
//! the same emulated WAN link as the peer mesh, so partitions, delay and
//! bandwidth apply to HTTP traffic too), starting it, and the drain marker
//! that keeps a drained region drained across a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use meridian_core::config::Region;
use meridian_core::{RegionName, Topology};
use meridian_resp::modes::Modes;
use meridian_route::{Edge, EdgeSetup};
use meridian_wan::{LinkControl, LinkProxy};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::StartError;

/// The drain marker in the data directory: present while drained.
pub const DRAIN_FILE: &str = "drained";

/// Where this node dials each other region's edge: the local end of an
/// emulated link sharing the peer link's control (started here), or the
/// edge itself when the WAN is not emulated.
pub async fn edge_peers(
    topology: &Topology,
    me: &Region,
    links: &BTreeMap<RegionName, LinkControl>,
    shutdown: &CancellationToken,
) -> Result<BTreeMap<RegionName, SocketAddr>, StartError> {
    let mut out = BTreeMap::new();
    for peer in topology.peers_of(&me.name) {
        let Some(edge) = peer.edge else { continue };
        let dial = match links.get(&peer.name) {
            Some(control) => {
                let local = SocketAddr::new(me.peer.ip(), 0);
                let listener =
                    TcpListener::bind(local)
                        .await
                        .map_err(|source| StartError::Bind {
                            what: "an emulated edge link",
                            addr: local,
                            source,
                        })?;
                let dial = listener.local_addr().map_err(|source| StartError::Bind {
                    what: "an emulated edge link",
                    addr: local,
                    source,
                })?;
                LinkProxy::spawn(listener, edge, control.without_tap(), shutdown.clone());
                dial
            }
            None => edge,
        };
        out.insert(peer.name.clone(), dial);
    }
    Ok(out)
}

/// Starts the edge of region `me` (its listener is served by the caller).
pub fn start_edge(
    topology: &Topology,
    me: &RegionName,
    peers: BTreeMap<RegionName, SocketAddr>,
    modes: Arc<Modes>,
    data_dir: &Path,
    shutdown: &CancellationToken,
) -> Arc<Edge> {
    let setup = EdgeSetup {
        region: me.clone(),
        topology: Arc::new(topology.clone()),
        peers,
        // The home as the table modes say now: a `table move` (or a
        // failover) moves the writes of `writes_to_home_of` routes with it.
        home_of: Arc::new(move |table| modes.view().home(table)),
    };
    let edge = Edge::start(setup, shutdown.clone());
    if data_dir.join(DRAIN_FILE).exists() {
        edge.set_draining(true);
    }
    edge
}

/// Records the drain state so it survives a restart.
pub fn store_drained(data_dir: &Path, drained: bool) -> std::io::Result<()> {
    let path = data_dir.join(DRAIN_FILE);
    if drained {
        std::fs::write(&path, b"drained by the admin API\n")
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
