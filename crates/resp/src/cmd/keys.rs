//! Whole-key commands: type, existence, deletion, expiry, iteration.

use bytes::Bytes;
use meridian_core::record::{KeyState, Kind};
use meridian_core::Op;

use super::{int_arg, is, live, now_ms};
use crate::error::ErrorReply;
use crate::glob;
use crate::plan::{WriteKind, WritePlan};
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

/// Keys read per store call while iterating (`SCAN`, `KEYS`, `DBSIZE`).
const SCAN_PAGE: usize = 1024;

/// Largest `SCAN ... COUNT`.
pub const SCAN_COUNT_MAX: usize = 100_000;

fn kind_name(s: &KeyState) -> &'static str {
    match s.kind() {
        Some(Kind::String) => "string",
        Some(Kind::Hash) => "hash",
        Some(Kind::Set) => "set",
        None => "none",
    }
}

/// `TYPE key`.
pub fn type_(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match shared.read_live(&args[1]) {
        Err(r) => r,
        Ok(s) => Reply::Simple(s.as_ref().map_or("none", kind_name).to_string()),
    }
}

/// `EXISTS key [key ...]`: how many exist (a repeated key counts again).
pub fn exists(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &args[1..] {
        match shared.read_live(key) {
            Err(r) => return r,
            Ok(Some(_)) => n += 1,
            Ok(None) => {}
        }
    }
    Reply::Int(n)
}

/// `DEL key [key ...]` and `UNLINK`: how many existed; all in one commit.
pub fn del(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let cmd = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let mut keys = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        keys.push((
            shared.table_for_write(key, WriteKind::Key, &cmd)?,
            key.to_vec(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let first: Vec<bool> = keys.iter().map(|k| seen.insert(k.clone())).collect();
    Ok(WritePlan {
        keys,
        decide: Box::new(move |states, now| {
            let ops: Vec<Option<Op>> = states
                .iter()
                .zip(&first)
                .map(|(s, first)| (*first && live(s.as_ref(), now).is_some()).then_some(Op::Delete))
                .collect();
            let n = ops.iter().filter(|o| o.is_some()).count();
            Ok((ops, Reply::Int(n as i64)))
        }),
    })
}

/// `EXPIRE`-family conditions (XX combines with GT or LT).
#[derive(Clone, Copy, Default)]
struct When {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl When {
    fn allows(self, current: Option<u64>, at: i64) -> bool {
        // No expiry counts as infinite.
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|c| at <= c as i64)
            || self.lt && current.is_some_and(|c| at >= c as i64))
    }
}

fn expire_generic(
    shared: &Shared,
    args: &[Bytes],
    scale: i64,
    absolute: bool,
    cmd: &'static str,
) -> Result<WritePlan, Reply> {
    let n = int_arg(&args[2])?;
    let mut when = When::default();
    for a in &args[3..] {
        if is(a, "NX") {
            when.nx = true;
        } else if is(a, "XX") {
            when.xx = true;
        } else if is(a, "GT") {
            when.gt = true;
        } else if is(a, "LT") {
            when.lt = true;
        } else {
            return Err(Reply::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if when.nx && (when.xx || when.gt || when.lt) {
        return Err(Reply::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if when.gt && when.lt {
        return Err(Reply::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || Reply::Error(ErrorReply::invalid_expire(cmd));
    let ms = n.checked_mul(scale).ok_or_else(invalid)?;
    shared.plan_one(&args[1], WriteKind::Key, cmd, move |cur, now| {
        let Some(state) = live(cur, now) else {
            return Ok((None, Reply::Int(0)));
        };
        let at = if absolute {
            ms
        } else {
            (now as i64)
                .checked_add(ms)
                .ok_or_else(|| ErrorReply::invalid_expire(cmd))?
        };
        if at >= 1 << 48 {
            return Err(ErrorReply::invalid_expire(cmd));
        }
        if !when.allows(state.expires_at_ms(), at) {
            return Ok((None, Reply::Int(0)));
        }
        if at <= now as i64 {
            // A deadline already past deletes the key, as in Redis.
            return Ok((Some(Op::Delete), Reply::Int(1)));
        }
        Ok((
            Some(Op::Expire {
                target: KeyState::typed_target(cur, now),
                expires_at_ms: Some(at as u64),
            }),
            Reply::Int(1),
        ))
    })
}

/// `EXPIRE key seconds [NX|XX|GT|LT]`.
pub fn expire(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    expire_generic(shared, args, 1000, false, "expire")
}

/// `PEXPIRE key ms [NX|XX|GT|LT]`.
pub fn pexpire(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    expire_generic(shared, args, 1, false, "pexpire")
}

/// `EXPIREAT key unix-seconds [NX|XX|GT|LT]`.
pub fn expireat(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    expire_generic(shared, args, 1000, true, "expireat")
}

/// `PEXPIREAT key unix-ms [NX|XX|GT|LT]`.
pub fn pexpireat(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    expire_generic(shared, args, 1, true, "pexpireat")
}

/// `PERSIST key`: 1 if an expiry was removed.
pub fn persist(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    shared.plan_one(&args[1], WriteKind::Key, "persist", move |cur, now| {
        let Some(state) = live(cur, now) else {
            return Ok((None, Reply::Int(0)));
        };
        if state.expires_at_ms().is_none() {
            return Ok((None, Reply::Int(0)));
        }
        Ok((
            Some(Op::Expire {
                target: KeyState::typed_target(cur, now),
                expires_at_ms: None,
            }),
            Reply::Int(1),
        ))
    })
}

fn ttl_generic(shared: &Shared, key: &[u8], ms: bool) -> Reply {
    match shared.read_live(key) {
        Err(r) => r,
        Ok(None) => Reply::Int(-2),
        Ok(Some(s)) => match s.expires_at_ms() {
            None => Reply::Int(-1),
            Some(at) => {
                let left = at.saturating_sub(now_ms()) as i64;
                Reply::Int(if ms { left } else { (left + 500) / 1000 })
            }
        },
    }
}

/// `TTL key`: seconds left, -1 without expiry, -2 when absent.
pub fn ttl(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    ttl_generic(shared, &args[1], false)
}

/// `PTTL key`.
pub fn pttl(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    ttl_generic(shared, &args[1], true)
}

/// Walks live keys of every readable table from `(table, after)`, calling
/// `f` with each; stops after `budget` stored keys (live or not) or when
/// `f` says so. Returns where to resume, `None` when done.
fn walk(
    shared: &Shared,
    mut table: usize,
    mut after: Option<Vec<u8>>,
    mut budget: usize,
    mut f: impl FnMut(&[u8], &KeyState) -> bool,
) -> Result<Option<(usize, Vec<u8>)>, Reply> {
    let tables = shared.readable_tables();
    let now = now_ms();
    while table < tables.len() {
        let want = SCAN_PAGE.min(budget.max(1));
        let page = shared
            .db
            .scan(&tables[table], after.as_deref(), want)
            .map_err(|e| Reply::Error(ErrorReply::storage(e)))?;
        let full = page.len() == want;
        for (key, state) in &page {
            if !state.is_absent(now) && !f(key, state) {
                return Ok(Some((table, key.clone())));
            }
        }
        budget = budget.saturating_sub(page.len());
        after = page.last().map(|(k, _)| k.clone());
        if full {
            if budget == 0 {
                return Ok(after.map(|k| (table, k)));
            }
        } else {
            table += 1;
            after = None;
        }
    }
    Ok(None)
}

/// `DBSIZE`: live keys in the tables this region holds. It counts by
/// scanning (O(keys)), unlike Redis's O(1).
pub fn dbsize(shared: &Shared, _: &Session, _: &[Bytes]) -> Reply {
    let mut n = 0i64;
    match walk(shared, 0, None, usize::MAX, |_, _| {
        n += 1;
        true
    }) {
        Ok(_) => Reply::Int(n),
        Err(r) => r,
    }
}

/// The `db0` line of `INFO keyspace` (`None` when empty); counts by
/// scanning, as `DBSIZE`.
pub fn keyspace(shared: &Shared) -> Result<Option<String>, Reply> {
    let (mut keys, mut expires) = (0u64, 0u64);
    walk(shared, 0, None, usize::MAX, |_, state| {
        keys += 1;
        expires += state.expires_at_ms().is_some() as u64;
        true
    })?;
    Ok((keys > 0).then(|| format!("keys={keys},expires={expires},avg_ttl=0")))
}

/// `KEYS pattern`. Refused, not truncated, when the answer would exceed
/// the reply limit.
pub fn keys(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    let pattern = args[1].to_vec();
    let limit = shared.limits.reply_bytes_max;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut over = false;
    let walked = walk(shared, 0, None, usize::MAX, |key, _| {
        if glob::matches(&pattern, key, false) {
            bytes += key.len() + 16;
            if bytes > limit {
                over = true;
                return false;
            }
            out.push(Reply::Bulk(key.to_vec()));
        }
        true
    });
    if let Err(r) = walked {
        return r;
    }
    if over {
        return Reply::err(format!(
            "KEYS reply exceeds resp.reply_bytes_max ({limit} bytes); use SCAN"
        ));
    }
    Reply::Array(out)
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`.
///
/// Cursors are kept by the node (a key position cannot fit in a number):
/// a cursor works on any connection to this node until
/// [`crate::server::CURSORS_MAX`] newer ones push it out.
pub fn scan(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    let Some(cursor) = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return Reply::err("invalid cursor");
    };
    let (mut pattern, mut count, mut type_) = (None, 10usize, None);
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Reply::Error(ErrorReply::syntax());
        };
        if is(&args[i], "MATCH") {
            pattern = Some(value.to_vec());
        } else if is(&args[i], "COUNT") {
            match int_arg(value) {
                Ok(n) if n >= 1 => count = (n as usize).min(SCAN_COUNT_MAX),
                Ok(_) => return Reply::Error(ErrorReply::syntax()),
                Err(r) => return r,
            }
        } else if is(&args[i], "TYPE") {
            type_ = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
        } else {
            return Reply::Error(ErrorReply::syntax());
        }
        i += 2;
    }
    let start = if cursor == 0 {
        (0, None)
    } else {
        match shared.cursors.lock().expect("cursor lock").get(cursor) {
            Some((t, k)) => (t, Some(k)),
            None => {
                return Reply::err(format!(
                    "unknown SCAN cursor {cursor}: it was issued by another node or has expired; start again from 0"
                ))
            }
        }
    };
    let mut found = Vec::new();
    let walked = walk(shared, start.0, start.1, count, |key, state| {
        let name_ok = pattern
            .as_ref()
            .is_none_or(|p| glob::matches(p, key, false));
        let type_ok = type_.as_ref().is_none_or(|t| t == kind_name(state));
        if name_ok && type_ok {
            found.push(Reply::Bulk(key.to_vec()));
        }
        true
    });
    let next = match walked {
        Err(r) => return r,
        Ok(None) => 0,
        Ok(Some(pos)) => shared.cursors.lock().expect("cursor lock").put(pos),
    };
    Reply::Array(vec![Reply::text(next.to_string()), Reply::Array(found)])
}
