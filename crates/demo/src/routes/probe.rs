//! `GET /healthz`, `GET /whoami` and `GET /work`: what the edge and the
//! scaling tests ask of an instance.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::Params;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest `/work` sleep, ms: enough to load an instance for a scaling
/// test, short enough that no request outlives the shutdown grace.
pub const WORK_MS_MAX: u64 = 10_000;

/// `GET /healthz`: 200 `{"ok":true}` when Redis answers a `PING` in time,
/// else 503 with why.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.health.check().await {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(why) => ApiError::RedisUnavailable(why).into_response(),
    }
}

/// `GET /whoami`: which region and instance answered.
pub async fn whoami(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "region": state.opts.region, "instance": state.opts.instance }))
}

/// `/work`'s parameters.
#[derive(Deserialize)]
pub struct WorkParams {
    /// How long to sleep, ms (default 0).
    #[serde(default)]
    ms: u64,
}

/// `GET /work?ms=N`: sleeps N ms (at most [`WORK_MS_MAX`]), then answers.
pub async fn work(
    State(state): State<Arc<AppState>>,
    Params(p): Params<WorkParams>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if p.ms > WORK_MS_MAX {
        return Err(ApiError::BadRequest(format!(
            "ms must be 0 to {WORK_MS_MAX}"
        )));
    }
    tokio::time::sleep(Duration::from_millis(p.ms)).await;
    Ok((
        StatusCode::OK,
        Json(json!({
            "slept_ms": p.ms,
            "region": state.opts.region,
            "instance": state.opts.instance,
        })),
    ))
}
