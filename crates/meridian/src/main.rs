//! `meridian`: the command line. See `meridian --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
mod logging;

use logging::LogFormat;
use meridian_core::{Durability, RegionName, Topology, TopologyConfig};
use meridian_lab::chaos::ChaosCommand;
use meridian_lab::up::{self, UpOptions};
use meridian_node::NodeOptions;

/// mimalloc instead of glibc's malloc: under load the endpoint and the
/// writer allocate per request, and glibc's arenas spent about 15 % of a
/// node's CPU in `malloc`/`free`/`malloc_consolidate` (perf, `SET -c 50`).
/// Built without transparent huge pages (`no_thp`): with them, freed and
/// reused arenas faulted in and zeroed 2 MiB pages, 6–10 % of the writer's
/// time applying a catch-up.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tokio_util::sync::CancellationToken;

/// Meridian: a self-hosted multi-region platform in one binary.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DurabilityArg {
    Fsync,
    None,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Durability {
        match d {
            DurabilityArg::Fsync => Durability::Fsync,
            DurabilityArg::None => Durability::None,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one region's node.
    Node {
        /// Topology file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Which of the topology's regions this node is.
        #[arg(long)]
        region: String,
        /// Data directory (created if missing).
        #[arg(long, default_value = "meridian-data")]
        data_dir: PathBuf,
        /// `fsync` (default: nothing acknowledged is lost on a crash) or
        /// `none` (benchmarks only).
        #[arg(long, value_enum, default_value_t = DurabilityArg::Fsync)]
        durability: DurabilityArg,
        /// How often anti-entropy compares data with a peer, in ms.
        #[arg(long, default_value_t = 30_000)]
        anti_entropy_interval_ms: u64,
        /// Record every byte the emulated WAN links deliver into this
        /// directory (`{region}-{peer}.out`/`.in`), to audit what crossed.
        #[arg(long)]
        capture_links: Option<PathBuf>,
    },
    /// Start a local multi-region cluster on 127.0.0.1 over emulated WAN links.
    Up {
        /// Regions to start, comma-separated.
        #[arg(long, default_value = "us-east,eu-west,ap-south")]
        regions: String,
        /// Cluster directory (topology, logs, cluster.json).
        #[arg(long, default_value = ".meridian")]
        dir: PathBuf,
        /// Use fixed ports: region i gets base+10i (peer), +1 (redis), +2 (admin);
        /// every region's edge base+3 on its own address (127.0.N.1).
        #[arg(long)]
        base_port: Option<u16>,
        /// Anti-entropy interval for every node, in ms.
        #[arg(long, default_value_t = 30_000)]
        anti_entropy_ms: u64,
        /// Durability of every node: `fsync` or `none` (benchmarks only).
        #[arg(long, value_enum, default_value_t = DurabilityArg::Fsync)]
        durability: DurabilityArg,
        /// A TOML file of `[[tables]]`, `[resp]`, `[edge]` and `[[routes]]`
        /// added to the generated topology (key prefixes, modes, Redis
        /// passwords and limits, the edge proxy); a table or route named like
        /// a default one replaces it.
        #[arg(long)]
        extra_config: Option<PathBuf>,
        /// Every node records what its emulated links deliver into
        /// `DIR/capture/` (see `node --capture-links`).
        #[arg(long)]
        capture_links: bool,
        /// App instances each region starts behind its edge (0: none).
        #[arg(long, default_value_t = meridian_lab::apps::APPS_PER_REGION_DEFAULT)]
        apps_per_region: usize,
        /// Run each instance as `sh -c CMD` (with PORT, MERIDIAN_REGION,
        /// MERIDIAN_REDIS, MERIDIAN_INSTANCE set) instead of `meridian
        /// demo-app`; `exec` the server so signals reach it.
        #[arg(long = "app", value_name = "CMD")]
        app_command: Option<String>,
        /// Fewest instances scaling leaves a region [default: apps-per-region].
        #[arg(long)]
        apps_min: Option<usize>,
        /// Most instances scaling starts in a region [default: the larger of
        /// apps-per-region and 4].
        #[arg(long)]
        apps_max: Option<usize>,
        /// Requests in flight per instance a region is scaled for.
        #[arg(long, default_value_t = meridian_lab::apps::TARGET_LOAD_DEFAULT)]
        apps_target_load: f64,
    },
    /// Inject faults into a running local cluster.
    Chaos {
        /// Cluster directory of `meridian up`.
        #[arg(long, default_value = ".meridian")]
        dir: PathBuf,
        #[command(subcommand)]
        command: ChaosCommand,
    },
    /// Drain or undrain a region's edge on a running local cluster.
    Region {
        /// Cluster directory of `meridian up`.
        #[arg(long, global = true, default_value = ".meridian")]
        dir: PathBuf,
        #[command(subcommand)]
        command: meridian_lab::region::RegionCommand,
    },
    /// Table modes of a running local cluster: list, move a home, set a mode.
    Table {
        /// Cluster directory of `meridian up`.
        #[arg(long, default_value = ".meridian")]
        dir: PathBuf,
        #[command(subcommand)]
        command: meridian_lab::tables::TableCommand,
    },
    /// Show regions, links and replication of a running local cluster.
    Status {
        /// Cluster directory of `meridian up`.
        #[arg(long, default_value = ".meridian")]
        dir: PathBuf,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Measure replication lag, catch-up and footprint on a local cluster
    /// and write a report (use a release build).
    Bench {
        /// Short runs: a smoke test in under 3 minutes.
        #[arg(long)]
        quick: bool,
        /// Report directory.
        #[arg(long, default_value = "bench-report")]
        out: PathBuf,
        /// Suites to run, comma-separated: lag, catchup, footprint, restart,
        /// consistency, scale, redis, traffic.
        #[arg(
            long,
            default_value = "lag,catchup,footprint,restart,consistency,scale,redis,traffic"
        )]
        suites: String,
    },
    /// Validate a topology file and print what it resolves to.
    CheckConfig {
        /// Topology file (TOML).
        config: PathBuf,
    },
    /// Run the demo app: a stateless HTTP app keeping its sessions, carts
    /// and orders in its region's Redis endpoint. Flags left out come from
    /// PORT, MERIDIAN_REGION, MERIDIAN_REDIS and MERIDIAN_INSTANCE.
    DemoApp(meridian_demo::DemoArgs),
}

/// Reads and validates a topology file, resolving `secret_file`.
fn load_topology(path: &Path) -> anyhow::Result<Topology> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read topology file {}", path.display()))?;
    let mut config =
        TopologyConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if config.cluster.secret.is_none() {
        if let Some(file) = config.cluster.secret_file.take() {
            let secret = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read cluster.secret_file {}", file.display()))?;
            config.cluster.secret = Some(secret.trim_end_matches(['\n', '\r']).to_string());
        }
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Cancels the token on SIGINT or SIGTERM; a second signal exits at once.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        tracing::info!("shutting down (signal again to exit at once)");
        t.cancel();
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        std::process::exit(130);
    });
    token
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node {
            config,
            region,
            data_dir,
            durability,
            anti_entropy_interval_ms,
            capture_links,
        } => {
            let topology = load_topology(&config)?;
            let region = RegionName::new(region)?;
            let storage = NodeOptions {
                data_dir,
                durability: durability.into(),
                anti_entropy_interval: std::time::Duration::from_millis(
                    anti_entropy_interval_ms.max(100),
                ),
                capture_links,
            };
            Ok(meridian_node::run(topology, region, storage, shutdown_on_signals()).await?)
        }
        Command::Up {
            regions,
            dir,
            base_port,
            anti_entropy_ms,
            durability,
            extra_config,
            capture_links,
            apps_per_region,
            app_command,
            apps_min,
            apps_max,
            apps_target_load,
        } => {
            let regions = up::parse_regions(&regions)?;
            let apps = meridian_lab::apps::AppOptions::resolve(
                apps_per_region,
                apps_min,
                apps_max,
                apps_target_load,
                app_command,
            )?;
            up::run(
                UpOptions {
                    regions,
                    dir,
                    base_port,
                    anti_entropy_ms,
                    durability: durability.into(),
                    extra_config,
                    capture_links,
                    apps,
                },
                shutdown_on_signals(),
            )
            .await
        }
        Command::Chaos { dir, command } => meridian_lab::chaos::run(&dir, command).await,
        Command::Region { dir, command } => meridian_lab::region::run(&dir, command).await,
        Command::Table { dir, command } => meridian_lab::tables::run(&dir, command).await,
        Command::Status { dir, json } => meridian_lab::status::run(&dir, json).await,
        Command::Bench { quick, out, suites } => {
            let suites = meridian_lab::bench::parse_suites(&suites)?;
            meridian_lab::bench::run(meridian_lab::bench::BenchOptions { quick, out, suites }).await
        }
        Command::CheckConfig { config } => check_config(&config),
        Command::DemoApp(args) => {
            // Only the binary reads the environment; the app takes values.
            let opts = args.resolve(|name| std::env::var(name).ok(), std::process::id())?;
            Ok(meridian_demo::run(opts, shutdown_on_signals()).await?)
        }
    }
}

/// `meridian check-config`: validates the file and prints what it resolves
/// to.
fn check_config(config: &Path) -> anyhow::Result<()> {
    let t = load_topology(config)?;
    println!(
        "{}: ok — cluster `{}`, {} regions, {} tables, WAN emulation {}",
        config.display(),
        t.cluster_name,
        t.regions.len(),
        t.tables.len(),
        if t.emulate_wan { "on" } else { "off" }
    );
    for ((a, b), c) in &t.links {
        println!(
            "  {a} <-> {b}: RTT {:.1} ms",
            c.one_way_delay.as_secs_f64() * 2000.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
