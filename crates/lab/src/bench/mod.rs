//! `meridian bench`: measures the replication promises on a local cluster
//! with the default latency profile and writes `DIR/report.md` and
//! `DIR/report.json`.
//!
//! Suites (every figure next to its reference measured in the same run):
//! - **lag**: replication lag per region pair at 1k and 10k writes/s per
//!   region (all three regions writing), against the emulated one-way delay.
//! - **catch-up**: a region partitioned while another keeps writing, then
//!   healed: entries applied per second until it has everything.
//! - **footprint**: resident memory and disk per key after loading keys into a
//!   freshly restarted us-east.
//! - **restart**, **scale** (3 → 5 → 7 regions; 100 B → 10 KiB → 1 MiB
//!   values): [`crate::bench::scale`], which also draws the plots (lag CDF
//!   per pair with the one-way delay; the scale curves) as SVG.
//! - **consistency**: [`crate::bench::consistency`].
//! - **redis**: `redis-benchmark` against a region and against Debian's
//!   `redis-server`, durability matched ([`crate::bench::redis`]).
//! - **traffic**: the edge under a cut link, stopped instances and a killed
//!   region, and its cost against haproxy ([`crate::bench::traffic`]).
//!
//! Load comes from the node-side generator (`POST /admin/bench/load`), so the
//! figures are the engine's and the WAN's, not an HTTP client's.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;

pub mod catchup;
pub mod cluster;
pub mod consistency;
pub mod disk;
pub mod footprint;
pub mod http_load;
pub mod lag;
pub mod proxy_cost;
pub mod redis;
pub mod report;
pub mod scale;
pub mod traffic;

use cluster::say;
use report::Report;

/// Regions of the benchmark cluster.
pub const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Short runs (smoke test, under 3 minutes).
    pub quick: bool,
    /// Report directory.
    pub out: PathBuf,
    /// Suites to run.
    pub suites: Vec<String>,
}

/// Every suite, in run order.
pub const SUITES: [&str; 8] = [
    "lag",
    "catchup",
    "footprint",
    "restart",
    "consistency",
    "scale",
    "redis",
    "traffic",
];

/// Parses `--suites lag,redis`.
pub fn parse_suites(list: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !SUITES.contains(&s) {
            bail!("unknown suite `{s}`; use some of: {}", SUITES.join(", "));
        }
        out.push(s.to_string());
    }
    if out.is_empty() {
        bail!("--suites names no suite");
    }
    Ok(out)
}

/// Runs the suites and writes the report.
pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.out)?;
    let out = opts.out.canonicalize()?;
    let tables = out.join("tables.toml");
    std::fs::write(&tables, consistency::TABLES)?;
    let (guard, file, dir) = cluster::start_cluster(
        &out,
        &REGIONS,
        &["--extra-config", &tables.to_string_lossy()],
    )
    .await?;
    if cfg!(debug_assertions) {
        say("WARNING: a debug build; run `cargo run --release -- bench` for real figures");
    }
    let client =
        AdminClient::new(Some(file.admin_token.clone())).with_timeout(Duration::from_secs(1800));
    let mut report = Report {
        machine: report::machine_facts(),
        ..Report::default()
    };

    let wants = |s: &str| opts.suites.iter().any(|x| x == s);
    if wants("lag") {
        lag_suites(&file, &client, opts.quick, &mut report).await?;
    }
    let partition_secs = if opts.quick { 5 } else { 60 };
    if wants("catchup") {
        say(format!(
            "catch-up: ap-south partitioned for {partition_secs} s while us-east writes 5000/s"
        ));
    }
    if wants("catchup") {
        report.catch_up = Some(catchup::catch_up(&file, &client, partition_secs).await?);
    }
    let keys = if opts.quick { 50_000 } else { 1_000_000 };
    if wants("footprint") {
        say(format!("footprint: {keys} keys of 100 B into us-east"));
        report.footprint = Some(footprint::footprint(&file, &client, &dir, keys).await?);
    }
    if wants("restart") {
        // Against the footprint suite's keys when it ran.
        let held = report.footprint.as_ref().map_or(0, |f| f.keys);
        say(format!(
            "restart: us-east ({held} keys) killed and restarted"
        ));
        report.restart = Some(scale::restart(&file, &client, &dir, "us-east", held).await?);
    }
    if wants("consistency") {
        say("consistency: forwarded writes, strong reads, global acks, session reads, switchovers");
        report.consistency = consistency::run(&file, opts.quick).await?;
    }
    if wants("scale") {
        report.scale = scale::values(&file, &client, opts.quick, say).await?;
    }
    if wants("traffic") {
        // Last on this cluster: it kills a region.
        report.traffic = Some(traffic::run(&file, &dir, &client, opts.quick).await?);
    }
    // The region curve and the Redis suite start their own servers, one at
    // a time: stop this cluster first so nothing else runs beside them.
    drop(guard);
    if wants("scale") {
        report
            .scale
            .extend(scale::regions(&out, opts.quick, say).await?);
    }
    if wants("traffic") {
        let rows = traffic::proxy(&out, opts.quick).await?;
        if let Some(t) = report.traffic.as_mut() {
            t.proxy = rows;
        }
    }
    if wants("redis") {
        let work = out.join("redis");
        let quick = opts.quick;
        report.redis = tokio::task::spawn_blocking(move || redis::run(&work, quick, say)).await??;
    }

    report.plots = scale::plots(&out, &report.lag, &report.scale)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out.join("report.md"), report::render(&report, opts.quick))?;
    say(format!("report: {}", out.join("report.md").display()));
    print!("{}", report::render(&report, opts.quick));
    Ok(())
}

/// The lag runs at 1k and 10k writes/s per region and, in full runs, the
/// highest rate every region sustains (each probe takes 10 s and a drain).
async fn lag_suites(
    file: &ClusterFile,
    client: &AdminClient,
    quick: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let load_secs = if quick { 3 } else { 10 };
    for rate in [1_000u64, 10_000] {
        say(format!(
            "lag: {rate} writes/s in each region for {load_secs} s"
        ));
        let (lags, loads, disk) = lag::lag_suite(file, client, rate, load_secs).await?;
        report.lag.extend(lags);
        report.load.extend(loads);
        report.disk.push(disk);
    }
    if !quick {
        let (best, rows) = lag::max_sustainable(file, client, &report.load, load_secs).await?;
        report.max_sustainable_per_region = Some(best);
        if let Some((lags, loads)) = rows {
            report.lag.extend(lags);
            report.load.extend(loads);
        }
    }
    Ok(())
}
