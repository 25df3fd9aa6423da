//! `/cart/items`: a logged-in user's count per SKU in the `carts` table
//! (`pn_counter`). `INCR` is a commutative add, so additions made
//! concurrently in several regions all count.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{answer, cookies, logged_in, Params};
use crate::error::ApiError;
use crate::names;
use crate::state::AppState;

/// `/cart/items`' parameters.
#[derive(Deserialize)]
pub struct SkuParams {
    sku: Option<String>,
}

/// `POST /cart/items?sku=S`: one more S in the caller's cart
/// (`INCR cart:<user>:<sku>`).
pub async fn add(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<SkuParams>,
) -> Result<Response, ApiError> {
    let sku = names::check("sku", p.sku.as_deref()).map_err(ApiError::BadRequest)?;
    let cookies = cookies(&headers)?;
    let (mut con, user) = logged_in(&state, &cookies).await?;
    let count: i64 = con
        .keyed(redis::cmd("INCR").arg(names::cart_key(&user, sku)))
        .await?;
    let body = json!({ "sku": sku, "count": count, "region": state.opts.region });
    answer(&mut con, body).await
}

/// `GET /cart/items?sku=S`: how many S the caller's cart holds, read
/// session-consistently.
pub async fn count(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<SkuParams>,
) -> Result<Response, ApiError> {
    let sku = names::check("sku", p.sku.as_deref()).map_err(ApiError::BadRequest)?;
    let cookies = cookies(&headers)?;
    let (mut con, user) = logged_in(&state, &cookies).await?;
    let count: Option<i64> = con
        .keyed(redis::cmd("GET").arg(names::cart_key(&user, sku)))
        .await?;
    let body = json!({ "sku": sku, "count": count.unwrap_or(0) });
    answer(&mut con, body).await
}
