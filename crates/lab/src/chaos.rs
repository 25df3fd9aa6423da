//! `meridian chaos`: faults on a running local cluster.
//!
//! Link faults are applied through both ends' admin APIs (each node emulates
//! the connections it opens), so a partition cuts traffic both ways. Kills
//! and restarts go through the supervisor of `meridian up`.

use std::path::Path;

use anyhow::{bail, Context};
use hyper::Method;
use serde_json::json;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::status::{LinkPatch, PeerReport};

/// One fault to inject.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ChaosCommand {
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
    /// Set the round-trip time between two regions, in ms.
    Latency {
        /// One region.
        a: String,
        /// The other region.
        b: String,
        /// Round-trip time in ms (each direction gets half).
        rtt_ms: f64,
    },
    /// Start a fresh cluster, run a checked workload under a fault scenario
    /// (see `chaos_run`), and fail if any promise was broken.
    Run {
        /// The faults.
        #[arg(long, value_enum)]
        scenario: crate::chaos_run::Scenario,
        /// How long the workload runs: `30s`, `10m`, `1h`.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Clients per region.
        #[arg(long, default_value_t = 2)]
        clients_per_region: usize,
        /// Seed of the fault schedule and the workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the cluster, history and report go.
        #[arg(long, default_value = "chaos-report")]
        out: std::path::PathBuf,
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

/// `30s`, `10m`, `2h` or plain seconds, up to a day.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; use e.g. 30s, 10m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("unknown unit in `{text}`; use s, m or h")),
    };
    if secs == 0 || secs > 86_400 {
        return Err(format!("`{text}` is out of range; use 1s to 24h"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Runs one chaos command against the cluster in `dir`.
pub async fn run(dir: &Path, command: ChaosCommand) -> anyhow::Result<()> {
    if let ChaosCommand::Run {
        scenario,
        duration,
        clients_per_region,
        seed,
        out,
    } = command
    {
        crate::chaos_run::run(crate::chaos_run::RunOptions {
            scenario,
            duration,
            clients_per_region: clients_per_region.clamp(1, 64),
            seed,
            out,
        })
        .await?;
        return Ok(());
    }
    apply(dir, command).await
}

/// Applies one fault to the running cluster in `dir`.
pub async fn apply(dir: &Path, command: ChaosCommand) -> anyhow::Result<()> {
    let file = ClusterFile::load(dir)?;
    let client = AdminClient::new(Some(file.admin_token.clone()));
    match command {
        ChaosCommand::Run { .. } => bail!("`chaos run` starts its own cluster; it is not a fault"),
        ChaosCommand::Partition { a, b } => {
            let patch = LinkPatch {
                partitioned: Some(true),
                ..LinkPatch::default()
            };
            patch_pair(&file, &client, &a, &b, &patch).await?;
            println!("partitioned {a} <-> {b}");
        }
        ChaosCommand::Heal { a, b } => {
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
                patch_pair(&file, &client, a, b, &patch).await?;
            }
            println!(
                "healed {} link{}",
                pairs.len(),
                if pairs.len() == 1 { "" } else { "s" }
            );
        }
        ChaosCommand::Latency { a, b, rtt_ms } => {
            let patch = LinkPatch {
                rtt_ms: Some(rtt_ms),
                ..LinkPatch::default()
            };
            patch_pair(&file, &client, &a, &b, &patch).await?;
            println!("{a} <-> {b}: RTT {rtt_ms} ms");
        }
        ChaosCommand::Loss { a, b, pct } => {
            let patch = LinkPatch {
                loss_pct: Some(pct),
                ..LinkPatch::default()
            };
            patch_pair(&file, &client, &a, &b, &patch).await?;
            println!("{a} <-> {b}: loss {pct} %");
        }
        ChaosCommand::Kill { region } => {
            check_region(&file, &region)?;
            let url = format!("{}/regions/{region}/kill", file.supervisor);
            let answer: serde_json::Value = client
                .json(Method::POST, &url, Some(json!({})))
                .await
                .context("the supervisor (meridian up) did not answer")?;
            println!("killed {region} (pid {})", answer["killed_pid"]);
        }
        ChaosCommand::Restart { region } => {
            check_region(&file, &region)?;
            let url = format!("{}/regions/{region}/restart", file.supervisor);
            let answer: serde_json::Value = client
                .json(Method::POST, &url, Some(json!({})))
                .await
                .context("the supervisor (meridian up) did not answer")?;
            println!("restarted {region} (pid {})", answer["pid"]);
        }
    }
    Ok(())
}
