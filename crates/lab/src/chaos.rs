//! `meridian chaos`: a fault on a running local cluster ([`crate::faults`]),
//! or `chaos run`, a checked workload under a fault scenario on a fresh one
//! ([`crate::chaos_run`]).

use std::path::Path;

use crate::faults::{self, Fault};

/// `meridian chaos …`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ChaosCommand {
    /// A fault on the running cluster.
    #[command(flatten)]
    Fault(Fault),
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
    match command {
        ChaosCommand::Run {
            scenario,
            duration,
            clients_per_region,
            seed,
            out,
        } => {
            crate::chaos_run::run(crate::chaos_run::RunOptions {
                scenario,
                duration,
                clients_per_region: clients_per_region.clamp(1, 64),
                seed,
                out,
            })
            .await?;
            Ok(())
        }
        ChaosCommand::Fault(fault) => faults::apply(dir, fault).await,
    }
}
