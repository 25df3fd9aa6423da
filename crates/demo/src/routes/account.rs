//! `POST /login` and `GET /me`: sessions in the `sessions` table.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{answer, cookies, logged_in, with_cookies, Params};
use crate::cookies as cookie;
use crate::error::ApiError;
use crate::names;
use crate::state::AppState;

/// `/login`'s parameters.
#[derive(Deserialize)]
pub struct LoginParams {
    user: Option<String>,
}

/// `POST /login?user=U`: a new session for U (`SET session:<id> U EX ttl`),
/// with the session cookie and the token that covers the write.
pub async fn login(
    State(state): State<Arc<AppState>>,
    Params(p): Params<LoginParams>,
) -> Result<Response, ApiError> {
    let user = names::check("user", p.user.as_deref()).map_err(ApiError::BadRequest)?;
    let id = names::new_id().map_err(|e| ApiError::Internal(format!("no random id: {e}")))?;
    let mut con = state.pool.lease().await?;
    let mut set = redis::cmd("SET");
    set.arg(names::session_key(&id))
        .arg(user)
        .arg("EX")
        .arg(state.opts.session_ttl_s);
    con.keyed::<()>(&set).await?;
    let token = con.token().await?;
    let body = Json(json!({
        "user": user,
        "session": id,
        "region": state.opts.region,
        "instance": state.opts.instance,
    }));
    Ok(with_cookies(
        body,
        &[
            cookie::session_set_cookie(&id),
            cookie::token_set_cookie(&token),
        ],
    ))
}

/// `GET /me`: the session's user, once this region has applied what the
/// caller's token covers (so a login in another region is seen here).
pub async fn me(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cookies = cookies(&headers)?;
    let (mut con, user) = logged_in(&state, &cookies).await?;
    let body = json!({
        "user": user,
        "region": state.opts.region,
        "instance": state.opts.instance,
    });
    answer(&mut con, body).await
}
