//! Fault injection and measurement resets for tests and benchmarks: a
//! region forgetting a key (as a damaged disk would), and forgetting the
//! lag samples between benchmark phases.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;

use super::auth::AdminAuth;
use super::{AdminState, ApiError};

/// `POST /admin/faults/forget/{table}/{key}`: fault injection — this
/// region loses the key's local state, as a damaged disk would. Nothing is
/// logged or replicated; anti-entropy must bring it back.
pub async fn forget_key(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.node()
        .db
        .forget(&table, key.as_bytes())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::warn!(%table, %key, "fault injected: key state forgotten locally");
    Ok(Json(json!({ "forgotten": key })))
}

/// `POST /admin/replication/reset-lag`: forget lag samples (benchmarks
/// measure one phase at a time).
pub async fn reset_lag(_: AdminAuth, State(s): State<AdminState>) -> Json<serde_json::Value> {
    for h in s
        .node()
        .db
        .stats()
        .replication_latency
        .lock()
        .expect("stats lock is never poisoned")
        .values()
    {
        h.reset();
    }
    Json(json!({ "reset": true }))
}
