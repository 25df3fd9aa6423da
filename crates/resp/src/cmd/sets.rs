//! Set commands: an add-wins observed-remove set across regions. `SREM`
//! cancels only the adds this region had seen, so a member added
//! concurrently elsewhere survives the removal.

use bytes::Bytes;
use meridian_core::record::{KeyState, Kind};
use meridian_core::Op;

use super::{expect_kind, live};
use crate::error::ErrorReply;
use crate::plan::{WriteKind, WritePlan};
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

fn present(state: &KeyState, member: &[u8]) -> bool {
    state.set.get(member).is_some_and(|m| m.present())
}

fn read_set(shared: &Shared, key: &[u8]) -> Result<Option<KeyState>, Reply> {
    let state = shared.read_live(key)?;
    match &state {
        Some(s) if s.kind() != Some(Kind::Set) => Err(Reply::Error(ErrorReply::wrong_type())),
        _ => Ok(state),
    }
}

/// `SADD key member [member ...]`: how many were new.
pub fn sadd(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let members: Vec<Vec<u8>> = args[2..].iter().map(|m| m.to_vec()).collect();
    shared.plan_one(&args[1], WriteKind::Set, "sadd", move |cur, now| {
        let live = live(cur, now);
        expect_kind(live, Kind::Set)?;
        let new: std::collections::BTreeSet<&Vec<u8>> = members
            .iter()
            .filter(|m| !live.is_some_and(|s| present(s, m)))
            .collect();
        let n = new.len() as i64;
        Ok((
            Some(Op::SetAdd {
                target: KeyState::typed_target(cur, now),
                members,
            }),
            Reply::Int(n),
        ))
    })
}

/// `SREM key member [member ...]`: how many were present.
pub fn srem(shared: &Shared, args: &[Bytes]) -> Result<WritePlan, Reply> {
    let members: Vec<Vec<u8>> = args[2..].iter().map(|m| m.to_vec()).collect();
    shared.plan_one(&args[1], WriteKind::Set, "srem", move |cur, now| {
        let Some(live) = live(cur, now) else {
            return Ok((None, Reply::Int(0)));
        };
        expect_kind(Some(live), Kind::Set)?;
        let mut removals: Vec<(Vec<u8>, Vec<meridian_core::Version>)> = Vec::new();
        for m in members {
            if removals.iter().any(|(r, _)| *r == m) {
                continue;
            }
            if let Some(member) = live.set.get(&m).filter(|x| x.present()) {
                removals.push((m, member.live_adds()));
            }
        }
        if removals.is_empty() {
            return Ok((None, Reply::Int(0)));
        }
        let n = removals.len() as i64;
        Ok((
            Some(Op::SetRemove {
                target: KeyState::typed_target(cur, now),
                members: removals,
            }),
            Reply::Int(n),
        ))
    })
}

/// `SMEMBERS key`: a set in RESP3, an array in RESP2.
pub fn smembers(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match read_set(shared, &args[1]) {
        Err(r) => r,
        Ok(s) => Reply::Set(
            s.as_ref()
                .map(|s| s.set_members())
                .unwrap_or_default()
                .into_iter()
                .map(|m| Reply::Bulk(m.to_vec()))
                .collect(),
        ),
    }
}

/// `SISMEMBER key member`.
pub fn sismember(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match read_set(shared, &args[1]) {
        Err(r) => r,
        Ok(s) => Reply::Int(s.is_some_and(|s| present(&s, &args[2])) as i64),
    }
}

/// `SCARD key`.
pub fn scard(shared: &Shared, _: &Session, args: &[Bytes]) -> Reply {
    match read_set(shared, &args[1]) {
        Err(r) => r,
        Ok(s) => Reply::Int(s.map_or(0, |s| s.set_members().len()) as i64),
    }
}
