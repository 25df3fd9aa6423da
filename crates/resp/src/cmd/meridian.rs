//! Meridian's session commands: `MERIDIAN.TOKEN`, `MERIDIAN.AFTER`,
//! `MERIDIAN.CONSISTENCY` and `MERIDIAN.ACK` — the causal token, read
//! consistency and write acknowledgement of a connection.

use bytes::Bytes;
use meridian_core::config::WriteAck;
use meridian_core::VersionVector;

use super::{arity_error, int_arg, is};
use crate::error::ErrorReply;
use crate::reply::Reply;
use crate::session::{Consistency, Session, ACK_TIMEOUT_MS_MAX, SESSION_WAIT_MS_MAX};
use crate::shared::Shared;

/// `MERIDIAN.TOKEN`: this connection's causal token, to carry to another
/// region (`MERIDIAN.AFTER` there).
pub fn token(_: &Shared, session: &mut Session, _: &[Bytes]) -> Reply {
    Reply::text(session.token.to_token())
}

/// `MERIDIAN.AFTER token [timeout_ms]`: later commands on this connection
/// that touch keys first wait until this region has applied `token`, and
/// fail with `TRYAGAIN` after `timeout_ms` (default 1000, at most 30000).
pub fn after(_: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return arity_error("meridian.after");
    }
    let token = match VersionVector::parse_token(&String::from_utf8_lossy(&args[1])) {
        Ok(t) => t,
        Err(e) => return Reply::err(format!("invalid token: {e}")),
    };
    if let Some(t) = args.get(2) {
        match int_arg(t) {
            Ok(ms) if (0..=SESSION_WAIT_MS_MAX as i64).contains(&ms) => session.wait_ms = ms as u64,
            Ok(_) => return Reply::err(format!("timeout_ms must be 0 to {SESSION_WAIT_MS_MAX}")),
            Err(_) => return Reply::Error(ErrorReply::not_integer()),
        }
    }
    session.token.merge(&token);
    Reply::Ok
}

/// `MERIDIAN.CONSISTENCY [eventual|session|strong]`: shows or sets how far
/// this connection's reads may lag (see [`Consistency`]).
pub fn consistency(_: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    match args.len() {
        1 => Reply::text(session.consistency.name()),
        2 => {
            let level = [
                Consistency::Eventual,
                Consistency::Session,
                Consistency::Strong,
            ]
            .into_iter()
            .find(|c| is(&args[1], c.name()));
            match level {
                Some(c) => {
                    session.consistency = c;
                    Reply::Ok
                }
                None => Reply::err("consistency must be eventual, session or strong"),
            }
        }
        _ => arity_error("meridian.consistency"),
    }
}

/// `MERIDIAN.ACK [local | global [regions] [timeout_ms] | table]`: shows or
/// sets when this connection's writes are acknowledged. `global` waits
/// until `regions` regions (default all, the writer's included) have
/// applied each write, at most `timeout_ms` (default 5000); `table` goes
/// back to each table's configured default.
pub fn ack(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let all = shared.topology().regions.len();
    if args.len() == 1 {
        return Reply::text(match session.write_ack {
            None => "table".to_string(),
            Some(WriteAck::Local) => "local".to_string(),
            Some(WriteAck::Global { regions }) => {
                format!("global {regions} {}", session.ack_timeout_ms)
            }
        });
    }
    if is(&args[1], "local") || is(&args[1], "table") {
        if args.len() != 2 {
            return Reply::Error(ErrorReply::syntax());
        }
        session.write_ack = is(&args[1], "local").then_some(WriteAck::Local);
        return Reply::Ok;
    }
    if !is(&args[1], "global") || args.len() > 4 {
        return Reply::Error(ErrorReply::syntax());
    }
    let regions = match args.get(2).map(|a| int_arg(a)) {
        None => all,
        Some(Ok(n)) if n >= 1 && n as usize <= all => n as usize,
        Some(Ok(_)) => return Reply::err(format!("regions must be 1 to {all}")),
        Some(Err(_)) => return Reply::Error(ErrorReply::not_integer()),
    };
    let timeout = match args.get(3).map(|a| int_arg(a)) {
        None => session.ack_timeout_ms,
        Some(Ok(ms)) if (1..=ACK_TIMEOUT_MS_MAX as i64).contains(&ms) => ms as u64,
        Some(Ok(_)) => return Reply::err(format!("timeout_ms must be 1 to {ACK_TIMEOUT_MS_MAX}")),
        Some(Err(_)) => return Reply::Error(ErrorReply::not_integer()),
    };
    session.write_ack = Some(WriteAck::Global { regions });
    session.ack_timeout_ms = timeout;
    Reply::Ok
}
