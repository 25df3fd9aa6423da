//! Table modes on the admin port, and `meridian table`.
//!
//! | route | what |
//! |---|---|
//! | `GET /tables` | every table's mode as this region applies it, its epoch and coordinator |
//! | `PUT /admin/tables/{table}/mode` | change it (token): body `{"mode": "multi_master"}`, `{"mode": {"single_master": {"home": "eu-west"}}}` or `{"mode": {"pinned": {"regions": ["eu-west"], "outside": "forward"}}}` |
//!
//! Any region takes a change and sends it to the table's coordinator (see
//! [`meridian_resp::modes`]), which makes it and answers with the new epoch
//! and, for a move of a single-master home, the write unavailability.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use meridian_resp::modes::{ChangeReport, ModeSpec, MOVE_ACK_TIMEOUT};
use serde::{Deserialize, Serialize};

use crate::admin::{AdminAuth, AdminState, ApiError};
use crate::cluster_file::ClusterFile;
use crate::http_client::AdminClient;
use crate::remote::NodeRemote;

/// How long a change may take end to end: the coordinator's wait for the
/// new home plus a round trip on the slowest link, with room.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(MOVE_ACK_TIMEOUT.as_secs() + 5);

/// One table, as `GET /tables` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableInfo {
    /// Name.
    pub name: String,
    /// As `meridian table set-mode` takes it: `multi_master`,
    /// `single_master:HOME` or `pinned:refuse|forward:R1,R2`.
    pub mode: String,
    /// Epoch of the mode (0: as configured).
    pub epoch: u64,
    /// The region that may change it.
    pub coordinator: String,
}

/// `GET /tables`.
pub async fn list(State(s): State<AdminState>) -> Json<Vec<TableInfo>> {
    let modes = &s.node().resp.modes;
    let view = modes.view();
    Json(
        view.topology
            .tables
            .iter()
            .map(|t| TableInfo {
                name: t.name.clone(),
                mode: ModeSpec::from(&t.mode).to_string(),
                epoch: view.epoch(&t.name),
                coordinator: modes.coordinator(&t.name).to_string(),
            })
            .collect(),
    )
}

/// Body of `PUT /admin/tables/{table}/mode`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModeChange {
    /// The new mode.
    pub mode: ModeSpec,
}

/// `PUT /admin/tables/{table}/mode`.
pub async fn change(
    _: AdminAuth,
    State(s): State<AdminState>,
    UrlPath(table): UrlPath<String>,
    Json(body): Json<ModeChange>,
) -> Result<Json<ChangeReport>, ApiError> {
    let node = s.node();
    let resp = &node.resp;
    let coordinator = resp.modes.coordinator(&table);
    let result = if let Err(refusal) = resp.modes.check(&table, &body.mode) {
        Err(refusal)
    } else if coordinator == node.region {
        resp.modes.change(&resp.db, &table, body.mode).await
    } else {
        let remote = NodeRemote {
            calls: node.repl.calls().clone(),
        };
        remote
            .change_mode(&coordinator, table.clone(), body.mode, CHANGE_TIMEOUT)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "could not reach {coordinator}, which coordinates table `{table}`: {}{}",
                        e.message,
                        if e.outcome_unknown {
                            " (the change may or may not have been made; see GET /tables)"
                        } else {
                            ""
                        }
                    ),
                )
            })?
    };
    result.map(Json).map_err(|msg| {
        let status = if msg.starts_with("TRYAGAIN") {
            StatusCode::SERVICE_UNAVAILABLE
        } else if msg.starts_with("unknown table") {
            StatusCode::NOT_FOUND
        } else if msg.contains("is pinned") {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, msg)
    })
}

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
            bail!(
                "{name} answered {status}: {}",
                crate::http_client::error_message(text)
            );
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
