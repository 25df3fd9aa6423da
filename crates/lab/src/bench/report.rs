//! The benchmark report: every suite's rows (`report.json`) and their
//! rendering as Markdown (`report.md`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::catchup::CatchUp;
use super::footprint::Footprint;
use super::lag::{LagRow, LoadRow};

#[derive(Serialize, Default)]
pub(crate) struct Report {
    pub(crate) machine: BTreeMap<String, String>,
    pub(crate) lag: Vec<LagRow>,
    pub(crate) load: Vec<LoadRow>,
    /// The disk's own write + fdatasync latency during each lag run.
    pub(crate) disk: Vec<super::disk::DiskProbe>,
    pub(crate) catch_up: Option<CatchUp>,
    pub(crate) footprint: Option<Footprint>,
    pub(crate) consistency: Vec<super::consistency::ConsistencyRow>,
    pub(crate) restart: Option<super::scale::Restart>,
    /// The most writes/s every region sustained at once (full runs).
    pub(crate) max_sustainable_per_region: Option<u64>,
    pub(crate) scale: Vec<super::scale::ScaleRow>,
    pub(crate) redis: Vec<super::redis::RedisRow>,
    pub(crate) traffic: Option<super::traffic::TrafficReport>,
    /// Plot files written beside the report: `(file, title)`.
    pub(crate) plots: Vec<(String, String)>,
}

fn render_redis(s: &mut String, rows: &[super::redis::RedisRow]) {
    use std::fmt::Write;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Redis protocol vs redis-server\n");
    let _ = writeln!(s, "`redis-benchmark -t {} -c {}` against us-east (replicating to eu-west and ap-south) and against Debian's redis-server, one at a time, durability matched: Meridian `fsync` vs `appendonly yes, appendfsync always`; Meridian `none` vs redis-server's defaults. Goal: ratio ≥ 1.0 on GET and SET, p99 within +1 ms. All three regions run on this machine, so every write is applied three times on its cores; the *solo* columns are a one-region Meridian, the endpoint and engine alone.\n", super::redis::TESTS, super::redis::CLIENTS);
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

pub(crate) fn machine_facts() -> BTreeMap<String, String> {
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

/// The lag and local-write sections, when those suites ran.
fn render_lag(s: &mut String, r: &Report) {
    use std::fmt::Write;
    if r.lag.is_empty() && r.load.is_empty() {
        return;
    }
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
        let _ = writeln!(s, "\nThe disk itself during the {}/s run ({} writes of 4 KiB + fdatasync, one every {} ms, to the cluster's disk — the floor under any durable acknowledgement here): p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms.", d.rate_per_region, d.samples, super::disk::PROBE_INTERVAL.as_millis(), d.p50_ms, d.p99_ms, d.max_ms);
    }
}

pub(crate) fn render(r: &Report, quick: bool) -> String {
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
    render_lag(&mut s, r);
    if let Some(c) = &r.catch_up {
        let _ = writeln!(s, "\n## Catch-up after a partition\n");
        let _ = writeln!(s, "ap-south cut off for {:.0} s while us-east wrote 5000/s: {} entries behind. After the heal the link was back in {:.2} s (redial backoff); the backlog then arrived in {:.2} s = **{:.0} entries/s**.", c.partitioned_s, c.backlog_entries, c.reconnect_s, c.transfer_s, c.entries_per_s);
    }
    if let Some(f) = &r.footprint {
        let _ = writeln!(s, "\n## Footprint\n");
        let _ = writeln!(s, "{} keys of {} B written to us-east: RSS {:.0} → {:.0} MB ({:.0} B/key; redb caches at most 256 MiB of pages), database file {:.0} MB for every key it holds ({:.0} B/key, including not yet collected replication log).", f.keys, f.value_bytes, f.rss_before_mb, f.rss_after_mb, f.rss_bytes_per_key, f.disk_mb, f.disk_bytes_per_key);
    }
    super::scale::render(&mut s, &r.scale, r.restart.as_ref());
    super::consistency::render(&mut s, &r.consistency);
    render_redis(&mut s, &r.redis);
    super::traffic::render(&mut s, r.traffic.as_ref());
    if !r.plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        for (file, title) in &r.plots {
            let _ = writeln!(s, "![{title}]({file})\n");
        }
    }
    s
}
