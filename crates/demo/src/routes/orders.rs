//! `/orders`: orders in the single-master `orders` table. Outside the
//! table's home, Meridian forwards the write there; the edge in front of
//! the app sends these writes to the home region anyway.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{answer, consistent, cookies, Params};
use crate::error::ApiError;
use crate::names;
use crate::state::AppState;

/// `/orders`' parameters.
#[derive(Deserialize)]
pub struct OrderParams {
    item: Option<String>,
}

/// `POST /orders?item=X`: a new order (`SET order:<id> X`), after what the
/// caller's token covers.
pub async fn place(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<OrderParams>,
) -> Result<Response, ApiError> {
    let item = names::check("item", p.item.as_deref()).map_err(ApiError::BadRequest)?;
    let cookies = cookies(&headers)?;
    let id = names::new_id().map_err(|e| ApiError::Internal(format!("no random id: {e}")))?;
    let mut con = consistent(&state, &cookies).await?;
    con.keyed::<()>(redis::cmd("SET").arg(names::order_key(&id)).arg(item))
        .await?;
    let body = json!({ "order": id, "item": item, "region": state.opts.region });
    answer(&mut con, body).await
}

/// `GET /orders/{id}`: the order's item, read session-consistently; 404 if
/// there is no such order.
pub async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !names::is_name(&id) {
        return Err(ApiError::BadRequest(format!(
            "an order id must be {}",
            names::NAME_RULE
        )));
    }
    let cookies = cookies(&headers)?;
    let mut con = consistent(&state, &cookies).await?;
    let item: Option<String> = con
        .keyed(redis::cmd("GET").arg(names::order_key(&id)))
        .await?;
    let Some(item) = item else {
        return Err(ApiError::NotFound(format!("no order {id}")));
    };
    answer(&mut con, json!({ "order": id, "item": item })).await
}
