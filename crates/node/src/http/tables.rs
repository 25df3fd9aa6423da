//! Table modes on the admin port (`meridian table` is their client).
//!
//! | route | what |
//! |---|---|
//! | `GET /tables` | every table's mode as this region applies it, its epoch and coordinator |
//! | `PUT /admin/tables/{table}/mode` | change it (token): body `{"mode": "multi_master"}`, `{"mode": {"single_master": {"home": "eu-west"}}}` or `{"mode": {"pinned": {"regions": ["eu-west"], "outside": "forward"}}}` |
//!
//! Any region takes a change and sends it to the table's coordinator (see
//! [`meridian_resp::modes`]), which makes it and answers with the new epoch
//! and, for a move of a single-master home, the write unavailability.

use axum::extract::{Path as UrlPath, State};
use axum::Json;
use meridian_api::tables::{ChangeReport, ModeChange, TableInfo, CHANGE_TIMEOUT};
use meridian_core::ModeSpec;

use super::auth::AdminAuth;
use super::{AdminState, ApiError};
use crate::remote::NodeRemote;

// The client's end-to-end timeout must cover the coordinator's wait for a
// new home and a round trip on the slowest link.
const _: () =
    assert!(CHANGE_TIMEOUT.as_secs() >= meridian_resp::modes::MOVE_ACK_TIMEOUT.as_secs() + 5);

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
                ApiError::Unavailable(format!(
                    "could not reach {coordinator}, which coordinates table `{table}`: {}{}",
                    e.message,
                    if e.outcome_unknown {
                        " (the change may or may not have been made; see GET /tables)"
                    } else {
                        ""
                    }
                ))
            })?
    };
    result
        .map(|r| Json(change_report(r)))
        .map_err(ApiError::from)
}

fn change_report(r: meridian_resp::modes::ChangeReport) -> ChangeReport {
    ChangeReport {
        table: r.table,
        mode: r.mode,
        epoch: r.epoch,
        decided_by: r.decided_by,
        unavailable_ms: r.unavailable_ms,
    }
}
