//! Table modes at run time: who may write a table now, under which epoch,
//! and how that changes — replicated, so every region learns it.
//!
//! The topology config gives each table its first mode (epoch 0). A change
//! is a record in the control table [`CONTROL_TABLE`] (key: the table's
//! name; value: `multi_master@7` or `single_master:eu-west@8`), written like
//! any other replicated write, so it is durable, survives restarts, and
//! reaches every region in the writer's log order. Each region's [`Modes`]
//! is the config overlaid with the records it has applied.
//!
//! **Who changes a table.** Only its *coordinator*: the home of a
//! single-master table, otherwise the cluster's master region. Changes of
//! one table are therefore made one at a time by one region, each after
//! the last one was applied there, so epochs only grow and a later record
//! always carries a later HLC than the one it replaces (last-writer-wins
//! picks it everywhere).
//!
//! **Epochs fence writes.** Each write to a configured table is stamped,
//! when it is planned, with its table's epoch; the storage writer re-checks the
//! stamp just before deciding it and refuses the write if the epoch moved
//! or the table is fenced for a move. A forwarded write carries the
//! forwarding region's epoch; the home refuses an older one (the client
//! retries and is forwarded to the new home) and briefly waits to learn a
//! newer one. So a home that gave its table away never decides another
//! write for it.
//!
//! **Planned switchover** (`move_home`, at the current home `H`, to `N`):
//! fence the table at `H` (its writes get `TRYAGAIN`), write the record
//! `single_master:N@e+1` at `H` — every write `H` decided for the table is
//! before it in `H`'s log, so `N` has applied them all once it applies the
//! record — then wait until `N` acknowledges the record. `N` takes writes
//! from the moment it applies the record; `H` forwards to `N` from the
//! moment the record is committed. Nothing acknowledged is lost (RPO 0),
//! and the write unavailability is the record's commit plus `H`→`N`
//! one-way delay, reported by the move.
//!
//! **Residency at run time.** A table made pinned (or pinned to fewer
//! regions) is given up by every region now outside: the node tells its
//! replicator (placeholders from then on, in and out) and its store (the
//! table's states dropped, its stored log entries rewritten as
//! placeholders). A region that gains a table gets its earlier data back
//! through anti-entropy. Bytes of the dropped data may stay in the store
//! file's free pages until they are reused.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::config::TableMode;
use meridian_core::{Op, RegionName, Topology, VersionVector};
use meridian_store::db::Db;
use meridian_store::StoreError;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use meridian_core::config::CONTROL_TABLE;
pub use meridian_core::ModeSpec;

/// How long a switchover waits for the new home to apply the change (it
/// is committed either way; this only bounds how long the caller waits to
/// hear that the new home serves).
pub const MOVE_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Shortest time between two re-reads of the control table: under load
/// every commit changes the applied vector, and one read per commit would
/// be waste; a mode change is seen at most this much later.
pub const REFRESH_INTERVAL_MIN: Duration = Duration::from_millis(5);

/// Mode records kept: one per table, and no more tables than this.
pub const CONTROL_RECORDS_MAX: usize = 4096;

/// Told of each new topology before it is published ([`Modes::on_change`]).
pub type ModesHook = Box<dyn Fn(&Topology) + Send + Sync>;

/// One table's mode change, as stored in [`CONTROL_TABLE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeRecord {
    /// The mode.
    pub mode: ModeSpec,
    /// Its epoch: 1 for the first change of the configured mode.
    pub epoch: u64,
}

impl ModeRecord {
    /// `multi_master@7`, `single_master:eu-west@8` or
    /// `pinned:forward:eu-west,us-east@9`.
    pub fn encode(&self) -> String {
        format!("{}@{}", self.mode, self.epoch)
    }

    /// The inverse of [`ModeRecord::encode`].
    pub fn decode(text: &str) -> Option<ModeRecord> {
        let (mode, epoch) = text.rsplit_once('@')?;
        Some(ModeRecord {
            mode: mode.parse().ok()?,
            epoch: epoch.parse().ok()?,
        })
    }
}

/// The modes a region applies now.
#[derive(Debug)]
pub struct View {
    /// The config with every applied change.
    pub topology: Arc<Topology>,
    /// Each table's epoch (absent: 0, the config's).
    pub epochs: BTreeMap<String, u64>,
}

impl View {
    /// The home of `table` if it is single-master.
    pub fn home(&self, table: &str) -> Option<RegionName> {
        self.topology
            .tables
            .iter()
            .find(|t| t.name == table)
            .and_then(|t| match &t.mode {
                TableMode::SingleMaster { home } => Some(home.clone()),
                _ => None,
            })
    }

    /// `table`'s epoch.
    pub fn epoch(&self, table: &str) -> u64 {
        self.epochs.get(table).copied().unwrap_or(0)
    }

    /// Why region `here` may not decide writes to `table`, if it may not.
    pub fn refuses_writes(&self, table: &str, here: &RegionName) -> Option<String> {
        let t = self.topology.tables.iter().find(|t| t.name == table)?;
        match &t.mode {
            TableMode::SingleMaster { home } if home != here => Some(format!(
                "TRYAGAIN table `{table}` is single_master with home {home} now; retry"
            )),
            TableMode::Pinned { regions, .. } if !regions.contains(here) => Some(format!(
                "TRYAGAIN table `{table}` is no longer pinned to {here}; retry"
            )),
            _ => None,
        }
    }
}

/// What a finished change reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeReport {
    /// The table.
    pub table: String,
    /// Its mode now.
    pub mode: ModeSpec,
    /// The new epoch.
    pub epoch: u64,
    /// The region that made the change (the old coordinator).
    pub decided_by: RegionName,
    /// For a move: from fencing the old home until the new home had the
    /// record (its acknowledgement arrived back), in ms — the longest any
    /// write to the table had to wait or retry.
    pub unavailable_ms: Option<f64>,
}

/// How many `Modes` (nodes) one thread keeps a view of; more exist only
/// in tests that run several nodes in one process.
const THREAD_VIEWS_MAX: usize = 8;

/// Distinguishes `Modes` instances in [`THREAD_VIEWS`].
static NEXT_MODES_ID: AtomicU64 = AtomicU64::new(1);

/// A thread's copy of a view it read, and the generation it was read at.
struct ThreadView {
    modes: u64,
    generation: u64,
    view: Arc<View>,
}

thread_local! {
    /// Each thread's copies of the newest views it read: every keyed
    /// command looks its table up, and reading the shared view takes its
    /// lock and bumps its count — one cache line written by every worker
    /// thread, a few per cent of a pipelined `GET`. A copy is refreshed
    /// when the generation moves.
    static THREAD_VIEWS: RefCell<Vec<ThreadView>> = const { RefCell::new(Vec::new()) };
}

/// A region's table modes.
pub struct Modes {
    base: Arc<Topology>,
    view: watch::Sender<Arc<View>>,
    /// Bumped after each new view is published.
    generation: AtomicU64,
    /// This instance, for the threads' copies.
    id: u64,
    /// Tables fenced for a change made here, with the epoch they were
    /// fenced at (a fence no longer counts once the view moved past it).
    fenced: Mutex<BTreeMap<String, u64>>,
    /// Held through each re-read, so views are published in scan order.
    refreshing: Mutex<()>,
    /// Told of every new topology before it is published (the node keeps
    /// residency in step with it).
    on_change: Mutex<Option<ModesHook>>,
    /// One change at a time on this node.
    changing: tokio::sync::Mutex<()>,
    /// How long a move waits for the new home ([`MOVE_ACK_TIMEOUT`]).
    move_ack_timeout: Duration,
}

impl Modes {
    /// The modes of `base`, before any record is read.
    pub fn new(base: Arc<Topology>) -> Self {
        Modes {
            view: watch::Sender::new(Arc::new(View {
                topology: base.clone(),
                epochs: BTreeMap::new(),
            })),
            base,
            generation: AtomicU64::new(0),
            id: NEXT_MODES_ID.fetch_add(1, Ordering::Relaxed),
            fenced: Mutex::default(),
            refreshing: Mutex::default(),
            on_change: Mutex::default(),
            changing: tokio::sync::Mutex::new(()),
            move_ack_timeout: MOVE_ACK_TIMEOUT,
        }
    }

    /// The same, waiting `timeout` for a new home's acknowledgement.
    pub fn with_move_ack_timeout(mut self, timeout: Duration) -> Self {
        self.move_ack_timeout = timeout;
        self
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// Every later view, as it is published.
    pub fn subscribe(&self) -> watch::Receiver<Arc<View>> {
        self.view.subscribe()
    }

    /// The current topology.
    pub fn topology(&self) -> Arc<Topology> {
        self.view.borrow().topology.clone()
    }

    /// Runs `f` on the current topology without touching shared state
    /// (this thread's copy, refreshed when a new view was published). A
    /// view published while `f` runs elsewhere is seen by the next call.
    pub fn with_topology<R>(&self, f: impl FnOnce(&Topology) -> R) -> R {
        // Read before the view: a copy taken now is at least this new.
        let generation = self.generation.load(Ordering::Acquire);
        THREAD_VIEWS.with(|cell| {
            // Busy only if `f` calls back in here: it reads the shared view.
            let Ok(mut views) = cell.try_borrow_mut() else {
                return f(&self.view.borrow().topology);
            };
            let fresh = || ThreadView {
                modes: self.id,
                generation,
                view: self.view(),
            };
            let i = match views.iter().position(|v| v.modes == self.id) {
                Some(i) if views[i].generation == generation => i,
                Some(i) => {
                    views[i] = fresh();
                    i
                }
                None => {
                    if views.len() >= THREAD_VIEWS_MAX {
                        views.remove(0);
                    }
                    views.push(fresh());
                    views.len() - 1
                }
            };
            f(&views[i].view.topology)
        })
    }

    /// Re-reads the control table and publishes a new view if it changed.
    pub fn refresh(&self, db: &Db) -> Result<(), StoreError> {
        let _serial = self
            .refreshing
            .lock()
            .expect("refresh lock is never poisoned");
        let rows = db.scan(CONTROL_TABLE, None, CONTROL_RECORDS_MAX)?;
        let now = meridian_core::PhysicalClock::now_ms(&meridian_core::SystemClock);
        let mut records = BTreeMap::new();
        for (key, state) in rows {
            if state.is_absent(now) {
                continue;
            }
            let (Ok(table), Some(Some(record))) = (
                String::from_utf8(key),
                state.bytes().map(|b| {
                    String::from_utf8(b)
                        .ok()
                        .and_then(|t| ModeRecord::decode(&t))
                }),
            ) else {
                tracing::warn!("undecodable table mode record ignored");
                continue;
            };
            records.insert(table, record);
        }
        let current = self.view();
        let epochs: BTreeMap<String, u64> =
            records.iter().map(|(t, r)| (t.clone(), r.epoch)).collect();
        if epochs == current.epochs {
            return Ok(());
        }
        if current
            .epochs
            .iter()
            .any(|(t, e)| epochs.get(t).copied().unwrap_or(0) < *e)
        {
            // Records only ever advance; an older read is not published.
            tracing::warn!("table modes read older than the ones applied; ignored");
            return Ok(());
        }
        let mut topology = (*self.base).clone();
        for table in &mut topology.tables {
            if let Some(r) = records.get(&table.name) {
                table.mode = TableMode::from(&r.mode);
            }
        }
        for (t, r) in &records {
            if epochs.get(t) != current.epochs.get(t) {
                tracing::info!(table = %t, mode = %r.encode(), "table mode changed");
            }
        }
        if let Some(hook) = &*self.on_change.lock().expect("hook lock is never poisoned") {
            hook(&topology);
        }
        self.view.send_replace(Arc::new(View {
            topology: Arc::new(topology),
            epochs,
        }));
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Calls `hook` with the current topology now and with every new one
    /// before it is published.
    pub fn on_change(&self, hook: ModesHook) {
        let _serial = self
            .refreshing
            .lock()
            .expect("refresh lock is never poisoned");
        hook(&self.topology());
        *self.on_change.lock().expect("hook lock is never poisoned") = Some(hook);
    }

    /// Waits (at most `timeout`) until `table` is at least at `epoch` here.
    pub async fn wait_epoch(&self, table: &str, epoch: u64, timeout: Duration) -> bool {
        let mut rx = self.view.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|v| v.epoch(table) >= epoch))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The epochs of the configured tables among `tables` (the ones whose
    /// mode can change), as a write planned now is stamped.
    pub fn stamp<'a>(&self, tables: impl Iterator<Item = &'a str>) -> Vec<(String, u64)> {
        let view = self.view();
        let mut out: Vec<(String, u64)> = Vec::new();
        for t in tables {
            let changeable = view.topology.tables.iter().any(|x| x.name == t);
            if changeable && !out.iter().any(|(n, _)| n == t) {
                out.push((t.to_string(), view.epoch(t)));
            }
        }
        out
    }

    /// Why a write stamped `stamp` may not be decided in region `here`
    /// now, if it may not. The mode now in force decides, whatever view
    /// the command was routed by: a view published between routing and
    /// stamping moves the epoch before the stamp reads it, so the epoch
    /// alone cannot tell.
    pub fn refuse(&self, stamp: &[(String, u64)], here: &RegionName) -> Option<String> {
        if stamp.is_empty() {
            return None;
        }
        let view = self.view();
        let fenced = self.fenced.lock().expect("fence lock is never poisoned");
        for (table, epoch) in stamp {
            if fenced.get(table) == Some(&view.epoch(table)) {
                return Some(format!(
                    "TRYAGAIN table `{table}` is changing mode in this region; retry in a moment"
                ));
            }
            let now = view.epoch(table);
            if now != *epoch {
                let home = view
                    .home(table)
                    .map_or("every region".to_string(), |h| h.to_string());
                return Some(format!(
                    "TRYAGAIN table `{table}` changed mode (epoch {epoch} → {now}; writes now go to {home}); retry"
                ));
            }
            if let Some(why) = view.refuses_writes(table, here) {
                return Some(why);
            }
        }
        None
    }

    /// The region that may change `table` now.
    pub fn coordinator(&self, table: &str) -> RegionName {
        let view = self.view();
        view.home(table)
            .unwrap_or_else(|| view.topology.master_region.clone())
    }

    /// Whether any region could change `table` to `mode` (the table exists
    /// and is not pinned, the home is a region) — checked before a change
    /// is sent to the coordinator.
    pub fn check(&self, table: &str, mode: &ModeSpec) -> Result<(), String> {
        let view = self.view();
        let Some(config) = view.topology.tables.iter().find(|t| t.name == table) else {
            return Err(format!(
                "unknown table `{table}`; only configured [[tables]] have a mode to change"
            ));
        };
        let _ = config;
        let named: Vec<&RegionName> = match mode {
            ModeSpec::MultiMaster => Vec::new(),
            ModeSpec::SingleMaster { home } => vec![home],
            ModeSpec::Pinned { regions, .. } => {
                if regions.is_empty() {
                    return Err("a pinned table needs at least one allowed region".into());
                }
                regions.iter().collect()
            }
        };
        if let Some(unknown) = named.iter().find(|r| view.topology.region(r).is_none()) {
            return Err(format!("unknown region `{unknown}`"));
        }
        Ok(())
    }

    /// Changes `table` to `mode`; this region must be its coordinator. A
    /// single-master table's new home gets it by a planned switchover.
    pub async fn change(
        &self,
        db: &Db,
        table: &str,
        mode: ModeSpec,
    ) -> Result<ChangeReport, String> {
        let _one = self.changing.lock().await;
        let me = db.region().clone();
        self.check(table, &mode)?;
        let view = self.view();
        let config = view
            .topology
            .tables
            .iter()
            .find(|t| t.name == table)
            .expect("checked above");
        let coordinator = self.coordinator(table);
        if coordinator != me {
            return Err(format!(
                "TRYAGAIN region {me} does not coordinate table `{table}`; {coordinator} does"
            ));
        }
        if ModeSpec::from(&config.mode) == mode {
            return Ok(ChangeReport {
                table: table.to_string(),
                mode,
                epoch: view.epoch(table),
                decided_by: me,
                unavailable_ms: None,
            });
        }
        let epoch = view.epoch(table) + 1;
        let record = ModeRecord {
            mode: mode.clone(),
            epoch,
        };
        let moving_from_here =
            matches!(&config.mode, TableMode::SingleMaster { home } if *home == me);
        let started = Instant::now();
        if moving_from_here {
            // From here on no write to the table is decided here; those
            // decided before are ahead of the record in this region's log.
            self.fenced
                .lock()
                .expect("fence lock is never poisoned")
                .insert(table.to_string(), view.epoch(table));
        }
        let value = record.encode().into_bytes();
        let written = db
            .write(
                CONTROL_TABLE,
                table.as_bytes(),
                Box::new(move |_, _| {
                    Ok(Some(Op::Put {
                        value,
                        expires_at_ms: None,
                    }))
                }),
            )
            .await;
        let refreshed = self.refresh(db);
        // Lifted once this region applies the new epoch (or nothing was
        // written); if the re-read failed the fence stays until the view
        // moves past it.
        if written.is_err() || refreshed.is_ok() {
            self.fenced
                .lock()
                .expect("fence lock is never poisoned")
                .remove(table);
        }
        let entry = written
            .map_err(|e| format!("mode change not stored: {e}"))?
            .entry
            .ok_or("mode change not stored: nothing written")?;
        refreshed.map_err(|e| format!("mode change stored, re-reading it failed: {e}"))?;
        let mut unavailable_ms = None;
        if let (true, ModeSpec::SingleMaster { home }) = (moving_from_here, &mode) {
            if *home != me {
                let mut token = VersionVector::new();
                token.advance(&me, entry.seq);
                if db.wait_for_peer(home, &token, self.move_ack_timeout).await {
                    unavailable_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                } else {
                    return Err(format!(
                        "TRYAGAIN table `{table}` moved to {home} (epoch {epoch}, committed here), but {home} has not confirmed applying it within {} ms; it takes writes once it does",
                        self.move_ack_timeout.as_millis()
                    ));
                }
            }
        }
        Ok(ChangeReport {
            table: table.to_string(),
            mode,
            epoch,
            decided_by: me,
            unavailable_ms,
        })
    }
}

/// Keeps `modes` current: re-reads the control table whenever this region
/// applies writes (at most every [`REFRESH_INTERVAL_MIN`]), until `shutdown`.
pub fn spawn_watcher(modes: Arc<Modes>, db: Db, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut applied = db.subscribe();
        loop {
            if let Err(e) = modes.refresh(&db) {
                tracing::warn!(error = %e, "reading table modes failed; keeping the last ones");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = applied.changed() => if changed.is_err() { return },
            }
            tokio::time::sleep(REFRESH_INTERVAL_MIN).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::config::TopologyConfig;
    use meridian_store::db::DbConfig;
    use meridian_store::{Durability, MemStore};

    const TOPOLOGY: &str = r#"
[cluster]
name = "t"
secret = "0123456789abcdef0123"

[[regions]]
name = "us-east"
peer = "127.0.0.1:7001"
resp = "127.0.0.1:6001"
admin = "127.0.0.1:8001"

[[regions]]
name = "eu-west"
peer = "127.0.0.1:7002"
resp = "127.0.0.1:6002"
admin = "127.0.0.1:8002"

[[tables]]
name = "ledger"
key_prefixes = ["ledger:"]
mode = { single_master = { home = "us-east" } }

[[tables]]
name = "vault"
key_prefixes = ["vault:"]
mode = { pinned = { regions = ["us-east"] } }
"#;

    fn setup() -> (Modes, Db) {
        let topology = TopologyConfig::from_toml(TOPOLOGY)
            .unwrap()
            .validate()
            .unwrap();
        let db = Db::start(
            Arc::new(MemStore::new()),
            DbConfig {
                region: "us-east".parse().unwrap(),
                durability: Durability::None,
                max_offset_ms: 500,
            },
            meridian_core::SystemClock,
        )
        .unwrap();
        (
            Modes::new(Arc::new(topology)).with_move_ack_timeout(Duration::from_millis(50)),
            db,
        )
    }

    #[tokio::test]
    async fn a_write_stamped_before_a_change_is_refused_after_it() {
        let (modes, db) = setup();
        let stamp = modes.stamp(["ledger", "default", "vault"].into_iter());
        assert_eq!(
            stamp,
            vec![("ledger".to_string(), 0), ("vault".to_string(), 0)],
            "every configured table, not the default one"
        );
        let us: RegionName = "us-east".parse().unwrap();
        assert_eq!(modes.refuse(&stamp, &us), None);
        let eu: RegionName = "eu-west".parse().unwrap();
        let report = modes
            .change(&db, "ledger", ModeSpec::SingleMaster { home: eu.clone() })
            .await;
        // No peer acknowledges in this test: the change is committed and
        // the caller told the new home has not confirmed it yet.
        let err = report.unwrap_err();
        assert!(
            err.starts_with("TRYAGAIN") && err.contains("committed here"),
            "{err}"
        );
        assert_eq!(modes.view().epoch("ledger"), 1);
        assert_eq!(modes.coordinator("ledger"), eu);
        let why = modes.refuse(&stamp, &us).expect("the old stamp is refused");
        assert!(
            why.contains("epoch 0 → 1") && why.contains("eu-west"),
            "{why}"
        );
        // A fresh stamp is fine at the new home, and refused at the old
        // one (a command routed by the view before the change, stamped
        // after it); this region is no longer the coordinator.
        let fresh = modes.stamp(["ledger"].into_iter());
        assert_eq!(modes.refuse(&fresh, &eu), None);
        let why = modes.refuse(&fresh, &us).expect("the old home is refused");
        assert!(why.contains("home eu-west now"), "{why}");
        let pinned = modes.stamp(["vault"].into_iter());
        assert_eq!(modes.refuse(&pinned, &us), None);
        let why = modes
            .refuse(&pinned, &eu)
            .expect("outside the pinned regions");
        assert!(why.contains("no longer pinned to eu-west"), "{why}");
        let e = modes
            .change(&db, "ledger", ModeSpec::MultiMaster)
            .await
            .unwrap_err();
        assert!(e.contains("eu-west does"), "{e}");
        // The record survives a re-read from the store.
        let again = Modes::new(modes.base.clone());
        again.refresh(&db).unwrap();
        assert_eq!(again.view().epoch("ledger"), 1);
        assert_eq!(modes.check("vault", &ModeSpec::MultiMaster), Ok(()));
        assert!(modes
            .check("vault", &"pinned:nowhere-1".parse().unwrap())
            .unwrap_err()
            .contains("unknown region"));
        assert!(modes
            .check("nope", &ModeSpec::MultiMaster)
            .unwrap_err()
            .contains("unknown table"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn thread_copies_follow_every_published_view() {
        let (modes, db) = setup();
        let other = Modes::new(modes.base.clone());
        let ledger_home = |m: &Modes| {
            m.with_topology(
                |t| match &t.tables.iter().find(|t| t.name == "ledger").unwrap().mode {
                    TableMode::SingleMaster { home } => home.to_string(),
                    mode => format!("{mode:?}"),
                },
            )
        };
        assert_eq!(ledger_home(&modes), "us-east");
        assert_eq!(ledger_home(&other), "us-east");
        let eu: RegionName = "eu-west".parse().unwrap();
        // Committed here; only the new home's confirmation is missing.
        let _ = modes
            .change(&db, "ledger", ModeSpec::SingleMaster { home: eu })
            .await;
        assert_eq!(
            ledger_home(&modes),
            "eu-west",
            "this thread's copy moved on"
        );
        assert_eq!(
            ledger_home(&other),
            "us-east",
            "instances keep their own views"
        );
        // Called from inside itself: read from the shared view, no panic.
        let nested = modes.with_topology(|_| ledger_home(&modes));
        assert_eq!(nested, "eu-west");
        // More instances than a thread keeps copies of.
        let many: Vec<Modes> = (0..THREAD_VIEWS_MAX + 2)
            .map(|_| Modes::new(modes.base.clone()))
            .collect();
        for m in many.iter().chain([&modes]) {
            let _ = ledger_home(m);
        }
        assert_eq!(ledger_home(&modes), "eu-west");
        assert_eq!(ledger_home(&many[0]), "us-east");
    }

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        for r in [
            ModeRecord {
                mode: ModeSpec::MultiMaster,
                epoch: 7,
            },
            ModeRecord {
                mode: ModeSpec::SingleMaster {
                    home: "eu-west".parse().unwrap(),
                },
                epoch: 8,
            },
        ] {
            assert_eq!(ModeRecord::decode(&r.encode()), Some(r));
        }
        let pinned = ModeRecord::decode("pinned:forward:us-east,eu-west@9").unwrap();
        assert_eq!(pinned.encode(), "pinned:forward:eu-west,us-east@9");
        assert_eq!(
            ModeRecord::decode("pinned:eu-west@3")
                .unwrap()
                .mode
                .to_string(),
            "pinned:refuse:eu-west"
        );
        for bad in [
            "",
            "multi_master",
            "single_master@1",
            "pinned@2",
            "multi_master@x",
        ] {
            assert_eq!(ModeRecord::decode(bad), None, "{bad}");
        }
    }
}
