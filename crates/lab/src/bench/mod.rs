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
//!
//! Load comes from the node-side generator (`POST /admin/bench/load`), so the
//! figures are the engine's and the WAN's, not an HTTP client's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper::Method;
use serde::Serialize;
use serde_json::json;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::load::{LoadReport, LoadSpec};
use meridian_api::status::NodeStatus;

pub mod consistency;
pub mod disk;
pub mod redis;
pub mod scale;

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
pub const SUITES: [&str; 7] = [
    "lag",
    "catchup",
    "footprint",
    "restart",
    "consistency",
    "scale",
    "redis",
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

#[derive(Serialize, Default)]
struct Report {
    machine: BTreeMap<String, String>,
    lag: Vec<LagRow>,
    load: Vec<LoadRow>,
    /// The disk's own write + fdatasync latency during each lag run.
    disk: Vec<crate::bench::disk::DiskProbe>,
    catch_up: Option<CatchUp>,
    footprint: Option<Footprint>,
    consistency: Vec<crate::bench::consistency::ConsistencyRow>,
    restart: Option<crate::bench::scale::Restart>,
    /// The most writes/s every region sustained at once (full runs).
    max_sustainable_per_region: Option<u64>,
    scale: Vec<crate::bench::scale::ScaleRow>,
    redis: Vec<crate::bench::redis::RedisRow>,
    /// Plot files written beside the report: `(file, title)`.
    plots: Vec<(String, String)>,
}

/// One region pair's replication lag in one run.
#[derive(Serialize, Clone)]
pub(crate) struct LagRow {
    pub(crate) rate_per_region: u64,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) one_way_ms: f64,
    pub(crate) writes: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) p99_over_one_way_ms: f64,
    /// `[quantile, ms]` points of the distribution.
    pub(crate) cdf_ms: Vec<[f64; 2]>,
}

/// One writer's figures in one run.
#[derive(Serialize, Clone)]
pub(crate) struct LoadRow {
    pub(crate) rate_per_region: u64,
    pub(crate) region: String,
    pub(crate) report: LoadReport,
}

#[derive(Serialize)]
struct CatchUp {
    partitioned_s: f64,
    backlog_entries: u64,
    /// Heal until the first missing entry is applied (link redial).
    reconnect_s: f64,
    /// First to last missing entry applied.
    transfer_s: f64,
    /// Backlog over transfer time.
    entries_per_s: f64,
}

#[derive(Serialize)]
struct Footprint {
    keys: u64,
    value_bytes: usize,
    rss_before_mb: f64,
    rss_after_mb: f64,
    rss_bytes_per_key: f64,
    disk_mb: f64,
    disk_bytes_per_key: f64,
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

fn render_redis(s: &mut String, rows: &[crate::bench::redis::RedisRow]) {
    use std::fmt::Write;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Redis protocol vs redis-server\n");
    let _ = writeln!(s, "`redis-benchmark -t {} -c {}` against us-east (replicating to eu-west and ap-south) and against Debian's redis-server, one at a time, durability matched: Meridian `fsync` vs `appendonly yes, appendfsync always`; Meridian `none` vs redis-server's defaults. Goal: ratio ≥ 1.0 on GET and SET, p99 within +1 ms. All three regions run on this machine, so every write is applied three times on its cores; the *solo* columns are a one-region Meridian, the endpoint and engine alone.\n", crate::bench::redis::TESTS, crate::bench::redis::CLIENTS);
    let _ = writeln!(s, "| durability | -P | test | Meridian req/s | redis-server req/s | ratio | Meridian p99 ms | redis-server p99 ms | Δ p99 ms | solo req/s | solo ratio | solo p99 ms |");
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.0} | {:.2}× | {:.2} | {:.2} | {:+.2} | {:.0} | {:.2}× | {:.2} |",
            r.durability,
            r.pipeline,
            r.test,
            r.meridian_rps,
            r.redis_rps,
            r.ratio,
            r.meridian_p99_ms,
            r.redis_p99_ms,
            r.meridian_p99_ms - r.redis_p99_ms,
            r.solo_rps,
            r.solo_rps / r.redis_rps,
            r.solo_p99_ms
        );
    }
}

/// Starts `meridian up` with `regions` (and `extra` arguments) in
/// `out/cluster`, logging to `out/up.log`; the guard stops it by its pid.
/// Returns the guard, the cluster file and the cluster directory.
pub(crate) async fn start_cluster(
    out: &Path,
    regions: &[&str],
    extra: &[&str],
) -> anyhow::Result<(crate::bench::redis::Stopped, ClusterFile, PathBuf)> {
    let dir = out.join("cluster");
    let _ = std::fs::remove_dir_all(&dir);
    let log = std::fs::File::create(out.join("up.log"))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["up", "--regions", &regions.join(","), "--dir"])
        .arg(&dir)
        .args(extra)
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()?;
    let guard = crate::bench::redis::Stopped(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(f) = ClusterFile::load(&dir) {
            return Ok((guard, f, dir));
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster did not start; see {}",
                out.join("up.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the suites and writes the report.
pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.out)?;
    let out = opts.out.canonicalize()?;
    let tables = out.join("tables.toml");
    std::fs::write(&tables, crate::bench::consistency::TABLES)?;
    let (guard, file, dir) = start_cluster(
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
        machine: machine_facts(),
        ..Report::default()
    };

    let wants = |s: &str| opts.suites.iter().any(|x| x == s);
    let load_secs = if opts.quick { 3 } else { 10 };
    for rate in [1_000u64, 10_000].into_iter().filter(|_| wants("lag")) {
        say(format!(
            "lag: {rate} writes/s in each region for {load_secs} s"
        ));
        lag_suite(&file, &client, rate, load_secs, &mut report).await?;
    }
    // The highest rate every region sustains, and the lag there (full runs
    // only: each probe takes 10 s and a drain).
    if wants("lag") && !opts.quick {
        let sustained = |loads: &[LoadRow], rate: u64| {
            loads
                .iter()
                .filter(|l| l.rate_per_region == rate)
                .all(|l| l.report.achieved_per_s >= 0.95 * rate as f64)
        };
        // Upward from 10k while each rate holds; downward from it until
        // one holds, so the report names a rate this machine sustains and
        // its lag either way.
        let ten_k = sustained(&report.load, 10_000);
        let mut best = if ten_k { 10_000 } else { 0 };
        let mut rows = None;
        let probes = if ten_k {
            &MAX_RATE_PROBES[..]
        } else {
            &MIN_RATE_PROBES[..]
        };
        for &rate in probes {
            say(format!(
                "lag: probing {rate} writes/s in each region for {load_secs} s"
            ));
            let (lags, loads) =
                measure_lag(&file, &client, rate, load_secs, 100, &format!("max{rate}")).await?;
            let held = sustained(&loads, rate);
            if held {
                best = rate;
                rows = Some((lags, loads));
            } else {
                say(format!("lag: {rate}/s per region not sustained"));
            }
            if held != ten_k {
                break;
            }
        }
        if best == 0 && sustained(&report.load, 1_000) {
            // Nothing down to the lowest probe held, but the 1k run did:
            // its rows are in the report already.
            best = 1_000;
        }
        report.max_sustainable_per_region = Some(best);
        if let Some((lags, loads)) = rows {
            report.lag.extend(lags);
            report.load.extend(loads);
        }
    }
    let partition_secs = if opts.quick { 5 } else { 60 };
    if wants("catchup") {
        say(format!(
            "catch-up: ap-south partitioned for {partition_secs} s while us-east writes 5000/s"
        ));
    }
    if wants("catchup") {
        report.catch_up = Some(catch_up(&file, &client, partition_secs).await?);
    }
    let keys = if opts.quick { 50_000 } else { 1_000_000 };
    if wants("footprint") {
        say(format!("footprint: {keys} keys of 100 B into us-east"));
        report.footprint = Some(footprint(&file, &client, &dir, keys).await?);
    }
    if wants("restart") {
        // Against the footprint suite's keys when it ran.
        let held = report.footprint.as_ref().map_or(0, |f| f.keys);
        say(format!(
            "restart: us-east ({held} keys) killed and restarted"
        ));
        report.restart =
            Some(crate::bench::scale::restart(&file, &client, &dir, "us-east", held).await?);
    }
    if wants("consistency") {
        say("consistency: forwarded writes, strong reads, global acks, session reads, switchovers");
        report.consistency = crate::bench::consistency::run(&file, opts.quick).await?;
    }
    if wants("scale") {
        report.scale = crate::bench::scale::values(&file, &client, opts.quick, say).await?;
    }
    // The region curve and the Redis suite start their own servers, one at
    // a time: stop this cluster first so nothing else runs beside them.
    drop(guard);
    if wants("scale") {
        report
            .scale
            .extend(crate::bench::scale::regions(&out, opts.quick, say).await?);
    }
    if wants("redis") {
        let work = out.join("redis");
        let quick = opts.quick;
        report.redis =
            tokio::task::spawn_blocking(move || crate::bench::redis::run(&work, quick, say))
                .await??;
    }

    report.plots = crate::bench::scale::plots(&out, &report.lag, &report.scale)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out.join("report.md"), render(&report, opts.quick))?;
    say(format!("report: {}", out.join("report.md").display()));
    print!("{}", render(&report, opts.quick));
    Ok(())
}

/// The emulated round trip from the node of `status` to `peer`, ms.
pub(crate) fn emulated_rtt_ms(status: &NodeStatus, peer: &str) -> Option<f64> {
    status
        .peers
        .iter()
        .find(|p| p.link.region.as_str() == peer)
        .and_then(|p| p.emulated.as_ref())
        .map(|e| e.figures.rtt_ms)
}

pub(crate) async fn statuses(file: &ClusterFile) -> anyhow::Result<BTreeMap<String, NodeStatus>> {
    let c = AdminClient::new(None);
    let mut out = BTreeMap::new();
    for (r, e) in &file.regions {
        out.insert(
            r.clone(),
            c.get::<NodeStatus>(&format!("{}/status", e.admin)).await?,
        );
    }
    Ok(out)
}

/// Waits until every region has applied what every origin has.
pub(crate) async fn drained(file: &ClusterFile, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let s = statuses(file).await?;
        let vvs: Vec<_> = s
            .values()
            .filter_map(|n| n.replication.as_ref().map(|r| r.applied.clone()))
            .collect();
        if vvs.len() == s.len() && vvs.windows(2).all(|w| w[0] == w[1]) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("regions did not converge within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn load_all(
    file: &ClusterFile,
    client: &AdminClient,
    specs: Vec<(String, LoadSpec)>,
) -> anyhow::Result<Vec<(String, LoadReport)>> {
    let total_ms = specs.iter().map(|(_, s)| s.duration_ms).max().unwrap_or(0);
    let bar = progress(Duration::from_millis(total_ms));
    let mut tasks = Vec::new();
    for (region, spec) in specs {
        let url = format!("{}/admin/bench/load", file.regions[&region].admin);
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let r: anyhow::Result<LoadReport> = client
                .json(Method::POST, &url, Some(serde_json::to_value(&spec)?))
                .await
                .map_err(Into::into);
            r.map(|r| (region, r))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    bar.abort();
    Ok(out)
}

/// A progress bar on stderr for a phase of known length, redrawn every
/// half second while stderr is a terminal (logs stay clean otherwise).
/// Abort the task when the phase ends.
fn progress(length: Duration) -> tokio::task::JoinHandle<()> {
    use std::io::{IsTerminal, Write};
    tokio::spawn(async move {
        if !std::io::stderr().is_terminal() || length.is_zero() {
            return;
        }
        let started = Instant::now();
        const WIDTH: usize = 30;
        loop {
            let done = (started.elapsed().as_secs_f64() / length.as_secs_f64()).min(1.0);
            let filled = (done * WIDTH as f64) as usize;
            eprint!(
                "\r[bench]   [{}{}] {:.0}/{:.0} s ",
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                started.elapsed().as_secs_f64().min(length.as_secs_f64()),
                length.as_secs_f64()
            );
            let _ = std::io::stderr().flush();
            if done >= 1.0 {
                eprintln!();
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// Runs `rate` writes/s of `value_bytes` in each of `regions` for `secs`,
/// waits until every region has everything, and returns the lag of every
/// pair (against the emulated one-way delay) and each writer's figures.
pub(crate) async fn measure_lag(
    file: &ClusterFile,
    client: &AdminClient,
    rate: u64,
    secs: u64,
    value_bytes: usize,
    prefix: &str,
) -> anyhow::Result<(Vec<LagRow>, Vec<LoadRow>)> {
    for e in file.regions.values() {
        let _: serde_json::Value = client
            .json(
                Method::POST,
                &format!("{}/admin/replication/reset-lag", e.admin),
                Some(json!({})),
            )
            .await?;
    }
    let specs = file
        .regions
        .keys()
        .map(|r| {
            (
                r.to_string(),
                LoadSpec {
                    rate_per_s: rate,
                    duration_ms: secs * 1000,
                    value_bytes,
                    // Few distinct large values: the store holds each once.
                    keys: (64 * 1024 * 1024 / value_bytes.max(1) as u64).clamp(16, 100_000),
                    key_prefix: format!("{prefix}:{r}:"),
                    table: meridian_api::data::DEFAULT_TABLE.into(),
                },
            )
        })
        .collect();
    let loads = load_all(file, client, specs).await?;
    drained(file, Duration::from_secs(300)).await?;
    let loads = loads
        .into_iter()
        .map(|(region, r)| LoadRow {
            rate_per_region: rate,
            region,
            report: r,
        })
        .collect();
    let mut lags = Vec::new();
    for (to, st) in &statuses(file).await? {
        let Some(repl) = &st.replication else {
            continue;
        };
        for (from, lag) in &repl.lag_from {
            let one_way_ms = emulated_rtt_ms(st, from).map_or(0.0, |rtt| rtt / 2.0);
            let p99 = lag.p99_ms.unwrap_or(f64::NAN);
            lags.push(LagRow {
                rate_per_region: rate,
                from: from.clone(),
                to: to.clone(),
                one_way_ms,
                writes: lag.count,
                p50_ms: lag.p50_ms.unwrap_or(f64::NAN),
                p99_ms: p99,
                p999_ms: lag.p999_ms.unwrap_or(f64::NAN),
                max_ms: lag.max_ms.unwrap_or(f64::NAN),
                p99_over_one_way_ms: p99 - one_way_ms,
                cdf_ms: lag.cdf_ms.clone(),
            });
        }
    }
    Ok((lags, loads))
}

/// Rates tried above 10k writes/s per region when looking for the most
/// each region sustains (≥ 95 % achieved for the whole run).
const MAX_RATE_PROBES: [u64; 4] = [15_000, 20_000, 30_000, 40_000];

/// Rates tried, highest first, when 10k writes/s per region is not
/// sustained: the first that is becomes the reported maximum.
const MIN_RATE_PROBES: [u64; 4] = [7_500, 5_000, 3_000, 2_000];

async fn lag_suite(
    file: &ClusterFile,
    client: &AdminClient,
    rate: u64,
    secs: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = file.config.parent().unwrap_or(Path::new("."));
    let probe = crate::bench::disk::start(dir, Duration::from_secs(secs), rate);
    let measured = measure_lag(file, client, rate, secs, 100, &format!("lag{rate}")).await;
    let disk = probe.finish()?;
    let (lags, loads) = measured?;
    report.lag.extend(lags);
    report.load.extend(loads);
    report.disk.push(disk);
    Ok(())
}

async fn set_partition(
    file: &ClusterFile,
    client: &AdminClient,
    a: &str,
    b: &str,
    on: bool,
) -> anyhow::Result<()> {
    for (x, y) in [(a, b), (b, a)] {
        let url = format!("{}/admin/links/{y}", file.regions[x].admin);
        let _: serde_json::Value = client
            .json(Method::PUT, &url, Some(json!({ "partitioned": on })))
            .await?;
    }
    Ok(())
}

async fn catch_up(file: &ClusterFile, client: &AdminClient, secs: u64) -> anyhow::Result<CatchUp> {
    for other in ["us-east", "eu-west"] {
        set_partition(file, client, "ap-south", other, true).await?;
    }
    let spec = LoadSpec {
        rate_per_s: 5000,
        duration_ms: secs * 1000,
        value_bytes: 100,
        keys: 1_000_000,
        key_prefix: "catchup:".into(),
        table: meridian_api::data::DEFAULT_TABLE.into(),
    };
    let before = statuses(file).await?["ap-south"]
        .replication
        .as_ref()
        .and_then(|r| r.applied.get("us-east").copied())
        .unwrap_or(0);
    load_all(file, client, vec![("us-east".into(), spec)]).await?;
    let target = statuses(file).await?["us-east"]
        .replication
        .as_ref()
        .and_then(|r| r.applied.get("us-east").copied())
        .unwrap_or(0);
    for other in ["us-east", "eu-west"] {
        set_partition(file, client, "ap-south", other, false).await?;
    }
    let start = Instant::now();
    let url = format!("{}/status", file.regions["ap-south"].admin);
    let plain = AdminClient::new(None);
    let mut first: Option<Instant> = None;
    loop {
        let s: NodeStatus = plain.get(&url).await?;
        let have = s
            .replication
            .as_ref()
            .and_then(|r| r.applied.get("us-east").copied())
            .unwrap_or(0);
        if have > before && first.is_none() {
            first = Some(Instant::now());
        }
        if have >= target {
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("ap-south did not catch up within 10 minutes ({have} of {target})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = Instant::now();
    let first = first.unwrap_or(done);
    drained(file, Duration::from_secs(120)).await?;
    let backlog = target - before;
    // The poll is every 20 ms: the transfer time is known to ±20 ms.
    let transfer_s = done.duration_since(first).as_secs_f64().max(0.02);
    Ok(CatchUp {
        partitioned_s: secs as f64,
        backlog_entries: backlog,
        reconnect_s: first.duration_since(start).as_secs_f64(),
        transfer_s,
        entries_per_s: backlog as f64 / transfer_s,
    })
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path)
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(f64::NAN)
}

async fn footprint(
    file: &ClusterFile,
    client: &AdminClient,
    dir: &Path,
    keys: u64,
) -> anyhow::Result<Footprint> {
    // A fresh us-east process, so the baseline is the node with its data
    // on disk, not whatever the earlier suites left in its memory (the
    // allocator's caches, pages awaiting a checkpoint): measured after
    // those, the per-key figure once came out negative.
    for command in [
        crate::faults::Fault::Kill {
            region: "us-east".into(),
        },
        crate::faults::Fault::Restart {
            region: "us-east".into(),
        },
    ] {
        crate::faults::apply(dir, command).await?;
    }
    crate::bench::scale::wait_serving(file, "us-east", Duration::from_secs(120)).await?;
    drained(file, Duration::from_secs(600)).await?;
    let pid = ClusterFile::load(dir)?.regions["us-east"]
        .pid
        .context("us-east has no pid")?;
    let db = dir
        .join("data/us-east")
        .join(meridian_api::cluster::DB_FILE);
    let rss_before = rss_mb(pid);
    // Asked at 100k/s for as long as 50k/s needs to reach every key: a
    // slower machine still writes them all (the surplus overwrites).
    let spec = LoadSpec {
        rate_per_s: 100_000,
        duration_ms: keys * 1000 / 50_000,
        value_bytes: 100,
        keys,
        key_prefix: "fp:".into(),
        table: meridian_api::data::DEFAULT_TABLE.into(),
    };
    let loads = load_all(file, client, vec![("us-east".into(), spec)]).await?;
    drained(file, Duration::from_secs(600)).await?;
    let written = loads[0].1.written.min(keys).max(1);
    let (rss_after, disk_after) = (rss_mb(pid), file_mb(&db));
    // redb grows its file in steps: divide the file by every key it holds.
    // Hashing every key takes seconds in a debug build on a busy machine.
    let digests: BTreeMap<String, meridian_api::data::TableDigest> = AdminClient::new(None)
        .with_timeout(Duration::from_secs(60))
        .get(&format!("{}/digest", file.regions["us-east"].admin))
        .await?;
    let all_keys = digests.values().map(|d| d.keys).sum::<u64>().max(1);
    Ok(Footprint {
        keys: written,
        value_bytes: 100,
        rss_before_mb: rss_before,
        rss_after_mb: rss_after,
        rss_bytes_per_key: (rss_after - rss_before) * 1_048_576.0 / written as f64,
        disk_mb: disk_after,
        disk_bytes_per_key: disk_after * 1_048_576.0 / all_keys as f64,
    })
}

fn machine_facts() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    m.insert(
        "cpu".into(),
        format!(
            "{} × {model}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        ),
    );
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    m.insert(
        "memory".into(),
        mem.lines()
            .next()
            .unwrap_or("?")
            .replace("MemTotal:", "")
            .trim()
            .to_string(),
    );
    m.insert(
        "build".into(),
        if cfg!(debug_assertions) {
            "debug".into()
        } else {
            "release".into()
        },
    );
    let now = meridian_core::PhysicalClock::now_ms(&meridian_core::SystemClock);
    m.insert("unix_ms".into(), now.to_string());
    m.insert("durability".into(), "fsync per group commit".into());
    m
}

fn render(r: &Report, quick: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "# Meridian benchmark report\n");
    let _ = writeln!(
        s,
        "Command: `meridian bench{}` · machine: {} · {} · build {} · durability: {}\n",
        if quick { " --quick" } else { "" },
        r.machine["cpu"],
        r.machine["memory"],
        r.machine["build"],
        r.machine["durability"]
    );
    let _ = writeln!(s, "Three regions on one machine (us-east, eu-west, ap-south) over emulated WAN links with the default profile; all three write at once. Lag = apply time at the destination minus commit time at the origin; its physical floor is the emulated one-way delay.\n");
    let _ = writeln!(s, "## Replication lag vs the one-way delay\n");
    let _ = writeln!(s, "| writes/s per region | from → to | one-way ms | writes | p50 ms | p99 ms | p99.9 ms | max ms | p99 − one-way ms |");
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for l in &r.lag {
        let _ = writeln!(
            s,
            "| {} | {} → {} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:+.1} |",
            l.rate_per_region,
            l.from,
            l.to,
            l.one_way_ms,
            l.writes,
            l.p50_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms,
            l.p99_over_one_way_ms
        );
    }
    if let Some(max) = r.max_sustainable_per_region {
        let _ = writeln!(s, "\nThe most writes/s each region sustained with all three writing at once (≥ 95 % achieved over the run; probing 15k, 20k, 30k, 40k after 10k held, or 7.5k, 5k, 3k, 2k after it did not, then the 1k run; 0: none held): **{max}**; the rows at that rate show its lag.");
    }
    let _ = writeln!(s, "\n## Local writes (durable, acknowledged)\n");
    let _ = writeln!(
        s,
        "| writes/s asked | region | achieved/s | p50 ms | p99 ms | max ms | fell behind (ticks) |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|");
    for l in &r.load {
        let x = &l.report;
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} |",
            l.rate_per_region,
            l.region,
            x.achieved_per_s,
            x.local_p50_ms,
            x.local_p99_ms,
            x.local_max_ms,
            x.behind
        );
    }
    for d in &r.disk {
        let _ = writeln!(s, "\nThe disk itself during the {}/s run ({} writes of 4 KiB + fdatasync, one every {} ms, to the cluster's disk — the floor under any durable acknowledgement here): p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms.", d.rate_per_region, d.samples, crate::bench::disk::PROBE_INTERVAL.as_millis(), d.p50_ms, d.p99_ms, d.max_ms);
    }
    if let Some(c) = &r.catch_up {
        let _ = writeln!(s, "\n## Catch-up after a partition\n");
        let _ = writeln!(s, "ap-south cut off for {:.0} s while us-east wrote 5000/s: {} entries behind. After the heal the link was back in {:.2} s (redial backoff); the backlog then arrived in {:.2} s = **{:.0} entries/s**.", c.partitioned_s, c.backlog_entries, c.reconnect_s, c.transfer_s, c.entries_per_s);
    }
    if let Some(f) = &r.footprint {
        let _ = writeln!(s, "\n## Footprint\n");
        let _ = writeln!(s, "{} keys of {} B written to us-east: RSS {:.0} → {:.0} MB ({:.0} B/key; redb caches at most 256 MiB of pages), database file {:.0} MB for every key it holds ({:.0} B/key, including not yet collected replication log).", f.keys, f.value_bytes, f.rss_before_mb, f.rss_after_mb, f.rss_bytes_per_key, f.disk_mb, f.disk_bytes_per_key);
    }
    crate::bench::scale::render(&mut s, &r.scale, r.restart.as_ref());
    crate::bench::consistency::render(&mut s, &r.consistency);
    render_redis(&mut s, &r.redis);
    if !r.plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        for (file, title) in &r.plots {
            let _ = writeln!(s, "![{title}]({file})\n");
        }
    }
    s
}
