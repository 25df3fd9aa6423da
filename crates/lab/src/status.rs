//! `meridian status`: one screen for a whole cluster — regions up or down,
//! every peer link with its measured RTT, emulated RTT and state, whether
//! each table's data is identical, and each table's mode and epoch.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::data::TableDigest;
use meridian_api::edge::{EdgeStatus, RegionsHealth};
use meridian_api::status::NodeStatus;

/// Every answering region's table digests.
pub async fn digests(file: &ClusterFile) -> BTreeMap<String, BTreeMap<String, TableDigest>> {
    from_each_region(file, "/digest").await
}

/// `GET {admin}{path}` of every region, keyed by region; regions that do
/// not answer (or answer something else) are left out.
async fn from_each_region<T: serde::de::DeserializeOwned>(
    file: &ClusterFile,
    path: &str,
) -> BTreeMap<String, T> {
    let client = AdminClient::new(None);
    let mut out = BTreeMap::new();
    for (name, e) in &file.regions {
        if let Ok(v) = client.get(&format!("{}{path}", e.admin)).await {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Renders the convergence section: per table, identical or not among the
/// regions that hold it (a pinned table's other regions show `-`).
pub fn render_convergence(digests: &BTreeMap<String, BTreeMap<String, TableDigest>>) -> String {
    let mut s = String::new();
    let tables: std::collections::BTreeSet<&String> =
        digests.values().flat_map(|d| d.keys()).collect();
    let _ = writeln!(s, "\n{:<20} {:<11} KEYS PER REGION", "TABLE", "CONVERGED");
    for table in tables {
        let per: Vec<(&String, Option<&TableDigest>)> =
            digests.iter().map(|(r, d)| (r, d.get(table))).collect();
        let holders: Vec<&TableDigest> = per.iter().filter_map(|(_, d)| *d).collect();
        let same = holders.windows(2).all(|w| w[0] == w[1]);
        let counts: Vec<String> = per
            .iter()
            .map(|(r, d)| {
                format!(
                    "{r}={}",
                    d.map(|d| d.keys.to_string()).unwrap_or_else(|| "-".into())
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "{:<20} {:<11} {}",
            table,
            if same { "identical" } else { "DIFFERENT" },
            counts.join(" ")
        );
    }
    s
}

/// Every region's status; `None` for regions that did not answer.
pub async fn collect(file: &ClusterFile) -> BTreeMap<String, Option<NodeStatus>> {
    let client = AdminClient::new(None);
    let mut out = BTreeMap::new();
    for (name, e) in &file.regions {
        let status = client
            .get::<NodeStatus>(&format!("{}/status", e.admin))
            .await
            .ok();
        out.insert(name.clone(), status);
    }
    out
}

/// Renders the screen.
pub fn render(file: &ClusterFile, statuses: &BTreeMap<String, Option<NodeStatus>>) -> String {
    let mut s = String::new();
    let up = statuses.values().filter(|v| v.is_some()).count();
    let _ = writeln!(
        s,
        "cluster `{}`: {up}/{} regions up",
        file.cluster,
        statuses.len()
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<14} {:<6} {:>7} {:>10} {:<17} ADMIN",
        "REGION", "STATE", "PID", "UPTIME", "REDIS (RESP)"
    );
    regions_table(&mut s, file, statuses);
    links_table(&mut s, statuses);
    replication_table(&mut s, statuses);
    s
}

/// One line per region: up or down, pid, uptime, endpoints.
fn regions_table(
    s: &mut String,
    file: &ClusterFile,
    statuses: &BTreeMap<String, Option<NodeStatus>>,
) {
    for (name, status) in statuses {
        let e = &file.regions[name];
        match status {
            Some(st) => {
                let _ = writeln!(
                    s,
                    "{:<14} {:<6} {:>7} {:>9.0}s {:<17} {}",
                    name, "up", st.pid, st.uptime_s, e.resp, e.admin
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "{:<14} {:<6} {:>7} {:>10} {:<17} {}",
                    name, "DOWN", "-", "-", e.resp, e.admin
                );
            }
        }
    }
}

/// One line per link and direction: state, measured and emulated RTT,
/// loss, bytes.
fn links_table(s: &mut String, statuses: &BTreeMap<String, Option<NodeStatus>>) {
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<28} {:<12} {:>10} {:>12} {:>8} {:>12}",
        "LINK (from -> to)", "STATE", "RTT ms", "EMULATED ms", "LOSS %", "BYTES OUT"
    );
    for (name, status) in statuses {
        let Some(st) = status else { continue };
        for p in &st.peers {
            let pair = format!("{name} -> {}", p.link.region);
            let state = match (&p.emulated, p.link.outbound_up) {
                (Some(e), _) if e.partitioned => "PARTITIONED",
                (_, true) => "up",
                (_, false) => "DOWN",
            };
            let rtt = p
                .link
                .rtt_ms
                .map(|r| format!("{r:.1}"))
                .unwrap_or_else(|| "-".into());
            let (emu, loss, bytes) = match &p.emulated {
                Some(e) => (
                    format!("{:.0}", e.figures.rtt_ms),
                    format!("{:.1}", e.figures.loss_pct),
                    e.stats.bytes_out.to_string(),
                ),
                None => ("off".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                s,
                "{pair:<28} {state:<12} {rtt:>10} {emu:>12} {loss:>8} {bytes:>12}"
            );
        }
    }
}

/// One line per origin and destination: applied, lag, pending.
fn replication_table(s: &mut String, statuses: &BTreeMap<String, Option<NodeStatus>>) {
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<28} {:>10} {:>11} {:>11} {:>12} {:>14}",
        "REPLICATION (from -> to)",
        "APPLIED",
        "LAG p50 ms",
        "LAG p99 ms",
        "PENDING OPS",
        "PENDING BYTES"
    );
    for (to, status) in statuses {
        let Some(dest) = status.as_ref().and_then(|st| st.replication.as_ref()) else {
            continue;
        };
        for from in statuses.keys().filter(|f| *f != to) {
            let applied = dest.applied.get(from).copied().unwrap_or(0);
            let lag = dest.lag_from.get(from);
            let fmt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
            let (p50, p99) = (
                fmt(lag.and_then(|l| l.p50_ms)),
                fmt(lag.and_then(|l| l.p99_ms)),
            );
            // Pending is known at the origin: what `to` has not acknowledged.
            let origin = statuses
                .get(from)
                .and_then(|o| o.as_ref())
                .and_then(|o| o.replication.as_ref());
            let (ops, bytes) = match origin.and_then(|o| o.peers.get(to)) {
                Some(p) => (
                    p.pending_operations.to_string(),
                    p.pending_bytes.to_string(),
                ),
                None => ("?".into(), "?".into()),
            };
            let _ = writeln!(
                s,
                "{:<28} {applied:>10} {p50:>11} {p99:>11} {ops:>12} {bytes:>14}",
                format!("{from} -> {to}")
            );
        }
    }
}

/// Every answering region's table modes (`GET /tables`).
pub async fn tables(file: &ClusterFile) -> BTreeMap<String, Vec<meridian_api::tables::TableInfo>> {
    from_each_region(file, "/tables").await
}

/// Renders the table modes: each table's mode at the highest epoch any
/// region applies, and the regions still applying an older one.
pub fn render_tables(
    per_region: &BTreeMap<String, Vec<meridian_api::tables::TableInfo>>,
) -> String {
    let mut s = String::new();
    let mut newest: BTreeMap<&str, &meridian_api::tables::TableInfo> = BTreeMap::new();
    for t in per_region.values().flatten() {
        if newest
            .get(t.name.as_str())
            .is_none_or(|n| n.epoch < t.epoch)
        {
            newest.insert(&t.name, t);
        }
    }
    if newest.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "\n{:<20} {:<34} {:>5}  {:<13} BEHIND",
        "TABLE", "MODE", "EPOCH", "COORDINATOR"
    );
    for (name, t) in newest {
        let behind: Vec<&str> = per_region
            .iter()
            .filter(|(_, ts)| ts.iter().any(|x| x.name == name && x.epoch < t.epoch))
            .map(|(r, _)| r.as_str())
            .collect();
        let _ = writeln!(
            s,
            "{:<20} {:<34} {:>5}  {:<13} {}",
            name,
            t.mode,
            t.epoch,
            t.coordinator,
            if behind.is_empty() {
                "-".to_string()
            } else {
                behind.join(",")
            }
        );
    }
    s
}

/// Every answering region's edge pool and region health.
pub async fn traffic(
    file: &ClusterFile,
) -> BTreeMap<String, (Option<EdgeStatus>, Option<RegionsHealth>)> {
    let edges: BTreeMap<String, EdgeStatus> = from_each_region(file, "/edge").await;
    let mut health: BTreeMap<String, RegionsHealth> =
        from_each_region(file, "/health/regions").await;
    file.regions
        .keys()
        .map(|r| (r.clone(), (edges.get(r).cloned(), health.remove(r))))
        .collect()
}

/// Renders the traffic section: each region's edge (instances up, load,
/// drained) and the quorum verdicts as each node sees them, with every
/// observer's vote.
pub fn render_traffic(t: &BTreeMap<String, (Option<EdgeStatus>, Option<RegionsHealth>)>) -> String {
    let mut s = String::new();
    if t.values().all(|(e, h)| e.is_none() && h.is_none()) {
        return s;
    }
    let _ = writeln!(
        s,
        "\n{:<14} {:<9} {:<12} {:>10} {:>6}",
        "EDGE", "SERVING", "INSTANCES", "LOAD/INST", "DRAIN"
    );
    for (region, (edge, _)) in t {
        match edge {
            Some(e) => {
                let up = e.backends.iter().filter(|b| b.up).count();
                let _ = writeln!(
                    s,
                    "{:<14} {:<9} {:<12} {:>10.2} {:>6}",
                    region,
                    if e.serving { "yes" } else { "NO" },
                    format!("{up}/{} up", e.backends.len()),
                    e.load_per_instance,
                    if e.draining { "yes" } else { "-" }
                );
            }
            None => {
                let _ = writeln!(s, "{region:<14} (no answer)");
            }
        }
    }
    let _ = writeln!(
        s,
        "\n{:<14} {:<14} {:<8} {:>6} {:>10}  OBSERVERS",
        "SEEN FROM", "REGION", "VERDICT", "VOTES", "SINCE"
    );
    for (observer, (_, health)) in t {
        let Some(h) = health else { continue };
        for (region, r) in &h.regions {
            if region == observer {
                continue;
            }
            let votes: Vec<String> = r
                .observers
                .iter()
                .map(|(o, v)| format!("{o}={}", v.state))
                .collect();
            let _ = writeln!(
                s,
                "{:<14} {:<14} {:<8} {:>6} {:>9.1}s  {}",
                observer,
                region,
                r.verdict,
                format!("{}/{}", r.down_votes, r.quorum),
                r.since_ms_ago as f64 / 1000.0,
                votes.join(" ")
            );
        }
        if h.fail_open {
            let _ = writeln!(
                s,
                "{observer:<14} every other region looks down: routing fails open"
            );
        }
    }
    s
}

/// Prints the status of the cluster in `dir` (as JSON with `json`). Fails
/// when no region answers.
pub async fn run(dir: &Path, json: bool) -> anyhow::Result<()> {
    let file = ClusterFile::load(dir)?;
    let statuses = collect(&file).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        print!("{}", render(&file, &statuses));
        print!("{}", render_convergence(&digests(&file).await));
        print!("{}", render_tables(&tables(&file).await));
        print!("{}", render_traffic(&traffic(&file).await));
    }
    if statuses.values().all(Option::is_none) {
        anyhow::bail!(
            "no region answered: is `meridian up --dir {}` still running?",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod table_tests {
    use super::*;
    use meridian_api::tables::TableInfo;

    fn info(mode: &str, epoch: u64) -> TableInfo {
        TableInfo {
            name: "ledger".into(),
            mode: mode.into(),
            epoch,
            coordinator: "eu-west".into(),
        }
    }

    #[test]
    fn tables_show_the_newest_mode_and_who_has_not_applied_it() {
        let per_region = BTreeMap::from([
            (
                "us-east".to_string(),
                vec![info("single_master:eu-west", 1)],
            ),
            (
                "ap-south".to_string(),
                vec![info("single_master:us-east", 0)],
            ),
        ]);
        let text = render_tables(&per_region);
        let row = text.lines().find(|l| l.starts_with("ledger")).unwrap();
        assert!(
            row.contains("single_master:eu-west") && row.contains(" 1 "),
            "{row}"
        );
        assert!(row.trim_end().ends_with("ap-south"), "{row}");
        assert!(render_tables(&BTreeMap::new()).is_empty());
    }
}
