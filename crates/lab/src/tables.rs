//! `meridian table list|move|set-mode`: a client of the node's table
//! routes (`GET /tables`, `PUT /admin/tables/{table}/mode`).

use std::path::Path;

use anyhow::{bail, Context};
use meridian_api::client::error_message;
use meridian_api::tables::{ChangeReport, ModeChange, TableInfo, CHANGE_TIMEOUT};
use meridian_api::{AdminClient, ClusterFile};
use meridian_core::ModeSpec;

/// `meridian table ...`: the subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TableCommand {
    /// List every table's mode, epoch and coordinator.
    List,
    /// Move a single-master table's home (planned switchover, RPO 0).
    Move {
        /// The table.
        table: String,
        /// Its new home region.
        #[arg(long)]
        to: String,
    },
    /// Set a table's mode: `multi_master`, `single_master:REGION` or
    /// `pinned[:refuse|:forward]:REGION[,REGION...]`.
    SetMode {
        /// The table.
        table: String,
        /// The mode.
        mode: String,
    },
}

/// Parses `multi_master`, `single_master:REGION` or
/// `pinned[:refuse|:forward]:REGION[,REGION...]`.
pub fn parse_mode(text: &str) -> anyhow::Result<ModeSpec> {
    text.parse().map_err(|e: String| anyhow::anyhow!(e))
}

/// Runs a `meridian table` command against the cluster in `dir`.
pub async fn run(dir: &Path, command: TableCommand) -> anyhow::Result<()> {
    let file = ClusterFile::load(dir)?;
    let client = AdminClient::new(Some(file.admin_token.clone())).with_timeout(CHANGE_TIMEOUT);
    let (method, path, body) = match &command {
        TableCommand::List => (hyper::Method::GET, "/tables".to_string(), None),
        TableCommand::Move { table, to } => (
            hyper::Method::PUT,
            format!("/admin/tables/{table}/mode"),
            Some(ModeChange {
                mode: parse_mode(&format!("single_master:{to}"))?,
            }),
        ),
        TableCommand::SetMode { table, mode } => (
            hyper::Method::PUT,
            format!("/admin/tables/{table}/mode"),
            Some(ModeChange {
                mode: parse_mode(mode)?,
            }),
        ),
    };
    let body = body.map(serde_json::to_value).transpose()?;
    // Any region that answers will do: it sends a change to the table's
    // coordinator. Only an unreachable region is skipped; an answer, even
    // a refusal, is final.
    let mut unreachable = Vec::new();
    for (name, entry) in &file.regions {
        let url = format!("{}{path}", entry.admin);
        let (status, text) = match client.request(method.clone(), &url, body.clone()).await {
            Ok(answer) => answer,
            Err(e) => {
                unreachable.push(format!("{name}: {e:#}"));
                continue;
            }
        };
        if !status.is_success() {
            bail!("{name} answered {status}: {}", error_message(text));
        }
        match &command {
            TableCommand::List => {
                let tables: Vec<TableInfo> =
                    serde_json::from_str(&text).context("unexpected answer to GET /tables")?;
                println!("{:<20} {:<28} {:>5}  COORDINATOR", "TABLE", "MODE", "EPOCH");
                for t in tables {
                    println!(
                        "{:<20} {:<28} {:>5}  {}",
                        t.name, t.mode, t.epoch, t.coordinator
                    );
                }
            }
            _ => {
                let report: ChangeReport =
                    serde_json::from_str(&text).context("unexpected answer to a mode change")?;
                print_change(&report);
            }
        }
        return Ok(());
    }
    bail!("no region answered: {}", unreachable.join("; "))
}

fn print_change(report: &ChangeReport) {
    let mode = report.mode.to_string();
    print!(
        "table `{}` is {mode} at epoch {} (decided by {})",
        report.table, report.epoch, report.decided_by
    );
    match report.unavailable_ms {
        Some(ms) => println!("; writes were unavailable for {ms:.1} ms"),
        None => println!(),
    }
}
