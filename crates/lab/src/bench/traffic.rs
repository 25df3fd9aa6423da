//! The traffic suite: the edge under faults and against its fair peer.
//!
//! - **cut link**: us-east ↔ ap-south partitioned while every node's
//!   `/health/regions` is polled: the verdicts must stay `up` (one cut link
//!   is one vote of the two needed).
//! - **stop-apps**: clients at a fixed rate through us-east's edge (and
//!   eu-west's, so eu-west also carries its own load); us-east's instances
//!   are killed, later restarted. Reported: failed requests (goal 0), the
//!   time until every answer comes from eu-west (goal ≤ 1 s), the p99
//!   over the detour's floor (goal: ≤ the RTT to eu-west + the local p99 +
//!   5 ms), the time back to
//!   us-east after the restart (goal ≤ rise × interval + 1 s), and eu-west's
//!   scale-up under the extra load.
//! - **kill**: clients through eu-west's edge with eu-west's instances
//!   stopped (so us-east, the nearest, serves them); us-east's node is
//!   killed. Reported: failed requests, the time until ap-south answers
//!   everything, and when eu-west's quorum verdict says us-east is down.
//! - **proxy**: [`super::proxy_cost`], on a cluster of its own.

use std::time::{Duration, Instant};

use hyper::Method;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::edge::RegionsHealth;

use super::cluster::say;
use super::http_load::{paced, quantile_ms, Sample};
use super::proxy_cost::ProxyRow;

/// The app path the clients ask: 25 ms of work, so requests in flight per
/// instance (the scaling signal) are measurable at the suite's rates.
pub const WORK_PATH: &str = "/work?ms=25";

/// Requests per second per client stream.
pub const CLIENT_RATE: u32 = 100;

/// The suite's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrafficReport {
    /// Cut link: the quorum held.
    pub cut_link: Option<CutLink>,
    /// Failover runs.
    pub failover: Vec<FailoverRow>,
    /// eu-west's instances before and after the stop-apps failover.
    pub scale: Option<ScaleUp>,
    /// Proxy cost rows.
    pub proxy: Vec<ProxyRow>,
    /// p99 of the same requests served by the clients' own region (the
    /// stop-apps run before its fault): a detour's floor is this plus the
    /// RTT to the region that serves it.
    pub local_p99_ms: Option<f64>,
}

/// One cut link held for a while.
#[derive(Clone, Debug, Serialize)]
pub struct CutLink {
    /// The pair cut.
    pub pair: String,
    /// How long, s.
    pub held_s: f64,
    /// Polls of every node's `/health/regions`.
    pub polls: u64,
    /// Most down votes any node counted for either end.
    pub max_down_votes: usize,
    /// Votes a down verdict needs.
    pub quorum: usize,
    /// Whether any node ever said either end was down.
    pub ever_down: bool,
}

/// One failover run.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverRow {
    /// What was done.
    pub scenario: String,
    /// The edge the clients used.
    pub clients_via: String,
    /// The region expected to take over.
    pub target: String,
    /// Requests sent.
    pub requests: usize,
    /// Of those, not 2xx (or no answer).
    pub failed: usize,
    /// From the fault to the first answer from the target, ms.
    pub first_from_target_ms: Option<f64>,
    /// From the fault until every later answer came from the target, ms.
    pub all_from_target_ms: Option<f64>,
    /// p99 before the fault and while the target served, ms.
    pub p99_before_ms: Option<f64>,
    /// p99 while the target served, ms.
    pub p99_during_ms: Option<f64>,
    /// Emulated RTT between the clients' region and the target, ms.
    pub rtt_ms: f64,
    /// From the restart of the instances until every answer came from the
    /// clients' region again, ms.
    pub back_ms: Option<f64>,
    /// From the kill until the clients' edge's verdict said down, ms.
    pub verdict_ms: Option<f64>,
}

impl FailoverRow {
    /// The row of a run whose clients went through `via`'s edge and were
    /// taken over by `target`, timed by [`analyze`].
    fn timed(
        scenario: &str,
        via: &str,
        target: &str,
        samples: &[Sample],
        t: Timing,
        verdict_ms: Option<f64>,
    ) -> Self {
        FailoverRow {
            scenario: scenario.into(),
            clients_via: via.into(),
            target: target.into(),
            requests: samples.len(),
            failed: t.failed,
            first_from_target_ms: t.first,
            all_from_target_ms: t.all,
            p99_before_ms: t.p99_before,
            p99_during_ms: t.p99_during,
            rtt_ms: rtt(via, target),
            back_ms: t.back,
            verdict_ms,
        }
    }
}

/// The scale-up of the region that took over.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleUp {
    /// The region.
    pub region: String,
    /// Instances before the fault.
    pub before: usize,
    /// Most instances during the failover.
    pub after: usize,
    /// From the fault to the first added instance in cluster.json, ms.
    pub took_ms: Option<f64>,
}

/// What the samples say about one failover.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Requests not answered 2xx.
    pub failed: usize,
    /// From the fault to the first answer from the target, ms.
    pub first: Option<f64>,
    /// From the fault until every later answer came from the target, ms.
    pub all: Option<f64>,
    /// p99 before the fault, ms.
    pub p99_before: Option<f64>,
    /// p99 of the target's answers, ms.
    pub p99_during: Option<f64>,
    /// From `restore` until every answer came from home again, ms.
    pub back: Option<f64>,
}

/// Times a failover from `home` to `target` that began at `fault` (from the
/// load's start), and a way back that began at `restore`.
pub fn analyze(
    samples: &[Sample],
    fault: Duration,
    restore: Option<Duration>,
    home: &str,
    target: &str,
) -> Timing {
    let end = restore.unwrap_or(Duration::MAX);
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= fault && s.sent < end)
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // The first sample after the last one that broke the rule, if any.
    let settled = |v: &[&Sample], from: Duration, rule: &dyn Fn(&Sample) -> bool| match v
        .iter()
        .rev()
        .find(|s| !rule(s))
    {
        None => Some(0.0),
        Some(t) => v
            .iter()
            .find(|s| s.sent > t.sent)
            .map(|s| ms(s.sent - from)),
    };
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent < fault && s.ok())
        .collect();
    let served: Vec<&Sample> = during
        .iter()
        .copied()
        .filter(|s| s.ok() && s.region == target)
        .collect();
    let back = restore.and_then(|r| {
        let after: Vec<&Sample> = samples.iter().filter(|s| s.sent >= r).collect();
        settled(&after, r, &|s| s.region == home)
    });
    Timing {
        failed: samples.iter().filter(|s| !s.ok()).count(),
        first: during
            .iter()
            .find(|s| s.region == target)
            .map(|s| ms(s.sent - fault)),
        all: settled(&during, fault, &|s| s.region == target),
        p99_before: quantile_ms(&before, 0.99),
        p99_during: quantile_ms(&served, 0.99),
        back,
    }
}

/// The default profile's RTT between two regions (what `up` emulates).
fn rtt(a: &str, b: &str) -> f64 {
    meridian_core::geo::default_rtt_ms(a, None, b, None).unwrap_or(0.0)
}

async fn supervisor(file: &ClusterFile, what: &str, region: &str) -> anyhow::Result<()> {
    let c = AdminClient::new(Some(file.admin_token.clone())).with_timeout(Duration::from_secs(60));
    let url = format!("{}/regions/{region}/{what}", file.supervisor);
    let (status, body) = c.request(Method::POST, &url, None).await?;
    anyhow::ensure!(status.is_success(), "{what} {region}: {status} {body}");
    Ok(())
}

async fn health(admin: &str) -> Option<RegionsHealth> {
    AdminClient::new(None)
        .get(&format!("{admin}/health/regions"))
        .await
        .ok()
}

/// Cuts `a` ↔ `b` for `hold`, polling every node's verdicts.
pub async fn cut_link(
    file: &ClusterFile,
    client: &AdminClient,
    a: &str,
    b: &str,
    hold: Duration,
) -> anyhow::Result<CutLink> {
    super::cluster::set_partition(file, client, a, b, true).await?;
    let started = Instant::now();
    let (mut polls, mut max_votes, mut quorum, mut ever_down) = (0, 0, 0, false);
    while started.elapsed() < hold {
        for e in file.regions.values() {
            if let Some(h) = health(&e.admin).await {
                polls += 1;
                for end in [a, b] {
                    if let Some(r) = h.regions.get(end) {
                        max_votes = max_votes.max(r.down_votes);
                        quorum = r.quorum.max(quorum);
                        ever_down |= r.verdict == "down";
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    super::cluster::set_partition(file, client, a, b, false).await?;
    Ok(CutLink {
        pair: format!("{a} <-> {b}"),
        held_s: started.elapsed().as_secs_f64(),
        polls,
        max_down_votes: max_votes,
        quorum,
        ever_down,
    })
}

fn edge_of(file: &ClusterFile, region: &str) -> anyhow::Result<String> {
    file.regions
        .get(region)
        .and_then(|e| e.edge.clone())
        .ok_or_else(|| anyhow::anyhow!("region {region} has no edge in cluster.json"))
}

fn apps_of(dir: &std::path::Path, region: &str) -> usize {
    ClusterFile::load(dir)
        .ok()
        .and_then(|f| f.regions.get(region).map(|e| e.apps.len()))
        .unwrap_or(0)
}

/// Kills us-east's instances under load, later restarts them.
pub async fn stop_apps(
    file: &ClusterFile,
    dir: &std::path::Path,
    quick: bool,
) -> anyhow::Result<(FailoverRow, ScaleUp)> {
    let (warm, held, after) = if quick { (2, 4, 3) } else { (5, 15, 8) };
    let stop = CancellationToken::new();
    let total = Duration::from_secs(warm + held + after);
    let us = tokio::spawn(paced(
        format!("{}{WORK_PATH}", edge_of(file, "us-east")?),
        CLIENT_RATE,
        total,
        stop.clone(),
    ));
    let eu = tokio::spawn(paced(
        format!("{}{WORK_PATH}", edge_of(file, "eu-west")?),
        CLIENT_RATE,
        total,
        stop.clone(),
    ));
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(warm)).await;
    let before = apps_of(dir, "eu-west");
    let fault = start.elapsed();
    say("traffic: chaos stop-apps us-east");
    supervisor(file, "stop-apps", "us-east").await?;
    let (mut most, mut took) = (before, None);
    while start.elapsed() < fault + Duration::from_secs(held) {
        let n = apps_of(dir, "eu-west");
        if n > most {
            most = n;
            took.get_or_insert((start.elapsed() - fault).as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say("traffic: chaos start-apps us-east");
    supervisor(file, "start-apps", "us-east").await?;
    let restore = start.elapsed();
    let (_, samples) = us.await?;
    let _ = eu.await?;
    let t = analyze(&samples, fault, Some(restore), "us-east", "eu-west");
    let row = FailoverRow::timed("stop-apps us-east", "us-east", "eu-west", &samples, t, None);
    let scale = ScaleUp {
        region: "eu-west".into(),
        before,
        after: most,
        took_ms: took,
    };
    Ok((row, scale))
}

/// Kills us-east's node while it serves eu-west's clients.
pub async fn kill_region(file: &ClusterFile, quick: bool) -> anyhow::Result<FailoverRow> {
    let (warm, held) = if quick { (3, 4) } else { (5, 10) };
    supervisor(file, "stop-apps", "eu-west").await?;
    let eu_admin = file.regions["eu-west"].admin.clone();
    let stop = CancellationToken::new();
    let load = tokio::spawn(paced(
        format!("{}{WORK_PATH}", edge_of(file, "eu-west")?),
        CLIENT_RATE,
        Duration::from_secs(warm + held),
        stop.clone(),
    ));
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(warm)).await;
    let fault = start.elapsed();
    say("traffic: chaos kill us-east (serving eu-west's clients)");
    supervisor(file, "kill", "us-east").await?;
    let killed = Instant::now();
    let mut verdict = None;
    while start.elapsed() < fault + Duration::from_secs(held) {
        if verdict.is_none() {
            if let Some(h) = health(&eu_admin).await {
                if h.regions
                    .get("us-east")
                    .is_some_and(|r| r.verdict == "down")
                {
                    verdict = Some(killed.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, samples) = load.await?;
    let t = analyze(&samples, fault, None, "eu-west", "ap-south");
    Ok(FailoverRow::timed(
        "kill us-east (serving eu-west, whose instances are stopped)",
        "eu-west",
        "ap-south",
        &samples,
        t,
        verdict,
    ))
}

/// The suite on the bench cluster (proxy cost runs later on its own).
pub async fn run(
    file: &ClusterFile,
    dir: &std::path::Path,
    client: &AdminClient,
    quick: bool,
) -> anyhow::Result<TrafficReport> {
    let hold = Duration::from_secs(if quick { 3 } else { 10 });
    say(format!(
        "traffic: us-east <-> ap-south cut for {} s",
        hold.as_secs()
    ));
    let cut = cut_link(file, client, "us-east", "ap-south", hold).await?;
    // The probes need a moment to see the healed link again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (stop_row, scale) = stop_apps(file, dir, quick).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kill_row = kill_region(file, quick).await?;
    Ok(TrafficReport {
        local_p99_ms: stop_row.p99_before_ms,
        cut_link: Some(cut),
        failover: vec![stop_row, kill_row],
        scale: Some(scale),
        proxy: Vec::new(),
    })
}

/// The proxy cost on a one-region cluster with one instance.
pub async fn proxy(out: &std::path::Path, quick: bool) -> anyhow::Result<Vec<ProxyRow>> {
    let work = out.join("proxy");
    std::fs::create_dir_all(&work)?;
    let (guard, file, _) = super::cluster::start_cluster(
        &work,
        &["us-east"],
        &[
            "--apps-per-region",
            "1",
            "--apps-min",
            "1",
            "--apps-max",
            "1",
        ],
    )
    .await?;
    let us = &file.regions["us-east"];
    let edge = us
        .edge
        .clone()
        .ok_or_else(|| anyhow::anyhow!("us-east has no edge"))?;
    let app = us
        .apps
        .first()
        .map(|a| a.addr.clone())
        .ok_or_else(|| anyhow::anyhow!("us-east runs no instance"))?;
    let pid = us
        .pid
        .ok_or_else(|| anyhow::anyhow!("us-east's node has no pid"))?;
    let secs = if quick { 2 } else { 10 };
    say(format!(
        "traffic: wrk -c{} for {secs} s: direct, through the edge, through haproxy",
        super::proxy_cost::WRK_CONNECTIONS
    ));
    let rows = tokio::task::spawn_blocking(move || {
        super::proxy_cost::measure(&work, &edge, pid, &app, "/whoami", secs)
    })
    .await??;
    drop(guard);
    Ok(rows)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), |x| format!("{x:.0}"))
}

/// The suite's section of `report.md`.
pub fn render(s: &mut String, t: Option<&TrafficReport>) {
    use std::fmt::Write;
    let Some(t) = t else { return };
    let _ = writeln!(s, "\n## Traffic: the edge under faults\n");
    if let Some(c) = &t.cut_link {
        let verdict = if c.ever_down {
            "**a region was declared down** (goal: never)"
        } else {
            "no region was ever declared down (goal met)"
        };
        let _ = writeln!(s, "Cut link {} for {:.1} s, every node's `/health/regions` polled {} times: at most {} down vote(s) of the {} needed; {verdict}.\n", c.pair, c.held_s, c.polls, c.max_down_votes, c.quorum);
    }
    if !t.failover.is_empty() {
        let _ = writeln!(s, "Clients at {CLIENT_RATE} requests/s (`GET {WORK_PATH}`) through one region's edge. Goals: 0 failed; every answer from the target ≤ 1000 ms after the fault; the p99 while the target serves ≤ its RTT + the local p99 + 5 ms (the *detour excess* column, goal ≤ 5 ms; local p99: {} ms, the clients' own region serving them); back home ≤ rise × interval + 1 s = 1500 ms with the defaults.\n", opt(t.local_p99_ms));
        let _ = writeln!(s, "| fault | clients via | target | requests | failed | first from target ms | all from target ms | p99 before ms | p99 during ms | RTT ms | detour excess ms | back home ms | verdict down ms |");
        let _ = writeln!(
            s,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for f in &t.failover {
            let excess = f
                .p99_during_ms
                .zip(t.local_p99_ms)
                .map(|(d, l)| d - f.rtt_ms - l);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} |",
                f.scenario,
                f.clients_via,
                f.target,
                f.requests,
                f.failed,
                opt(f.first_from_target_ms),
                opt(f.all_from_target_ms),
                opt(f.p99_before_ms),
                opt(f.p99_during_ms),
                f.rtt_ms,
                opt(excess),
                opt(f.back_ms),
                opt(f.verdict_ms)
            );
        }
    }
    if let Some(sc) = &t.scale {
        let _ = writeln!(s, "\nScale-up of {} while it carried us-east's traffic too: {} → {} instances, the first added {} ms after the fault (the supervisor scales on `meridian_edge_load_per_instance`).", sc.region, sc.before, sc.after, opt(sc.took_ms));
    }
    if !t.proxy.is_empty() {
        let _ = writeln!(s, "\n### Proxy cost\n\n`wrk -t1 -c{}` to one local instance (`GET /whoami`), one path after another. Goal: the edge ≥ 1.0× haproxy's requests/s and ≤ its p99.\n", super::proxy_cost::WRK_CONNECTIONS);
        let _ = writeln!(
            s,
            "| path | req/s | vs haproxy | p50 ms | p99 ms | errors | proxy CPU µs/request |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        let hap = t
            .proxy
            .iter()
            .find(|r| r.path.starts_with("haproxy"))
            .map(|r| r.rps);
        for r in &t.proxy {
            let ratio = hap.map_or("—".into(), |h| format!("{:.2}×", r.rps / h));
            let cpu = r
                .cpu_us_per_request
                .map_or("—".into(), |c| format!("{c:.1}"));
            let _ = writeln!(
                s,
                "| {} | {:.0} | {ratio} | {:.2} | {:.2} | {} | {cpu} |",
                r.path, r.rps, r.p50_ms, r.p99_ms, r.errors
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: u64, region: &str, status: u16, latency_ms: u64) -> Sample {
        Sample {
            sent: Duration::from_millis(ms),
            latency: Duration::from_millis(latency_ms),
            status,
            region: region.into(),
        }
    }

    #[test]
    fn a_failover_is_timed_from_the_samples() {
        let mut v = Vec::new();
        for t in (0..1000).step_by(10) {
            v.push(sample(t, "us-east", 200, 30));
        }
        v.push(sample(1000, "us-east", 200, 30));
        v.push(sample(1010, "eu-west", 200, 110));
        v.push(sample(1020, "us-east", 200, 30));
        v.push(sample(1030, "", 0, 10_000));
        for t in (1040..3000).step_by(10) {
            v.push(sample(t, "eu-west", 200, 112));
        }
        v.push(sample(3000, "eu-west", 200, 112));
        v.push(sample(3200, "us-east", 200, 30));
        v.push(sample(3300, "us-east", 200, 30));
        let t = analyze(
            &v,
            Duration::from_millis(1000),
            Some(Duration::from_millis(3000)),
            "us-east",
            "eu-west",
        );
        assert_eq!(t.failed, 1);
        assert_eq!(t.first, Some(10.0));
        assert_eq!(
            t.all,
            Some(40.0),
            "the failed request at 1030 is no eu-west answer"
        );
        assert_eq!(t.p99_before, Some(30.0));
        assert_eq!(t.p99_during, Some(112.0));
        assert_eq!(t.back, Some(200.0), "home from the answer at 3200");
    }

    #[test]
    fn a_failover_that_never_finished_has_no_end() {
        let v = vec![
            sample(0, "us-east", 200, 1),
            sample(2000, "us-east", 200, 1),
        ];
        let t = analyze(&v, Duration::from_millis(1000), None, "us-east", "eu-west");
        assert_eq!(t.first, None);
        assert_eq!(t.all, None);
    }
}
