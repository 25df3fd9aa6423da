//! [`Modes`]: a region's table modes now — the config overlaid with the
//! control table's records it has applied — published as a [`View`] that
//! readers take cheaply, and the watcher that keeps it current.
//!
//! The refusal rules ([`crate::fence`]) and the coordinator's changes
//! ([`crate::change`]) are further `impl Modes` blocks in their own files.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_core::config::TableMode;
use meridian_core::Topology;
use meridian_store::db::Db;
use meridian_store::StoreError;
use tokio::sync::watch;

use crate::spec::ModeRecord;
use crate::thread_copy;
use crate::view::View;
use crate::{CONTROL_RECORDS_MAX, CONTROL_TABLE, MOVE_ACK_TIMEOUT, REFRESH_INTERVAL_MIN};

/// Told of each new topology before it is published ([`Modes::on_change`]).
pub type ModesHook = Box<dyn Fn(&Topology) + Send + Sync>;

/// Distinguishes `Modes` instances in the threads' copies.
static NEXT_MODES_ID: AtomicU64 = AtomicU64::new(1);

/// A region's table modes.
pub struct Modes {
    pub(crate) base: Arc<Topology>,
    view: watch::Sender<Arc<View>>,
    /// Bumped after each new view is published.
    generation: AtomicU64,
    /// This instance, for the threads' copies.
    id: u64,
    /// Tables fenced for a change made here, with the epoch they were
    /// fenced at (a fence no longer counts once the view moved past it).
    pub(crate) fenced: Mutex<BTreeMap<String, u64>>,
    /// Held through each re-read, so views are published in scan order.
    refreshing: Mutex<()>,
    /// Told of every new topology before it is published (the node keeps
    /// residency in step with it).
    on_change: Mutex<Option<ModesHook>>,
    /// One change at a time on this node.
    pub(crate) changing: tokio::sync::Mutex<()>,
    /// How long a move waits for the new home ([`MOVE_ACK_TIMEOUT`]).
    pub(crate) move_ack_timeout: Duration,
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
        let f = |view: &View| f(&view.topology);
        match thread_copy::with_copy(self.id, generation, || self.view(), f) {
            Ok(r) => r,
            // Called from inside `f`: read the shared view.
            Err(f) => f(&self.view.borrow()),
        }
    }

    /// Re-reads the control table and publishes a new view if it changed.
    pub fn refresh(&self, db: &Db) -> Result<(), StoreError> {
        let _serial = self
            .refreshing
            .lock()
            .expect("refresh lock is never poisoned");
        let records = read_records(db)?;
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
        for (t, r) in &records {
            if epochs.get(t) != current.epochs.get(t) {
                tracing::info!(table = %t, mode = %r.encode(), "table mode changed");
            }
        }
        self.publish(overlay(&self.base, &records), epochs);
        Ok(())
    }

    /// Tells the hook of `topology`, then makes it the current view.
    fn publish(&self, topology: Topology, epochs: BTreeMap<String, u64>) {
        if let Some(hook) = &*self.on_change.lock().expect("hook lock is never poisoned") {
            hook(&topology);
        }
        self.view.send_replace(Arc::new(View {
            topology: Arc::new(topology),
            epochs,
        }));
        self.generation.fetch_add(1, Ordering::Release);
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
}

/// The live, decodable mode records of the control table, by table.
fn read_records(db: &Db) -> Result<BTreeMap<String, ModeRecord>, StoreError> {
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
    Ok(records)
}

/// `base` with each recorded table's mode replaced by its record's.
fn overlay(base: &Topology, records: &BTreeMap<String, ModeRecord>) -> Topology {
    let mut topology = base.clone();
    for table in &mut topology.tables {
        if let Some(r) = records.get(&table.name) {
            table.mode = TableMode::from(&r.mode);
        }
    }
    topology
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
    use crate::test_support::setup;
    use crate::thread_copy::THREAD_VIEWS_MAX;
    use crate::ModeSpec;
    use meridian_core::RegionName;

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
}
