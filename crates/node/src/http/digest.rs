//! `GET /digest`: per table this region holds, the keys readers see and a
//! hash of them, so tools can tell converged regions apart.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use meridian_api::data::TableDigest;
use meridian_store::digest::table_digest;

use super::{AdminState, ApiError};

/// `GET /digest`: per table this region holds, the keys readers see and a
/// hash of them (a pinned table appears only in its allowed regions).
pub async fn digest(
    State(s): State<AdminState>,
) -> Result<Json<BTreeMap<String, TableDigest>>, ApiError> {
    let node = s.node.clone();
    tokio::task::spawn_blocking(move || {
        let now = meridian_core::PhysicalClock::now_ms(&meridian_core::SystemClock);
        let mut out = BTreeMap::new();
        for table in node.resp.topology().tables_held_by(&node.region) {
            let d = table_digest(node.db.backend().as_ref(), &table, now)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let d = TableDigest {
                keys: d.keys,
                sha256: d.sha256,
            };
            out.insert(table, d);
        }
        Ok(Json(out))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}
