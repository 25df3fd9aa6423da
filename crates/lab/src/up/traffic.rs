//! `up`'s traffic loop: one task per region that, every [`TICK`], reads
//! the region's edge (`GET /edge`), asks the autoscaler for the instance
//! count, brings the region's app instances there, and registers them with
//! the edge (`PUT /admin/edge/backends`). A thin driver: the decisions are
//! [`crate::autoscale`]'s and the processes [`crate::apps`]'.
//!
//! # When the set is pushed
//!
//! Not blindly every tick: the push replaces the edge's whole run-time
//! set, and an edge may treat a replaced instance as new (health state and
//! counters reset). It is pushed when what the node holds differs from
//! what should serve, and what the node holds is known three ways: the
//! set last pushed to it; the empty set when its pid changed (a restarted
//! node forgets run-time registrations); and the `registered` instances
//! its own `GET /edge` lists, read every tick anyway for the load, which
//! catches any other drift. A failed push (node down or busy) is logged
//! at debug and retried the next tick; nothing here is fatal.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::Method;
use meridian_api::client::AdminClient;
use meridian_api::edge::{BackendSet, BackendSpec, EdgeStatus};
use meridian_core::RegionName;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::supervisor::Supervisor;
use crate::autoscale::{Autoscaler, LoadSample, ScaleDecision};

/// Between two rounds of a region's loop: the edge's health checks run
/// every 250 ms by default, so a new instance is registered before its
/// first check would matter, and a crash is deregistered about as fast as
/// two failed checks notice it.
pub const TICK: Duration = Duration::from_millis(500);

/// One request of the loop to its node: below [`TICK`], so a hung node
/// delays its own region's loop by at most one round.
const EDGE_REQUEST_TIMEOUT: Duration = Duration::from_millis(400);

/// How `GET /edge` marks the instances registered at run time (the
/// topology's static ones are `static`).
const REGISTERED: &str = "registered";

/// The running loops.
pub(super) struct TrafficLoops {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl TrafficLoops {
    /// Starts one loop per region.
    pub fn start(sup: &Arc<Supervisor>) -> TrafficLoops {
        let stop = CancellationToken::new();
        let tasks = sup
            .topology
            .regions
            .iter()
            .map(|r| {
                let lp = RegionLoop::new(sup.clone(), r.name.clone(), r.admin);
                tokio::spawn(lp.run(stop.clone()))
            })
            .collect();
        TrafficLoops { stop, tasks }
    }

    /// Stops every loop and waits until none runs, so nothing starts an
    /// instance while `up` stops them.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// A scale decision waiting for the edge to show its effect.
struct Pending {
    id: u64,
    at: Instant,
    to: usize,
}

/// One region's loop.
struct RegionLoop {
    sup: Arc<Supervisor>,
    region: RegionName,
    edge_url: String,
    backends_url: String,
    reader: AdminClient,
    writer: AdminClient,
    scaler: Autoscaler,
    /// The node's pid and the set it holds, as far as this loop knows.
    registered: Option<(u32, Vec<String>)>,
    pending: Option<Pending>,
}

impl RegionLoop {
    fn new(sup: Arc<Supervisor>, region: RegionName, admin: std::net::SocketAddr) -> RegionLoop {
        let token = Some(sup.admin_token.clone());
        RegionLoop {
            region,
            edge_url: format!("http://{admin}/edge"),
            backends_url: format!("http://{admin}/admin/edge/backends"),
            reader: AdminClient::new(None).with_timeout(EDGE_REQUEST_TIMEOUT),
            writer: AdminClient::new(token).with_timeout(EDGE_REQUEST_TIMEOUT),
            scaler: Autoscaler::default(),
            registered: None,
            pending: None,
            sup,
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => self.tick().await,
            }
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        let pid = self.sup.nodes.pid(&self.region).await;
        let edge = match pid {
            Some(_) => self.read_edge().await,
            None => None,
        };
        let (changed, desired) = self.scale_and_reconcile(now, edge.as_ref()).await;
        self.register(pid, edge.as_ref(), &desired, now).await;
        if changed {
            if let Err(e) = self.sup.refresh_cluster_file().await {
                tracing::warn!("cannot rewrite cluster.json: {e:#}");
            }
        }
        self.settle(edge.as_ref(), &desired, now);
    }

    async fn read_edge(&self) -> Option<EdgeStatus> {
        match self.reader.get::<EdgeStatus>(&self.edge_url).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(region = %self.region, "no edge status: {e}");
                None
            }
        }
    }

    /// Reaps exited instances, lets the autoscaler decide, and starts or
    /// drains instances to the target. Returns whether the serving set
    /// changed, and the set that should be registered now.
    async fn scale_and_reconcile(
        &mut self,
        now: Instant,
        edge: Option<&EdgeStatus>,
    ) -> (bool, Vec<String>) {
        let sup = self.sup.clone();
        let mut apps = sup.region_apps(&self.region).lock().await;
        let mut changed = apps.reap(&sup.launcher, now);
        apps.advance_leaving(now);
        let sample = edge.map(|e| LoadSample {
            load_per_instance: e.load_per_instance,
            instances_up: e.backends.iter().filter(|b| b.up).count(),
        });
        let policy = sup.app_options.policy();
        let decision = self
            .scaler
            .decide(&policy, now, apps.target(), sample, apps.stopped());
        if let (Some(d), Some(s)) = (decision, sample) {
            apps.set_target(d.to);
            self.record(d, s.load_per_instance, now);
        }
        changed |= apps.reconcile(&sup.launcher, now);
        (changed, apps.serving_addrs())
    }

    /// Logs a scale decision and keeps it in the history.
    fn record(&mut self, d: ScaleDecision, load_per_instance: f64, now: Instant) {
        tracing::info!(region = %self.region, from = d.from, to = d.to, load_per_instance, "scaling app instances");
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let id = self
            .sup
            .scale_history
            .lock()
            .expect("no panics under this lock")
            .record(self.region.as_str(), d, load_per_instance, at_unix_ms);
        self.pending = Some(Pending {
            id,
            at: now,
            to: d.to,
        });
    }

    /// Pushes `desired` to the node when it may hold another set (see the
    /// module doc), and starts the drain grace of instances it no longer
    /// holds.
    async fn register(
        &mut self,
        pid: Option<u32>,
        edge: Option<&EdgeStatus>,
        desired: &[String],
        now: Instant,
    ) {
        let Some(pid) = pid else {
            // No node, no edge: nothing is sent to any instance.
            self.registered = None;
            self.drain_started(now).await;
            return;
        };
        let listed = edge.map(registered_set);
        if !push_needed(self.registered.as_ref(), pid, listed.as_deref(), desired) {
            self.registered = Some((pid, desired.to_vec()));
            self.drain_started(now).await;
            return;
        }
        let body = BackendSet {
            backends: desired
                .iter()
                .map(|addr| BackendSpec {
                    addr: addr.clone(),
                    weight: 1,
                })
                .collect(),
        };
        let body = serde_json::to_value(&body).expect("a backend set always encodes");
        // Any 2xx is success: the answer's shape is the edge's business.
        let pushed = self
            .writer
            .json::<serde_json::Value>(Method::PUT, &self.backends_url, Some(body))
            .await;
        match pushed {
            Ok(_) => {
                tracing::debug!(region = %self.region, backends = desired.len(), "registered app instances with the edge");
                self.registered = Some((pid, desired.to_vec()));
                self.drain_started(now).await;
            }
            Err(e) => {
                tracing::debug!(region = %self.region, "cannot register app instances (retried next tick): {e}");
            }
        }
    }

    async fn drain_started(&self, now: Instant) {
        self.sup
            .region_apps(&self.region)
            .lock()
            .await
            .unregistered(now);
    }

    /// Notes when the pending scale decision took effect: the edge has
    /// exactly its count of this loop's instances registered and up.
    fn settle(&mut self, edge: Option<&EdgeStatus>, desired: &[String], now: Instant) {
        let (Some(p), Some(e)) = (&self.pending, edge) else {
            return;
        };
        let up = e
            .backends
            .iter()
            .filter(|b| b.source == REGISTERED && b.up && desired.contains(&b.addr))
            .count();
        if up == p.to && desired.len() == p.to {
            self.sup
                .scale_history
                .lock()
                .expect("no panics under this lock")
                .settle(p.id, now.duration_since(p.at));
            self.pending = None;
        }
    }
}

/// Whether node `pid` may hold another set than `desired`: it is not the
/// node last pushed to (a new one holds none), the set last pushed differs,
/// or its `GET /edge` (when it answered) lists another.
fn push_needed(
    last_push: Option<&(u32, Vec<String>)>,
    pid: u32,
    listed: Option<&[String]>,
    desired: &[String],
) -> bool {
    let held: &[String] = match last_push {
        Some((p, set)) if *p == pid => set,
        _ => &[],
    };
    held != desired || listed.is_some_and(|l| l != desired)
}

/// The instances the edge lists as registered at run time, sorted.
fn registered_set(e: &EdgeStatus) -> Vec<String> {
    let mut out: Vec<String> = e
        .backends
        .iter()
        .filter(|b| b.source == REGISTERED)
        .map(|b| b.addr.clone())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex as StdMutex;

    use axum::extract::State;
    use axum::routing::{get, put};
    use axum::{Json, Router};
    use meridian_api::edge::BackendStatus;
    use tokio::sync::Mutex;

    use super::*;
    use crate::apps::{AppLauncher, AppOptions, RegionApps};
    use crate::up::config::topology_for;
    use crate::up::nodes::{NodeLaunch, Nodes};

    fn set(addrs: &[&str]) -> Vec<String> {
        addrs.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn a_push_is_needed_for_a_new_node_a_new_set_or_an_edge_that_lists_another() {
        let two = set(&["127.0.0.1:1", "127.0.0.1:2"]);
        let pushed = (7, two.clone());
        // In sync: the same node, the same set, and the edge agrees (or
        // did not answer).
        assert!(!push_needed(Some(&pushed), 7, Some(&two), &two));
        assert!(!push_needed(Some(&pushed), 7, None, &two));
        // A restarted node forgot the set.
        assert!(push_needed(Some(&pushed), 8, Some(&two), &two));
        assert!(push_needed(None, 7, None, &two));
        // The set changed.
        assert!(push_needed(Some(&pushed), 7, None, &two[..1]));
        // The edge lists something else.
        assert!(push_needed(Some(&pushed), 7, Some(&[]), &two));
        // A fresh node already holds the empty set.
        assert!(!push_needed(None, 7, None, &[]));
    }

    /// What the fake edge holds and has been told.
    #[derive(Default)]
    struct FakeEdge {
        registered: Vec<String>,
        load_per_instance: f64,
        pushes: Vec<Vec<String>>,
    }

    type Fake = Arc<StdMutex<FakeEdge>>;

    async fn edge_status(State(f): State<Fake>) -> Json<EdgeStatus> {
        let f = f.lock().unwrap();
        let backends = f
            .registered
            .iter()
            .map(|addr| BackendStatus {
                addr: addr.clone(),
                weight: 1,
                source: REGISTERED.into(),
                up: true,
                ejected_ms: None,
                since_ms_ago: 0,
                in_flight: 0,
                requests: 0,
                failures: 0,
            })
            .collect();
        Json(EdgeStatus {
            region: "us-east".into(),
            listen: None,
            serving: !f.registered.is_empty(),
            draining: false,
            in_flight: 0,
            load_per_instance: f.load_per_instance,
            backends,
        })
    }

    async fn put_backends(State(f): State<Fake>, Json(b): Json<BackendSet>) -> Json<()> {
        let mut f = f.lock().unwrap();
        let mut addrs: Vec<String> = b.backends.into_iter().map(|b| b.addr).collect();
        addrs.sort();
        f.registered = addrs.clone();
        f.pushes.push(addrs);
        Json(())
    }

    /// A supervisor of one region whose "node" is a script that sleeps and
    /// whose edge is `fake`, served here; apps are `sleep`s.
    async fn fake_cluster(dir: &std::path::Path, fake: Fake) -> Arc<Supervisor> {
        let region = RegionName::new("us-east").unwrap();
        let ports = crate::ports::choose_ports(1, None).unwrap();
        let config = topology_for(
            std::slice::from_ref(&region),
            &ports,
            ports[0][0] + 3,
            "token",
            "s".repeat(32),
        );
        let topology = config.validate().unwrap();
        let admin = topology.regions[0].admin;
        let app = Router::new()
            .route("/edge", get(edge_status))
            .route("/admin/edge/backends", put(put_backends))
            .with_state(fake);
        let listener = tokio::net::TcpListener::bind(admin).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let node = dir.join("node.sh");
        std::fs::write(&node, "#!/bin/sh\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let launch = NodeLaunch {
            exe: node,
            anti_entropy_ms: 1000,
            durability: meridian_core::Durability::None,
            capture_links: false,
            config: dir.join("topology.toml"),
            dir: dir.to_path_buf(),
        };
        let options = AppOptions::resolve(2, None, Some(4), 2.0, Some("exec sleep 60".into()));
        let options = options.unwrap();
        let launcher = AppLauncher::new(
            "/nonexistent".into(),
            options.command.clone(),
            dir.join("logs"),
            BTreeSet::new(),
        );
        let apps = RegionApps::new(region.clone(), topology.regions[0].resp, 2);
        let sup = Arc::new(Supervisor {
            nodes: Nodes::new(launch, std::slice::from_ref(&region)),
            apps: [(region.clone(), Mutex::new(apps))].into(),
            launcher,
            app_options: options,
            topology,
            dir: dir.to_path_buf(),
            config: dir.join("topology.toml"),
            admin_token: "token".into(),
            cluster_file: Mutex::new(None),
            scale_history: Default::default(),
        });
        sup.nodes.spawn(&region).await.unwrap();
        sup
    }

    /// Polls `f` every 50 ms for up to `secs` seconds.
    async fn until(what: &str, secs: u64, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_loop_registers_scales_reregisters_and_drains_before_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let sup = fake_cluster(dir.path(), fake.clone()).await;
        let region = RegionName::new("us-east").unwrap();
        let loops = TrafficLoops::start(&sup);
        let registered = || fake.lock().unwrap().registered.len();
        let pushes = || fake.lock().unwrap().pushes.len();
        until("two instances registered", 5, || registered() == 2).await;

        // 5 in flight on each of 2: 10 in all, 5 instances at 2 each, at
        // most 4.
        fake.lock().unwrap().load_per_instance = 5.0;
        until("scaled to four", 5, || registered() == 4).await;
        let events = sup.scale_history.lock().unwrap().events();
        assert_eq!((events.len(), events[0].from, events[0].to), (1, 2, 4));
        fake.lock().unwrap().load_per_instance = 1.5;
        until("the scale-up settled", 3, || {
            sup.scale_history.lock().unwrap().events()[0]
                .settled_after_ms
                .is_some()
        })
        .await;

        // Nothing changes: nothing is pushed.
        let before = pushes();
        tokio::time::sleep(TICK * 3).await;
        assert_eq!(pushes(), before, "an unchanged set is not pushed again");

        // A restarted node holds no registrations; one that lost them
        // without restarting is caught by its GET /edge.
        sup.nodes.stop(&region, libc::SIGKILL, TICK).await.unwrap();
        sup.nodes.spawn(&region).await.unwrap();
        until("a push to the new node", 3, || pushes() == before + 1).await;
        fake.lock().unwrap().registered.clear();
        until("a push after the edge forgot", 3, || registered() == 4).await;

        // Quiet for the cooldown: one instance drains. The edge has the
        // reduced set before the instance gets SIGTERM.
        let pids: Vec<u32> = {
            let apps = sup.region_apps(&region).lock().await;
            apps.instances().iter().filter_map(|a| a.pid).collect()
        };
        fake.lock().unwrap().load_per_instance = 0.0;
        let alive = |pid: &u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
        let secs = crate::autoscale::SCALE_DOWN_COOLDOWN.as_secs() + 3;
        until("scaled to three", secs, || registered() == 3).await;
        assert!(pids.iter().all(alive), "drained but not stopped yet");
        until("the drained instance stopped", 10, || {
            pids.iter().filter(|p| alive(p)).count() == 3
        })
        .await;
        assert_eq!(sup.scale_history.lock().unwrap().events()[1].to, 3);

        loops.stop().await;
        sup.stop_all().await;
        assert!(!pids.iter().any(alive), "every instance stopped");
    }
}
