//! String and counter commands.
//!
//! `SET` and friends replace the whole value (a new incarnation: last
//! writer wins across regions). `INCR` and friends add a delta to the
//! current incarnation (a PN-counter: concurrent increments in all regions
//! count). `APPEND` is a read-modify-write of the whole value, so two
//! regions appending concurrently keep one of the two results (a conflict,
//! counted and logged).

use bytes::Bytes;
use meridian_core::record::{KeyState, Kind};
use meridian_core::Op;

use super::{expect_kind, int_arg, is, live};
use crate::error::ErrorReply;
use crate::plan::{WriteKind, WritePlan};
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

/// The current string value of a live key, or WRONGTYPE.
fn string_of(state: Option<&KeyState>) -> Result<Option<Vec<u8>>, ErrorReply> {
    match state {
        None => Ok(None),
        Some(s) => s.bytes().map(Some).ok_or_else(ErrorReply::wrong_type),
    }
}

/// `GET key`.
pub fn get(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match shared.read_live(&args[1]) {
        Err(r) => r,
        Ok(None) => Reply::Nil,
        Ok(Some(s)) => match s.bytes() {
            Some(b) => Reply::Bulk(b),
            None => Reply::Error(ErrorReply::wrong_type()),
        },
    }
}

/// `MGET key [key ...]`: values, nil for absent keys and other types.
pub fn mget(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        match shared.read_live(key) {
            Err(r) => return r,
            Ok(s) => out.push(s.and_then(|s| s.bytes()).map_or(Reply::Nil, Reply::Bulk)),
        }
    }
    Reply::Array(out)
}

/// `STRLEN key`.
pub fn strlen(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match shared.read_live(&args[1]) {
        Err(r) => r,
        Ok(None) => Reply::Int(0),
        Ok(Some(s)) => match s.bytes() {
            Some(b) => Reply::Int(b.len() as i64),
            None => Reply::Error(ErrorReply::wrong_type()),
        },
    }
}

/// Expiry options shared by `SET` and `GETEX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ttl {
    /// Relative, ms.
    In(i64),
    /// Absolute, ms since the epoch.
    At(i64),
}

impl Ttl {
    /// The absolute deadline, or Redis's error for a bad one.
    fn deadline(self, now: u64, cmd: &str) -> Result<u64, ErrorReply> {
        let bad = || ErrorReply::invalid_expire(cmd);
        let at = match self {
            Ttl::In(ms) if ms <= 0 => return Err(bad()),
            Ttl::In(ms) => (now as i64).checked_add(ms).ok_or_else(bad)?,
            Ttl::At(ms) if ms <= 0 => return Err(bad()),
            Ttl::At(ms) => ms,
        };
        // The clock's range ends at 2^48 ms (year 10889).
        if at >= 1 << 48 {
            return Err(bad());
        }
        Ok(at as u64)
    }
}

/// Parses `EX s | PX ms | EXAT s | PXAT ms` at `args[i]`.
fn ttl_option(args: &[Bytes], i: usize) -> Result<Option<Ttl>, Reply> {
    let unit = |w: &str| is(&args[i], w);
    let scale: Option<(i64, bool)> = if unit("EX") {
        Some((1000, false))
    } else if unit("PX") {
        Some((1, false))
    } else if unit("EXAT") {
        Some((1000, true))
    } else if unit("PXAT") {
        Some((1, true))
    } else {
        None
    };
    let Some((scale, absolute)) = scale else {
        return Ok(None);
    };
    let n = args
        .get(i + 1)
        .ok_or_else(|| Reply::Error(ErrorReply::syntax()))?;
    let n = int_arg(n)?;
    let cmd = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let ms = n
        .checked_mul(scale)
        .ok_or_else(|| Reply::Error(ErrorReply::invalid_expire(&cmd)))?;
    Ok(Some(if absolute { Ttl::At(ms) } else { Ttl::In(ms) }))
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`.
pub fn set(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut ttl: Option<Ttl> = None;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        if is(a, "NX") && !xx {
            nx = true;
        } else if is(a, "XX") && !nx {
            xx = true;
        } else if is(a, "GET") {
            get = true;
        } else if is(a, "KEEPTTL") && ttl.is_none() {
            keepttl = true;
        } else if let Some(t) = ttl_option(args, i)? {
            if ttl.is_some() || keepttl {
                return Err(Reply::Error(ErrorReply::syntax()));
            }
            ttl = Some(t);
            i += 1;
        } else {
            return Err(Reply::Error(ErrorReply::syntax()));
        }
        i += 1;
    }
    let value = args[2].to_vec();
    shared.plan_one(&args[1], WriteKind::String, "set", move |cur, now| {
        let live = live(cur, now);
        let old = if get { string_of(live)? } else { None };
        let expires_at_ms = match (ttl, keepttl) {
            (Some(t), _) => Some(t.deadline(now, "set")?),
            (None, true) => live.and_then(KeyState::expires_at_ms),
            (None, false) => None,
        };
        let skip = (nx && live.is_some()) || (xx && live.is_none());
        let reply = if get {
            old.map_or(Reply::Nil, Reply::Bulk)
        } else if skip {
            Reply::Nil
        } else {
            Reply::Ok
        };
        let op = (!skip).then_some(Op::Put {
            value,
            expires_at_ms,
        });
        Ok((op, reply))
    })
}

fn set_with_ttl(
    shared: &Shared,
    args: &[Bytes],
    scale: i64,
    cmd: &'static str,
) -> Result<WritePlan, Reply> {
    let n = int_arg(&args[2])?;
    let ms = n
        .checked_mul(scale)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| Reply::Error(ErrorReply::invalid_expire(cmd)))?;
    let value = args[3].to_vec();
    shared.plan_one(&args[1], WriteKind::String, cmd, move |_, now| {
        let at = Ttl::In(ms).deadline(now, cmd)?;
        Ok((
            Some(Op::Put {
                value,
                expires_at_ms: Some(at),
            }),
            Reply::Ok,
        ))
    })
}

/// `SETEX key seconds value`.
pub fn setex(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    set_with_ttl(shared, args, 1000, "setex")
}

/// `PSETEX key ms value`.
pub fn psetex(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    set_with_ttl(shared, args, 1, "psetex")
}

/// `SETNX key value`: 1 if set.
pub fn setnx(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let value = args[2].to_vec();
    shared.plan_one(&args[1], WriteKind::String, "setnx", move |cur, now| {
        if live(cur, now).is_some() {
            return Ok((None, Reply::Int(0)));
        }
        Ok((
            Some(Op::Put {
                value,
                expires_at_ms: None,
            }),
            Reply::Int(1),
        ))
    })
}

/// `GETSET key value`: the old value.
pub fn getset(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let value = args[2].to_vec();
    shared.plan_one(&args[1], WriteKind::String, "getset", move |cur, now| {
        let old = string_of(live(cur, now))?;
        Ok((
            Some(Op::Put {
                value,
                expires_at_ms: None,
            }),
            old.map_or(Reply::Nil, Reply::Bulk),
        ))
    })
}

/// `GETDEL key`.
pub fn getdel(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    shared.plan_one(
        &args[1],
        WriteKind::Key,
        "getdel",
        move |cur, now| match string_of(live(cur, now))? {
            None => Ok((None, Reply::Nil)),
            Some(old) => Ok((Some(Op::Delete), Reply::Bulk(old))),
        },
    )
}

/// `GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]`.
pub fn getex(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    // `None`: leave the expiry; `Some(None)`: persist.
    let mut change: Option<Option<Ttl>> = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "PERSIST") && change.is_none() {
            change = Some(None);
        } else if let Some(t) = ttl_option(args, i)? {
            if change.is_some() {
                return Err(Reply::Error(ErrorReply::syntax()));
            }
            change = Some(Some(t));
            i += 1;
        } else {
            return Err(Reply::Error(ErrorReply::syntax()));
        }
        i += 1;
    }
    shared.plan_one(&args[1], WriteKind::Key, "getex", move |cur, now| {
        let live = live(cur, now);
        let Some(old) = string_of(live)? else {
            return Ok((None, Reply::Nil));
        };
        let op = match change {
            None => None,
            Some(None) if live.and_then(KeyState::expires_at_ms).is_none() => None,
            Some(None) => Some(Op::Expire {
                target: KeyState::typed_target(cur, now),
                expires_at_ms: None,
            }),
            Some(Some(t)) => Some(Op::Expire {
                target: KeyState::typed_target(cur, now),
                expires_at_ms: Some(t.deadline(now, "getex")?),
            }),
        };
        Ok((op, Reply::Bulk(old)))
    })
}

/// `(table, key)` per key of a write.
type TableKeys = Vec<(String, Vec<u8>)>;

/// The `(table, key)` pairs and the values of `MSET`/`MSETNX`, checked for
/// arity.
fn pairs(shared: &Shared, args: &[Bytes], cmd: &str) -> Result<(TableKeys, Vec<Vec<u8>>), Reply> {
    if args.len().is_multiple_of(2) {
        return Err(super::arity_error(cmd));
    }
    let mut keys = Vec::with_capacity(args.len() / 2);
    let mut values = Vec::with_capacity(args.len() / 2);
    for kv in args[1..].chunks(2) {
        keys.push((
            shared.table_for_write(&kv[0], WriteKind::String, cmd)?,
            kv[0].to_vec(),
        ));
        values.push(kv[1].to_vec());
    }
    Ok((keys, values))
}

/// `Put`s of the values, without expiry.
fn puts(values: Vec<Vec<u8>>) -> Vec<Option<Op>> {
    values
        .into_iter()
        .map(|value| {
            Some(Op::Put {
                value,
                expires_at_ms: None,
            })
        })
        .collect()
}

/// `MSET key value [key value ...]`: all in one commit.
pub fn mset(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let (keys, values) = pairs(shared, args, "mset")?;
    Ok(WritePlan {
        keys,
        decide: Box::new(move |_, _| Ok((puts(values), Reply::Ok))),
    })
}

/// `MSETNX key value [key value ...]`: all, only if none exists.
pub fn msetnx(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let (keys, values) = pairs(shared, args, "msetnx")?;
    Ok(WritePlan {
        keys,
        decide: Box::new(move |states, now| {
            if states.iter().any(|s| live(s.as_ref(), now).is_some()) {
                return Ok((vec![None; states.len()], Reply::Int(0)));
            }
            Ok((puts(values), Reply::Int(1)))
        }),
    })
}

/// `APPEND key value`: the new length. Keeps the key's expiry.
pub fn append(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let tail = args[2].to_vec();
    let limit = shared.limits.bulk_bytes_max;
    shared.plan_one(&args[1], WriteKind::String, "append", move |cur, now| {
        let live = live(cur, now);
        let mut value = string_of(live)?.unwrap_or_default();
        if value.len() + tail.len() > limit {
            return Err(ErrorReply::invalid(format_args!(
                "string exceeds maximum allowed size (resp.bulk_bytes_max = {limit})"
            )));
        }
        value.extend_from_slice(&tail);
        let len = value.len() as i64;
        Ok((
            Some(Op::Put {
                value,
                expires_at_ms: live.and_then(KeyState::expires_at_ms),
            }),
            Reply::Int(len),
        ))
    })
}

fn add(shared: &Shared, key: &Bytes, delta: i64, cmd: &'static str) -> Result<WritePlan, Reply> {
    shared.plan_one(key, WriteKind::Counter, cmd, move |cur, now| {
        let live = live(cur, now);
        expect_kind(live, Kind::String)?;
        let current = match live.and_then(KeyState::bytes) {
            None => 0,
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(ErrorReply::not_integer)?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(ErrorReply::overflow)?;
        Ok((
            Some(Op::Add {
                target: KeyState::typed_target(cur, now),
                delta,
            }),
            Reply::Int(next),
        ))
    })
}

/// `INCR key`.
pub fn incr(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    add(shared, &args[1], 1, "incr")
}

/// `DECR key`.
pub fn decr(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    add(shared, &args[1], -1, "decr")
}

/// `INCRBY key n`.
pub fn incrby(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    add(shared, &args[1], int_arg(&args[2])?, "incrby")
}

/// `DECRBY key n`.
pub fn decrby(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let n = int_arg(&args[2])?;
    let delta = n
        .checked_neg()
        .ok_or_else(|| Reply::Error(ErrorReply::invalid("decrement would overflow")))?;
    add(shared, &args[1], delta, "decrby")
}
