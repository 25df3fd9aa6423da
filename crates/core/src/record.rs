//! Records, versions, and how a replicated write merges into a key's state.
//!
//! # The model
//! Every write is a [`LogEntry`]: `(origin, seq)` names it (seq dense per
//! origin), its [`Hlc`] and origin order it totally ([`Version`]), and its
//! [`Op`] says what it does to one key of one table.
//!
//! A key holds one **incarnation** at a time, named by the version of the
//! write that started it. `SET` and `DEL` always start a new incarnation;
//! a typed write on an absent key (first `INCR`, `HSET`, `SADD`) does too.
//! Every other typed write names the incarnation it observed at its origin
//! ([`Target::Existing`]). [`apply`] then keeps, for each key:
//! - the highest incarnation of all writes seen (last writer wins for whole
//!   values, by `(hlc, origin)`);
//! - inside it, every typed write that names it, merged by its rule:
//!   counters add (a PN-counter: each origin's deltas applied exactly once),
//!   hash fields are last-writer-wins per field, set members are add-wins
//!   (an observed-remove set: a removal only cancels the adds it saw).
//!
//! The result is the same whatever order writes arrive in, as long as each
//! origin's writes are applied in sequence once each — which the per-origin
//! logs guarantee. The `convergence` tests check exactly that.
//!
//! A typed write may arrive before the write that started its incarnation
//! (it came by a faster path); the key is then `Pending`: kept, hidden from
//! reads, completed when the creator arrives.
//!
//! **Conflicts.** Every write carries the version of the newest write its
//! origin had seen on the key (`observed`). When a new incarnation replaces
//! one with a newer write than that, or an incoming write loses to an
//! incarnation whose writer had not seen it, the two were concurrent and one
//! was overwritten: [`Applied::conflict`] reports it. Concurrent writes to the
//! same hash field are resolved per field but not reported (the writer's
//! per-field knowledge is not carried).
//!
//! **TTL.** An absolute expiry (`expires_at_ms`) travels with `SET ... EX` and
//! `EXPIRE`; last-writer-wins within an incarnation. Every region hides the
//! key at the same deadline; purging is local ([`KeyState::purge_expired`]),
//! never replicated, and waits until no write to the key can still arrive.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::region::RegionName;

/// Total order of writes: HLC first, origin name breaks ties.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// When.
    pub hlc: Hlc,
    /// Where.
    pub origin: RegionName,
}

/// `applied[origin]` = highest contiguous sequence applied from that origin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<RegionName, u64>);

impl VersionVector {
    /// An empty vector (nothing applied).
    pub fn new() -> Self {
        VersionVector::default()
    }

    /// Highest contiguous sequence applied from `origin` (0: none).
    pub fn get(&self, origin: &RegionName) -> u64 {
        self.0.get(origin).copied().unwrap_or(0)
    }

    /// Records that `origin` is applied through `seq`. Never goes backwards.
    pub fn advance(&mut self, origin: &RegionName, seq: u64) {
        let e = self.0.entry(origin.clone()).or_insert(0);
        debug_assert!(
            seq >= *e,
            "version vector for {origin} would go back from {e} to {seq}"
        );
        *e = (*e).max(seq);
    }

    /// Whether every entry of `other` is covered by this vector.
    pub fn covers(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(o, s)| self.get(o) >= *s)
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (o, s) in &other.0 {
            let e = self.0.entry(o.clone()).or_insert(0);
            *e = (*e).max(*s);
        }
    }

    /// Pointwise minimum over the origins of `self`.
    pub fn min_with(&self, other: &VersionVector) -> VersionVector {
        VersionVector(
            self.0
                .iter()
                .map(|(o, s)| (o.clone(), (*s).min(other.get(o))))
                .collect(),
        )
    }

    /// `(origin, seq)` pairs in origin order.
    pub fn iter(&self) -> impl Iterator<Item = (&RegionName, u64)> {
        self.0.iter().map(|(o, s)| (o, *s))
    }
}

/// Which incarnation a typed write applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The key was absent at the origin: this write starts an incarnation.
    New,
    /// The incarnation the origin observed.
    Existing(Version),
}

/// What a write does to its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Set the whole value (a string), starting an incarnation.
    Put {
        /// The bytes.
        value: Vec<u8>,
        /// Absolute expiry, ms since the Unix epoch.
        expires_at_ms: Option<u64>,
    },
    /// Delete the key, starting a tombstone incarnation.
    Delete,
    /// Add to the integer value (INCR and friends).
    Add {
        /// Incarnation.
        target: Target,
        /// Signed amount.
        delta: i64,
    },
    /// Set hash fields.
    HashSet {
        /// Incarnation.
        target: Target,
        /// `(field, value)` pairs.
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Delete hash fields.
    HashDel {
        /// Incarnation (must exist at the origin).
        target: Version,
        /// Fields.
        fields: Vec<Vec<u8>>,
    },
    /// Add set members.
    SetAdd {
        /// Incarnation.
        target: Target,
        /// Members.
        members: Vec<Vec<u8>>,
    },
    /// Remove set members: each removal cancels the adds (by version) the
    /// origin had observed for that member.
    SetRemove {
        /// Incarnation (must exist at the origin).
        target: Version,
        /// `(member, observed add versions)`.
        members: Vec<(Vec<u8>, Vec<Version>)>,
    },
    /// Set or clear the expiry of an incarnation.
    Expire {
        /// Incarnation (must exist at the origin).
        target: Version,
        /// New absolute expiry, or `None` to persist.
        expires_at_ms: Option<u64>,
    },
}

/// One replicated write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Region that accepted the write.
    pub origin: RegionName,
    /// Dense per-origin sequence, from 1.
    pub seq: u64,
    /// Commit stamp at the origin.
    pub hlc: Hlc,
    /// Table.
    pub table: String,
    /// Key within the table.
    pub key: Vec<u8>,
    /// Newest write version on the key the origin had seen (`None`: none).
    pub observed: Option<Version>,
    /// The change.
    pub op: Op,
}

impl LogEntry {
    /// Approximate encoded size in bytes, for pending-bytes accounting and
    /// batch limits (exact sizes would cost an encode per entry).
    pub fn approx_bytes(&self) -> usize {
        let payload: usize = match &self.op {
            Op::Put { value, .. } => value.len(),
            Op::Delete | Op::Add { .. } | Op::Expire { .. } => 8,
            Op::HashSet { fields, .. } => fields.iter().map(|(f, v)| f.len() + v.len() + 2).sum(),
            Op::HashDel { fields, .. } => fields.iter().map(|f| f.len() + 1).sum(),
            Op::SetAdd { members, .. } => members.iter().map(|m| m.len() + 1).sum(),
            Op::SetRemove { members, .. } => members.iter().map(|(m, v)| m.len() + 1 + 12 * v.len()).sum(),
        };
        // origin, seq, hlc, observed and framing: about 48 bytes.
        48 + self.table.len() + self.key.len() + payload
    }

    /// The write's version.
    pub fn version(&self) -> Version {
        Version {
            hlc: self.hlc,
            origin: self.origin.clone(),
        }
    }
}

/// A hash field's value (`None`: deleted) and version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Value, or `None` for a deleted field.
    pub value: Option<Vec<u8>>,
    /// Last write to the field.
    pub version: Version,
}

/// A set member's add and remove tags (versions of the writes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Adds.
    pub adds: BTreeSet<Version>,
    /// Adds cancelled by removals.
    pub removed: BTreeSet<Version>,
}

impl Member {
    /// Present while some add is not cancelled.
    pub fn present(&self) -> bool {
        self.adds.iter().any(|a| !self.removed.contains(a))
    }

    /// The live add tags (what a removal must cancel).
    pub fn live_adds(&self) -> Vec<Version> {
        self.adds
            .iter()
            .filter(|a| !self.removed.contains(*a))
            .cloned()
            .collect()
    }
}

/// The data of an incarnation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Known only through writes that depend on it; its creator is on its way.
    Pending,
    /// Deleted (or purged after expiry).
    Tombstone,
    /// A string; with a counter delta when it holds an integer.
    Bytes(Vec<u8>),
    /// A hash.
    Hash(BTreeMap<Vec<u8>, Field>),
    /// A set.
    Set(BTreeMap<Vec<u8>, Member>),
}

/// An incarnation's expiry and the write that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// Absolute deadline, ms since the Unix epoch; `None`: persistent.
    pub at_ms: Option<u64>,
    /// The write that set it.
    pub version: Version,
}

/// Everything stored for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The incarnation's name.
    pub incarnation: Version,
    /// What the incarnation's creator had observed; `None` if nothing or
    /// the creator has not arrived yet (see `created`).
    pub observed: Option<Version>,
    /// Whether the creator write has been applied.
    pub created: bool,
    /// The data.
    pub value: Value,
    /// Sum of counter deltas applied to a `Bytes` incarnation.
    pub delta: i64,
    /// Expiry.
    pub expiry: Option<Expiry>,
    /// Newest write applied to this key.
    pub last: Version,
    /// The incarnation a not-yet-created state replaced, kept until its
    /// creator arrives so a conflict can still be judged then.
    pub replaced_last: Option<Version>,
}

/// An overwritten concurrent write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The surviving write.
    pub winner: Version,
    /// The overwritten write.
    pub loser: Version,
}

/// The outcome of [`apply`].
#[derive(Debug, PartialEq, Eq)]
pub struct Applied {
    /// The key's new state (unchanged when the write lost).
    pub state: KeyState,
    /// Whether the write changed anything.
    pub changed: bool,
    /// A concurrent write that was overwritten, if any.
    pub conflict: Option<Conflict>,
}

impl KeyState {
    /// Whether the key reads as absent at `now_ms`.
    pub fn is_absent(&self, now_ms: u64) -> bool {
        if !self.created || self.expired(now_ms) {
            return true;
        }
        match &self.value {
            Value::Pending | Value::Tombstone => true,
            Value::Bytes(_) => false,
            Value::Hash(f) => !f.values().any(|f| f.value.is_some()),
            Value::Set(m) => !m.values().any(Member::present),
        }
    }

    /// Whether the expiry deadline has passed.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expiry
            .as_ref()
            .and_then(|e| e.at_ms)
            .is_some_and(|at| at <= now_ms)
    }

    /// The absolute expiry, if any.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.expiry.as_ref().and_then(|e| e.at_ms)
    }

    /// A string value as bytes, applying any counter delta.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match &self.value {
            Value::Bytes(b) if self.delta == 0 => Some(b.clone()),
            Value::Bytes(b) => {
                let base: i64 = std::str::from_utf8(b).ok()?.parse().ok()?;
                Some(base.wrapping_add(self.delta).to_string().into_bytes())
            }
            _ => None,
        }
    }

    /// Local purge of an expired key: keeps the incarnation (so late writes
    /// to it are recognised and dropped) but not the data. Not replicated.
    ///
    /// Only safe once no write to the incarnation can still arrive: a region
    /// may have extended the TTL just before the deadline and be partitioned
    /// since. `closed_ms` is the time up to which this region holds every
    /// origin's writes; writes made before the deadline carry stamps below
    /// `deadline + max_offset_ms` (the HLC never runs further ahead of wall
    /// time), so the purge waits for `closed_ms` to pass that.
    pub fn purge_expired(&mut self, closed_ms: u64, max_offset_ms: u64) -> bool {
        let safe = self
            .expires_at_ms()
            .is_some_and(|at| at.saturating_add(max_offset_ms) < closed_ms);
        if self.created && safe && self.value != Value::Tombstone {
            self.value = Value::Tombstone;
            self.delta = 0;
            return true;
        }
        false
    }

    /// The incarnation a write at the origin should target, for typed ops:
    /// `New` when the key reads absent.
    pub fn target(state: Option<&KeyState>, now_ms: u64) -> Target {
        match state {
            Some(s) if !s.is_absent(now_ms) => Target::Existing(s.incarnation.clone()),
            _ => Target::New,
        }
    }
}

/// The incarnation a write belongs to, and whether it is that incarnation's
/// creator.
fn incarnation_of(entry: &LogEntry) -> (Version, bool) {
    let own = entry.version();
    match &entry.op {
        Op::Put { .. } | Op::Delete => (own, true),
        Op::Add { target, .. } | Op::HashSet { target, .. } | Op::SetAdd { target, .. } => {
            match target {
                Target::New => (own, true),
                Target::Existing(v) => (v.clone(), false),
            }
        }
        Op::HashDel { target, .. } | Op::SetRemove { target, .. } | Op::Expire { target, .. } => {
            (target.clone(), false)
        }
    }
}

/// A fresh state for incarnation `inc`, before any write is merged into it.
fn blank(inc: Version, last: Version) -> KeyState {
    KeyState {
        incarnation: inc,
        observed: None,
        created: false,
        value: Value::Pending,
        delta: 0,
        expiry: None,
        last,
        replaced_last: None,
    }
}

/// Merges `entry` into `current` (the key's state, if any). Pure; see the
/// module docs for the rules.
pub fn apply(current: Option<&KeyState>, entry: &LogEntry) -> Applied {
    let version = entry.version();
    let (inc, creator) = incarnation_of(entry);
    let mut conflict = None;
    let mut state = match current {
        None => blank(inc.clone(), version.clone()),
        Some(cur) if inc > cur.incarnation => {
            if creator {
                if entry.observed.as_ref() < Some(&cur.last) && cur.created {
                    conflict = Some(Conflict {
                        winner: version.clone(),
                        loser: cur.last.clone(),
                    });
                }
                blank(inc.clone(), version.clone())
            } else {
                let mut s = blank(inc.clone(), version.clone());
                s.replaced_last = cur.created.then(|| cur.last.clone());
                s
            }
        }
        Some(cur) if inc < cur.incarnation => {
            // The write belongs to an incarnation that was replaced.
            if cur.created && cur.observed.as_ref() < Some(&version) {
                conflict = Some(Conflict {
                    winner: cur.incarnation.clone(),
                    loser: version,
                });
            }
            return Applied {
                state: cur.clone(),
                changed: false,
                conflict,
            };
        }
        Some(cur) => cur.clone(),
    };
    debug_assert_eq!(state.incarnation, inc);

    if creator {
        debug_assert!(
            !state.created,
            "an incarnation's creator applied twice: {inc:?}"
        );
        state.created = true;
        state.observed = entry.observed.clone();
        if let Some(replaced) = state.replaced_last.take() {
            if entry.observed.as_ref() < Some(&replaced) {
                conflict = Some(Conflict {
                    winner: version.clone(),
                    loser: replaced,
                });
            }
        }
    }
    if state.value == Value::Tombstone && !creator {
        // Writes to a deleted or purged incarnation change nothing.
        return Applied {
            state,
            changed: false,
            conflict,
        };
    }
    merge_op(&mut state, entry, &version);
    if version > state.last {
        state.last = version;
    }
    Applied {
        state,
        changed: true,
        conflict,
    }
}

fn lww_expiry(state: &mut KeyState, at_ms: Option<u64>, version: &Version) {
    if state.expiry.as_ref().is_none_or(|e| *version > e.version) {
        state.expiry = Some(Expiry {
            at_ms,
            version: version.clone(),
        });
    }
}

fn merge_op(state: &mut KeyState, entry: &LogEntry, version: &Version) {
    match &entry.op {
        Op::Put {
            value,
            expires_at_ms,
        } => {
            state.value = Value::Bytes(value.clone());
            lww_expiry(state, *expires_at_ms, version);
        }
        Op::Delete => {
            state.value = Value::Tombstone;
            state.delta = 0;
        }
        Op::Add { target, delta } => {
            if *target == Target::New {
                state.value = Value::Bytes(b"0".to_vec());
            }
            state.delta = state.delta.wrapping_add(*delta);
        }
        Op::HashSet { fields, .. } => {
            let map = as_hash(&mut state.value);
            for (f, v) in fields {
                set_field(map, f, Some(v.clone()), version);
            }
        }
        Op::HashDel { fields, .. } => {
            let map = as_hash(&mut state.value);
            for f in fields {
                set_field(map, f, None, version);
            }
        }
        Op::SetAdd { members, .. } => {
            let set = as_set(&mut state.value);
            for m in members {
                set.entry(m.clone())
                    .or_default()
                    .adds
                    .insert(version.clone());
            }
        }
        Op::SetRemove { members, .. } => {
            let set = as_set(&mut state.value);
            for (m, seen) in members {
                set.entry(m.clone())
                    .or_default()
                    .removed
                    .extend(seen.iter().cloned());
            }
        }
        Op::Expire { expires_at_ms, .. } => lww_expiry(state, *expires_at_ms, version),
    }
}

fn set_field(
    map: &mut BTreeMap<Vec<u8>, Field>,
    field: &[u8],
    value: Option<Vec<u8>>,
    version: &Version,
) {
    match map.get_mut(field) {
        Some(f) if f.version >= *version => {}
        Some(f) => {
            f.value = value;
            f.version = version.clone();
        }
        None => {
            map.insert(
                field.to_vec(),
                Field {
                    value,
                    version: version.clone(),
                },
            );
        }
    }
}

fn as_hash(v: &mut Value) -> &mut BTreeMap<Vec<u8>, Field> {
    if !matches!(v, Value::Hash(_)) {
        // Pending becomes a hash; any other type here means the origin broke
        // the one-type-per-incarnation rule, which its type checks prevent.
        debug_assert!(matches!(v, Value::Pending), "hash write on {v:?}");
        *v = Value::Hash(BTreeMap::new());
    }
    match v {
        Value::Hash(m) => m,
        _ => unreachable!("just made a hash"),
    }
}

fn as_set(v: &mut Value) -> &mut BTreeMap<Vec<u8>, Member> {
    if !matches!(v, Value::Set(_)) {
        debug_assert!(matches!(v, Value::Pending), "set write on {v:?}");
        *v = Value::Set(BTreeMap::new());
    }
    match v {
        Value::Set(m) => m,
        _ => unreachable!("just made a set"),
    }
}

#[cfg(test)]
mod tests;
