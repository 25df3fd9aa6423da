//! [`Edge`]: one region's edge — its pool, routes, limits, retry budget,
//! region board, drain state and counters — and the background work that
//! keeps them current (active checks, region probes, the limiter sweeper,
//! the load sampler). [`crate::server`] accepts its connections;
//! [`crate::proxy`] serves each request.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use meridian_api::edge::{
    BackendSet, BackendStatus, EdgeHealth, EdgeStatus, ObserverView, RegionHealth, RegionsHealth,
};
use meridian_core::config::{EdgeConfig, BACKENDS_MAX};
use meridian_core::{RegionName, Topology};
use tokio_util::sync::CancellationToken;

use crate::limit::{RateLimits, SWEEP_INTERVAL};
use crate::policy::quorum::Vote;
use crate::policy::retry::RetryBudget;
use crate::policy::routes::RouteTable;
use crate::pool::{Backend, Pool, Source};
use crate::probe::{run_probe, Regions};
use crate::stats::EdgeStats;
use crate::upstream::Upstream;

/// The home region of a table now (from the node's table modes).
pub type HomeOf = Arc<dyn Fn(&str) -> Option<RegionName> + Send + Sync>;

/// How often the load signal samples requests in flight.
pub const LOAD_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Samples the load signal averages over (10 × 100 ms = the last second).
pub const LOAD_SAMPLES: usize = 10;

/// What an edge needs to start.
pub struct EdgeSetup {
    /// This region.
    pub region: RegionName,
    /// The topology: `[edge]`, `[[routes]]`, static backends, latencies.
    pub topology: Arc<Topology>,
    /// Where to dial each other region's edge (the local end of the
    /// emulated link when the WAN is emulated).
    pub peers: BTreeMap<RegionName, SocketAddr>,
    /// A table's home now.
    pub home_of: HomeOf,
}

/// Why a backend set was refused.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// An address that does not parse.
    #[error("backends[{index}].addr: `{addr}` is not IP:PORT")]
    BadAddr {
        /// Its index.
        index: usize,
        /// The text.
        addr: String,
    },
    /// A weight outside 1..=1000.
    #[error("backends[{index}].weight: {weight}; use 1 up to 1000")]
    BadWeight {
        /// Its index.
        index: usize,
        /// The weight.
        weight: u32,
    },
    /// Too many.
    #[error("{0} backends; at most {BACKENDS_MAX} per region")]
    TooMany(usize),
}

/// One region's edge.
pub struct Edge {
    /// This region.
    pub region: RegionName,
    pub(crate) region_header: HeaderValue,
    /// `[edge]`.
    pub config: EdgeConfig,
    pub(crate) routes: RouteTable,
    /// The instances.
    pub pool: Arc<Pool>,
    pub(crate) limits: RateLimits,
    pub(crate) upstream: Upstream,
    /// The other regions and this node's view of them.
    pub regions: Arc<Regions>,
    draining: AtomicBool,
    pub(crate) home_of: HomeOf,
    /// Counters.
    pub stats: EdgeStats,
    load: Mutex<VecDeque<(u64, usize)>>,
    listen: Mutex<Option<SocketAddr>>,
    pub(crate) shutdown: CancellationToken,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Edge {
    /// Builds the edge and starts its background work (checks of the
    /// static instances, region probes, sweeper, sampler) until `shutdown`.
    pub fn start(setup: EdgeSetup, shutdown: CancellationToken) -> Arc<Edge> {
        let t = &setup.topology;
        let config = t.edge.clone();
        let peers: Vec<RegionName> = setup.peers.keys().cloned().collect();
        let regions = Arc::new(Regions::new(&setup.region, t, setup.peers, &config.probe));
        let edge = Arc::new(Edge {
            region_header: HeaderValue::from_str(setup.region.as_str())
                .expect("region names are header-safe"),
            region: setup.region.clone(),
            routes: RouteTable::new(&t.routes),
            pool: Arc::new(Pool::new(&config)),
            limits: RateLimits::new(&config, &t.routes),
            upstream: Upstream::new(
                Duration::from_millis(config.connect_timeout_ms),
                Duration::from_millis(config.request_timeout_ms),
            ),
            regions,
            draining: AtomicBool::new(false),
            home_of: setup.home_of,
            stats: EdgeStats::new(&peers),
            load: Mutex::new(VecDeque::with_capacity(LOAD_SAMPLES)),
            listen: Mutex::new(None),
            shutdown,
            config,
        });
        let statics: Vec<(SocketAddr, u32)> = t
            .region(&setup.region)
            .map(|r| r.backends.iter().map(|b| (b.addr, b.weight)).collect())
            .unwrap_or_default();
        let (added, _) = edge.pool.replace(Source::Static, &statics, Instant::now());
        edge.check(added);
        edge.spawn_background();
        edge
    }

    fn spawn_background(self: &Arc<Self>) {
        for (target, dial) in &self.regions.peers {
            tokio::spawn(run_probe(
                self.regions.clone(),
                self.upstream.clone(),
                self.region.clone(),
                target.clone(),
                *dial,
                self.config.probe.clone(),
                self.shutdown.clone(),
            ));
        }
        let edge = self.clone();
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
            let mut sample = tokio::time::interval(LOAD_SAMPLE_INTERVAL);
            loop {
                tokio::select! {
                    _ = edge.shutdown.cancelled() => return,
                    _ = sweep.tick() => {
                        edge.limits.sweep();
                        edge.regions.board().recompute(Instant::now());
                    }
                    _ = sample.tick() => edge.sample_load(),
                }
            }
        });
    }

    /// Starts the active checks of `added`.
    fn check(self: &Arc<Self>, added: Vec<Arc<Backend>>) {
        for b in added {
            tokio::spawn(crate::checker::run_checker(
                self.pool.clone(),
                b,
                self.upstream.clone(),
                self.config.health.clone(),
                self.region.clone(),
                self.shutdown.clone(),
            ));
        }
    }

    /// Replaces the run-time registered instances.
    pub fn register(self: &Arc<Self>, set: &BackendSet) -> Result<(), EdgeError> {
        if set.backends.len() > BACKENDS_MAX {
            return Err(EdgeError::TooMany(set.backends.len()));
        }
        let mut wanted = Vec::with_capacity(set.backends.len());
        for (index, b) in set.backends.iter().enumerate() {
            let addr: SocketAddr = b.addr.parse().map_err(|_| EdgeError::BadAddr {
                index,
                addr: b.addr.clone(),
            })?;
            if !(1..=1000).contains(&b.weight) {
                return Err(EdgeError::BadWeight {
                    index,
                    weight: b.weight,
                });
            }
            wanted.push((addr, b.weight));
        }
        let (added, removed) = self
            .pool
            .replace(Source::Registered, &wanted, Instant::now());
        if !added.is_empty() || !removed.is_empty() {
            tracing::info!(region = %self.region, added = added.len(), removed = removed.len(), "instances registered");
        }
        self.check(added);
        Ok(())
    }

    /// Drains the region (its traffic goes to other regions) or undrains it.
    pub fn set_draining(&self, draining: bool) {
        if self.draining.swap(draining, Relaxed) != draining {
            tracing::warn!(region = %self.region, draining, "drain state changed");
        }
    }

    /// Whether the region is drained.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    /// Records where the edge listens (for `GET /edge`).
    pub(crate) fn set_listen(&self, addr: SocketAddr) {
        *self.listen.lock().expect("listen lock is never poisoned") = Some(addr);
    }

    /// Counts a request against this thread's retry budget.
    pub(crate) fn count_request(&self, now: Instant) {
        self.with_budget(|b| b.request(now));
    }

    /// Takes a retry from this thread's budget, counting a refusal.
    pub(crate) fn take_retry(&self, now: Instant) -> bool {
        let ok = self.with_budget(|b| b.try_retry(now));
        if !ok {
            self.stats.retries_refused.fetch_add(1, Relaxed);
        }
        ok
    }

    /// The retry budget is kept per edge thread: a lock shared by the
    /// threads on every request cost more than the budget itself. Each
    /// thread holds its own requests to the share, so all of them together
    /// do too; the floor (`retry_min_per_window`) is per thread.
    fn with_budget<R>(&self, f: impl FnOnce(&mut RetryBudget) -> R) -> R {
        thread_local! {
            static BUDGET: std::cell::RefCell<Option<RetryBudget>> = const { std::cell::RefCell::new(None) };
        }
        BUDGET.with(|b| {
            let mut b = b.borrow_mut();
            let budget = b.get_or_insert_with(|| {
                RetryBudget::new(
                    self.config.retry_budget_pct,
                    self.config.retry_min_per_window,
                    Instant::now(),
                )
            });
            f(budget)
        })
    }

    /// Where to forward, best first, and whether that is failing open.
    pub(crate) fn forward_order(&self) -> (Vec<RegionName>, bool) {
        self.regions.board().forward_order(&self.regions.nearest)
    }

    fn sample_load(&self) {
        let all = self.pool.snapshot();
        let up = all.iter().filter(|b| b.is_up()).count();
        let in_flight: u64 = all.iter().map(|b| b.in_flight.load(Relaxed)).sum();
        let mut load = self.load.lock().expect("load lock is never poisoned");
        if load.len() == LOAD_SAMPLES {
            load.pop_front();
        }
        load.push_back((in_flight, up));
    }

    /// Mean requests in flight per up instance over the last second.
    pub fn load_per_instance(&self) -> f64 {
        let load = self.load.lock().expect("load lock is never poisoned");
        if load.is_empty() {
            return 0.0;
        }
        let per: f64 = load
            .iter()
            .map(|&(f, up)| if up == 0 { 0.0 } else { f as f64 / up as f64 })
            .sum();
        per / load.len() as f64
    }

    /// `GET /edge`.
    pub fn status(&self) -> EdgeStatus {
        let now = Instant::now();
        let backends: Vec<BackendStatus> = self
            .pool
            .snapshot()
            .iter()
            .map(|b| BackendStatus {
                addr: b.addr.to_string(),
                weight: b.weight,
                source: b.source.as_str().to_string(),
                up: b.is_up(),
                ejected_ms: b.ejected_until(now).map(|t| (t - now).as_millis() as u64),
                since_ms_ago: now.duration_since(b.since()).as_millis() as u64,
                in_flight: b.in_flight.load(Relaxed),
                requests: b.requests.load(Relaxed),
                failures: b.failures.load(Relaxed),
            })
            .collect();
        EdgeStatus {
            region: self.region.to_string(),
            listen: self
                .listen
                .lock()
                .expect("listen lock is never poisoned")
                .map(|a| a.to_string()),
            serving: self.pool.serving(now),
            draining: self.is_draining(),
            in_flight: backends.iter().map(|b| b.in_flight).sum(),
            load_per_instance: self.load_per_instance(),
            backends,
        }
    }

    /// What this edge says of itself and the others to other regions.
    pub fn health(&self) -> EdgeHealth {
        let now = Instant::now();
        let board = self.regions.board();
        let views = self
            .regions
            .peers
            .keys()
            .filter_map(|r| {
                let (up, since, _, _) = board.own_view(r)?;
                let view = ObserverView {
                    state: if up { "up" } else { "down" }.to_string(),
                    since_ms_ago: now.duration_since(since).as_millis() as u64,
                    age_ms: 0,
                };
                Some((r.to_string(), view))
            })
            .collect();
        EdgeHealth {
            region: self.region.to_string(),
            serving: self.pool.serving(now),
            draining: self.is_draining(),
            views,
        }
    }

    /// `GET /health/regions`.
    pub fn regions_health(&self) -> RegionsHealth {
        let now = Instant::now();
        let board = self.regions.board();
        let mut regions = BTreeMap::new();
        for target in &self.regions.nearest {
            let Some(verdict) = board.verdict(target) else {
                continue;
            };
            let (_, _, serving, draining) =
                board.own_view(target).unwrap_or((true, now, true, false));
            let observers = board
                .observers(target)
                .map(|o| (o.to_string(), observer_view(&board, o, target, now)))
                .collect();
            regions.insert(
                target.to_string(),
                RegionHealth {
                    verdict: if verdict.down { "down" } else { "up" }.to_string(),
                    since_ms_ago: now.duration_since(verdict.since).as_millis() as u64,
                    down_votes: verdict.down_votes,
                    quorum: board.quorum(),
                    serving,
                    draining,
                    observers,
                },
            );
        }
        regions.insert(
            self.region.to_string(),
            RegionHealth {
                verdict: "up".into(),
                since_ms_ago: 0,
                down_votes: 0,
                quorum: board.quorum(),
                serving: self.pool.serving(now),
                draining: self.is_draining(),
                observers: BTreeMap::new(),
            },
        );
        RegionsHealth {
            observer: self.region.to_string(),
            fail_open: board.all_down(),
            regions,
        }
    }
}

fn observer_view(
    board: &crate::policy::quorum::RegionBoard,
    observer: &RegionName,
    target: &RegionName,
    now: Instant,
) -> ObserverView {
    let vote = board.vote(observer, target, now);
    let state = match vote {
        Vote::Up => "up",
        Vote::Down => "down",
        Vote::Unknown => "unknown",
    };
    let (since_ms_ago, age_ms) = if observer == board.me() {
        let since = board.own_view(target).map_or(now, |v| v.1);
        (now.duration_since(since).as_millis() as u64, 0)
    } else {
        match board.report_of(observer, target) {
            Some((received, held)) => {
                let age = now.duration_since(received);
                ((age + held).as_millis() as u64, age.as_millis() as u64)
            }
            None => (0, 0),
        }
    };
    ObserverView {
        state: state.to_string(),
        since_ms_ago,
        age_ms,
    }
}
