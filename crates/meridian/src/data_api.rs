//! The admin port's minimal data API, for tests and tools until the Redis
//! endpoint lands. Every route needs the admin token.
//!
//! | route | what |
//! |---|---|
//! | `PUT /data/{table}/{key}?ttl_ms=N` | set the value to the body |
//! | `GET /data/{table}/{key}?after=TOKEN&wait_ms=N` | read; with a token, first wait until this region has applied it (session consistency) |
//! | `DELETE /data/{table}/{key}` | delete |
//! | `POST /data/{table}/{key}/incr?by=N` | add to an integer (a PN-counter: concurrent increments in all regions count) |
//! | `GET /conflicts?limit=N` | the newest overwritten concurrent writes |
//!
//! Writes answer `{"origin", "seq", "hlc", "token"}`; a token is
//! `region:seq[,region:seq...]`, what a reader elsewhere passes as `after`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meridian_core::record::KeyState;
use meridian_core::{LogEntry, Op, VersionVector};
use meridian_store::db::DbError;
use serde::Deserialize;
use serde_json::json;

use crate::admin::{AdminAuth, AdminState, ApiError};

/// Largest value accepted, as for the Redis endpoint's bulk strings.
pub const VALUE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Session-read waits: the same default and ceiling as the Redis
/// endpoint's `MERIDIAN.AFTER`.
pub use meridian_resp::session::{SESSION_WAIT_MS_DEFAULT, SESSION_WAIT_MS_MAX};

/// The table every key belongs to unless configured otherwise.
pub use meridian_core::config::DEFAULT_TABLE;

fn check_table(state: &AdminState, table: &str) -> Result<(), ApiError> {
    if table == DEFAULT_TABLE || state.node().topology.tables.iter().any(|t| t.name == table) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "unknown table `{table}`; configure it under [[tables]] or use `{DEFAULT_TABLE}`"
            ),
        ))
    }
}

fn db_error(e: DbError) -> ApiError {
    use meridian_store::StoreError;
    match e {
        DbError::Rejected(msg) => ApiError::new(StatusCode::CONFLICT, msg),
        // I/O (a full or failing disk) is retryable once the operator acts;
        // anything else is a server fault.
        DbError::Store(e @ StoreError::Io(_)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("write not stored: {e}"),
        ),
        DbError::Store(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("write not stored: {e}"),
        ),
        DbError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is shutting down".into(),
        ),
    }
}

/// The answer to a write. Its token is the origin's whole applied vector
/// after the write, not just the write itself: a typed write (INCR) builds
/// on writes it observed, and a reader elsewhere must wait for those too.
fn written(entry: &LogEntry, applied: VersionVector) -> Json<serde_json::Value> {
    let mut token = applied;
    token.advance_to_at_least(&entry.origin, entry.seq);
    Json(json!({
        "origin": entry.origin,
        "seq": entry.seq,
        "hlc": entry.hlc.to_string(),
        "token": token.to_token(),
    }))
}

/// Query of `PUT`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    ttl_ms: Option<u64>,
}

/// `PUT /data/{table}/{key}`.
pub async fn put(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
    Query(q): Query<PutQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_table(&s, &table)?;
    if body.len() > VALUE_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "value of {} bytes exceeds the {VALUE_BYTES_MAX}-byte limit",
                body.len()
            ),
        ));
    }
    let value = body.to_vec();
    let ttl = q.ttl_ms;
    if let Some(t) = ttl {
        // Checked here, not on the writer thread: a deadline past the
        // clock's range is refused, never wrapped into the past.
        let now = meridian_core::PhysicalClock::now_ms(&meridian_core::SystemClock);
        if t == 0 || now.checked_add(t).is_none_or(|d| d >= 1 << 48) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("ttl_ms {t} is out of range: use 1 ms up to a few thousand years"),
            ));
        }
    }
    let out = s
        .node()
        .db
        .write(
            &table,
            key.as_bytes(),
            Box::new(move |_, now| {
                Ok(Some(Op::Put {
                    value,
                    expires_at_ms: ttl.map(|t| now + t),
                }))
            }),
        )
        .await
        .map_err(db_error)?;
    let entry = out.entry.expect("a put always writes");
    Ok(written(&entry, s.node().db.applied()).into_response())
}

/// `DELETE /data/{table}/{key}`.
pub async fn delete(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_table(&s, &table)?;
    let out = s
        .node()
        .db
        .write(
            &table,
            key.as_bytes(),
            Box::new(|cur, now| Ok(cur.filter(|c| !c.is_absent(now)).map(|_| Op::Delete))),
        )
        .await
        .map_err(db_error)?;
    match out.entry {
        Some(e) => Ok(written(&e, s.node().db.applied()).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such key".into())),
    }
}

/// Query of `incr`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrQuery {
    by: Option<i64>,
}

/// `POST /data/{table}/{key}/incr?by=N`.
pub async fn incr(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
    Query(q): Query<IncrQuery>,
) -> Result<Response, ApiError> {
    check_table(&s, &table)?;
    let delta = q.by.unwrap_or(1);
    let out = s
        .node()
        .db
        .write(
            &table,
            key.as_bytes(),
            Box::new(move |cur: Option<&KeyState>, now| {
                if let Some(c) = cur.filter(|c| !c.is_absent(now)) {
                    let current = c
                        .bytes()
                        .ok_or("the key holds a hash or set, not an integer")?;
                    let n: i64 = std::str::from_utf8(&current)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .ok_or("value is not an integer")?;
                    n.checked_add(delta).ok_or("increment would overflow")?;
                }
                Ok(Some(Op::Add {
                    target: KeyState::typed_target(cur, now),
                    delta,
                }))
            }),
        )
        .await
        .map_err(db_error)?;
    let value = out.after.and_then(|s| s.bytes()).unwrap_or_default();
    let entry = out.entry.expect("an increment always writes");
    let mut body = written(&entry, s.node().db.applied()).0;
    body["value"] = json!(String::from_utf8_lossy(&value));
    Ok(Json(body).into_response())
}

/// Query of `GET`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    after: Option<String>,
    wait_ms: Option<u64>,
}

/// `GET /data/{table}/{key}`.
pub async fn get(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
    Query(q): Query<GetQuery>,
) -> Result<Response, ApiError> {
    check_table(&s, &table)?;
    let db = &s.node().db;
    if let Some(token) = &q.after {
        let token = VersionVector::parse_token(token)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
        let wait = q
            .wait_ms
            .unwrap_or(SESSION_WAIT_MS_DEFAULT)
            .min(SESSION_WAIT_MS_MAX);
        if !db.wait_for(&token, Duration::from_millis(wait)).await {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "this region has not applied token {} within {wait} ms (applied: {})",
                    token.to_token(),
                    db.applied().to_token()
                ),
            ));
        }
    }
    let now = meridian_core::PhysicalClock::now_ms(&meridian_core::SystemClock);
    let state = db
        .get(&table, key.as_bytes())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let Some(state) = state.filter(|st| !st.is_absent(now)) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such key".into()));
    };
    let Some(bytes) = state.bytes() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the key holds a hash or set; read it through the Redis endpoint".into(),
        ));
    };
    let mut headers = HeaderMap::new();
    let version = format!("{}@{}", state.last.origin, state.last.hlc);
    headers.insert(
        "x-meridian-version",
        HeaderValue::from_str(&version).expect("versions are ASCII"),
    );
    if let Some(at) = state.expires_at_ms() {
        headers.insert("x-meridian-expires-at-ms", HeaderValue::from(at));
    }
    Ok((StatusCode::OK, headers, bytes).into_response())
}

/// Query of `GET /conflicts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictsQuery {
    limit: Option<usize>,
}

/// `GET /conflicts`: newest first.
pub async fn conflicts(
    _: AdminAuth,
    State(s): State<AdminState>,
    Query(q): Query<ConflictsQuery>,
) -> Json<serde_json::Value> {
    let stats = s.node().db.stats();
    let log = stats
        .conflict_log
        .lock()
        .expect("stats lock is never poisoned");
    let limit = q
        .limit
        .unwrap_or(100)
        .min(meridian_store::db::CONFLICT_LOG_MAX);
    let newest: Vec<_> = log.iter().rev().take(limit).cloned().collect();
    let totals: BTreeMap<String, u64> = stats
        .conflicts
        .lock()
        .expect("stats lock is never poisoned")
        .clone();
    Json(json!({ "totals": totals, "conflicts": newest }))
}
