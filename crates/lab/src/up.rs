//! `meridian up`: a local multi-region cluster on one machine.
//!
//! Starts one `meridian node` process per region on 127.0.0.1 with the
//! default latency profile (DESIGN.md §6) emulated on every link, each
//! region's edge proxy on its own loopback address (`127.0.N.1`, one port
//! for all), and app instances behind every edge. It waits until every
//! node answers, every peer link is up and every edge serves, prints the
//! endpoints and writes them to `DIR/cluster.json`. It then supervises:
//! the traffic loop registers each region's instances with its edge and
//! scales them on the edge's load; the supervisor API lets `meridian
//! chaos` kill and restart nodes and stop and start apps. Ctrl-C (or
//! SIGTERM) stops every process; they also die with `up` if it is killed,
//! via `PR_SET_PDEATHSIG`, so nothing is ever left running.
//!
//! # Layout
//! - `config`: the generated topology, default tables, `--extra-config`.
//! - `nodes`: the node processes.
//! - `supervisor`: what the API and the loop share.
//! - `traffic`: the per-region registration and scaling loop.
//! - `api`: the supervisor API.
//!
//! Ports are [`crate::ports`]'; app processes [`crate::apps`]'; scale
//! decisions [`crate::autoscale`]'.

mod api;
mod config;
mod nodes;
mod supervisor;
mod traffic;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use meridian_core::{geo, Durability, RegionName, Topology};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use meridian_api::client::AdminClient;
use meridian_api::cluster::{write_private, ClusterFile};
use meridian_api::edge::EdgeStatus;
use meridian_api::status::NodeStatus;

use crate::apps::{AppLauncher, AppOptions, RegionApps};
use crate::ports::{choose_edge_port, choose_ports};
use crate::process::log_tail;
use nodes::{NodeLaunch, Nodes};
use supervisor::Supervisor;
use traffic::TrafficLoops;

pub use crate::ports::FREE_PORTS;
pub use nodes::{CAPTURE_DIR, READY_TIMEOUT, STOP_GRACE};

/// Regions `up` starts when none are named.
pub const DEFAULT_REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// Most regions one `up` runs; each is a process with a full mesh of links.
pub const REGIONS_MAX: usize = 16;

/// Between two looks at a starting cluster.
const READY_POLL: Duration = Duration::from_millis(100);

/// What `up` was asked for.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Regions to start, in order.
    pub regions: Vec<RegionName>,
    /// Cluster directory: topology, logs, data, cluster.json.
    pub dir: PathBuf,
    /// Fixed ports: region i uses `base + 10·i + {0 peer, 1 resp, 2 admin}`,
    /// and every edge `base + 3`. `None` picks free ports.
    pub base_port: Option<u16>,
    /// Anti-entropy interval passed to every node, ms.
    pub anti_entropy_ms: u64,
    /// Passed to every node.
    pub durability: Durability,
    /// A TOML file whose `[[tables]]`, `[resp]`, `[edge]` and `[[routes]]`
    /// are added to (or replace parts of) the generated topology.
    pub extra_config: Option<PathBuf>,
    /// Whether nodes record what their links deliver into `dir/capture`.
    pub capture_links: bool,
    /// The app instances per region and their scaling.
    pub apps: AppOptions,
}

/// Parses `us-east,eu-west,...`, refusing duplicates and unknown regions.
pub fn parse_regions(list: &str) -> anyhow::Result<Vec<RegionName>> {
    let mut out: Vec<RegionName> = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = RegionName::new(raw)?;
        if geo::catalogue_region(raw).is_none() {
            let known: Vec<_> = geo::CATALOGUE.iter().map(|r| r.name).collect();
            bail!(
                "region `{raw}` has no city in the default latency profile; use some of: {}",
                known.join(", ")
            );
        }
        if out.contains(&name) {
            bail!("region `{raw}` is listed twice");
        }
        out.push(name);
    }
    if out.is_empty() {
        bail!("--regions names no region");
    }
    if out.len() > REGIONS_MAX {
        bail!(
            "at most {REGIONS_MAX} regions can run locally, {} were asked for",
            out.len()
        );
    }
    Ok(out)
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS random source is available");
    hex::encode(b)
}

/// Waits until every node answers `/status` with all links up.
async fn wait_ready(
    sup: &Supervisor,
    client: &AdminClient,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        if let Some((region, tail)) = sup.nodes.exited().await {
            bail!("node {region} exited during start-up: {tail}");
        }
        let mut all = true;
        for r in &sup.topology.regions {
            let url = format!("http://{}/status", r.admin);
            match client.get::<NodeStatus>(&url).await {
                Ok(s) if s.peers.iter().all(|p| p.link.outbound_up) => {}
                _ => all = false,
            }
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            let mut msg = format!("the cluster did not come up within {READY_TIMEOUT:?}.");
            for r in &sup.topology.regions {
                let log = sup.nodes.log(&r.name);
                msg.push_str(&format!(
                    "\n--- {} ({}) ---\n{}",
                    r.name,
                    log.display(),
                    log_tail(&log)
                ));
            }
            bail!(msg);
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Waits until every region's edge says it can serve (`GET /edge`,
/// `serving`); fails at once when a node or an app instance exits.
async fn wait_serving(
    sup: &Supervisor,
    client: &AdminClient,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        if let Some((region, tail)) = sup.nodes.exited().await {
            bail!("node {region} exited during start-up: {tail}");
        }
        for (region, apps) in &sup.apps {
            if let Some(exit) = apps.lock().await.last_exit() {
                bail!("{region}: {exit}");
            }
        }
        let mut waiting = Vec::new();
        for r in &sup.topology.regions {
            let url = format!("http://{}/edge", r.admin);
            match client.get::<EdgeStatus>(&url).await {
                Ok(s) if s.serving => {}
                Ok(s) => waiting.push(format!(
                    "{}: not serving ({} of {} instances up)",
                    r.name,
                    s.backends.iter().filter(|b| b.up).count(),
                    s.backends.len()
                )),
                Err(e) => waiting.push(format!("{}: {e}", r.name)),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the edges did not serve within {READY_TIMEOUT:?}:\n  {}\n(app logs: {})",
                waiting.join("\n  "),
                sup.dir.join("logs").display()
            );
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Runs `up` until `shutdown` is cancelled.
pub async fn run(opts: UpOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let dir = opts.dir.canonicalize()?;
    if let Ok(existing) = ClusterFile::load(&dir) {
        // SAFETY: signal 0 only checks that the pid exists.
        if unsafe { libc::kill(existing.up_pid as i32, 0) } == 0 {
            bail!(
                "a cluster is already running from {} (meridian up, pid {}); stop it or choose another --dir",
                dir.display(),
                existing.up_pid
            );
        }
    }
    std::fs::create_dir_all(dir.join("logs"))?;
    let sup = Arc::new(prepare(&opts, &dir)?);
    let mut loops = None;
    let result = start_and_serve(&sup, &mut loops, shutdown).await;
    if let Some(loops) = loops {
        loops.stop().await;
    }
    sup.stop_all().await;
    let _ = std::fs::remove_file(dir.join(meridian_api::cluster::CLUSTER_FILE));
    if result.is_ok() {
        println!("all nodes and app instances stopped");
    }
    result
}

/// Chooses the ports, writes the topology and sets up (without starting
/// anything) the supervisor.
fn prepare(opts: &UpOptions, dir: &Path) -> anyhow::Result<Supervisor> {
    let admin_token = random_hex(16);
    let n = opts.regions.len();
    let ports = choose_ports(n, opts.base_port)?;
    let edge_port = choose_edge_port(n, opts.base_port, &ports)?;
    let mut config = config::topology_for(
        &opts.regions,
        &ports,
        edge_port,
        &admin_token,
        random_hex(32),
    );
    if let Some(extra) = &opts.extra_config {
        config::merge_extra(&mut config, extra)?;
    }
    let topology = config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let config_path = dir.join("topology.toml");
    write_private(&config_path, config.to_toml().as_bytes())?;

    let exe = std::env::current_exe()?;
    let nodes = Nodes::new(
        NodeLaunch {
            exe: exe.clone(),
            anti_entropy_ms: opts.anti_entropy_ms,
            durability: opts.durability,
            capture_links: opts.capture_links,
            config: config_path.clone(),
            dir: dir.to_path_buf(),
        },
        &opts.regions,
    );
    let node_ports: BTreeSet<u16> = ports.iter().flatten().copied().collect();
    let launcher = AppLauncher::new(exe, opts.apps.command.clone(), dir.join("logs"), node_ports);
    let apps = topology
        .regions
        .iter()
        .map(|r| {
            let apps = RegionApps::new(r.name.clone(), r.resp, opts.apps.per_region);
            (r.name.clone(), Mutex::new(apps))
        })
        .collect();
    Ok(Supervisor {
        nodes,
        apps,
        launcher,
        app_options: opts.apps.clone(),
        topology,
        dir: dir.to_path_buf(),
        config: config_path,
        admin_token,
        cluster_file: Mutex::new(None),
        scale_history: Default::default(),
    })
}

async fn start_and_serve(
    sup: &Arc<Supervisor>,
    loops: &mut Option<TrafficLoops>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + READY_TIMEOUT;
    for r in &sup.topology.regions {
        sup.nodes.spawn(&r.name).await?;
    }
    let client = AdminClient::new(None);
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = wait_ready(sup, &client, deadline) => r?,
    }
    // The loops start the app instances and register them.
    *loops = Some(TrafficLoops::start(sup));
    if sup.app_options.per_region > 0 {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = wait_serving(sup, &client, deadline) => r?,
        }
    }
    let ready_after = started.elapsed();

    let supervisor_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let supervisor_url = format!("http://{}", supervisor_listener.local_addr()?);
    let file = sup.cluster_file_now(supervisor_url).await;
    file.store(&sup.dir)?;
    print_endpoints(&file, &sup.topology, &sup.dir, ready_after);
    *sup.cluster_file.lock().await = Some(file);

    let app = api::router(sup.clone(), sup.admin_token.clone());
    let stop = shutdown.clone();
    axum::serve(supervisor_listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

fn print_endpoints(file: &ClusterFile, topology: &Topology, dir: &Path, ready_after: Duration) {
    println!(
        "Meridian cluster `{}` is up: {} regions on loopback, emulated WAN (default latency profile), ready in {:.1} s",
        file.cluster,
        file.regions.len(),
        ready_after.as_secs_f64()
    );
    println!();
    println!(
        "{:<14} {:<17} {:<24} {:<24} {:<17} {:>7} {:>4}",
        "REGION", "REDIS (RESP)", "ADMIN", "EDGE", "PEER", "PID", "APPS"
    );
    for r in &topology.regions {
        let e = &file.regions[r.name.as_str()];
        let pid = e.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let edge = e.edge.as_deref().unwrap_or("-");
        println!(
            "{:<14} {:<17} {:<24} {:<24} {:<17} {:>7} {:>4}",
            r.name,
            e.resp,
            e.admin,
            edge,
            e.peer,
            pid,
            e.apps.len()
        );
    }
    println!();
    println!("{:<30} {:>8}", "LINK", "RTT");
    for ((a, b), c) in &topology.links {
        println!(
            "{:<30} {:>5.0} ms",
            format!("{a} <-> {b}"),
            c.one_way_delay.as_secs_f64() * 2000.0
        );
    }
    println!();
    println!(
        "endpoints: {}",
        dir.join(meridian_api::cluster::CLUSTER_FILE).display()
    );
    println!("status:    meridian status --dir {}", dir.display());
    println!(
        "faults:    meridian chaos --dir {} partition us-east eu-west",
        dir.display()
    );
    println!("Ctrl-C stops every node and app instance.");
}
