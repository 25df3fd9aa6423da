//! Faults on a running local cluster, as `meridian chaos` and the
//! benchmarks and chaos runs inject them.
//!
//! Link faults are applied through both ends' admin APIs (each node emulates
//! the connections it opens), so a partition cuts traffic both ways. Kills
//! and restarts of nodes, and stops and starts of a region's app
//! instances, go through the supervisor of `meridian up`.

use std::path::Path;

use anyhow::{bail, Context};
use hyper::Method;
use serde_json::json;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::status::{LinkPatch, PeerReport};
use meridian_api::supervisor::{AppsStarted, AppsStopped, Killed, Restarted};

/// One fault to inject.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Fault {
    /// Cut the link between two regions, both ways.
    Partition {
        /// One region.
        a: String,
        /// The other region.
        b: String,
    },
    /// Heal the link between two regions, or every link when none are named.
    Heal {
        /// One region.
        a: Option<String>,
        /// The other region.
        b: Option<String>,
    },
    /// Kill a region's node with SIGKILL (a crash: nothing is flushed).
    Kill {
        /// The region.
        region: String,
    },
    /// Start a killed region again (or restart a running one gracefully).
    Restart {
        /// The region.
        region: String,
    },
    /// Kill every app instance of a region with SIGKILL (its node and edge
    /// keep running); scaling leaves the region without apps until
    /// `start-apps`.
    StopApps {
        /// The region.
        region: String,
    },
    /// Start a region's app instances again (`--apps-min` of them, on new
    /// ports) after `stop-apps`.
    StartApps {
        /// The region.
        region: String,
    },
    /// Set the round-trip time between two regions, in ms.
    Latency {
        /// One region.
        a: String,
        /// The other region.
        b: String,
        /// Round-trip time in ms (each direction gets half).
        rtt_ms: f64,
    },
    /// Set segment loss between two regions, in percent (0 to under 100).
    Loss {
        /// One region.
        a: String,
        /// The other region.
        b: String,
        /// Loss in percent.
        pct: f64,
    },
}

fn check_region(file: &ClusterFile, r: &str) -> anyhow::Result<()> {
    if !file.regions.contains_key(r) {
        let known: Vec<_> = file.regions.keys().cloned().collect();
        bail!(
            "unknown region `{r}`; this cluster has: {}",
            known.join(", ")
        );
    }
    Ok(())
}

/// Applies `patch` to the link a–b at both ends. One unreachable end (a
/// killed region) is reported but not fatal; both unreachable is.
async fn patch_pair(
    file: &ClusterFile,
    client: &AdminClient,
    a: &str,
    b: &str,
    patch: &LinkPatch,
) -> anyhow::Result<()> {
    check_region(file, a)?;
    check_region(file, b)?;
    if a == b {
        bail!("a link joins two different regions; `{a}` was given twice");
    }
    let body = serde_json::to_value(patch)?;
    let mut failures = Vec::new();
    for (from, to) in [(a, b), (b, a)] {
        let url = format!("{}/admin/links/{to}", file.regions[from].admin);
        match client
            .json::<PeerReport>(Method::PUT, &url, Some(body.clone()))
            .await
        {
            Ok(_) => {}
            Err(e) => failures.push(format!("{from}: {e:#}")),
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => {
            eprintln!("warning: applied at one end only; {}", failures[0]);
            Ok(())
        }
        _ => bail!(
            "could not change the link {a}–{b}:\n  {}",
            failures.join("\n  ")
        ),
    }
}

/// A pid as the supervisor reported it (`null` while none runs, as JSON
/// showed it before).
fn pid_text(pid: Option<u32>) -> String {
    pid.map_or("null".to_string(), |p| p.to_string())
}

/// Applies one fault to the running cluster in `dir`.
pub async fn apply(dir: &Path, fault: Fault) -> anyhow::Result<()> {
    let file = ClusterFile::load(dir)?;
    let client = AdminClient::new(Some(file.admin_token.clone()));
    match fault {
        Fault::Partition { a, b } => {
            let patch = LinkPatch {
                partitioned: Some(true),
                ..LinkPatch::default()
            };
            patch_pair(&file, &client, &a, &b, &patch).await?;
            println!("partitioned {a} <-> {b}");
        }
        Fault::Heal { a, b } => heal(&file, &client, a, b).await?,
        Fault::Latency { a, b, rtt_ms } => {
            let patch = LinkPatch {
                rtt_ms: Some(rtt_ms),
                ..LinkPatch::default()
            };
            patch_pair(&file, &client, &a, &b, &patch).await?;
            println!("{a} <-> {b}: RTT {rtt_ms} ms");
        }
        Fault::Loss { a, b, pct } => {
            let patch = LinkPatch {
                loss_pct: Some(pct),
                ..LinkPatch::default()
            };
            patch_pair(&file, &client, &a, &b, &patch).await?;
            println!("{a} <-> {b}: loss {pct} %");
        }
        Fault::Kill { region } => {
            let answer: Killed = supervise(&file, &client, &region, "kill").await?;
            println!("killed {region} (pid {})", pid_text(answer.killed_pid));
        }
        Fault::Restart { region } => {
            let answer: Restarted = supervise(&file, &client, &region, "restart").await?;
            println!("restarted {region} (pid {})", pid_text(answer.pid));
        }
        Fault::StopApps { region } => {
            let answer: AppsStopped = supervise(&file, &client, &region, "stop-apps").await?;
            println!(
                "stopped the apps of {region} ({} killed)",
                answer.killed_pids.len()
            );
        }
        Fault::StartApps { region } => {
            let answer: AppsStarted = supervise(&file, &client, &region, "start-apps").await?;
            let addrs: Vec<&str> = answer.apps.iter().map(|a| a.addr.as_str()).collect();
            println!("started {} apps in {region} {addrs:?}", addrs.len());
        }
    }
    Ok(())
}

/// Heals the link a–b, or every link when neither is named.
async fn heal(
    file: &ClusterFile,
    client: &AdminClient,
    a: Option<String>,
    b: Option<String>,
) -> anyhow::Result<()> {
    let patch = LinkPatch {
        partitioned: Some(false),
        ..LinkPatch::default()
    };
    let pairs: Vec<(String, String)> = match (a, b) {
        (Some(a), Some(b)) => vec![(a, b)],
        (None, None) => {
            let names: Vec<_> = file.regions.keys().cloned().collect();
            let mut v = Vec::new();
            for (i, a) in names.iter().enumerate() {
                for b in &names[i + 1..] {
                    v.push((a.clone(), b.clone()));
                }
            }
            v
        }
        _ => bail!("heal takes two regions, or none to heal every link"),
    };
    for (a, b) in &pairs {
        patch_pair(file, client, a, b, &patch).await?;
    }
    println!(
        "healed {} link{}",
        pairs.len(),
        if pairs.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Asks the supervisor of `meridian up` to `action` (`kill`, `restart`,
/// `stop-apps`, `start-apps`) `region`.
async fn supervise<T: serde::de::DeserializeOwned>(
    file: &ClusterFile,
    client: &AdminClient,
    region: &str,
    action: &str,
) -> anyhow::Result<T> {
    check_region(file, region)?;
    let url = format!("{}/regions/{region}/{action}", file.supervisor);
    client
        .json(Method::POST, &url, Some(json!({})))
        .await
        .context("the supervisor (meridian up) did not answer")
}
