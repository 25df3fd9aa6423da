//! [`Engine`]: the synchronous heart of the writer. It merges a batch of
//! [`Request`]s against the key states (as already changed by earlier
//! requests of the same batch), commits the whole batch in one backend
//! transaction, and only then answers each request.
//!
//! [`Engine::process`] is the one entry point. It stages each request by
//! kind (a local write, replicated entries, a purge, a repair, ...) into a
//! `Batch`, commits the batch, records the commit's figures in
//! [`DbStats`], and turns each staged answer into a [`Response`] — or, when
//! the commit failed, into a refusal.
//!
//! Owns merging, the hybrid logical clock and the version vector. Does not
//! own threads, queues or waiting: [`crate::writer::Db`] drives the engine
//! on its writer thread, and the deterministic simulation drives it
//! directly with an in-memory backend and a manual clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use meridian_core::hlc::{HlcClock, PhysicalClock};
use meridian_core::record::{apply, KeyState, Op};
use meridian_core::{LogEntry, RegionName, VersionVector};

use crate::backend::{Backend, CommitBatch, Durability, StoreError};
use crate::error::DbError;
use crate::request::{DecideMany, LocalOutcome, RemoteOutcome, Request, Response};
use crate::stats::{DbStats, DetectedConflict};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// This node's region: the origin of its local writes.
    pub region: RegionName,
    /// fsync per commit or not.
    pub durability: Durability,
    /// HLC max offset for remote stamps (see `meridian_core::hlc`).
    pub max_offset_ms: u64,
}

/// The synchronous heart of [`crate::writer::Db`]: merges a batch of
/// requests and commits it once. The writer thread drives it; the
/// deterministic simulation drives it directly with an in-memory backend
/// and a manual clock.
pub struct Engine<C: PhysicalClock> {
    backend: Arc<dyn Backend>,
    clock: HlcClock<C>,
    vv: VersionVector,
    config: DbConfig,
    stats: Arc<DbStats>,
    /// Every peer's acknowledged vector as merged so far: acks can arrive
    /// late or twice, and the stored copy must never go back.
    known_peer_vvs: BTreeMap<RegionName, VersionVector>,
    /// Peers whose merged vector changed since the last commit.
    peer_vvs: BTreeMap<RegionName, VersionVector>,
    /// Tables this region may not hold (pinned elsewhere): their remote
    /// entries are stored as placeholders, whatever a peer sent. Shared
    /// with [`crate::writer::Db::set_withheld`], which the node updates as
    /// modes change.
    withheld: Arc<RwLock<BTreeSet<String>>>,
    /// The last batch's maps, emptied, kept for their capacity: allocating
    /// and growing them per batch cost a sixth of the writer's time when
    /// applying a catch-up (rehashing and faulting in fresh pages).
    spare: (Overlay, Overlay),
}

/// Key states by `(table, key)`.
type Overlay = HashMap<(String, Vec<u8>), Option<KeyState>>;

/// Spare maps above this many entries' capacity are shrunk, so one huge
/// batch does not pin its memory.
const SPARE_OVERLAY_CAPACITY_MAX: usize = 16_384;

/// What a batch has changed so far, before its commit.
struct Batch {
    vv: VersionVector,
    /// States this batch wrote; the commit stores them.
    overlay: Overlay,
    /// States read ahead from the backend for replicated entries, as of the
    /// batch's start (only this thread commits, so nothing changes them).
    base: Overlay,
    log: Vec<LogEntry>,
    conflicts: Vec<DetectedConflict>,
    /// Apply time here minus commit time at the origin, seconds, per
    /// replicated entry merged.
    latencies: Vec<(RegionName, f64)>,
    failure: Option<StoreError>,
}

/// A request's answer, held until its batch is durable.
enum Pending {
    Local(Box<Result<LocalOutcome, DbError>>),
    LocalMany(Box<Result<Vec<LocalOutcome>, DbError>>),
    Remote(RemoteOutcome),
    Count(u64),
    Noted,
    /// A table given up: answered after the commit, once its data is gone
    /// (log entries through the vector, which every holder has).
    Withhold(String, VersionVector),
}

/// A staged batch taken apart for its commit.
struct Sealed {
    commit: CommitBatch,
    conflicts: Vec<DetectedConflict>,
    latencies: Vec<(RegionName, f64)>,
    failure: Option<StoreError>,
}

impl<C: PhysicalClock> Engine<C> {
    /// Opens the engine over `backend`, resuming from its metadata.
    pub fn open(
        backend: Arc<dyn Backend>,
        config: DbConfig,
        physical: C,
    ) -> Result<Self, StoreError> {
        let meta = backend.meta()?;
        Ok(Engine {
            backend,
            clock: HlcClock::new(physical, config.max_offset_ms, meta.hlc_floor),
            vv: meta.vv,
            config,
            stats: Arc::new(DbStats::default()),
            known_peer_vvs: meta.peer_vvs.clone(),
            peer_vvs: BTreeMap::new(),
            withheld: Arc::default(),
            spare: Default::default(),
        })
    }

    /// The version vector as of the last successful commit.
    pub fn vv(&self) -> &VersionVector {
        &self.vv
    }

    /// The HLC floor: every later local write is stamped above it.
    pub fn hlc_floor(&self) -> meridian_core::Hlc {
        self.clock.last()
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<DbStats> {
        &self.stats
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// This node's region.
    pub(crate) fn region(&self) -> &RegionName {
        &self.config.region
    }

    /// Every peer's acknowledged vector as merged so far (what the writer
    /// starts its `WAIT` view from).
    pub(crate) fn known_peer_vvs(&self) -> &BTreeMap<RegionName, VersionVector> {
        &self.known_peer_vvs
    }

    /// The set of tables not held here, shared with whoever updates it.
    pub(crate) fn withheld(&self) -> &Arc<RwLock<BTreeSet<String>>> {
        &self.withheld
    }

    /// Merges `batch` and commits it in one transaction; answers in order.
    /// If the commit fails, every request of the batch is refused.
    pub fn process(&mut self, batch: Vec<Request>) -> Vec<Response> {
        let started = Instant::now();
        let (overlay, base) = std::mem::take(&mut self.spare);
        let mut b = Batch {
            vv: self.vv.clone(),
            overlay,
            base,
            log: Vec::new(),
            conflicts: Vec::new(),
            latencies: Vec::new(),
            failure: None,
        };
        let floor_before = self.clock.last();
        let pending: Vec<Pending> = batch
            .into_iter()
            .map(|req| self.stage(req, &mut b))
            .collect();
        let sealed = self.seal(b);
        let result = match sealed.failure {
            Some(e) => Err(e),
            None if changes_nothing(&sealed.commit, floor_before) => Ok(()),
            None => self.backend.commit(&sealed.commit, self.config.durability),
        };
        self.stats
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                self.committed(sealed.commit, sealed.conflicts, sealed.latencies);
                pending.into_iter().map(|p| self.answer(p)).collect()
            }
            Err(e) => {
                // Nothing of the batch is durable: refuse every request in
                // it, keep the last committed vector, and keep running.
                self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "commit failed; the batch's writes were refused");
                self.peer_vvs = sealed.commit.peer_vvs;
                let msg = e.to_string();
                pending.into_iter().map(|p| refused(p, &msg)).collect()
            }
        }
    }

    /// Merges one request into the batch `b`, by kind; its answer waits
    /// for the commit.
    fn stage(&mut self, req: Request, b: &mut Batch) -> Pending {
        match req {
            Request::Purge {
                table,
                keys,
                closed_ms,
            } => Pending::Count(self.purge(b, &table, keys, closed_ms)),
            Request::Withhold { table, holders } => {
                // Entries every holder has acknowledged: nobody needs them
                // whole from here any more.
                let through = acknowledged_by_all(&self.known_peer_vvs, &holders);
                Pending::Withhold(table, through)
            }
            Request::Join { table, states } => Pending::Count(self.join(b, &table, states)),
            Request::Forget { table, key } => Pending::Count(self.forget(b, table, key)),
            Request::AdvanceClock => {
                self.clock.now();
                Pending::Noted
            }
            Request::PeerAck { peer, vv } => {
                self.note_peer_ack(peer, &vv);
                Pending::Noted
            }
            Request::Local { table, key, decide } => {
                let decide: DecideMany =
                    Box::new(move |states, now| Ok(vec![decide(states[0].as_ref(), now)?]));
                let outcome = self
                    .local_write(vec![(table, key)], decide, b)
                    .map(|mut v| v.pop().expect("one key, one outcome"));
                Pending::Local(Box::new(outcome))
            }
            Request::LocalMany { keys, decide } => {
                Pending::LocalMany(Box::new(self.local_write(keys, decide, b)))
            }
            Request::Remote { entries } => Pending::Remote(self.apply_remote(b, entries)),
        }
    }

    /// Purges the expired `keys` of `table` that `closed_ms` allows;
    /// returns how many.
    fn purge(&self, b: &mut Batch, table: &str, keys: Vec<Vec<u8>>, closed_ms: u64) -> u64 {
        let mut purged = 0;
        for key in keys {
            match self.current(b, table, &key) {
                Ok(Some(mut state)) => {
                    if state.purge_expired(closed_ms, self.config.max_offset_ms) {
                        b.overlay.insert((table.to_string(), key), Some(state));
                        purged += 1;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    b.failure.get_or_insert(e);
                }
            }
        }
        self.stats.purged_keys.fetch_add(purged, Ordering::Relaxed);
        purged
    }

    /// Joins a peer's `states` of `table` into ours; returns how many keys
    /// changed.
    fn join(&self, b: &mut Batch, table: &str, states: Vec<(Vec<u8>, KeyState)>) -> u64 {
        let mut changed = 0;
        for (key, theirs) in states {
            let mine = match self.current(b, table, &key) {
                Ok(mine) => mine,
                Err(e) => {
                    b.failure.get_or_insert(e);
                    continue;
                }
            };
            let merged = match &mine {
                Some(m) => meridian_core::record::join(m, &theirs),
                None => theirs,
            };
            if mine.as_ref() != Some(&merged) {
                changed += 1;
                b.overlay.insert((table.to_string(), key), Some(merged));
            }
        }
        self.stats
            .repaired_keys
            .fetch_add(changed, Ordering::Relaxed);
        changed
    }

    /// Loses one key's state (fault injection); returns 1 if it had one.
    fn forget(&self, b: &mut Batch, table: String, key: Vec<u8>) -> u64 {
        match self.current(b, &table, &key) {
            Ok(Some(mine)) => {
                b.overlay
                    .insert((table, key), Some(KeyState::lost(mine.last)));
                1
            }
            _ => 0,
        }
    }

    /// Merges a peer's acknowledged vector into what we know; a change is
    /// persisted with the batch.
    fn note_peer_ack(&mut self, peer: RegionName, vv: &VersionVector) {
        let known = self.known_peer_vvs.entry(peer.clone()).or_default();
        if !known.covers(vv) {
            known.merge(vv);
            self.peer_vvs.insert(peer, known.clone());
        }
    }

    /// Applies replicated entries in order into `b`: duplicates are
    /// skipped, a gap stops them, entries of withheld tables keep only
    /// their place in the log.
    fn apply_remote(&mut self, b: &mut Batch, entries: Vec<LogEntry>) -> RemoteOutcome {
        let mut out = RemoteOutcome::default();
        let now_us = self.clock.physical_us();
        let withheld = self
            .withheld
            .read()
            .expect("withheld lock is never poisoned")
            .clone();
        self.read_ahead(b, &entries, &withheld);
        for entry in entries {
            let have = b.vv.get(&entry.origin);
            if entry.seq <= have {
                out.duplicates += 1;
                continue;
            }
            if entry.seq != have + 1 {
                out.gap = Some((entry.origin.clone(), have + 1));
                break;
            }
            debug_assert!(
                entry.origin != self.config.region,
                "our own entries came back as remote"
            );
            if !self.clock.observe(entry.hlc) {
                self.stats.hlc_remote_ahead.fetch_add(1, Ordering::Relaxed);
            }
            if entry.op == Op::Withheld || withheld.contains(&entry.table) {
                b.log_withheld(entry);
            } else if !self.merge_remote(b, entry, now_us) {
                break;
            }
            out.applied += 1;
        }
        out
    }

    /// Merges one replicated entry (the next of its origin) into its key's
    /// state. False if the key could not be read: the batch then fails.
    fn merge_remote(&self, b: &mut Batch, entry: LogEntry, now_us: u64) -> bool {
        let current = match self.current(b, &entry.table, &entry.key) {
            Ok(s) => s,
            Err(e) => {
                b.failure.get_or_insert(e);
                return false;
            }
        };
        let applied = apply(current.as_ref(), &entry);
        if let Some(c) = applied.conflict {
            b.conflicts
                .push((entry.table.clone(), entry.key.clone(), c, current.clone()));
        }
        if applied.changed {
            b.overlay.insert(
                (entry.table.clone(), entry.key.clone()),
                Some(applied.state),
            );
        }
        b.latencies.push((
            entry.origin.clone(),
            now_us.saturating_sub(entry.hlc.wall_ms() * 1000) as f64 / 1e6,
        ));
        b.vv.advance(&entry.origin, entry.seq);
        b.log.push(entry);
        true
    }

    /// Decides and applies one local write to `keys` inside the batch `b`:
    /// each op is logged with its own sequence number, in key order.
    fn local_write(
        &mut self,
        keys: Vec<(String, Vec<u8>)>,
        decide: DecideMany,
        b: &mut Batch,
    ) -> Result<Vec<LocalOutcome>, DbError> {
        let mut befores = Vec::with_capacity(keys.len());
        for (table, key) in &keys {
            match self.current(b, table, key) {
                Ok(s) => befores.push(s),
                Err(e) => {
                    let msg = e.to_string();
                    b.failure.get_or_insert(e);
                    return Err(DbError::Store(StoreError::Io(msg)));
                }
            }
        }
        let now_ms = self.physical_now();
        let ops = decide(&befores, now_ms).map_err(DbError::Rejected)?;
        if ops.len() != keys.len() {
            return Err(DbError::Rejected(format!(
                "internal error: {} ops decided for {} keys",
                ops.len(),
                keys.len()
            )));
        }
        // A key named twice (`MSET a 1 a 2`): its later op must see the
        // earlier op's result, which only the overlay holds.
        let repeated: Vec<bool> = (0..keys.len())
            .map(|i| keys[..i].contains(&keys[i]))
            .collect();
        let mut outcomes = Vec::with_capacity(keys.len());
        for (i, ((table, key), op)) in keys.into_iter().zip(ops).enumerate() {
            let decided = std::mem::take(&mut befores[i]);
            let before = if repeated[i] {
                b.overlay
                    .get(&(table.clone(), key.clone()))
                    .cloned()
                    .unwrap_or(decided)
            } else {
                decided
            };
            outcomes.push(match op {
                Some(op) => self.log_local_op(b, table, key, before, op),
                None => LocalOutcome {
                    before: before.clone(),
                    after: before,
                    entry: None,
                },
            });
        }
        Ok(outcomes)
    }

    /// Logs one decided local `op` on `table`/`key` (whose state is
    /// `before`) with the next own sequence, and applies it in `b`.
    fn log_local_op(
        &mut self,
        b: &mut Batch,
        table: String,
        key: Vec<u8>,
        before: Option<KeyState>,
        op: Op,
    ) -> LocalOutcome {
        let seq = b.vv.get(&self.config.region) + 1;
        let entry = LogEntry {
            origin: self.config.region.clone(),
            seq,
            hlc: self.clock.now(),
            table: table.clone(),
            key: key.clone(),
            observed: before.as_ref().map(|s| s.last.clone()),
            op,
        };
        let applied = apply(before.as_ref(), &entry);
        // A local write can lose to a remote write stamped far ahead
        // (beyond the clock's max offset, accepted by policy): record it
        // like any other conflict.
        if let Some(c) = applied.conflict.clone() {
            b.conflicts
                .push((table.clone(), key.clone(), c, before.clone()));
        }
        b.vv.advance(&self.config.region, seq);
        b.overlay.insert((table, key), Some(applied.state.clone()));
        b.log.push(entry.clone());
        LocalOutcome {
            before,
            after: Some(applied.state),
            entry: Some(entry),
        }
    }

    /// Takes the staged batch apart into what its commit writes; keeps its
    /// emptied maps for the next batch.
    fn seal(&mut self, b: Batch) -> Sealed {
        let Batch {
            vv,
            mut overlay,
            mut base,
            log,
            conflicts,
            latencies,
            failure,
        } = b;
        let states = overlay
            .drain()
            .filter_map(|((t, k), s)| s.map(|s| (t, k, s)))
            .collect();
        base.clear();
        for map in [&mut overlay, &mut base] {
            map.shrink_to(SPARE_OVERLAY_CAPACITY_MAX);
        }
        self.spare = (overlay, base);
        let commit = CommitBatch {
            states,
            log,
            vv,
            hlc_floor: self.clock.last(),
            peer_vvs: std::mem::take(&mut self.peer_vvs),
        };
        Sealed {
            commit,
            conflicts,
            latencies,
            failure,
        }
    }

    /// After a successful commit: counts what it wrote and adopts its
    /// vector.
    fn committed(
        &mut self,
        commit: CommitBatch,
        conflicts: Vec<DetectedConflict>,
        latencies: Vec<(RegionName, f64)>,
    ) {
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        let expiring = commit
            .states
            .iter()
            .filter(|(_, _, s)| s.expires_at_ms().is_some())
            .count() as u64;
        if expiring > 0 {
            self.stats
                .expiring_states
                .fetch_add(expiring, Ordering::Relaxed);
        }
        let locals = commit
            .log
            .iter()
            .filter(|e| e.origin == self.config.region)
            .count() as u64;
        self.stats.local_writes.fetch_add(locals, Ordering::Relaxed);
        self.stats
            .remote_applied
            .fetch_add(commit.log.len() as u64 - locals, Ordering::Relaxed);
        self.stats
            .record_own_bytes(&self.config.region, &commit.log);
        if !conflicts.is_empty() {
            self.stats.record_conflicts(conflicts, self.physical_now());
        }
        self.stats.record_latencies(latencies);
        debug_assert!(commit.vv.covers(&self.vv), "version vector went backwards");
        self.vv = commit.vv;
    }

    /// A staged answer once its batch is durable.
    fn answer(&self, p: Pending) -> Response {
        match p {
            Pending::Local(outcome) => Response::Local(outcome),
            Pending::LocalMany(outcome) => Response::LocalMany(outcome),
            Pending::Remote(outcome) => Response::Remote(Ok(outcome)),
            Pending::Count(n) => Response::Count(Ok(n)),
            Pending::Noted => Response::Noted,
            // After the commit: whatever the batch stored of the table
            // goes too.
            Pending::Withhold(table, through) => Response::Count(self.drop_table(&table, &through)),
        }
    }

    /// Drops the data of `table`, given up, and its entries `through`;
    /// returns the states dropped.
    fn drop_table(&self, table: &str, through: &VersionVector) -> Result<u64, DbError> {
        self.backend
            .withhold_table(table, through)
            .map(|(entries, states)| {
                tracing::info!(%table, entries, states, "table given up: its data dropped, its log entries withheld");
                self.stats.withheld_states.fetch_add(states, Ordering::Relaxed);
                self.stats.withheld_entries.fetch_add(entries, Ordering::Relaxed);
                states
            })
            .map_err(DbError::Store)
    }

    /// Wall time for TTL decisions and lag. The clock's physical source is
    /// the one time source, so simulations control both.
    fn physical_now(&self) -> u64 {
        self.clock.physical_ms()
    }

    /// A key's state as this batch sees it: its own writes first, then
    /// what was read ahead, then the backend.
    fn current(&self, b: &Batch, table: &str, key: &[u8]) -> Result<Option<KeyState>, StoreError> {
        let k = (table.to_string(), key.to_vec());
        if let Some(s) = b.overlay.get(&k).or_else(|| b.base.get(&k)) {
            return Ok(s.clone());
        }
        self.backend.get(table, key)
    }

    /// Reads the states `entries` will merge into in one backend call (one
    /// read transaction instead of one per entry).
    fn read_ahead(&self, b: &mut Batch, entries: &[LogEntry], withheld: &BTreeSet<String>) {
        let wanted: Vec<(&str, &[u8])> = entries
            .iter()
            .filter(|e| {
                e.seq > b.vv.get(&e.origin) && e.op != Op::Withheld && !withheld.contains(&e.table)
            })
            .map(|e| (e.table.as_str(), e.key.as_slice()))
            .collect();
        if wanted.len() < 2 {
            return;
        }
        match self.backend.get_many(&wanted) {
            Ok(states) => {
                for ((t, k), state) in wanted.into_iter().zip(states) {
                    b.base.insert((t.to_string(), k.to_vec()), state);
                }
            }
            // Not fatal here: each entry reads its key again, and an
            // error there refuses the batch.
            Err(e) => tracing::warn!(error = %e, "reading ahead for replicated entries failed"),
        }
    }
}

impl Batch {
    /// Takes a replicated entry of a table this region may not hold: only
    /// its place in the origin's log, as a placeholder.
    fn log_withheld(&mut self, entry: LogEntry) {
        self.vv.advance(&entry.origin, entry.seq);
        self.log.push(if entry.op == Op::Withheld {
            entry
        } else {
            entry.withheld()
        });
    }
}

/// Whether committing `commit` would change nothing durable: no states, no
/// entries, no peer vectors, and the clock's floor where it was.
fn changes_nothing(commit: &CommitBatch, floor_before: meridian_core::Hlc) -> bool {
    commit.states.is_empty()
        && commit.log.is_empty()
        && commit.peer_vvs.is_empty()
        && commit.hlc_floor == floor_before
}

/// The vector every one of `holders` has acknowledged, as far as `known`
/// says (a holder not heard from has acknowledged nothing).
fn acknowledged_by_all(
    known: &BTreeMap<RegionName, VersionVector>,
    holders: &[RegionName],
) -> VersionVector {
    let mut through: Option<VersionVector> = None;
    for h in holders {
        let acked = known.get(h).cloned().unwrap_or_default();
        through = Some(match through {
            None => acked,
            Some(t) => t.min_with(&acked),
        });
    }
    through.unwrap_or_default()
}

/// A staged answer once its batch failed to commit (`msg` says why):
/// whatever it would have said becomes a refusal, except refusals the
/// decision made itself.
fn refused(p: Pending, msg: &str) -> Response {
    let failed = || DbError::Store(StoreError::Io(msg.to_string()));
    match p {
        Pending::Local(outcome) => Response::Local(Box::new(match *outcome {
            Ok(_) => Err(failed()),
            Err(e) => Err(e),
        })),
        Pending::LocalMany(outcome) => Response::LocalMany(Box::new(match *outcome {
            Ok(_) => Err(failed()),
            Err(e) => Err(e),
        })),
        Pending::Remote(_) => Response::Remote(Err(failed())),
        Pending::Count(_) | Pending::Withhold(..) => Response::Count(Err(failed())),
        Pending::Noted => Response::Noted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemStore;
    use meridian_core::SystemClock;

    fn engine() -> Engine<SystemClock> {
        let config = DbConfig {
            region: RegionName::new("us-east").unwrap(),
            durability: Durability::None,
            max_offset_ms: 500,
        };
        Engine::open(Arc::new(MemStore::new()), config, SystemClock).unwrap()
    }

    fn put(v: &str) -> Option<Op> {
        Some(Op::Put {
            value: v.as_bytes().to_vec(),
            expires_at_ms: None,
        })
    }

    fn many(
        e: &mut Engine<SystemClock>,
        keys: &[&str],
        decide: DecideMany,
    ) -> Result<Vec<LocalOutcome>, DbError> {
        let keys = keys
            .iter()
            .map(|k| ("t".to_string(), k.as_bytes().to_vec()))
            .collect();
        match e.process(vec![Request::LocalMany { keys, decide }]).pop() {
            Some(Response::LocalMany(r)) => *r,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_key_named_twice_sees_its_earlier_op() {
        let mut e = engine();
        let out = many(
            &mut e,
            &["a", "b", "a"],
            Box::new(|_, _| Ok(vec![put("1"), put("2"), put("3")])),
        )
        .unwrap();
        assert!(out[0].before.is_none() && out[1].before.is_none());
        assert_eq!(
            out[2].before.as_ref().and_then(|s| s.bytes()),
            Some(b"1".to_vec())
        );
        assert_eq!(
            out.iter()
                .map(|o| o.entry.as_ref().unwrap().seq)
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let a = e.backend().get("t", b"a").unwrap().unwrap();
        assert_eq!(a.bytes(), Some(b"3".to_vec()));
    }

    #[test]
    fn a_refused_multi_key_write_writes_nothing() {
        let mut e = engine();
        let err = many(&mut e, &["a", "b"], Box::new(|_, _| Err("ERR no".into()))).unwrap_err();
        assert!(matches!(err, DbError::Rejected(m) if m == "ERR no"));
        assert!(e.backend().get("t", b"a").unwrap().is_none());
        assert_eq!(e.vv().get(&RegionName::new("us-east").unwrap()), 0);
    }

    #[test]
    fn a_table_is_withheld_through_what_every_holder_acknowledged() {
        let (us, eu, ap) = (
            RegionName::new("us-east").unwrap(),
            RegionName::new("eu-west").unwrap(),
            RegionName::new("ap-south").unwrap(),
        );
        let vv = |a: u64, b: u64| {
            let mut v = VersionVector::new();
            v.advance(&us, a);
            v.advance(&eu, b);
            v
        };
        let known = BTreeMap::from([(eu.clone(), vv(5, 3)), (ap.clone(), vv(2, 7))]);
        let through = acknowledged_by_all(&known, &[eu.clone(), ap.clone()]);
        assert_eq!((through.get(&us), through.get(&eu)), (2, 3));
        let silent = RegionName::new("sa-east").unwrap();
        let through = acknowledged_by_all(&known, &[eu, silent]);
        assert_eq!((through.get(&us), through.get(&ap)), (0, 0));
    }
}
