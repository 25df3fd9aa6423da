//! The admin port's data API, for tests and tools: the same semantics as
//! the Redis endpoint — table modes (writes forwarded to a single-master
//! home, pinned tables refused or forwarded), epochs, read consistency and
//! write acknowledgement — because every request runs as the equivalent
//! Redis command through [`meridian_resp::Shared::execute`]. Every route
//! needs the admin token.
//!
//! | route | what |
//! |---|---|
//! | `PUT /data/{table}/{key}?ttl_ms=N` | set the value to the body (`SET key body [PX N]`) |
//! | `GET /data/{table}/{key}?consistency=eventual\|session\|strong` | read (`GET`); headers `x-meridian-version`, `x-meridian-expires-at-ms`, `x-meridian-token` |
//! | `DELETE /data/{table}/{key}` | delete (`DEL`) |
//! | `POST /data/{table}/{key}/incr?by=N` | add to an integer (`INCRBY`; a PN-counter: concurrent increments in all regions count) |
//! | `GET /conflicts?limit=N` | the newest overwritten concurrent writes |
//!
//! Every data route takes `after=TOKEN` (first wait until this region has
//! applied it; session consistency) and `wait_ms=N` (how long, default
//! 1000, at most 30000). Writes take `ack=local|global|global:N` and
//! `ack_timeout_ms=N` (as `MERIDIAN.ACK`; default: the table's). Writes
//! answer `{"origin", "seq", "token"}`; a token is `region:seq[,...]`, what
//! a reader elsewhere passes as `after`. `{table}` must be the table the
//! key's prefix maps it to, so the route says where the data lives.
//!
//! Errors: `TRYAGAIN` (home unreachable, a mode change under way, a token
//! or global ack not reached in time) is 503; a table mode or residency
//! refusal and `WRONGTYPE` are 409; other refusals 400.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meridian_api::data::{
    ConflictRecord, Conflicts, ConflictsQuery, DataParams as Params, Written,
    CONFLICTS_LIMIT_DEFAULT, DEFAULT_TABLE, VALUE_BYTES_MAX,
};
use meridian_core::config::WriteAck;
use meridian_core::VersionVector;
use meridian_resp::exec::Executed;
use meridian_resp::session::{Consistency, Token, ACK_TIMEOUT_MS_MAX};
use meridian_resp::session::{SESSION_WAIT_MS_DEFAULT, SESSION_WAIT_MS_MAX};
use meridian_resp::{Reply, Session, Shared};

use super::auth::AdminAuth;
use super::{AdminState, ApiError};

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// The session a request runs in, from its parameters.
fn session_for(shared: &Shared, table: &str, key: &str, p: &Params) -> Result<Session, ApiError> {
    let known = table == DEFAULT_TABLE || shared.topology().tables.iter().any(|t| t.name == table);
    if !known {
        return Err(ApiError::NotFound(format!(
            "unknown table `{table}`; configure it under [[tables]] or use `{DEFAULT_TABLE}`"
        )));
    }
    let mapped = shared.table_name_for(key.as_bytes());
    if mapped != table {
        return Err(bad(format!(
            "key `{key}` belongs to table `{mapped}` by its prefix, not `{table}`; use /data/{mapped}/{key}"
        )));
    }
    let unspecified = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut session = Session::new(0, unspecified, unspecified, true);
    if let Some(token) = &p.after {
        session.token = Token::new(VersionVector::parse_token(token).map_err(bad)?);
    }
    session.wait_ms = p
        .wait_ms
        .unwrap_or(SESSION_WAIT_MS_DEFAULT)
        .min(SESSION_WAIT_MS_MAX);
    if let Some(c) = &p.consistency {
        session.consistency = match c.as_str() {
            "eventual" => Consistency::Eventual,
            "session" => Consistency::Session,
            "strong" => Consistency::Strong,
            other => {
                return Err(bad(format!(
                    "consistency `{other}`: use eventual, session or strong"
                )))
            }
        };
    }
    if let Some(a) = &p.ack {
        let all = shared.topology().regions.len();
        session.write_ack = Some(match a.split_once(':') {
            None if a == "local" => WriteAck::Local,
            None if a == "global" => WriteAck::Global { regions: all },
            Some(("global", n)) => match n.parse::<usize>() {
                Ok(n) if (1..=all).contains(&n) => WriteAck::Global { regions: n },
                _ => {
                    return Err(bad(format!(
                        "ack `{a}`: the region count must be 1 to {all}"
                    )))
                }
            },
            _ => return Err(bad(format!("ack `{a}`: use local, global or global:N"))),
        });
    }
    if let Some(ms) = p.ack_timeout_ms {
        if !(1..=ACK_TIMEOUT_MS_MAX).contains(&ms) {
            return Err(bad(format!(
                "ack_timeout_ms {ms}: use 1 to {ACK_TIMEOUT_MS_MAX}"
            )));
        }
        session.ack_timeout_ms = ms;
    }
    Ok(session)
}

/// Runs `args` in `session`; an error reply becomes an HTTP error.
async fn run(
    shared: &Shared,
    session: &mut Session,
    args: Vec<Vec<u8>>,
) -> Result<Executed, ApiError> {
    let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
    let done = shared.execute(session, &args).await;
    match done.reply {
        Reply::Error(msg) => Err(ApiError::from(msg)),
        _ => Ok(done),
    }
}

/// The answer to a write: the write's `origin:seq` and the session's
/// token, which covers the write and everything it built on.
fn written(session: &mut Session, done: &Executed) -> Written {
    let (origin, seq) = done
        .write
        .as_ref()
        .and_then(|w| w.iter().next().map(|(o, s)| (o.to_string(), s)))
        .unwrap_or_default();
    if let Some(w) = &done.write {
        session.token.merge(w);
    }
    Written {
        origin,
        seq,
        token: session.token.to_token(),
        value: None,
    }
}

/// `PUT /data/{table}/{key}`.
pub async fn put(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
    Query(p): Query<Params>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let shared = &s.node().resp;
    let mut session = session_for(shared, &table, &key, &p)?;
    if body.len() > VALUE_BYTES_MAX {
        return Err(ApiError::TooLarge(format!(
            "value of {} bytes exceeds the {VALUE_BYTES_MAX}-byte limit",
            body.len()
        )));
    }
    let mut args = vec![b"SET".to_vec(), key.into_bytes(), body.to_vec()];
    if let Some(t) = p.ttl_ms {
        // Checked here: a deadline past the clock's range is refused,
        // never wrapped into the past.
        let now = meridian_core::PhysicalClock::now_ms(&meridian_core::SystemClock);
        if t == 0 || now.checked_add(t).is_none_or(|d| d >= 1 << 48) {
            return Err(bad(format!(
                "ttl_ms {t} is out of range: use 1 ms up to a few thousand years"
            )));
        }
        args.extend([b"PX".to_vec(), t.to_string().into_bytes()]);
    }
    let done = run(shared, &mut session, args).await?;
    Ok(Json(written(&mut session, &done)).into_response())
}

/// `DELETE /data/{table}/{key}`.
pub async fn delete(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let shared = &s.node().resp;
    let mut session = session_for(shared, &table, &key, &p)?;
    let done = run(
        shared,
        &mut session,
        vec![b"DEL".to_vec(), key.into_bytes()],
    )
    .await?;
    match done.reply {
        Reply::Int(0) => Err(ApiError::NotFound("no such key".into())),
        _ => Ok(Json(written(&mut session, &done)).into_response()),
    }
}

/// `POST /data/{table}/{key}/incr?by=N`.
pub async fn incr(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let shared = &s.node().resp;
    let mut session = session_for(shared, &table, &key, &p)?;
    let by = p.by.unwrap_or(1);
    let args = vec![
        b"INCRBY".to_vec(),
        key.into_bytes(),
        by.to_string().into_bytes(),
    ];
    let done = run(shared, &mut session, args).await?;
    let Reply::Int(value) = done.reply else {
        return Err(ApiError::Internal(format!(
            "unexpected reply to INCRBY: {:?}",
            done.reply
        )));
    };
    let mut body = written(&mut session, &done);
    body.value = Some(value.to_string());
    Ok(Json(body).into_response())
}

/// `GET /data/{table}/{key}`.
pub async fn get(
    _: AdminAuth,
    State(s): State<AdminState>,
    Path((table, key)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let shared = &s.node().resp;
    let mut session = session_for(shared, &table, &key, &p)?;
    let args = [
        Bytes::from_static(b"GET"),
        Bytes::from(key.clone().into_bytes()),
    ];
    let spec = meridian_resp::cmd::lookup(&session, &args).map_err(reply_error)?;
    let mut headers = HeaderMap::new();
    let bytes = match shared
        .prepare(&mut session, spec, &args)
        .await
        .map_err(reply_error)?
    {
        // A pinned table served elsewhere: its reply, without the state's
        // headers (this region holds none of it).
        Some(region) => {
            let done = shared.forward(&mut session, spec, &region, &args).await;
            headers.insert(
                "x-meridian-served-by",
                HeaderValue::from_str(region.as_str()).expect("region names are ASCII"),
            );
            match done.reply {
                Reply::Bulk(b) => b,
                Reply::Nil => return Err(ApiError::NotFound("no such key".into())),
                Reply::Error(e) => return Err(ApiError::from(e)),
                other => {
                    return Err(ApiError::Internal(format!(
                        "unexpected reply to GET: {other:?}"
                    )))
                }
            }
        }
        None => {
            if session.consistency == Consistency::Strong {
                shared
                    .await_commit_points(&session, spec, &args)
                    .await
                    .map_err(reply_error)?;
            }
            let state = shared.read_live(key.as_bytes()).map_err(reply_error)?;
            let Some(state) = state else {
                return Err(ApiError::NotFound("no such key".into()));
            };
            let Some(bytes) = state.bytes() else {
                return Err(ApiError::Conflict(
                    "WRONGTYPE the key holds a hash or set; read it through the Redis endpoint"
                        .into(),
                ));
            };
            let version = format!("{}@{}", state.last.origin, state.last.hlc);
            headers.insert(
                "x-meridian-version",
                HeaderValue::from_str(&version).expect("versions are ASCII"),
            );
            if let Some(at) = state.expires_at_ms() {
                headers.insert("x-meridian-expires-at-ms", HeaderValue::from(at));
            }
            if session.consistency != Consistency::Eventual {
                session.token.merge_applied(&shared.db);
            }
            bytes
        }
    };
    headers.insert(
        "x-meridian-token",
        HeaderValue::from_str(&session.token.to_token()).expect("tokens are ASCII"),
    );
    Ok((StatusCode::OK, headers, bytes).into_response())
}

fn reply_error(r: Reply) -> ApiError {
    match r {
        Reply::Error(msg) => ApiError::from(msg),
        other => ApiError::Internal(format!("{other:?}")),
    }
}

/// `GET /conflicts`: newest first.
pub async fn conflicts(
    _: AdminAuth,
    State(s): State<AdminState>,
    Query(q): Query<ConflictsQuery>,
) -> Json<Conflicts> {
    let stats = s.node().db.stats();
    let log = stats
        .conflict_log
        .lock()
        .expect("stats lock is never poisoned");
    let limit = q
        .limit
        .unwrap_or(CONFLICTS_LIMIT_DEFAULT)
        .min(meridian_store::db::CONFLICT_LOG_MAX);
    let conflicts = log
        .iter()
        .rev()
        .take(limit)
        .map(|c| ConflictRecord {
            table: c.table.clone(),
            key: c.key.clone(),
            winner: c.winner.clone(),
            loser: c.loser.clone(),
            loser_value: c.loser_value.clone(),
            detected_at_ms: c.detected_at_ms,
        })
        .collect();
    let totals = stats
        .conflicts
        .lock()
        .expect("stats lock is never poisoned")
        .clone();
    Json(Conflicts { totals, conflicts })
}
