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

use anyhow::Context;
use meridian_api::cluster::DB_FILE;
use meridian_core::hlc::MAX_OFFSET_MS_DEFAULT;
use meridian_core::SystemClock;
use meridian_core::{RegionName, Topology};
use meridian_repl::{ReplConfig, Residency};
use meridian_store::db::{Db, DbConfig};
use meridian_store::{Durability, RedbStore};
use meridian_wan::{LinkControl, LinkProxy, PeerIdentity, PeerMesh, PeerTarget};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::{self, AdminState};
use crate::links::capture_tap;
use crate::residency::follow_residency;
use crate::state::Node;

/// Binds `addr`, naming the listener in the error so an operator knows which
/// config field to change.
async fn bind(what: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for {what} on {addr} (is another process using the port?)")
    })
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

/// Runs the node for `region` until `shutdown` is cancelled.
pub async fn run(
    topology: Topology,
    region: RegionName,
    storage: NodeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let me = topology
        .region(&region)
        .with_context(|| {
            format!("region `{region}` is not in the topology; pick one of its [[regions]]")
        })?
        .clone();
    let peer_listener = bind("peer links", me.peer).await?;
    let admin_listener = bind("the admin API", me.admin).await?;
    let resp_listener = bind("the Redis endpoint", me.resp).await?;

    let mut links = BTreeMap::new();
    let mut targets = Vec::new();
    for peer in topology.peers_of(&region) {
        let dial = if topology.emulate_wan {
            // The local end of the emulated link sits on our peer IP so that
            // a multi-host setup keeps the traffic on the right interface.
            let proxy = bind("an emulated link", SocketAddr::new(me.peer.ip(), 0)).await?;
            let dial = proxy.local_addr()?;
            let mut control = LinkControl::symmetric(topology.link(&region, &peer.name));
            if let Some(dir) = &storage.capture_links {
                control = control.with_tap(capture_tap(dir, &region, &peer.name)?);
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
    std::fs::create_dir_all(&storage.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            storage.data_dir.display()
        )
    })?;
    let db_path = storage.data_dir.join(DB_FILE);
    let backend = RedbStore::open(&db_path)
        .with_context(|| format!("cannot open the database {}", db_path.display()))?;
    let db = Db::start(
        Arc::new(backend),
        DbConfig {
            region: region.clone(),
            durability: storage.durability,
            max_offset_ms: MAX_OFFSET_MS_DEFAULT,
        },
        SystemClock,
    )?;
    let identity = PeerIdentity::new(
        topology.cluster_name.clone(),
        region.clone(),
        &topology.secret,
    );
    let (mesh, inbound) = PeerMesh::start(identity, targets, peer_listener, shutdown.clone());
    let all_regions = topology.regions.iter().map(|r| r.name.clone()).collect();
    // Modes changed at run time before a restart hold before anything is
    // shipped or served; the residency map (shared by the replicator and
    // anti-entropy) starts from them and follows later changes.
    let modes = Arc::new(meridian_resp::modes::Modes::new(Arc::new(topology.clone())));
    modes.refresh(&db).context("cannot read the table modes")?;
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

    let resp = Arc::new(
        meridian_resp::Shared::new(
            db.clone(),
            modes,
            region.clone(),
            match storage.durability {
                Durability::Fsync => "fsync",
                Durability::None => "none",
            }
            .to_string(),
            Arc::new(crate::info::NodeInfo {
                region: region.clone(),
                mesh: mesh.clone(),
                repl: repl.clone(),
                db: db.clone(),
            }),
            me.resp,
        )
        .with_remote(Arc::new(crate::remote::NodeRemote {
            calls: repl.calls().clone(),
        })),
    );
    repl.calls()
        .set_handler(crate::remote::handler(resp.clone()));
    meridian_resp::modes::spawn_watcher(resp.modes.clone(), db.clone(), shutdown.clone());
    follow_residency(&resp, db.clone(), residency, region.clone()).await?;
    tokio::spawn(meridian_resp::serve(
        resp_listener,
        resp.clone(),
        shutdown.clone(),
    ));
    let node = Arc::new(Node {
        region: region.clone(),
        topology,
        mesh,
        db,
        repl,
        links,
        started: Instant::now(),
        resp,
    });
    tracing::info!(
        %region,
        peer = %me.peer,
        admin = %me.admin,
        resp = %me.resp,
        emulated_links = node.links.len(),
        data = %db_path.display(),
        applied = %node.db.applied().to_token(),
        "node ready"
    );
    http::serve(admin_listener, AdminState::new(node), shutdown.clone()).await?;
    tracing::info!(%region, "node stopped");
    Ok(())
}
