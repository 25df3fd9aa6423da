//! The edge proxy and region health on the admin port.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /edge` | none | the pool: instances, health, load ([`EdgeStatus`]) |
//! | `PUT /admin/edge/backends` | token | replace the registered instances ([`BackendSet`]) |
//! | `POST /admin/edge/drain`, `/admin/edge/undrain` | token | route the region's traffic away, and back |
//! | `GET /health/regions` | none | every observer's view of every region and the quorum verdicts |

use axum::extract::State;
use axum::Json;
use meridian_api::edge::{BackendSet, DrainState, EdgeStatus, RegionsHealth};

use super::auth::AdminAuth;
use super::{AdminState, ApiError};

fn edge_of(s: &AdminState) -> Result<&std::sync::Arc<meridian_route::Edge>, ApiError> {
    s.node().edge.as_ref().ok_or_else(|| {
        ApiError::NotFound(format!(
            "region {} runs no edge proxy; give it an `edge` listener in the topology",
            s.node().region
        ))
    })
}

/// `GET /edge`.
pub async fn status(State(s): State<AdminState>) -> Result<Json<EdgeStatus>, ApiError> {
    Ok(Json(edge_of(&s)?.status()))
}

/// `PUT /admin/edge/backends`.
pub async fn backends(
    _: AdminAuth,
    State(s): State<AdminState>,
    Json(set): Json<BackendSet>,
) -> Result<Json<EdgeStatus>, ApiError> {
    let edge = edge_of(&s)?;
    edge.register(&set)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Json(edge.status()))
}

/// `POST /admin/edge/drain`.
pub async fn drain(
    _: AdminAuth,
    State(s): State<AdminState>,
) -> Result<Json<DrainState>, ApiError> {
    set_drain(&s, true)
}

/// `POST /admin/edge/undrain`.
pub async fn undrain(
    _: AdminAuth,
    State(s): State<AdminState>,
) -> Result<Json<DrainState>, ApiError> {
    set_drain(&s, false)
}

fn set_drain(s: &AdminState, drained: bool) -> Result<Json<DrainState>, ApiError> {
    let edge = edge_of(s)?;
    crate::edge::store_drained(&s.node().data_dir, drained).map_err(|e| {
        ApiError::Internal(format!(
            "cannot record the drain state in the data directory: {e}"
        ))
    })?;
    edge.set_draining(drained);
    Ok(Json(DrainState {
        region: s.node().region.to_string(),
        draining: drained,
    }))
}

/// `GET /health/regions`.
pub async fn regions(State(s): State<AdminState>) -> Result<Json<RegionsHealth>, ApiError> {
    Ok(Json(edge_of(&s)?.regions_health()))
}
