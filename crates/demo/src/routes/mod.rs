//! The handlers, by resource: [`probe`] (`/healthz`, `/whoami`, `/work`),
//! [`account`] (`/login`, `/me`), [`cart`] (`/cart/items`), [`orders`]
//! (`/orders`). What they share is here: [`Params`], query parameters with
//! JSON errors; [`consistent`] and [`logged_in`], a leased connection made
//! session-consistent with the caller's token; [`answer`], a JSON body with
//! the refreshed token cookie.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::cookies::{self, Cookies};
use crate::error::ApiError;
use crate::names;
use crate::pool::Lease;
use crate::state::AppState;

pub mod account;
pub mod cart;
pub mod orders;
pub mod probe;

/// Query parameters; a malformed query is a JSON 400 like every other
/// error (axum's own `Query` rejection is plain text).
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(v)| Params(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// The request's cookies; an oversized token is a 400.
pub fn cookies(headers: &HeaderMap) -> Result<Cookies, ApiError> {
    Cookies::from_headers(headers).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// A connection for this request, waiting first (on the connection, for
/// its next keyed command) until this region has applied what the caller's
/// token covers: a session made, or an item added, in another region is
/// then visible here.
pub async fn consistent<'a>(state: &'a AppState, cookies: &Cookies) -> Result<Lease<'a>, ApiError> {
    let mut con = state.pool.lease().await?;
    if let Some(token) = &cookies.token {
        con.after(token, state.opts.session_wait_ms).await?;
    }
    Ok(con)
}

/// The caller's user, read session-consistently, with the connection for
/// what the request does next; 401 without a live session.
pub async fn logged_in<'a>(
    state: &'a AppState,
    cookies: &Cookies,
) -> Result<(Lease<'a>, String), ApiError> {
    let Some(session) = &cookies.session else {
        return Err(ApiError::NotLoggedIn);
    };
    let mut con = consistent(state, cookies).await?;
    let user: Option<String> = con
        .keyed(redis::cmd("GET").arg(names::session_key(session)))
        .await?;
    match user {
        Some(user) => Ok((con, user)),
        None => Err(ApiError::NotLoggedIn),
    }
}

/// A 200 JSON answer that hands the caller its latest causal token, read
/// from the connection after the request's last command.
pub async fn answer(con: &mut Lease<'_>, body: serde_json::Value) -> Result<Response, ApiError> {
    let token = con.token().await?;
    Ok(with_cookies(
        Json(body),
        &[cookies::token_set_cookie(&token)],
    ))
}

/// `body` with `Set-Cookie` headers.
pub fn with_cookies(body: impl IntoResponse, set: &[String]) -> Response {
    let mut response = body.into_response();
    for cookie in set {
        // Cookie values are built from hex ids and checked tokens; one
        // that is somehow not a header value is left out, not a panic.
        if let Ok(v) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    response
}
