//! [`AdminAuth`]: the extractor that lets a request through only with the
//! cluster's admin token, counting the refusals.

use std::sync::atomic::Ordering;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use meridian_api::auth::{bearer, constant_time_eq};

use super::{AdminState, ApiError};

/// Proof that the request carried the admin token.
pub struct AdminAuth;

impl FromRequestParts<AdminState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        let presented = bearer(
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        );
        let ok = match (&state.node().topology.admin_token, presented) {
            (Some(expected), Some(given)) => {
                constant_time_eq(expected.as_bytes(), given.as_bytes())
            }
            _ => false,
        };
        if ok {
            return Ok(AdminAuth);
        }
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        let why = if state.node().topology.admin_token.is_none() {
            "admin endpoints are disabled: set cluster.admin_token in the topology"
        } else {
            "missing or wrong admin token: send `Authorization: Bearer <admin_token>`"
        };
        Err(ApiError::Unauthorized(why.into()))
    }
}
