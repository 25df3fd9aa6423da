//! `meridian up`: a local multi-region cluster on one machine.
//!
//! Starts one `meridian node` process per region on 127.0.0.1 with the
//! default latency profile (DESIGN.md §6) emulated on every link, waits until
//! every node answers and every peer link is up, prints the endpoints and
//! writes them to `DIR/cluster.json`. It then supervises the nodes: the
//! supervisor API lets `meridian chaos` kill and restart regions. Ctrl-C (or
//! SIGTERM) stops every node; nodes also die with `up` if it is killed, via
//! `PR_SET_PDEATHSIG`, so nothing is ever left running.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use meridian_core::config::{ClusterConfig, RegionConfig, WanConfig};
use meridian_core::{geo, Durability, RegionName, Topology, TopologyConfig};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use meridian_api::client::AdminClient;
use meridian_api::cluster::{write_private, ClusterFile, RegionEndpoints};
use meridian_api::status::NodeStatus;
use meridian_api::supervisor::{self, Killed, Regions, Restarted};

/// Regions `up` starts when none are named.
pub const DEFAULT_REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// Most regions one `up` runs; each is a process with a full mesh of links.
pub const REGIONS_MAX: usize = 16;

/// How long nodes get to answer and link up before `up` gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a node gets to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where `--capture-links` puts the link captures, inside the cluster
/// directory.
pub const CAPTURE_DIR: &str = "capture";

/// Log lines shown when a node fails to start.
const LOG_TAIL_LINES: usize = 20;

/// What `up` was asked for.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Regions to start, in order.
    pub regions: Vec<RegionName>,
    /// Cluster directory: topology, logs, data, cluster.json.
    pub dir: PathBuf,
    /// Fixed ports: region i uses `base + 10·i + {0 peer, 1 resp, 2 admin}`.
    /// `None` picks free ports.
    pub base_port: Option<u16>,
    /// Anti-entropy interval passed to every node, ms.
    pub anti_entropy_ms: u64,
    /// Passed to every node.
    pub durability: Durability,
    /// A TOML file whose `[[tables]]` and `[resp]` are added to the
    /// generated topology.
    pub extra_config: Option<PathBuf>,
    /// Whether nodes record what their links deliver into `dir/capture`.
    pub capture_links: bool,
}

/// What `--extra-config` may hold.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtraConfig {
    #[serde(default)]
    tables: Vec<meridian_core::config::TableConfig>,
    #[serde(default)]
    resp: Option<meridian_core::config::RespConfig>,
}

/// Adds an `--extra-config` file to a generated topology.
fn merge_extra(config: &mut TopologyConfig, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --extra-config {}", path.display()))?;
    let extra: ExtraConfig = toml::from_str(&text).with_context(|| {
        format!(
            "{}: only [[tables]] and [resp] may be given to `up`",
            path.display()
        )
    })?;
    config.tables.extend(extra.tables);
    if let Some(resp) = extra.resp {
        config.resp = resp;
    }
    Ok(())
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

/// Picks three ports per region: fixed from `base`, or free ones the OS hands
/// out (held until all are chosen so no two regions get the same).
fn choose_ports(n: usize, base: Option<u16>) -> anyhow::Result<Vec<[u16; 3]>> {
    if let Some(base) = base {
        let top = base as usize + 10 * n;
        if top > u16::MAX as usize {
            bail!("--base-port {base} leaves no room for {n} regions (needs {base}..{top})");
        }
        return Ok((0..n)
            .map(|i| {
                let b = base + 10 * i as u16;
                [b, b + 1, b + 2]
            })
            .collect());
    }
    // Not port 0: the kernel hands those out from the ephemeral range, which
    // outgoing connections draw their source ports from too, so between our
    // release and the node's bind another connection can take the port (seen
    // under parallel test runs). Random ports below the ephemeral range,
    // checked by binding and held until all are chosen, avoid both that and
    // two `up`s picking alike.
    let mut held = Vec::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let mut ports = [0u16; 3];
        for p in &mut ports {
            let mut tries = 0;
            let l = loop {
                let mut r = [0u8; 2];
                getrandom::fill(&mut r).expect("the OS random source is available");
                let candidate =
                    FREE_PORTS.start + u16::from_le_bytes(r) % (FREE_PORTS.end - FREE_PORTS.start);
                if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", candidate)) {
                    break l;
                }
                tries += 1;
                if tries > 1000 {
                    bail!("cannot find free ports in {FREE_PORTS:?} on 127.0.0.1; use --base-port");
                }
            };
            *p = l.local_addr()?.port();
            held.push(l);
        }
        out.push(ports);
    }
    Ok(out)
}

/// Where `up` looks for free ports: below Linux's default ephemeral range
/// (32768–60999), above most well-known services.
pub const FREE_PORTS: std::ops::Range<u16> = 20_000..32_000;

fn topology_for(regions: &[RegionName], ports: &[[u16; 3]], admin_token: &str) -> TopologyConfig {
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    TopologyConfig {
        cluster: ClusterConfig {
            name: "meridian".into(),
            secret: Some(random_hex(32)),
            secret_file: None,
            admin_token: Some(admin_token.to_string()),
            master_region: None,
        },
        regions: regions
            .iter()
            .zip(ports)
            .map(|(name, p)| RegionConfig {
                name: name.to_string(),
                peer: addr(p[0]),
                advertise_peer: None,
                resp: addr(p[1]),
                admin: addr(p[2]),
                s3: None,
                dns: None,
                edge: None,
                backends: Vec::new(),
                location: None,
            })
            .collect(),
        resp: Default::default(),
        wan: WanConfig {
            emulate: true,
            links: Vec::new(),
        },
        tables: Vec::new(),
        edge: Default::default(),
        routes: Vec::new(),
    }
}

/// Last lines of a node's log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

struct RegionProcess {
    child: Option<Child>,
    log: PathBuf,
}

/// Owns the node processes.
pub struct Supervisor {
    exe: PathBuf,
    anti_entropy_ms: u64,
    durability: Durability,
    capture_links: bool,
    config: PathBuf,
    dir: PathBuf,
    topology: Topology,
    procs: Mutex<BTreeMap<RegionName, RegionProcess>>,
    cluster_file: Mutex<Option<ClusterFile>>,
}

impl Supervisor {
    async fn spawn(&self, region: &RegionName) -> anyhow::Result<()> {
        let mut procs = self.procs.lock().await;
        let entry = procs
            .get_mut(region)
            .with_context(|| format!("unknown region `{region}`"))?;
        if let Some(child) = entry.child.as_mut() {
            if child.try_wait()?.is_none() {
                bail!("region `{region}` is already running");
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&entry.log)?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("node")
            .arg("--config")
            .arg(&self.config)
            .arg("--region")
            .arg(region.as_str())
            .arg("--data-dir")
            .arg(self.dir.join("data").join(region.as_str()))
            .arg("--anti-entropy-interval-ms")
            .arg(self.anti_entropy_ms.to_string())
            .arg("--durability")
            .arg(self.durability.as_str());
        if self.capture_links {
            cmd.arg("--capture-links").arg(self.dir.join(CAPTURE_DIR));
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe calls (prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(|| {
                // Die with `up` even if it is SIGKILLed. The signal follows
                // the thread that forked, which is a runtime worker that lives
                // as long as `up` does.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        tracing::info!(%region, pid = child.id(), "node started");
        entry.child = Some(child);
        Ok(())
    }

    /// Sends `signal` and waits up to `grace` for exit, then SIGKILLs.
    async fn stop(&self, region: &RegionName, signal: i32, grace: Duration) -> anyhow::Result<()> {
        let mut procs = self.procs.lock().await;
        let entry = procs
            .get_mut(region)
            .with_context(|| format!("unknown region `{region}`"))?;
        let Some(mut child) = entry.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            // SAFETY: plain syscall on a pid we own and have not reaped yet.
            unsafe { libc::kill(pid as i32, signal) };
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::warn!(%region, "node did not stop in {grace:?}; killing it");
            child.kill().await?;
        }
        Ok(())
    }

    async fn pid(&self, region: &RegionName) -> Option<u32> {
        let mut procs = self.procs.lock().await;
        let child = procs.get_mut(region)?.child.as_mut()?;
        match child.try_wait() {
            Ok(None) => child.id(),
            _ => None,
        }
    }

    /// The first region whose process has exited, with its log tail.
    async fn exited(&self) -> Option<(RegionName, String)> {
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

    async fn refresh_cluster_file(&self) -> anyhow::Result<()> {
        let mut guard = self.cluster_file.lock().await;
        let Some(file) = guard.as_mut() else {
            return Ok(());
        };
        for (name, endpoints) in file.regions.iter_mut() {
            endpoints.pid = self.pid(&RegionName::new(name.clone())?).await;
        }
        Ok(file.store(&self.dir)?)
    }

    /// SIGTERMs every node first, then waits for each (SIGKILL after the
    /// grace period), so the nodes stop in parallel.
    async fn stop_all(&self) {
        let mut procs = self.procs.lock().await;
        for p in procs.values() {
            if let Some(pid) = p.child.as_ref().and_then(Child::id) {
                // SAFETY: plain syscall on a pid we own and have not reaped.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
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

/// Waits until every node answers `/status` with all links up.
async fn wait_ready(
    sup: &Supervisor,
    client: &AdminClient,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        if let Some((region, tail)) = sup.exited().await {
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
                let log = sup.dir.join("logs").join(format!("{}.log", r.name));
                msg.push_str(&format!(
                    "\n--- {} ({}) ---\n{}",
                    r.name,
                    log.display(),
                    log_tail(&log)
                ));
            }
            bail!(msg);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let admin_token = random_hex(16);
    let ports = choose_ports(opts.regions.len(), opts.base_port)?;
    let mut config = topology_for(&opts.regions, &ports, &admin_token);
    if let Some(extra) = &opts.extra_config {
        merge_extra(&mut config, extra)?;
    }
    let topology = config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let config_path = dir.join("topology.toml");
    write_private(&config_path, config.to_toml().as_bytes())?;

    let procs = opts
        .regions
        .iter()
        .map(|r| {
            let log = dir.join("logs").join(format!("{r}.log"));
            (r.clone(), RegionProcess { child: None, log })
        })
        .collect();
    let sup = Arc::new(Supervisor {
        exe: std::env::current_exe()?,
        anti_entropy_ms: opts.anti_entropy_ms,
        durability: opts.durability,
        capture_links: opts.capture_links,
        config: config_path.clone(),
        dir: dir.clone(),
        topology: topology.clone(),
        procs: Mutex::new(procs),
        cluster_file: Mutex::new(None),
    });

    let result = start_and_serve(&sup, &opts, &admin_token, shutdown).await;
    sup.stop_all().await;
    let _ = std::fs::remove_file(dir.join(meridian_api::cluster::CLUSTER_FILE));
    if result.is_ok() {
        println!("all nodes stopped");
    }
    result
}

async fn start_and_serve(
    sup: &Arc<Supervisor>,
    opts: &UpOptions,
    admin_token: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for r in &opts.regions {
        sup.spawn(r).await?;
    }
    let client = AdminClient::new(None);
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = wait_ready(sup, &client, started + READY_TIMEOUT) => r?,
    }
    let ready_after = started.elapsed();

    let supervisor_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let supervisor_url = format!("http://{}", supervisor_listener.local_addr()?);
    let mut regions = BTreeMap::new();
    for r in &sup.topology.regions {
        regions.insert(
            r.name.to_string(),
            RegionEndpoints {
                resp: r.resp.to_string(),
                admin: format!("http://{}", r.admin),
                peer: r.peer.to_string(),
                edge: r.edge.map(|a| format!("http://{a}")),
                apps: Vec::new(),
                pid: sup.pid(&r.name).await,
                log: sup.dir.join("logs").join(format!("{}.log", r.name)),
            },
        );
    }
    let file = ClusterFile {
        cluster: sup.topology.cluster_name.clone(),
        config: sup.config.clone(),
        up_pid: std::process::id(),
        supervisor: supervisor_url.clone(),
        admin_token: admin_token.to_string(),
        regions,
    };
    file.store(&sup.dir)?;
    print_endpoints(&file, &sup.topology, &sup.dir, ready_after);
    *sup.cluster_file.lock().await = Some(file);

    let app = Router::new()
        .route("/regions", get(list_regions))
        .route("/regions/{region}/kill", post(kill_region))
        .route("/regions/{region}/restart", post(restart_region))
        .with_state(SupervisorState {
            sup: sup.clone(),
            token: admin_token.to_string(),
        });
    let stop = shutdown.clone();
    axum::serve(supervisor_listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

fn print_endpoints(file: &ClusterFile, topology: &Topology, dir: &Path, ready_after: Duration) {
    println!(
        "Meridian cluster `{}` is up: {} regions on 127.0.0.1, emulated WAN (default latency profile), ready in {:.1} s",
        file.cluster,
        file.regions.len(),
        ready_after.as_secs_f64()
    );
    println!();
    println!(
        "{:<14} {:<17} {:<24} {:<17} {:>7}",
        "REGION", "REDIS (RESP)", "ADMIN", "PEER", "PID"
    );
    for r in &topology.regions {
        let e = &file.regions[r.name.as_str()];
        let pid = e.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<14} {:<17} {:<24} {:<17} {:>7}",
            r.name, e.resp, e.admin, e.peer, pid
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
    println!("Ctrl-C stops every node.");
}

#[derive(Clone)]
struct SupervisorState {
    sup: Arc<Supervisor>,
    token: String,
}

/// A supervisor answer, or an error status with `{"error": …}`.
type ApiResult<T> = Result<Json<T>, (StatusCode, Json<serde_json::Value>)>;

fn authorize(
    state: &SupervisorState,
    headers: &axum::http::HeaderMap,
) -> Result<(), (StatusCode, Json<serde_json::Value>)> {
    let ok = meridian_api::auth::bearer(headers.get("authorization").and_then(|v| v.to_str().ok()))
        .is_some_and(|t| {
            meridian_api::auth::constant_time_eq(t.as_bytes(), state.token.as_bytes())
        });
    if ok {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong admin token"})),
        ))
    }
}

fn region_arg(
    raw: &str,
    sup: &Supervisor,
) -> Result<RegionName, (StatusCode, Json<serde_json::Value>)> {
    RegionName::new(raw)
        .ok()
        .filter(|r| sup.topology.region(r).is_some())
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": format!("unknown region `{raw}`")})),
            )
        })
}

fn internal(e: anyhow::Error) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": format!("{e:#}")})),
    )
}

async fn list_regions(
    State(s): State<SupervisorState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Regions> {
    authorize(&s, &headers)?;
    let mut out = Regions::new();
    for r in &s.sup.topology.regions {
        let pid = s.sup.pid(&r.name).await;
        out.insert(r.name.to_string(), supervisor::RegionProcess { pid });
    }
    Ok(Json(out))
}

async fn kill_region(
    State(s): State<SupervisorState>,
    headers: axum::http::HeaderMap,
    UrlPath(region): UrlPath<String>,
) -> ApiResult<Killed> {
    authorize(&s, &headers)?;
    let region = region_arg(&region, &s.sup)?;
    let pid = s.sup.pid(&region).await;
    // SIGKILL: a crash, not a shutdown. Nothing gets to flush.
    s.sup
        .stop(&region, libc::SIGKILL, STOP_GRACE)
        .await
        .map_err(internal)?;
    s.sup.refresh_cluster_file().await.map_err(internal)?;
    tracing::warn!(%region, ?pid, "region killed by chaos");
    Ok(Json(Killed {
        region: region.to_string(),
        killed_pid: pid,
    }))
}

async fn restart_region(
    State(s): State<SupervisorState>,
    headers: axum::http::HeaderMap,
    UrlPath(region): UrlPath<String>,
) -> ApiResult<Restarted> {
    authorize(&s, &headers)?;
    let region = region_arg(&region, &s.sup)?;
    s.sup
        .stop(&region, libc::SIGTERM, STOP_GRACE)
        .await
        .map_err(internal)?;
    s.sup.spawn(&region).await.map_err(internal)?;
    let admin = s.sup.topology.region(&region).expect("checked above").admin;
    let client = AdminClient::new(None);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if client
            .get::<serde_json::Value>(&format!("http://{admin}/health"))
            .await
            .is_ok()
        {
            break;
        }
        if let Some((r, tail)) = s.sup.exited().await {
            return Err(internal(anyhow::anyhow!(
                "node {r} exited on restart: {tail}"
            )));
        }
        if Instant::now() > deadline {
            return Err(internal(anyhow::anyhow!(
                "region {region} did not answer within {READY_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.sup.refresh_cluster_file().await.map_err(internal)?;
    Ok(Json(Restarted {
        region: region.to_string(),
        pid: s.sup.pid(&region).await,
    }))
}
