//! [`Pool`]: a region's app instances and their live state — active check
//! ([`Hysteresis`]), passive record ([`Outlier`]), requests in flight — and
//! the pick of one for a request: the sticky one if still eligible, else
//! the balancer's choice among the eligible (up, not ejected, under the
//! breaker's limits).
//!
//! Instances come from the topology (`static`) or are registered at run
//! time (`registered`, replaced as a set). The instance list is an
//! immutable snapshot swapped on change, so a request reads it with one
//! `Arc` clone and no lock held while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use meridian_core::config::{BalancePolicy, EdgeConfig};
use tokio_util::sync::CancellationToken;

use crate::policy::balance::{Balancer, Candidate};
use crate::policy::check::{Hysteresis, Thresholds};
use crate::policy::outlier::{Outlier, OutlierRule, Verdict};

/// Where an instance came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The topology's `[[regions.backends]]`.
    Static,
    /// `PUT /admin/edge/backends`.
    Registered,
}

impl Source {
    /// Its name in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Static => "static",
            Source::Registered => "registered",
        }
    }
}

/// What a request to an instance came to, for its passive record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered, not 5xx.
    Success,
    /// 5xx, connect failure, timeout or reset.
    Failure,
}

/// One app instance.
#[derive(Debug)]
pub struct Backend {
    /// Stable id (the sticky cookie's value): derived from the address, so
    /// a re-registered instance keeps its cookie.
    pub id: u64,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its weighted share.
    pub weight: u32,
    /// Where it came from.
    pub source: Source,
    up: AtomicBool,
    /// Requests in flight.
    pub in_flight: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
    /// Of those, failed.
    pub failures: AtomicU64,
    state: Mutex<BackendState>,
    /// When the current ejection ends, as nanoseconds after [`epoch`]; 0:
    /// none. Read on every pick without the lock.
    ejected_until_ns: AtomicU64,
    /// Whether the passive record holds anything (failures, ejections):
    /// while not, a success takes no lock.
    unsettled: AtomicBool,
    /// Stops its checker when it leaves the pool.
    pub(crate) retired: CancellationToken,
}

#[derive(Debug)]
struct BackendState {
    check: Hysteresis,
    outlier: Outlier,
}

impl Backend {
    fn new(addr: SocketAddr, weight: u32, source: Source, now: Instant) -> Self {
        Backend {
            id: id_of(addr),
            addr,
            weight,
            source,
            // New instances are down until `rise` checks pass, so one that
            // is still starting never gets traffic.
            up: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            state: Mutex::new(BackendState {
                check: Hysteresis::new(false, now),
                outlier: Outlier::default(),
            }),
            ejected_until_ns: AtomicU64::new(0),
            unsettled: AtomicBool::new(false),
            retired: CancellationToken::new(),
        }
    }

    /// Passing its active checks.
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BackendState> {
        self.state.lock().expect("backend lock is never poisoned")
    }

    /// Ejected until, if it is ejected at `now`.
    pub fn ejected_until(&self, now: Instant) -> Option<Instant> {
        match self.ejected_until_ns.load(Relaxed) {
            0 => None,
            ns => Some(epoch() + Duration::from_nanos(ns)).filter(|t| now < *t),
        }
    }

    /// Mirrors the passive record's ejection into the lock-free fields.
    fn publish(&self, s: &BackendState, now: Instant) {
        let ns = s
            .outlier
            .ejected_until(now)
            .map_or(0, |t| (t.duration_since(epoch()).as_nanos() as u64).max(1));
        self.ejected_until_ns.store(ns, Relaxed);
        self.unsettled.store(!s.outlier.settled(), Relaxed);
    }

    /// When `up` last changed.
    pub fn since(&self) -> Instant {
        self.lock().check.since()
    }
}

/// The process's reference instant for the lock-free ejection times.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A stable id for an address (FNV-1a of its text).
fn id_of(addr: SocketAddr) -> u64 {
    addr.to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

/// Why no instance was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoPick {
    /// No instance is up and in the pool (or all are ejected or excluded).
    NoneHealthy,
    /// Every healthy instance is at the breaker's limit.
    AllBusy,
}

/// An instance picked for one request.
#[derive(Debug)]
pub struct Picked {
    /// The instance.
    pub backend: Arc<Backend>,
    /// Whether the sticky cookie must be (re)set to it.
    pub repin: bool,
}

/// A region's instances.
#[derive(Debug)]
pub struct Pool {
    backends: RwLock<Arc<Vec<Arc<Backend>>>>,
    balancer: Balancer,
    rule: OutlierRule,
    thresholds: Thresholds,
    /// Requests in flight per instance before its breaker opens.
    in_flight_max: u64,
    sticky: bool,
    /// Times an instance was ejected.
    pub ejections: AtomicU64,
    /// Ejections skipped because the pool's ejected share was full.
    pub spared: AtomicU64,
}

impl Pool {
    /// An empty pool under `config`'s policy, checks and limits.
    pub fn new(config: &EdgeConfig) -> Self {
        let o = &config.outlier;
        Pool {
            backends: RwLock::new(Arc::new(Vec::new())),
            balancer: Balancer::new(config.policy),
            rule: OutlierRule {
                consecutive_failures: o.consecutive_failures,
                base_ejection: Duration::from_millis(o.base_ejection_ms),
                max_ejection: Duration::from_millis(o.max_ejection_ms),
                max_ejection_pct: o.max_ejection_pct,
            },
            thresholds: Thresholds {
                rise: config.health.rise,
                fall: config.health.fall,
            },
            // With HTTP/1 to the instances, each request in flight holds
            // one connection, so both limits bound the same count.
            in_flight_max: config
                .max_pending_per_backend
                .min(config.max_connections_per_backend) as u64,
            sticky: config.sticky_cookie.is_some(),
            ejections: AtomicU64::new(0),
            spared: AtomicU64::new(0),
        }
    }

    /// The policy in use.
    pub fn policy(&self) -> BalancePolicy {
        self.balancer.policy()
    }

    /// The instances now.
    pub fn snapshot(&self) -> Arc<Vec<Arc<Backend>>> {
        self.backends
            .read()
            .expect("pool lock is never poisoned")
            .clone()
    }

    /// Replaces the instances of `source` with `wanted` (address, weight);
    /// an instance that stays keeps its state. Returns the added and the
    /// removed ones (the caller starts and stops their checkers).
    pub fn replace(
        &self,
        source: Source,
        wanted: &[(SocketAddr, u32)],
        now: Instant,
    ) -> (Vec<Arc<Backend>>, Vec<Arc<Backend>>) {
        let mut guard = self.backends.write().expect("pool lock is never poisoned");
        let mut next: Vec<Arc<Backend>> = Vec::with_capacity(guard.len() + wanted.len());
        let mut removed = Vec::new();
        for b in guard.iter() {
            let keep =
                b.source != source || wanted.iter().any(|(a, w)| *a == b.addr && *w == b.weight);
            if keep {
                next.push(b.clone());
            } else {
                removed.push(b.clone());
            }
        }
        let mut added = Vec::new();
        for (addr, weight) in wanted {
            if next.iter().any(|b| b.addr == *addr) {
                continue;
            }
            let b = Arc::new(Backend::new(*addr, *weight, source, now));
            added.push(b.clone());
            next.push(b);
        }
        *guard = Arc::new(next);
        for b in &removed {
            b.retired.cancel();
        }
        (added, removed)
    }

    /// Whether some instance could take a request now.
    pub fn serving(&self, now: Instant) -> bool {
        self.snapshot()
            .iter()
            .any(|b| b.is_up() && b.ejected_until(now).is_none())
    }

    /// Picks an instance, never one of `exclude`; `sticky` is the pinned id
    /// from the client's cookie.
    pub fn pick(
        &self,
        sticky: Option<u64>,
        exclude: &[u64],
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> Result<Picked, NoPick> {
        let all = self.snapshot();
        let mut healthy = 0usize;
        // One allocation per pick: the candidates; their backends are found
        // again by id (pools are small).
        let mut candidates: Vec<Candidate> = Vec::with_capacity(all.len());
        for b in all.iter() {
            if !b.is_up() || exclude.contains(&b.id) || b.ejected_until(now).is_some() {
                continue;
            }
            healthy += 1;
            let in_flight = b.in_flight.load(Relaxed);
            if in_flight >= self.in_flight_max {
                continue;
            }
            candidates.push(Candidate {
                id: b.id,
                weight: b.weight,
                in_flight,
            });
        }
        let backend = |id: u64| {
            all.iter()
                .find(|b| b.id == id)
                .expect("candidates come from this snapshot")
                .clone()
        };
        if let Some(id) = sticky.filter(|id| candidates.iter().any(|c| c.id == *id)) {
            return Ok(Picked {
                backend: backend(id),
                repin: false,
            });
        }
        match self.balancer.pick(&candidates, rng) {
            Some(i) => Ok(Picked {
                backend: backend(candidates[i].id),
                repin: self.sticky,
            }),
            None if healthy > 0 => Err(NoPick::AllBusy),
            None => Err(NoPick::NoneHealthy),
        }
    }

    /// Records a request's outcome on `b`; returns whether it was ejected.
    pub fn record(&self, b: &Backend, outcome: Outcome, now: Instant) -> bool {
        b.requests.fetch_add(1, Relaxed);
        match outcome {
            Outcome::Success => {
                if b.unsettled.load(Relaxed) {
                    let mut s = b.lock();
                    s.outlier.success(&self.rule, now);
                    b.publish(&s, now);
                }
                false
            }
            Outcome::Failure => {
                b.failures.fetch_add(1, Relaxed);
                let all = self.snapshot();
                let ejected_now = all
                    .iter()
                    .filter(|o| o.id != b.id && o.ejected_until(now).is_some())
                    .count();
                let verdict = {
                    let mut s = b.lock();
                    let v = s.outlier.failure(&self.rule, now, ejected_now, all.len());
                    b.publish(&s, now);
                    v
                };
                match verdict {
                    Verdict::Ejected(until) => {
                        self.ejections.fetch_add(1, Relaxed);
                        tracing::warn!(backend = %b.addr, ejected_for_ms = (until - now).as_millis() as u64, "instance ejected after consecutive failures");
                        true
                    }
                    Verdict::SparedByPoolLimit => {
                        self.spared.fetch_add(1, Relaxed);
                        false
                    }
                    Verdict::Kept => false,
                }
            }
        }
    }

    /// Records one active check of `b`; returns the new state if it changed.
    pub fn checked(&self, b: &Backend, passed: bool, now: Instant) -> Option<bool> {
        let mut s = b.lock();
        let changed = s.check.observe(passed, self.thresholds, now);
        if changed == Some(true) {
            // A recovered instance starts clean: its old failures are not
            // held against the new process.
            s.outlier.forgive(now);
            b.publish(&s, now);
        }
        if let Some(up) = changed {
            b.up.store(up, Relaxed);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn pool_of(n: u16) -> (Pool, Instant) {
        let now = Instant::now();
        let cfg = EdgeConfig {
            sticky_cookie: Some("s".into()),
            max_pending_per_backend: 2,
            ..EdgeConfig::default()
        };
        let p = Pool::new(&cfg);
        let wanted: Vec<_> = (0..n).map(|i| (addr(9000 + i), 1)).collect();
        p.replace(Source::Registered, &wanted, now);
        (p, now)
    }

    fn bring_up(p: &Pool, now: Instant) {
        for b in p.snapshot().iter() {
            p.checked(b, true, now);
            p.checked(b, true, now);
        }
    }

    #[test]
    fn new_instances_wait_for_rise_checks() {
        let (p, now) = pool_of(2);
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            p.pick(None, &[], now, &mut rng).unwrap_err(),
            NoPick::NoneHealthy
        );
        assert!(!p.serving(now));
        bring_up(&p, now);
        assert!(p.serving(now));
        assert!(p.pick(None, &[], now, &mut rng).is_ok());
    }

    #[test]
    fn sticky_instances_are_kept_then_repinned_when_they_go() {
        let (p, now) = pool_of(3);
        bring_up(&p, now);
        let mut rng = fastrand::Rng::with_seed(1);
        let first = p.pick(None, &[], now, &mut rng).unwrap();
        assert!(first.repin);
        for _ in 0..5 {
            let again = p.pick(Some(first.backend.id), &[], now, &mut rng).unwrap();
            assert_eq!(again.backend.id, first.backend.id);
            assert!(!again.repin);
        }
        p.checked(&first.backend, false, now);
        p.checked(&first.backend, false, now);
        let moved = p.pick(Some(first.backend.id), &[], now, &mut rng).unwrap();
        assert_ne!(moved.backend.id, first.backend.id);
        assert!(moved.repin);
    }

    #[test]
    fn the_breaker_opens_at_the_in_flight_limit() {
        let (p, now) = pool_of(1);
        bring_up(&p, now);
        let mut rng = fastrand::Rng::with_seed(1);
        let b = p.pick(None, &[], now, &mut rng).unwrap().backend;
        b.in_flight.store(2, Relaxed);
        assert_eq!(
            p.pick(None, &[], now, &mut rng).unwrap_err(),
            NoPick::AllBusy
        );
        b.in_flight.store(1, Relaxed);
        assert!(p.pick(None, &[], now, &mut rng).is_ok());
    }

    #[test]
    fn failures_eject_but_the_pool_keeps_one() {
        let (p, now) = pool_of(2);
        bring_up(&p, now);
        let all = p.snapshot();
        for _ in 0..3 {
            p.record(&all[0], Outcome::Failure, now);
        }
        assert!(all[0].ejected_until(now).is_some());
        for _ in 0..3 {
            p.record(&all[1], Outcome::Failure, now);
        }
        assert!(all[1].ejected_until(now).is_none(), "50 % of two is one");
        assert_eq!(p.ejections.load(Relaxed), 1);
        assert_eq!(p.spared.load(Relaxed), 1);
        let mut rng = fastrand::Rng::with_seed(1);
        let got = p.pick(None, &[], now, &mut rng).unwrap();
        assert_eq!(got.backend.id, all[1].id);
        assert_eq!(
            p.pick(None, &[all[1].id], now, &mut rng).unwrap_err(),
            NoPick::NoneHealthy
        );
    }

    #[test]
    fn replacing_keeps_the_state_of_instances_that_stay() {
        let (p, now) = pool_of(2);
        bring_up(&p, now);
        let keep = p.snapshot()[0].clone();
        let (added, removed) =
            p.replace(Source::Registered, &[(keep.addr, 1), (addr(9100), 1)], now);
        assert_eq!(added.len(), 1);
        assert_eq!(removed.len(), 1);
        assert!(removed[0].retired.is_cancelled());
        let now_list = p.snapshot();
        assert!(now_list.iter().any(|b| Arc::ptr_eq(b, &keep) && b.is_up()));
        assert!(!now_list
            .iter()
            .find(|b| b.addr == addr(9100))
            .unwrap()
            .is_up());
    }
}
