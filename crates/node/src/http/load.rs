//! `POST /admin/bench/load`: runs the node's paced write generator
//! ([`crate::load`]) and answers with its report.

use axum::extract::State;
use axum::Json;
use meridian_api::load::{LoadReport, LoadSpec};

use super::auth::AdminAuth;
use super::{AdminState, ApiError};

/// `POST /admin/bench/load`: see [`crate::load`].
pub async fn bench_load(
    _: AdminAuth,
    State(s): State<AdminState>,
    Json(spec): Json<LoadSpec>,
) -> Result<Json<LoadReport>, ApiError> {
    spec.validate().map_err(ApiError::BadRequest)?;
    tracing::info!(?spec, "benchmark load starting");
    Ok(Json(crate::load::run(s.node().db.clone(), spec).await))
}
