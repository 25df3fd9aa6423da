//! The `scale` and `restart` suites of `meridian bench`, and the report's
//! plots.
//!
//! - **scale / regions**: the lag suite's load (every region writing) on
//!   clusters of 3, 5 and 7 regions of the default profile: how much the
//!   lag above the one-way delay and the local write latency grow with the
//!   number of regions every write is applied in (all on this machine).
//! - **scale / value size**: 100 B, 10 KiB and 1 MiB values on the three-
//!   region cluster, at rates that keep the bytes per second in reach of a
//!   laptop disk: lag above the one-way delay and throughput in MB/s.
//! - **restart**: a region holding the footprint suite's keys is killed
//!   (SIGKILL) and restarted: time until it serves again, and until it has
//!   caught up with what the others wrote meanwhile.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::cluster::{drained, start_cluster};
use super::lag::{measure_lag, LagRow, LoadRow};
use crate::faults::{self, Fault};
use crate::plot::{line_chart, Chart, Scale, Series};
use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;

/// Regions of the scale curve, in the order clusters grow.
pub const SCALE_REGIONS: [&str; 7] = [
    "us-east",
    "eu-west",
    "ap-south",
    "ap-southeast",
    "us-west",
    "eu-central",
    "sa-east",
];

/// One point of a scale curve.
#[derive(Serialize, Clone, Debug)]
pub struct ScaleRow {
    /// `regions` or `value_bytes`.
    pub axis: String,
    /// The x value: region count or bytes per value.
    pub x: u64,
    /// Writes per second asked of each region.
    pub rate_per_region: u64,
    /// Writes per second achieved, all regions together.
    pub achieved_per_s: f64,
    /// Megabytes per second of values written, all regions together.
    pub mb_per_s: f64,
    /// Median over region pairs of (lag p50 − one-way delay), ms.
    pub lag_p50_excess_ms: f64,
    /// Worst region pair's (lag p99 − one-way delay), ms.
    pub lag_p99_excess_ms: f64,
    /// Worst writer's local (durable) write p99, ms.
    pub local_p99_ms: f64,
}

fn scale_row(
    axis: &str,
    x: u64,
    rate: u64,
    value_bytes: usize,
    lags: &[LagRow],
    loads: &[LoadRow],
) -> ScaleRow {
    let mut p50: Vec<f64> = lags
        .iter()
        .map(|l| l.p50_ms - l.one_way_ms)
        .filter(|v| v.is_finite())
        .collect();
    p50.sort_by(f64::total_cmp);
    let achieved: f64 = loads.iter().map(|l| l.report.achieved_per_s).sum();
    ScaleRow {
        axis: axis.into(),
        x,
        rate_per_region: rate,
        achieved_per_s: achieved,
        mb_per_s: achieved * value_bytes as f64 / 1e6,
        lag_p50_excess_ms: p50.get(p50.len() / 2).copied().unwrap_or(f64::NAN),
        lag_p99_excess_ms: lags
            .iter()
            .map(|l| l.p99_over_one_way_ms)
            .fold(f64::NAN, f64::max),
        local_p99_ms: loads
            .iter()
            .map(|l| l.report.local_p99_ms)
            .fold(f64::NAN, f64::max),
    }
}

/// The value-size curve on the running three-region cluster.
pub async fn values(
    file: &ClusterFile,
    client: &AdminClient,
    quick: bool,
    say: fn(String),
) -> anyhow::Result<Vec<ScaleRow>> {
    let secs = if quick { 2 } else { 10 };
    // Per region: 100 B at the lag suite's low rate; 10 KiB and 1 MiB at
    // rates that write ~2 and ~6 MB/s per region (three regions apply
    // every byte three times on this one disk).
    let steps: [(usize, u64); 3] = if quick {
        [(100, 200), (10 * 1024, 50), (1024 * 1024, 1)]
    } else {
        [(100, 1000), (10 * 1024, 200), (1024 * 1024, 6)]
    };
    let mut rows = Vec::new();
    for (bytes, rate) in steps {
        say(format!(
            "scale: values of {bytes} B, {rate}/s in each region for {secs} s"
        ));
        let (lags, loads) =
            measure_lag(file, client, rate, secs, bytes, &format!("v{bytes}")).await?;
        rows.push(scale_row(
            "value_bytes",
            bytes as u64,
            rate,
            bytes,
            &lags,
            &loads,
        ));
    }
    Ok(rows)
}

/// The region-count curve: a fresh cluster per size.
pub async fn regions(out: &Path, quick: bool, say: fn(String)) -> anyhow::Result<Vec<ScaleRow>> {
    let (sizes, rate, secs): (&[usize], u64, u64) = if quick {
        (&[3, 5], 100, 2)
    } else {
        (&[3, 5, 7], 1000, 10)
    };
    let mut rows = Vec::new();
    for &n in sizes {
        say(format!(
            "scale: {n} regions, {rate} writes/s in each for {secs} s"
        ));
        let work = out.join(format!("scale-{n}"));
        std::fs::create_dir_all(&work)?;
        let (guard, file, _) =
            start_cluster(&work, &SCALE_REGIONS[..n], &["--apps-per-region", "0"]).await?;
        let client =
            AdminClient::new(Some(file.admin_token.clone())).with_timeout(Duration::from_secs(600));
        let measured = measure_lag(&file, &client, rate, secs, 100, "scale").await;
        drop(guard);
        let (lags, loads) = measured?;
        rows.push(scale_row("regions", n as u64, rate, 100, &lags, &loads));
    }
    Ok(rows)
}

/// What the restart suite measured.
#[derive(Serialize, Clone, Debug)]
pub struct Restart {
    /// The region restarted.
    pub region: String,
    /// Keys it held.
    pub keys: u64,
    /// Its database file, MB.
    pub disk_mb: f64,
    /// Writes the other regions made while it was down.
    pub missed_writes: u64,
    /// From the restart command until its admin API and Redis endpoint
    /// answered.
    pub ready_s: f64,
    /// From the restart command until it had applied everything.
    pub caught_up_s: f64,
}

/// Kills `region` (holding `keys` keys), lets eu-west write while it is
/// down, restarts it and times its recovery.
pub async fn restart(
    file: &ClusterFile,
    client: &AdminClient,
    dir: &Path,
    region: &str,
    keys: u64,
) -> anyhow::Result<Restart> {
    faults::apply(
        dir,
        Fault::Kill {
            region: region.into(),
        },
    )
    .await?;
    let spec = meridian_api::load::LoadSpec {
        rate_per_s: 1000,
        duration_ms: 2000,
        value_bytes: 100,
        keys: 10_000,
        key_prefix: "restart:".into(),
        table: meridian_api::data::DEFAULT_TABLE.into(),
    };
    let url = format!("{}/admin/bench/load", file.regions["eu-west"].admin);
    let load: meridian_api::load::LoadReport = client
        .json(
            hyper::Method::POST,
            &url,
            Some(serde_json::to_value(&spec)?),
        )
        .await?;
    let db = dir
        .join("data")
        .join(region)
        .join(meridian_api::cluster::DB_FILE);
    let disk_mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1_048_576.0;
    let started = Instant::now();
    faults::apply(
        dir,
        Fault::Restart {
            region: region.into(),
        },
    )
    .await?;
    wait_serving(file, region, Duration::from_secs(600)).await?;
    let ready_s = started.elapsed().as_secs_f64();
    drained(file, Duration::from_secs(600))
        .await
        .context("the restarted region did not catch up")?;
    Ok(Restart {
        region: region.into(),
        keys,
        disk_mb,
        missed_writes: load.written,
        ready_s,
        caught_up_s: started.elapsed().as_secs_f64(),
    })
}

/// Waits until `region` answers `/status` and Redis `PING` (polled every
/// 20 ms), at most `timeout`.
pub(crate) async fn wait_serving(
    file: &ClusterFile,
    region: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let resp = file.regions[region].resp.clone();
    let deadline = Instant::now() + timeout;
    loop {
        let status_ok = AdminClient::new(None)
            .get::<meridian_api::status::NodeStatus>(&format!(
                "{}/status",
                file.regions[region].admin
            ))
            .await
            .is_ok();
        let ping = async {
            let mut c =
                crate::resp_client::RespConn::connect(&resp, Duration::from_secs(2)).await?;
            c.call(&["PING"]).await
        };
        if status_ok && ping.await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{region} did not come back in {} s",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes the report's plots into `out`; returns their file names.
pub(crate) fn plots(
    out: &Path,
    lag: &[LagRow],
    scale: &[ScaleRow],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut written = Vec::new();
    let mut rates: Vec<u64> = lag.iter().map(|l| l.rate_per_region).collect();
    rates.sort_unstable();
    rates.dedup();
    for rate in rates {
        let series: Vec<Series> = lag
            .iter()
            .filter(|l| l.rate_per_region == rate && !l.cdf_ms.is_empty())
            .map(|l| Series {
                label: format!("{} → {}", l.from, l.to),
                // Up to p99.9: the single slowest write would stretch the
                // axis past everything else (the table has the maximum).
                points: l
                    .cdf_ms
                    .iter()
                    .filter(|[q, _]| *q <= 0.999)
                    .map(|[q, ms]| (*ms, *q))
                    .collect(),
                floor_x: Some(l.one_way_ms),
            })
            .collect();
        let title =
            format!("Replication lag CDF at {rate} writes/s per region (dashed: one-way delay)");
        let svg = line_chart(
            &Chart {
                title: &title,
                x_label: "lag, ms (apply at destination − commit at origin)",
                y_label: "fraction of writes",
                x_scale: Scale::Linear,
            },
            &series,
        );
        let name = format!("lag-cdf-{rate}.svg");
        std::fs::write(out.join(&name), svg)?;
        written.push((name, title));
    }
    for (axis, title, x_label, x_scale) in [
        (
            "regions",
            "Lag above the one-way delay as regions grow",
            "regions (each writing)",
            Scale::Linear,
        ),
        (
            "value_bytes",
            "Lag above the one-way delay as values grow",
            "bytes per value",
            Scale::Log,
        ),
    ] {
        let rows: Vec<&ScaleRow> = scale.iter().filter(|r| r.axis == axis).collect();
        if rows.is_empty() {
            continue;
        }
        let line = |label: &str, f: fn(&ScaleRow) -> f64| Series {
            label: label.into(),
            points: rows.iter().map(|r| (r.x as f64, f(r))).collect(),
            floor_x: None,
        };
        let svg = line_chart(
            &Chart {
                title,
                x_label,
                y_label: "ms",
                x_scale,
            },
            &[
                line("lag p50 − one-way", |r| r.lag_p50_excess_ms),
                line("lag p99 − one-way (worst pair)", |r| r.lag_p99_excess_ms),
                line("local write p99", |r| r.local_p99_ms),
            ],
        );
        let name = format!("scale-{axis}.svg");
        std::fs::write(out.join(&name), svg)?;
        written.push((name, title.to_string()));
    }
    Ok(written)
}

/// The report's sections for these suites.
pub fn render(s: &mut String, scale: &[ScaleRow], restart: Option<&Restart>) {
    use std::fmt::Write;
    if !scale.is_empty() {
        let _ = writeln!(s, "\n## Scale curves\n");
        let _ = writeln!(s, "The lag load with every region writing, on one machine: more regions means every write is applied in more processes on the same cores, so the curve shows this machine's limit as much as Meridian's. Excess = lag − emulated one-way delay.\n");
        let _ = writeln!(s, "| axis | x | writes/s per region | achieved/s (all) | MB/s (all) | lag p50 excess ms (median pair) | lag p99 excess ms (worst pair) | local p99 ms (worst) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in scale {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.2} | {:+.1} | {:+.1} | {:.1} |",
                r.axis,
                r.x,
                r.rate_per_region,
                r.achieved_per_s,
                r.mb_per_s,
                r.lag_p50_excess_ms,
                r.lag_p99_excess_ms,
                r.local_p99_ms
            );
        }
    }
    if let Some(r) = restart {
        let _ = writeln!(s, "\n## Restart and recovery\n");
        let _ = writeln!(s, "{} holding {} keys ({:.0} MB database) was killed with SIGKILL; eu-west wrote {} keys meanwhile. From the restart command: serving again (admin API and Redis PING) after **{:.2} s**, caught up with every region after **{:.2} s**.", r.region, r.keys, r.disk_mb, r.missed_writes, r.ready_s, r.caught_up_s);
    }
}
