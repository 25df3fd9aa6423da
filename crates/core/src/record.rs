//! Records, versions, and how a replicated write merges into a key's state.
//!
//! # The model
//! Every write is a [`LogEntry`]: `(origin, seq)` names it (seq dense per
//! origin), its [`Hlc`] and origin order it totally ([`Version`]), and its
//! [`Op`] says what it does to one key of one table.
//!
//! A key holds one **incarnation** at a time. `SET` and `DEL` start a new
//! one, named by their own version. Typed writes (`INCR`, `HSET`, `SADD`,
//! `EXPIRE`, ...) never start one: they name the incarnation their origin
//! observed ([`Target`]) — the genesis incarnation of a never-written key,
//! the `SET` or `DEL` that started the current one (writes after a `DEL`
//! revive its tombstone), or, after an expiry, a fresh incarnation named
//! after that expiry. So two regions incrementing a brand-new key, or one
//! just deleted, land in the same incarnation and both count.
//! [`apply`] then keeps, for each key:
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

    /// Raises `origin` to `seq` if it is lower; never lowers it.
    pub fn advance_to_at_least(&mut self, origin: &RegionName, seq: u64) {
        let e = self.0.entry(origin.clone()).or_insert(0);
        *e = (*e).max(seq);
    }

    /// Whether every entry of `other` is covered by this vector.
    pub fn covers(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(o, s)| self.get(o) >= *s)
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (o, s) in &other.0 {
            // Every session read merges the applied vector into its token:
            // a known origin costs no allocation.
            match self.0.get_mut(o) {
                Some(e) => *e = (*e).max(*s),
                None => {
                    self.0.insert(o.clone(), *s);
                }
            }
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

    /// Renders the vector as a session token: `region:seq[,region:seq...]`
    /// (origins at 0 left out), what a reader elsewhere waits for.
    pub fn to_token(&self) -> String {
        self.0
            .iter()
            .filter(|(_, s)| **s > 0)
            .map(|(r, s)| format!("{r}:{s}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses a session token, saying what is wrong with a bad one.
    pub fn parse_token(text: &str) -> Result<VersionVector, String> {
        let mut vv = VersionVector::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (region, seq) = part
                .split_once(':')
                .ok_or_else(|| format!("token part `{part}` is not region:seq"))?;
            let region = RegionName::new(region).map_err(|e| e.to_string())?;
            let seq: u64 = seq
                .parse()
                .map_err(|_| format!("token part `{part}` has no sequence number"))?;
            vv.advance_to_at_least(&region, seq);
        }
        Ok(vv)
    }

    /// `(origin, seq)` pairs in origin order.
    pub fn iter(&self) -> impl Iterator<Item = (&RegionName, u64)> {
        self.0.iter().map(|(o, s)| (o, *s))
    }
}

/// The name of an incarnation: the version of the `SET`/`DEL` that started
/// it, or a synthetic version for a fresh incarnation after an expiry. The
/// `fresh` flag keeps a synthetic name from ever equalling a real write's
/// version (both could carry the same HLC and origin).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incarnation {
    /// The version naming it.
    pub version: Version,
    /// Whether it is a synthetic after-expiry incarnation.
    pub fresh: bool,
}

/// Which incarnation a typed write applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The key was never written: every region's first typed writes share
    /// this incarnation, so concurrent first `INCR`s all count.
    Genesis,
    /// The incarnation started by this write (a `SET` or `DEL`); writes
    /// after a `DEL` revive its tombstone, so they merge too.
    Existing(Version),
    /// A fresh incarnation after the observed one expired. Its name derives
    /// from the (converged) expiry, so regions that agree on the expiry
    /// agree on the name.
    Fresh(Version),
}

/// Byte strings as serde *bytes* rather than a sequence of `u8`: postcard
/// writes both as a length and the raw bytes, so stored and shipped data
/// are unchanged, but bytes are copied at once instead of one serializer
/// call per byte (that loop was 4 % of the writer's time in a catch-up).
/// JSON still sees an array of numbers. Decoding accepts either form.
mod bytes {
    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Bounded by what the format holds; preallocate at most 64 KiB
            // on a length a peer claims.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    /// The same for `Option<Vec<u8>>`.
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super")] Vec<u8>);

        struct Ref<'a>(&'a [u8]);

        impl Serialize for Ref<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }

        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => s.serialize_some(&Ref(b)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// What a write does to its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Set the whole value (a string), starting an incarnation.
    Put {
        /// The bytes.
        #[serde(with = "bytes")]
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
        /// Incarnation.
        target: Target,
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
        /// Incarnation.
        target: Target,
        /// `(member, observed add versions)`.
        members: Vec<(Vec<u8>, Vec<Version>)>,
    },
    /// Set or clear the expiry of an incarnation.
    Expire {
        /// Incarnation.
        target: Target,
        /// New absolute expiry, or `None` to persist.
        expires_at_ms: Option<u64>,
    },
    /// A write to a pinned table, as a region outside the table's allowed
    /// regions receives it: the sequence number is used (so the origin's
    /// log stays dense) but key and value never left the allowed regions.
    /// Applying it changes no state.
    Withheld,
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
    #[serde(with = "bytes")]
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
            Op::Withheld => 0,
            Op::HashSet { fields, .. } => fields.iter().map(|(f, v)| f.len() + v.len() + 2).sum(),
            Op::HashDel { fields, .. } => fields.iter().map(|f| f.len() + 1).sum(),
            Op::SetAdd { members, .. } => members.iter().map(|m| m.len() + 1).sum(),
            Op::SetRemove { members, .. } => members
                .iter()
                .map(|(m, v)| m.len() + 1 + 12 * v.len())
                .sum(),
        };
        // origin, seq, hlc, observed and framing: about 48 bytes.
        48 + self.table.len() + self.key.len() + payload
    }

    /// This entry as a region outside its pinned table's allowed regions
    /// receives it: origin, sequence, stamp and table name, nothing else.
    pub fn withheld(&self) -> LogEntry {
        LogEntry {
            origin: self.origin.clone(),
            seq: self.seq,
            hlc: self.hlc,
            table: self.table.clone(),
            key: Vec::new(),
            observed: None,
            op: Op::Withheld,
        }
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
    #[serde(with = "bytes::opt")]
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

/// One origin's share of a PN-counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    /// Sum of its positive deltas.
    pub p: u64,
    /// Sum of the magnitudes of its negative deltas.
    pub n: u64,
}

/// The data type a key shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string (possibly an integer with counter deltas).
    String,
    /// A hash.
    Hash,
    /// A set.
    Set,
}

/// An incarnation's expiry and the write that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// Absolute deadline, ms since the Unix epoch; `None`: persistent.
    pub at_ms: Option<u64>,
    /// The write that set it.
    pub version: Version,
}

/// Everything stored for one key: one incarnation and its merged contents.
///
/// Each data type's contents are kept apart and merged by their own rule;
/// the type shown is the one written last (by version). Origins refuse
/// typed writes that do not match the shown type (WRONGTYPE), so mixed
/// contents only arise from concurrent writes, and then every region shows
/// the same one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The incarnation's name; `None` is the genesis incarnation of a key
    /// never `SET` or `DEL`eted.
    pub incarnation: Option<Incarnation>,
    /// What the incarnation's creator (`SET`/`DEL`) had observed.
    pub observed: Option<Version>,
    /// Whether the incarnation is complete: its creator write has been
    /// applied (genesis and fresh incarnations have none to wait for).
    pub created: bool,
    /// The string a `SET` gave; `None` for other incarnations.
    #[serde(with = "bytes::opt")]
    pub bytes: Option<Vec<u8>>,
    /// Counter deltas as a state-based PN-counter: per origin, the sum of
    /// its increments (`p`) and of its decrements (`n`). Both only grow, so
    /// two replicas' counters join by pointwise maximum (anti-entropy), and
    /// the value is `Σp − Σn` added to `bytes` read as an integer (or 0).
    pub counter: BTreeMap<RegionName, PnCounter>,
    /// Newest counter write.
    pub delta_version: Option<Version>,
    /// Hash fields.
    pub hash: BTreeMap<Vec<u8>, Field>,
    /// Newest hash write.
    pub hash_version: Option<Version>,
    /// Set members.
    pub set: BTreeMap<Vec<u8>, Member>,
    /// Newest set write.
    pub set_version: Option<Version>,
    /// Expiry.
    pub expiry: Option<Expiry>,
    /// Newest write applied to this key.
    pub last: Version,
    /// What a still-incomplete state replaced, so a conflict can be judged
    /// when its creator arrives.
    pub replaced_last: Option<Version>,
    /// Contents dropped locally after expiry (never replicated).
    pub purged: bool,
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
    /// The state a lone `SET` of `value` at `version` produces, as replicas
    /// store it (for tests and tools that need a realistic state).
    pub fn from_put(version: Version, value: Vec<u8>) -> KeyState {
        let mut s = blank(
            Some(Incarnation {
                version: version.clone(),
                fresh: false,
            }),
            false,
            version,
        );
        s.bytes = Some(value);
        s
    }

    /// What a lost key looks like: the genesis incarnation with nothing in
    /// it, so a join with any real state restores that state.
    pub fn lost(last: Version) -> KeyState {
        blank(None, false, last)
    }

    /// The type the key shows, ignoring expiry: the type written last.
    pub fn kind(&self) -> Option<Kind> {
        let string = match (&self.bytes, &self.delta_version) {
            (Some(_), d) => self
                .incarnation
                .as_ref()
                .map(|i| i.version.clone())
                .max(d.clone()),
            (None, Some(d)) => Some(d.clone()),
            (None, None) => None,
        };
        [
            (Kind::String, string),
            (Kind::Hash, self.hash_version.clone()),
            (Kind::Set, self.set_version.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (v, k)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, k)| k)
    }

    /// Whether the key reads as absent at `now_ms`.
    pub fn is_absent(&self, now_ms: u64) -> bool {
        if !self.created || self.purged || self.expired(now_ms) {
            return true;
        }
        match self.kind() {
            None => true,
            Some(Kind::String) => false,
            Some(Kind::Hash) => !self.hash.values().any(|f| f.value.is_some()),
            Some(Kind::Set) => !self.set.values().any(Member::present),
        }
    }

    /// Whether the expiry deadline has passed.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_some_and(|at| at <= now_ms)
    }

    /// The absolute expiry, if any.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.expiry.as_ref().and_then(|e| e.at_ms)
    }

    /// The string value, counter deltas applied; `None` unless the key
    /// shows a string.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        if self.kind() != Some(Kind::String) {
            return None;
        }
        let delta = self.delta();
        match &self.bytes {
            Some(b) if self.counter.is_empty() => Some(b.clone()),
            Some(b) => {
                let base: i64 = std::str::from_utf8(b).ok()?.parse().ok()?;
                Some(base.saturating_add(delta).to_string().into_bytes())
            }
            None => Some(delta.to_string().into_bytes()),
        }
    }

    /// The counter's value: `Σp − Σn`, saturated to the i64 range.
    pub fn delta(&self) -> i64 {
        let (p, n) = self.counter.values().fold((0i128, 0i128), |(p, n), c| {
            (p + i128::from(c.p), n + i128::from(c.n))
        });
        (p - n).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Live hash fields, when the key shows a hash.
    pub fn hash_fields(&self) -> Vec<(&[u8], &[u8])> {
        if self.kind() != Some(Kind::Hash) {
            return Vec::new();
        }
        self.hash
            .iter()
            .filter_map(|(k, f)| f.value.as_deref().map(|v| (k.as_slice(), v)))
            .collect()
    }

    /// Present set members, when the key shows a set.
    pub fn set_members(&self) -> Vec<&[u8]> {
        if self.kind() != Some(Kind::Set) {
            return Vec::new();
        }
        self.set
            .iter()
            .filter(|(_, m)| m.present())
            .map(|(k, _)| k.as_slice())
            .collect()
    }

    /// Local purge of an expired key: keeps the incarnation (so late writes
    /// to it are recognised and dropped) but not the data. Not replicated.
    ///
    /// Only safe once no write to the incarnation can still arrive: a region
    /// may have extended the TTL just before the deadline and be partitioned
    /// since. `closed_ms` is the time up to which this region holds every
    /// origin's writes; writes made before the deadline carry stamps below
    /// `deadline + offset_ms_max` (the HLC never runs further ahead of wall
    /// time), so the purge waits for `closed_ms` to pass that.
    pub fn purge_expired(&mut self, closed_ms: u64, offset_ms_max: u64) -> bool {
        let safe = self
            .expires_at_ms()
            .is_some_and(|at| at.saturating_add(offset_ms_max) < closed_ms);
        if self.created && safe && !self.purged {
            self.purged = true;
            self.bytes = None;
            self.counter.clear();
            self.hash.clear();
            self.set.clear();
            return true;
        }
        false
    }

    /// The incarnation a typed write at the origin targets at `now_ms`.
    pub fn typed_target(state: Option<&KeyState>, now_ms: u64) -> Target {
        let Some(s) = state else {
            return Target::Genesis;
        };
        if let (Some(at), Some(e)) = (s.expires_at_ms().filter(|at| *at <= now_ms), &s.expiry) {
            // Named from the expiry alone — the deadline and the write that
            // set it, which all regions agree on — never from what else a
            // region happens to have applied, so every region that writes
            // after the deadline names the same fresh incarnation.
            let hlc = Hlc::new(at, 0).max(Hlc::from_u64(e.version.hlc.as_u64() + 1));
            return Target::Fresh(Version {
                hlc,
                origin: e.version.origin.clone(),
            });
        }
        match &s.incarnation {
            None => Target::Genesis,
            Some(i) if i.fresh => Target::Fresh(i.version.clone()),
            Some(i) => Target::Existing(i.version.clone()),
        }
    }
}

/// The incarnation a write belongs to, whether it is that incarnation's
/// creator, and whether the incarnation needs a creator at all.
fn incarnation_of(entry: &LogEntry) -> (Option<Incarnation>, bool, bool) {
    let named = |version: &Version, fresh| {
        Some(Incarnation {
            version: version.clone(),
            fresh,
        })
    };
    match &entry.op {
        Op::Put { .. } | Op::Delete => (named(&entry.version(), false), true, true),
        Op::Withheld => (None, false, false),
        Op::Add { target, .. }
        | Op::HashSet { target, .. }
        | Op::HashDel { target, .. }
        | Op::SetAdd { target, .. }
        | Op::SetRemove { target, .. }
        | Op::Expire { target, .. } => match target {
            Target::Genesis => (None, false, false),
            Target::Existing(v) => (named(v, false), false, true),
            Target::Fresh(v) => (named(v, true), false, false),
        },
    }
}

/// A fresh state for incarnation `inc`, before any write is merged into it.
fn blank(inc: Option<Incarnation>, needs_creator: bool, last: Version) -> KeyState {
    KeyState {
        incarnation: inc,
        observed: None,
        created: !needs_creator,
        bytes: None,
        counter: BTreeMap::new(),
        delta_version: None,
        hash: BTreeMap::new(),
        hash_version: None,
        set: BTreeMap::new(),
        set_version: None,
        expiry: None,
        last,
        replaced_last: None,
        purged: false,
    }
}

/// Merges `entry` into `current` (the key's state, if any). Pure; see the
/// module docs for the rules.
pub fn apply(current: Option<&KeyState>, entry: &LogEntry) -> Applied {
    let version = entry.version();
    if entry.op == Op::Withheld {
        // Nothing of the write reached this region.
        return Applied {
            state: current
                .cloned()
                .unwrap_or_else(|| blank(None, false, version)),
            changed: false,
            conflict: None,
        };
    }
    let (inc, creator, needs_creator) = incarnation_of(entry);
    let mut conflict = None;
    let mut state = match current {
        None => blank(inc.clone(), needs_creator, version.clone()),
        Some(cur) if inc > cur.incarnation => {
            let (s, replaced) =
                replace_incarnation(cur, inc.clone(), creator, needs_creator, entry);
            conflict = replaced;
            s
        }
        Some(cur) if inc < cur.incarnation => return stale_write(cur, version),
        Some(cur) => cur.clone(),
    };
    debug_assert_eq!(state.incarnation, inc);

    if creator {
        if let Some(replaced) = complete_incarnation(&mut state, entry) {
            conflict = Some(replaced);
        }
    }
    if state.purged {
        // Writes to a purged incarnation change nothing (see purge_expired).
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

/// The state a write of a newer incarnation `inc` starts over `cur`, and
/// the conflict it settles now, if any.
fn replace_incarnation(
    cur: &KeyState,
    inc: Option<Incarnation>,
    creator: bool,
    needs_creator: bool,
    entry: &LogEntry,
) -> (KeyState, Option<Conflict>) {
    let version = entry.version();
    let mut s = blank(inc, needs_creator, version.clone());
    let mut conflict = None;
    if creator || !needs_creator {
        // The writer knew what it replaced (or replaced an expired
        // incarnation): judge the conflict now.
        // A pending state's writes are real writes too.
        if !cur.purged && entry.observed.as_ref() < Some(&cur.last) {
            conflict = Some(Conflict {
                winner: version,
                loser: cur.last.clone(),
            });
        }
    } else {
        s.replaced_last = (!cur.purged).then(|| cur.last.clone());
    }
    (s, conflict)
}

/// A write of an incarnation that `cur` already replaced: nothing changes,
/// but it may have been overwritten unseen.
fn stale_write(cur: &KeyState, version: Version) -> Applied {
    let conflict = (cur.created && cur.observed.as_ref() < Some(&version)).then(|| Conflict {
        winner: cur.last.clone(),
        loser: version,
    });
    Applied {
        state: cur.clone(),
        changed: false,
        conflict,
    }
}

/// The creator of `state`'s incarnation arrived: the incarnation is
/// complete, and what it replaced while pending is judged now.
fn complete_incarnation(state: &mut KeyState, entry: &LogEntry) -> Option<Conflict> {
    debug_assert!(
        !state.created,
        "an incarnation's creator applied twice: {:?}",
        state.incarnation
    );
    state.created = true;
    state.observed = entry.observed.clone();
    let replaced = state.replaced_last.take()?;
    (entry.observed.as_ref() < Some(&replaced)).then(|| Conflict {
        winner: entry.version(),
        loser: replaced,
    })
}

/// Joins two replicas' states of one key, for anti-entropy repair.
///
/// Commutative, associative and idempotent, and it agrees with [`apply`]:
/// joining replicas that each applied per-origin prefixes of a history shows
/// readers what applying the union of those prefixes shows. The higher
/// incarnation wins whole (as `apply` replaces); within one incarnation
/// every part joins by its own rule — PN-counter shares by maximum, hash
/// fields by version, set tags by union, expiry by version.
pub fn join(a: &KeyState, b: &KeyState) -> KeyState {
    use std::cmp::Ordering;
    match a.incarnation.cmp(&b.incarnation) {
        Ordering::Greater => return a.clone(),
        Ordering::Less => return b.clone(),
        Ordering::Equal => {}
    }
    let created = a.created || b.created;
    let mut out = KeyState {
        incarnation: a.incarnation.clone(),
        observed: if a.created {
            a.observed.clone()
        } else {
            b.observed.clone()
        },
        created,
        bytes: a.bytes.clone().or_else(|| b.bytes.clone()),
        counter: a.counter.clone(),
        delta_version: a.delta_version.clone().max(b.delta_version.clone()),
        hash: a.hash.clone(),
        hash_version: a.hash_version.clone().max(b.hash_version.clone()),
        set: a.set.clone(),
        set_version: a.set_version.clone().max(b.set_version.clone()),
        expiry: match (&a.expiry, &b.expiry) {
            (Some(x), Some(y)) => Some(if y.version > x.version {
                y.clone()
            } else {
                x.clone()
            }),
            (x, y) => x.clone().or_else(|| y.clone()),
        },
        last: a.last.clone().max(b.last.clone()),
        replaced_last: if created {
            None
        } else {
            a.replaced_last.clone().max(b.replaced_last.clone())
        },
        purged: a.purged || b.purged,
    };
    for (origin, share) in &b.counter {
        let mine = out.counter.entry(origin.clone()).or_default();
        mine.p = mine.p.max(share.p);
        mine.n = mine.n.max(share.n);
    }
    for (field, theirs) in &b.hash {
        match out.hash.get(field) {
            Some(mine) if mine.version >= theirs.version => {}
            _ => {
                out.hash.insert(field.clone(), theirs.clone());
            }
        }
    }
    for (member, theirs) in &b.set {
        let mine = out.set.entry(member.clone()).or_default();
        mine.adds.extend(theirs.adds.iter().cloned());
        mine.removed.extend(theirs.removed.iter().cloned());
    }
    if out.purged {
        out.bytes = None;
        out.counter.clear();
        out.hash.clear();
        out.set.clear();
    }
    out
}

fn newest(slot: &mut Option<Version>, version: &Version) {
    if slot.as_ref() < Some(version) {
        *slot = Some(version.clone());
    }
}

fn merge_op(state: &mut KeyState, entry: &LogEntry, version: &Version) {
    match &entry.op {
        Op::Put {
            value,
            expires_at_ms,
        } => {
            state.bytes = Some(value.clone());
            lww_expiry(state, *expires_at_ms, version);
        }
        // A tombstone incarnation has no contents of its own; typed writes
        // that revive it keep theirs.
        Op::Delete => {}
        Op::Add { delta, .. } => {
            let share = state.counter.entry(version.origin.clone()).or_default();
            if *delta >= 0 {
                share.p = share.p.saturating_add(delta.unsigned_abs());
            } else {
                share.n = share.n.saturating_add(delta.unsigned_abs());
            }
            newest(&mut state.delta_version, version);
        }
        Op::HashSet { fields, .. } => {
            for (f, v) in fields {
                set_field(&mut state.hash, f, Some(v.clone()), version);
            }
            newest(&mut state.hash_version, version);
        }
        Op::HashDel { fields, .. } => {
            for f in fields {
                set_field(&mut state.hash, f, None, version);
            }
            newest(&mut state.hash_version, version);
        }
        Op::SetAdd { members, .. } => {
            for m in members {
                state
                    .set
                    .entry(m.clone())
                    .or_default()
                    .adds
                    .insert(version.clone());
            }
            newest(&mut state.set_version, version);
        }
        Op::SetRemove { members, .. } => {
            for (m, seen) in members {
                state
                    .set
                    .entry(m.clone())
                    .or_default()
                    .removed
                    .extend(seen.iter().cloned());
            }
            newest(&mut state.set_version, version);
        }
        Op::Expire { expires_at_ms, .. } => lww_expiry(state, *expires_at_ms, version),
        Op::Withheld => {}
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

#[cfg(test)]
mod tests;
