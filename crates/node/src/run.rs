//! `meridian node`: one region's process.
//!
//! Binds the region's listeners, starts one emulated link per peer when the
//! topology asks for emulation, joins the peer mesh, serves the admin API,
//! and stops cleanly when `shutdown` is cancelled (SIGINT/SIGTERM in `main`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use meridian_api::cluster::DB_FILE;
use meridian_core::config::Region;
use meridian_core::hlc::OFFSET_MS_MAX_DEFAULT;
use meridian_core::SystemClock;
use meridian_core::{RegionName, Topology};
use meridian_repl::{ReplConfig, ReplHandle, Residency};
use meridian_resp::modes::Modes;
use meridian_store::db::{Db, DbConfig};
use meridian_store::{Durability, RedbStore};
use meridian_wan::{LinkControl, LinkProxy, PeerIdentity, PeerMesh, PeerTarget};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::StartError;
use crate::http::{self, AdminState};
use crate::links::capture_tap;
use crate::residency::follow_residency;
use crate::state::Node;

/// Binds `addr`, naming the listener in the error so an operator knows which
/// config field to change.
async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// How a node keeps its data and checks it against its peers.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Directory of the database file.
    pub data_dir: PathBuf,
    /// fsync per commit, or not (benchmarks only).
    pub durability: Durability,
    /// How often anti-entropy compares this region's data with a peer's.
    pub anti_entropy_interval: std::time::Duration,
    /// Where to record every byte this node's emulated links deliver (a
    /// residency audit), one file per link and direction; `None`: nowhere.
    pub capture_links: Option<PathBuf>,
}

/// The listeners a node binds before it does anything else, so a
/// port in use fails the start before any state is touched.
struct Listeners {
    peer: TcpListener,
    admin: TcpListener,
    resp: TcpListener,
    edge: Option<TcpListener>,
}

impl Listeners {
    async fn bind(me: &Region) -> Result<Listeners, StartError> {
        Ok(Listeners {
            peer: bind("peer links", me.peer).await?,
            admin: bind("the admin API", me.admin).await?,
            resp: bind("the Redis endpoint", me.resp).await?,
            edge: match me.edge {
                Some(addr) => Some(bind("the edge proxy", addr).await?),
                None => None,
            },
        })
    }
}

/// Runs the node for `region` until `shutdown` is cancelled.
pub async fn run(
    topology: Topology,
    region: RegionName,
    storage: NodeOptions,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let me = topology
        .region(&region)
        .ok_or_else(|| StartError::UnknownRegion(region.clone()))?
        .clone();
    let listeners = Listeners::bind(&me).await?;
    let (links, targets) = dial_targets(&topology, &me, &storage, &shutdown).await?;
    let (db, db_path) = open_store(&storage, &region)?;
    let identity = PeerIdentity::new(
        topology.cluster_name.clone(),
        region.clone(),
        &topology.secret,
    );
    let (mesh, inbound) = PeerMesh::start(identity, targets, listeners.peer, shutdown.clone());
    let (modes, residency, repl) =
        start_replication(&topology, &region, &db, &mesh, inbound, &storage, &shutdown)?;
    let resp = start_endpoint(&me, &db, modes, &mesh, &repl, storage.durability);
    repl.calls()
        .set_handler(crate::remote::handler(resp.clone()));
    meridian_resp::modes::spawn_watcher(resp.modes.clone(), db.clone(), shutdown.clone());
    follow_residency(&resp, db.clone(), residency, region.clone()).await?;
    tokio::spawn(meridian_resp::serve(
        listeners.resp,
        resp.clone(),
        shutdown.clone(),
    ));
    let edge = match listeners.edge {
        Some(listener) => {
            let peers = crate::edge::edge_peers(&topology, &me, &links, &shutdown).await?;
            let modes = resp.modes.clone();
            let edge = crate::edge::start_edge(
                &topology,
                &region,
                peers,
                modes,
                &storage.data_dir,
                &shutdown,
            );
            let std = listener
                .into_std()
                .map_err(|e| StartError::Edge(e.to_string()))?;
            meridian_route::server::start(edge.clone(), std, topology.edge.threads)
                .map_err(|e| StartError::Edge(e.to_string()))?;
            Some(edge)
        }
        None => None,
    };
    let node = Arc::new(Node {
        region: region.clone(),
        topology,
        mesh,
        db,
        repl,
        links,
        started: Instant::now(),
        resp,
        edge,
        data_dir: storage.data_dir.clone(),
    });
    tracing::info!(
        %region,
        peer = %me.peer,
        admin = %me.admin,
        resp = %me.resp,
        edge = ?me.edge,
        emulated_links = node.links.len(),
        data = %db_path.display(),
        applied = %node.db.applied().to_token(),
        "node ready"
    );
    http::serve(listeners.admin, AdminState::new(node), shutdown.clone())
        .await
        .map_err(StartError::Serve)?;
    tracing::info!(%region, "node stopped");
    Ok(())
}

/// Where the mesh dials each peer: through an emulated link (started here,
/// one per peer) when the topology emulates the WAN, else the peer itself.
async fn dial_targets(
    topology: &Topology,
    me: &Region,
    storage: &NodeOptions,
    shutdown: &CancellationToken,
) -> Result<(BTreeMap<RegionName, LinkControl>, Vec<PeerTarget>), StartError> {
    let mut links = BTreeMap::new();
    let mut targets = Vec::new();
    for peer in topology.peers_of(&me.name) {
        let dial = if topology.emulate_wan {
            // The local end of the emulated link sits on our peer IP so that
            // a multi-host setup keeps the traffic on the right interface.
            let proxy = bind("an emulated link", SocketAddr::new(me.peer.ip(), 0)).await?;
            let dial = proxy.local_addr().map_err(|source| StartError::Bind {
                what: "an emulated link",
                addr: SocketAddr::new(me.peer.ip(), 0),
                source,
            })?;
            let mut control = LinkControl::symmetric(topology.link(&me.name, &peer.name));
            if let Some(dir) = &storage.capture_links {
                control = control.with_tap(capture_tap(dir, &me.name, &peer.name)?);
            }
            LinkProxy::spawn(
                proxy,
                peer.advertise_peer,
                control.clone(),
                shutdown.clone(),
            );
            links.insert(peer.name.clone(), control);
            dial
        } else {
            peer.advertise_peer
        };
        targets.push(PeerTarget {
            region: peer.name.clone(),
            dial,
        });
    }
    Ok((links, targets))
}

/// Opens (or creates) the region's database and starts its writer.
fn open_store(storage: &NodeOptions, region: &RegionName) -> Result<(Db, PathBuf), StartError> {
    std::fs::create_dir_all(&storage.data_dir).map_err(|source| StartError::DataDir {
        path: storage.data_dir.clone(),
        source,
    })?;
    let db_path = storage.data_dir.join(DB_FILE);
    let backend = RedbStore::open(&db_path).map_err(|source| StartError::OpenDb {
        path: db_path.clone(),
        source,
    })?;
    let db = Db::start(
        Arc::new(backend),
        DbConfig {
            region: region.clone(),
            durability: storage.durability,
            max_offset_ms: OFFSET_MS_MAX_DEFAULT,
        },
        SystemClock,
    )?;
    Ok((db, db_path))
}

/// The table modes as last changed, the residency map that follows them,
/// and the replicator with its purger and anti-entropy.
fn start_replication(
    topology: &Topology,
    region: &RegionName,
    db: &Db,
    mesh: &PeerMesh,
    inbound: tokio::sync::mpsc::Receiver<meridian_wan::InboundFrame>,
    storage: &NodeOptions,
    shutdown: &CancellationToken,
) -> Result<(Arc<Modes>, Residency, ReplHandle), StartError> {
    let all_regions = topology.regions.iter().map(|r| r.name.clone()).collect();
    // Modes changed at run time before a restart hold before anything is
    // shipped or served; the residency map (shared by the replicator and
    // anti-entropy) starts from them and follows later changes.
    let modes = Arc::new(Modes::new(Arc::new(topology.clone())));
    modes.refresh(db).map_err(StartError::Modes)?;
    let residency = Residency::new(modes.topology().residency());
    let repl = meridian_repl::runtime::spawn(
        db.clone(),
        mesh.clone(),
        inbound,
        ReplConfig::new(region.clone(), all_regions),
        residency.clone(),
        shutdown.clone(),
    )?;
    // Every table, held or not: which ones this region holds can change at
    // run time, and the purger and anti-entropy skip the others.
    let tables = topology.table_names();
    meridian_repl::runtime::spawn_purger(
        db.clone(),
        repl.closed().clone(),
        tables.clone(),
        shutdown.clone(),
    );
    meridian_repl::runtime::spawn_anti_entropy(
        mesh.clone(),
        region.clone(),
        tables,
        residency.clone(),
        storage.anti_entropy_interval,
        shutdown.clone(),
    );
    Ok((modes, residency, repl))
}

/// The Redis endpoint's shared state, reaching other regions through the
/// replicator's calls.
fn start_endpoint(
    me: &Region,
    db: &Db,
    modes: Arc<Modes>,
    mesh: &PeerMesh,
    repl: &ReplHandle,
    durability: Durability,
) -> Arc<meridian_resp::Shared> {
    let info = crate::info::NodeInfo {
        region: me.name.clone(),
        mesh: mesh.clone(),
        repl: repl.clone(),
        db: db.clone(),
    };
    let shared = meridian_resp::Shared::new(
        db.clone(),
        modes,
        me.name.clone(),
        durability.as_str().to_string(),
        Arc::new(info),
        me.resp,
    )
    .with_remote(Arc::new(crate::remote::NodeRemote {
        calls: repl.calls().clone(),
    }));
    Arc::new(shared)
}
