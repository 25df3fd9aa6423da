//! The lag suite: replication lag per region pair under paced writes in
//! every region, against the emulated one-way delay; and the highest rate
//! every region sustains.

use std::path::Path;
use std::time::Duration;

use hyper::Method;
use serde::Serialize;
use serde_json::json;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::load::{LoadReport, LoadSpec};

use super::cluster::{drained, emulated_rtt_ms, load_all, say, statuses};
use super::disk::DiskProbe;

/// One region pair's replication lag in one run.
#[derive(Serialize, Clone)]
pub(crate) struct LagRow {
    pub(crate) rate_per_region: u64,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) one_way_ms: f64,
    pub(crate) writes: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub(crate) max_ms: f64,
    pub p99_over_one_way_ms: f64,
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
const RATE_PROBES_ABOVE_10K: [u64; 4] = [15_000, 20_000, 30_000, 40_000];

/// Rates tried, highest first, when 10k writes/s per region is not
/// sustained: the first that is becomes the reported maximum.
const RATE_PROBES_BELOW_10K: [u64; 4] = [7_500, 5_000, 3_000, 2_000];

/// One lag run at `rate` writes/s per region, with the disk probed beside
/// it.
pub(crate) async fn lag_suite(
    file: &ClusterFile,
    client: &AdminClient,
    rate: u64,
    secs: u64,
) -> anyhow::Result<(Vec<LagRow>, Vec<LoadRow>, DiskProbe)> {
    let dir = file.config.parent().unwrap_or(Path::new("."));
    let probe = crate::bench::disk::start(dir, Duration::from_secs(secs), rate);
    let measured = measure_lag(file, client, rate, secs, 100, &format!("lag{rate}")).await;
    let disk = probe.finish()?;
    let (lags, loads) = measured?;
    Ok((lags, loads, disk))
}

/// Whether every writer of `rate` achieved at least 95 % of it.
fn sustained(loads: &[LoadRow], rate: u64) -> bool {
    loads
        .iter()
        .filter(|l| l.rate_per_region == rate)
        .all(|l| l.report.achieved_per_s >= 0.95 * rate as f64)
}

/// The highest rate every region sustains at once, probing upward from
/// 10k while each rate holds, or downward until one holds, so the report
/// names a rate this machine sustains and its lag either way. `loads` are
/// the lag suite's runs so far; the rows of the best probe come back with
/// the rate.
pub(crate) async fn max_sustainable(
    file: &ClusterFile,
    client: &AdminClient,
    loads_so_far: &[LoadRow],
    load_secs: u64,
) -> anyhow::Result<(u64, Option<(Vec<LagRow>, Vec<LoadRow>)>)> {
    let ten_k = sustained(loads_so_far, 10_000);
    let mut best = if ten_k { 10_000 } else { 0 };
    let mut rows = None;
    let probes = if ten_k {
        &RATE_PROBES_ABOVE_10K[..]
    } else {
        &RATE_PROBES_BELOW_10K[..]
    };
    for &rate in probes {
        say(format!(
            "lag: probing {rate} writes/s in each region for {load_secs} s"
        ));
        let (lags, loads) =
            measure_lag(file, client, rate, load_secs, 100, &format!("max{rate}")).await?;
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
    if best == 0 && sustained(loads_so_far, 1_000) {
        // Nothing down to the lowest probe held, but the 1k run did: its
        // rows are in the report already.
        best = 1_000;
    }
    Ok((best, rows))
}
