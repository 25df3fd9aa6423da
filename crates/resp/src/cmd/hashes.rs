//! Hash commands. Fields merge last-writer-wins per field across regions,
//! so concurrent `HSET`s of different fields both survive. `HINCRBY` is a
//! read-modify-write of one field: concurrent increments of the same field
//! in two regions keep one of them (use a counter key when both must count).

use bytes::Bytes;
use meridian_core::record::{KeyState, Kind};
use meridian_core::Op;

use super::{expect_kind, int_arg, live};
use crate::error::ErrorReply;
use crate::plan::{WriteKind, WritePlan};
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

fn field<'a>(state: &'a KeyState, name: &[u8]) -> Option<&'a [u8]> {
    state.hash.get(name).and_then(|f| f.value.as_deref())
}

/// Reads a live hash, or WRONGTYPE.
fn read_hash(shared: &Shared, key: &[u8]) -> Result<Option<KeyState>, Reply> {
    let state = shared.read_live(key)?;
    match &state {
        Some(s) if s.kind() != Some(Kind::Hash) => Err(Reply::Error(ErrorReply::wrong_type())),
        _ => Ok(state),
    }
}

fn hset_generic(shared: &Shared, args: &[Bytes], cmd: &'static str) -> Result<WritePlan, Reply> {
    if !args.len().is_multiple_of(2) {
        return Err(super::arity_error(cmd));
    }
    let fields: Vec<(Vec<u8>, Vec<u8>)> = args[2..]
        .chunks(2)
        .map(|fv| (fv[0].to_vec(), fv[1].to_vec()))
        .collect();
    shared.plan_one(&args[1], WriteKind::Hash, cmd, move |cur, now| {
        let live = live(cur, now);
        expect_kind(live, Kind::Hash)?;
        let mut new = std::collections::BTreeSet::new();
        for (f, _) in &fields {
            if live.and_then(|s| field(s, f)).is_none() {
                new.insert(f.clone());
            }
        }
        let reply = if cmd == "hmset" {
            Reply::Ok
        } else {
            Reply::Int(new.len() as i64)
        };
        Ok((
            Some(Op::HashSet {
                target: KeyState::typed_target(cur, now),
                fields,
            }),
            reply,
        ))
    })
}

/// `HSET key field value [field value ...]`: how many fields are new.
pub fn hset(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    hset_generic(shared, args, "hset")
}

/// `HMSET key field value [...]`: `OK`.
pub fn hmset(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    hset_generic(shared, args, "hmset")
}

/// `HDEL key field [field ...]`: how many existed.
pub fn hdel(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let fields: Vec<Vec<u8>> = args[2..].iter().map(|f| f.to_vec()).collect();
    shared.plan_one(&args[1], WriteKind::Hash, "hdel", move |cur, now| {
        let Some(live) = live(cur, now) else {
            return Ok((None, Reply::Int(0)));
        };
        expect_kind(Some(live), Kind::Hash)?;
        let present: std::collections::BTreeSet<Vec<u8>> = fields
            .iter()
            .filter(|f| field(live, f).is_some())
            .cloned()
            .collect();
        if present.is_empty() {
            return Ok((None, Reply::Int(0)));
        }
        let n = present.len() as i64;
        Ok((
            Some(Op::HashDel {
                target: KeyState::typed_target(cur, now),
                fields: present.into_iter().collect(),
            }),
            Reply::Int(n),
        ))
    })
}

/// `HINCRBY key field n`: the new value.
pub fn hincrby(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let name = args[2].to_vec();
    let delta = int_arg(&args[3])?;
    shared.plan_one(&args[1], WriteKind::Hash, "hincrby", move |cur, now| {
        let live = live(cur, now);
        expect_kind(live, Kind::Hash)?;
        let current = match live.and_then(|s| field(s, &name)) {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| ErrorReply::invalid("hash value is not an integer"))?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(ErrorReply::overflow)?;
        Ok((
            Some(Op::HashSet {
                target: KeyState::typed_target(cur, now),
                fields: vec![(name, next.to_string().into_bytes())],
            }),
            Reply::Int(next),
        ))
    })
}

/// `HGET key field`.
pub fn hget(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match read_hash(shared, &args[1]) {
        Err(r) => r,
        Ok(s) => s
            .as_ref()
            .and_then(|s| field(s, &args[2]))
            .map_or(Reply::Nil, |v| Reply::Bulk(v.to_vec())),
    }
}

/// `HMGET key field [field ...]`.
pub fn hmget(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match read_hash(shared, &args[1]) {
        Err(r) => r,
        Ok(s) => Reply::Array(
            args[2..]
                .iter()
                .map(|f| {
                    s.as_ref()
                        .and_then(|s| field(s, f))
                        .map_or(Reply::Nil, |v| Reply::Bulk(v.to_vec()))
                })
                .collect(),
        ),
    }
}

/// `HGETALL key`: a map in RESP3, a flat array in RESP2.
pub fn hgetall(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match read_hash(shared, &args[1]) {
        Err(r) => r,
        Ok(s) => Reply::Map(
            s.as_ref()
                .map(|s| s.hash_fields())
                .unwrap_or_default()
                .into_iter()
                .map(|(f, v)| (Reply::Bulk(f.to_vec()), Reply::Bulk(v.to_vec())))
                .collect(),
        ),
    }
}

/// `HEXISTS key field`.
pub fn hexists(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match read_hash(shared, &args[1]) {
        Err(r) => r,
        Ok(s) => Reply::Int(s.as_ref().and_then(|s| field(s, &args[2])).is_some() as i64),
    }
}

/// `HLEN key`.
pub fn hlen(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match read_hash(shared, &args[1]) {
        Err(r) => r,
        Ok(s) => Reply::Int(s.map_or(0, |s| s.hash_fields().len()) as i64),
    }
}

/// Field names or values of a live hash.
fn fields_reply(shared: &Shared, key: &[u8], values: bool) -> Reply {
    match read_hash(shared, key) {
        Err(r) => r,
        Ok(s) => Reply::bulks(
            s.as_ref()
                .map(|s| s.hash_fields())
                .unwrap_or_default()
                .into_iter()
                .map(|(f, v)| if values { v } else { f }),
        ),
    }
}

/// `HKEYS key`.
pub fn hkeys(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    fields_reply(shared, &args[1], false)
}

/// `HVALS key`.
pub fn hvals(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    fields_reply(shared, &args[1], true)
}
