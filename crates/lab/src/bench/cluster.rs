//! The benchmark harness: a cluster started with `meridian up`, its
//! nodes' statuses, waiting for convergence, and link partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::bail;
use hyper::Method;
use serde_json::json;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::load::{LoadReport, LoadSpec};
use meridian_api::status::NodeStatus;

/// Starts `meridian up` with `regions` (and `extra` arguments) in
/// `out/cluster`, logging to `out/up.log`; the guard stops it by its pid.
/// Returns the guard, the cluster file and the cluster directory.
pub(crate) async fn start_cluster(
    out: &Path,
    regions: &[&str],
    extra: &[&str],
) -> anyhow::Result<(super::redis::Stopped, ClusterFile, PathBuf)> {
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
    let guard = super::redis::Stopped(child);
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

/// The emulated round trip from the node of `status` to `peer`, ms.
pub(crate) fn emulated_rtt_ms(status: &NodeStatus, peer: &str) -> Option<f64> {
    status
        .peers
        .iter()
        .find(|p| p.link.region.as_str() == peer)
        .and_then(|p| p.emulated.as_ref())
        .map(|e| e.figures.rtt_ms)
}

/// Every region's `/status`.
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

/// Cuts (`on`) or heals the link a–b at both ends.
pub(crate) async fn set_partition(
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

/// Runs every `(region, spec)` load at once and collects the reports, with
/// a progress bar for the longest.
pub(crate) async fn load_all(
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

/// A progress bar over `length` of wall time, ticking every half second
/// (`indicatif`, on stderr; it draws nothing when stderr is not a terminal,
/// so CI logs stay clean).
fn progress(length: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if length.is_zero() {
            return;
        }
        let bar = indicatif::ProgressBar::new(length.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template("[bench]   [{bar:30}] {pos}/{len} s")
                .expect("the template is valid")
                .progress_chars("#-"),
        );
        let started = Instant::now();
        while started.elapsed() < length {
            bar.set_position(started.elapsed().as_secs());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bar.finish();
    })
}

/// A progress line on stderr.
pub(crate) fn say(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}
