//! `GET /admin/links` and `PUT /admin/links/{peer}`: the emulated WAN
//! links and the faults injected into them (`meridian chaos`).

use axum::extract::{Path, State};
use axum::Json;
use meridian_api::status::{LinkPatch, NodeStatus, PeerReport};
use meridian_core::{LinkFigures, RegionName};

use super::auth::AdminAuth;
use super::status::node_status;
use super::{AdminState, ApiError};

/// `GET /admin/links`: the status, links included.
pub async fn list(_: AdminAuth, State(s): State<AdminState>) -> Json<NodeStatus> {
    Json(node_status(s.node()))
}

/// `PUT /admin/links/{peer}`: change one link's figures or cut/heal it.
pub async fn patch(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path(peer): Path<String>,
    Json(patch): Json<LinkPatch>,
) -> Result<Json<PeerReport>, ApiError> {
    let node = s.node();
    let name = RegionName::new(peer.clone()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if node.topology.region(&name).is_none() || name == node.region {
        return Err(ApiError::NotFound(format!(
            "`{peer}` is not a peer of region {}",
            node.region
        )));
    }
    let Some(control) = node.links.get(&name) else {
        return Err(ApiError::Conflict(
            "link emulation is off on this node: set wan.emulate = true to inject link faults"
                .into(),
        ));
    };
    let state = control.state();
    let mut figures = LinkFigures::from(state.outbound);
    if let Some(v) = patch.rtt_ms {
        figures.rtt_ms = v;
    }
    if let Some(v) = patch.jitter_ms {
        figures.jitter_ms = v;
    }
    if let Some(v) = patch.loss_pct {
        figures.loss_pct = v;
    }
    if let Some(v) = patch.bandwidth_mbit {
        figures.bandwidth_mbit = (v != 0.0).then_some(v);
    }
    let conditions = figures.to_conditions("link").map_err(|errors| {
        let msg = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::BadRequest(msg)
    })?;
    control.set_conditions(conditions, conditions);
    if let Some(p) = patch.partitioned {
        control.set_partitioned(p);
    }
    tracing::info!(peer = %name, ?patch, "link changed through the admin API");
    let report = node_status(node)
        .peers
        .into_iter()
        .find(|p| p.link.region == name)
        .expect("a configured peer always has a mesh entry");
    Ok(Json(report))
}
