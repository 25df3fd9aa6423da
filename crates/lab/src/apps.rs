//! The app instances `meridian up` runs behind each region's edge: how
//! they are started (`<meridian> demo-app` or `sh -c CMD`, with `PORT`,
//! `MERIDIAN_REGION`, `MERIDIAN_REDIS`, `MERIDIAN_INSTANCE`), and one
//! region's set of them as it grows, shrinks, crashes and drains.
//!
//! [`RegionApps`] owns the processes of one region and moves them through
//! their life: serving (registered with the edge) → draining (no longer
//! registered; still answering what the edge already sent) → terminating
//! (SIGTERM, SIGKILL after [`APP_STOP_GRACE`]) → reaped. It decides nothing
//! about load ([`crate::autoscale`] does) and talks to no node (`up`'s
//! traffic loop registers [`RegionApps::serving_addrs`]). Nodes are
//! elsewhere (`up`): an app's life is independent of its region's node.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use meridian_api::cluster::AppInstance;
use meridian_core::RegionName;
use tokio::process::{Child, Command};

use crate::autoscale::ScalePolicy;
use crate::process;

/// Most app instances per region: each is a process and a port, and 16
/// regions × 32 is as many processes as a laptop runs comfortably beside
/// the nodes.
pub const APPS_MAX: usize = 32;

/// Instances per region when `--apps-per-region` is not given: two, so
/// one can fail and the region still serves.
pub const APPS_PER_REGION_DEFAULT: usize = 2;

/// `--apps-max` when not given is the larger of this and
/// `--apps-per-region`: room to double the default pool under load.
pub const APPS_MAX_DEFAULT_FLOOR: usize = 4;

/// Requests in flight per instance the pool is sized for, by default: a
/// demo app answers in about a millisecond, so two in flight means it is
/// busy all the time.
pub const TARGET_LOAD_DEFAULT: f64 = 2.0;

/// Largest `--apps-target-load` (beyond it, nothing ever scales).
const TARGET_LOAD_MAX: f64 = 10_000.0;

/// How long an instance gets to exit after SIGTERM before SIGKILL: apps
/// hold no durable state of their own (it is in the region's tables), so
/// a few seconds to finish requests in flight is enough.
pub const APP_STOP_GRACE: Duration = Duration::from_secs(5);

/// How long an instance keeps running after the edge was told it is gone
/// (scale-down), so requests the edge had already sent it complete.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// After an instance exits on its own (or cannot start), how long before
/// a replacement is started: a crashing app restarts at this pace, not in
/// a tight loop.
pub const APP_RESPAWN_BACKOFF: Duration = Duration::from_secs(2);

/// `meridian up`'s app flags, resolved and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct AppOptions {
    /// Instances each region starts with.
    pub per_region: usize,
    /// Fewest instances scaling leaves (while apps run).
    pub min: usize,
    /// Most instances scaling starts.
    pub max: usize,
    /// Requests in flight per instance the pool is sized for.
    pub target_load: f64,
    /// `sh -c` command instead of `<meridian> demo-app`.
    pub command: Option<String>,
}

impl AppOptions {
    /// Fills in the defaults (`min` = per region, `max` = the larger of
    /// per region and [`APPS_MAX_DEFAULT_FLOOR`]) and checks the bounds.
    pub fn resolve(
        per_region: usize,
        min: Option<usize>,
        max: Option<usize>,
        target_load: f64,
        command: Option<String>,
    ) -> anyhow::Result<AppOptions> {
        if per_region > APPS_MAX {
            bail!("--apps-per-region {per_region} is too many; at most {APPS_MAX} instances per region");
        }
        let min = min.unwrap_or(per_region);
        let max = max.unwrap_or(per_region.max(APPS_MAX_DEFAULT_FLOOR));
        if max > APPS_MAX {
            bail!("--apps-max {max} is too many; at most {APPS_MAX} instances per region");
        }
        if !(min <= per_region && per_region <= max) {
            bail!(
                "the app counts must satisfy --apps-min ≤ --apps-per-region ≤ --apps-max; got {min} ≤ {per_region} ≤ {max}"
            );
        }
        if per_region > 0 && min == 0 {
            // At zero instances the edge measures no load, so nothing
            // would ever scale the region up again.
            bail!("--apps-min 0 with apps running: a region scaled to 0 instances could never scale up again; use --apps-min 1 or more");
        }
        if !(target_load > 0.0 && target_load <= TARGET_LOAD_MAX) {
            bail!("--apps-target-load {target_load}: use a number above 0 and at most {TARGET_LOAD_MAX} (requests in flight per instance)");
        }
        if command.as_deref().is_some_and(|c| c.trim().is_empty()) {
            bail!("--app names no command");
        }
        Ok(AppOptions {
            per_region,
            min,
            max,
            target_load,
            command,
        })
    }

    /// The autoscaler's bounds and goal.
    pub fn policy(&self) -> ScalePolicy {
        ScalePolicy {
            min: self.min,
            max: self.max,
            target_load: self.target_load,
        }
    }
}

/// What an instance runs.
#[derive(Clone, Debug)]
enum AppProgram {
    /// `<meridian> demo-app`.
    DemoApp(PathBuf),
    /// `sh -c CMD`.
    Shell(String),
}

/// Starts instances and hands out their ports.
#[derive(Debug)]
pub struct AppLauncher {
    program: AppProgram,
    log_dir: PathBuf,
    /// Ports an instance must not get: the nodes'.
    reserved: BTreeSet<u16>,
    /// Ports held by instances now (across regions): one that was just
    /// started may not have bound yet, so binding alone cannot tell.
    handed_out: StdMutex<BTreeSet<u16>>,
}

impl AppLauncher {
    /// Instances run `command` through `sh -c`, or `exe demo-app`; logs go
    /// to `log_dir`; `reserved` ports (the nodes') are never handed out.
    pub fn new(
        exe: PathBuf,
        command: Option<String>,
        log_dir: PathBuf,
        reserved: BTreeSet<u16>,
    ) -> AppLauncher {
        AppLauncher {
            program: command.map_or(AppProgram::DemoApp(exe), AppProgram::Shell),
            log_dir,
            reserved,
            handed_out: StdMutex::default(),
        }
    }

    fn take_port(&self) -> anyhow::Result<u16> {
        let mut handed = self.handed_out.lock().expect("no panics under this lock");
        let exclude: BTreeSet<u16> = self.reserved.union(&handed).copied().collect();
        let port = crate::ports::free_port(&exclude)?;
        handed.insert(port);
        Ok(port)
    }

    fn release(&self, port: u16) {
        self.handed_out
            .lock()
            .expect("no panics under this lock")
            .remove(&port);
    }

    /// Starts instance `index` of `region` on a fresh port.
    fn spawn(
        &self,
        region: &RegionName,
        redis: SocketAddr,
        index: usize,
    ) -> anyhow::Result<AppProcess> {
        let port = self.take_port()?;
        let started = self.spawn_on(region, redis, index, port);
        if started.is_err() {
            self.release(port);
        }
        started
    }

    fn spawn_on(
        &self,
        region: &RegionName,
        redis: SocketAddr,
        index: usize,
        port: u16,
    ) -> anyhow::Result<AppProcess> {
        let name = format!("{region}-{index}");
        let log_path = self.log_dir.join(format!("{region}-app-{index}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut cmd = match &self.program {
            AppProgram::DemoApp(exe) => {
                let mut c = Command::new(exe);
                c.arg("demo-app");
                c
            }
            AppProgram::Shell(line) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
        };
        cmd.env("PORT", port.to_string())
            .env("MERIDIAN_REGION", region.as_str())
            .env("MERIDIAN_REDIS", redis.to_string())
            .env("MERIDIAN_INSTANCE", &name)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        process::die_with_parent(&mut cmd, true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start app instance {name}"))?;
        let pid = child.id().context("a child just started has a pid")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        tracing::info!(%region, instance = %name, %addr, pid, "app instance started");
        Ok(AppProcess {
            name,
            addr,
            child,
            pid,
            log: log_path,
        })
    }
}

/// One running instance (not reaped yet, so its pid is still ours).
#[derive(Debug)]
pub struct AppProcess {
    name: String,
    addr: SocketAddr,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl AppProcess {
    /// How it appears in `cluster.json` and the supervisor API.
    pub fn instance(&self) -> AppInstance {
        AppInstance {
            addr: self.addr.to_string(),
            pid: Some(self.pid),
        }
    }

    /// Its exit status once it has exited (reaping it).
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Signals its process group (what `sh -c` started included).
    fn signal(&self, signal: i32) {
        process::send_signal(self.pid, signal, true);
    }

    /// Waits until `deadline` for it to exit, then SIGKILLs it.
    async fn wait_or_kill(&mut self, deadline: tokio::time::Instant) {
        if tokio::time::timeout_at(deadline, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(instance = %self.name, "app instance did not stop in time; killing it");
            self.signal(libc::SIGKILL);
            let _ = self.child.wait().await;
        }
    }
}

/// Where a leaving instance is.
#[derive(Debug)]
enum Leaving {
    /// Out of the set registered with the edge; `since` the edge was told
    /// (`None` until a registration without it went through).
    Draining { since: Option<Instant> },
    /// SIGTERMed; SIGKILL at `kill_at`.
    Terminating { kill_at: Instant },
}

/// One region's app instances.
#[derive(Debug)]
pub struct RegionApps {
    region: RegionName,
    redis: SocketAddr,
    /// Registered with the edge (or about to be).
    serving: Vec<AppProcess>,
    /// Scaled away, still running until drained and stopped.
    leaving: Vec<(AppProcess, Leaving)>,
    /// Instances wanted while not stopped.
    target: usize,
    /// Chaos stopped them: none run until started again.
    stopped: bool,
    /// The next instance number (`<region>-<k>`, from 1, never reused so
    /// each log file is one instance's).
    next_index: usize,
    /// No replacement before this, after an exit or a failed start.
    respawn_after: Option<Instant>,
    /// The last instance that exited on its own: name, status, log tail.
    last_exit: Option<String>,
}

impl RegionApps {
    /// No instances yet; [`RegionApps::reconcile`] starts `target` of them.
    pub fn new(region: RegionName, redis: SocketAddr, target: usize) -> RegionApps {
        RegionApps {
            region,
            redis,
            serving: Vec::new(),
            leaving: Vec::new(),
            target,
            stopped: false,
            next_index: 1,
            respawn_after: None,
            last_exit: None,
        }
    }

    /// Instances wanted (while not stopped).
    pub fn target(&self) -> usize {
        self.target
    }

    /// Sets the instances wanted; [`RegionApps::reconcile`] gets there.
    pub fn set_target(&mut self, target: usize) {
        self.target = target;
    }

    /// Whether chaos stopped this region's apps.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// What the edge should have registered, sorted.
    pub fn serving_addrs(&self) -> Vec<String> {
        let mut out: Vec<String> = self.serving.iter().map(|a| a.addr.to_string()).collect();
        out.sort();
        out
    }

    /// The serving instances, for `cluster.json` and the supervisor API.
    pub fn instances(&self) -> Vec<AppInstance> {
        self.serving.iter().map(AppProcess::instance).collect()
    }

    /// The last instance that exited on its own, with its log's tail.
    pub fn last_exit(&self) -> Option<&str> {
        self.last_exit.as_deref()
    }

    /// Removes instances that have exited. An instance that exits while
    /// serving crashed: it is logged, and its replacement waits
    /// [`APP_RESPAWN_BACKOFF`]. Returns whether the serving set changed.
    pub fn reap(&mut self, launcher: &AppLauncher, now: Instant) -> bool {
        let before = self.serving.len();
        let mut kept = Vec::with_capacity(before);
        for mut app in std::mem::take(&mut self.serving) {
            match app.exited() {
                None => kept.push(app),
                Some(status) => {
                    let tail = process::log_tail(&app.log);
                    tracing::warn!(region = %self.region, instance = %app.name, %status, "app instance exited; a replacement follows in {APP_RESPAWN_BACKOFF:?}");
                    self.last_exit = Some(format!(
                        "app instance {} exited ({status}); {}:\n{tail}",
                        app.name,
                        app.log.display()
                    ));
                    self.respawn_after = Some(now + APP_RESPAWN_BACKOFF);
                    launcher.release(app.addr.port());
                }
            }
        }
        self.serving = kept;
        self.leaving.retain_mut(|(app, _)| match app.exited() {
            None => true,
            Some(_) => {
                tracing::debug!(instance = %app.name, "app instance stopped");
                launcher.release(app.addr.port());
                false
            }
        });
        self.serving.len() != before
    }

    /// Starts or drains instances until `target` serve (none while
    /// stopped). The newest leave first. A failed start is logged and
    /// retried after [`APP_RESPAWN_BACKOFF`]. Returns whether the serving
    /// set changed.
    pub fn reconcile(&mut self, launcher: &AppLauncher, now: Instant) -> bool {
        let want = if self.stopped { 0 } else { self.target };
        let mut changed = false;
        while self.serving.len() > want {
            let app = self.serving.pop().expect("longer than want ≥ 0");
            tracing::info!(region = %self.region, instance = %app.name, "app instance draining");
            self.leaving.push((app, Leaving::Draining { since: None }));
            changed = true;
        }
        if self.respawn_after.is_some_and(|t| now < t) {
            return changed;
        }
        while self.serving.len() < want {
            match launcher.spawn(&self.region, self.redis, self.next_index) {
                Ok(app) => {
                    self.next_index += 1;
                    self.serving.push(app);
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(region = %self.region, "cannot start an app instance: {e:#}");
                    self.last_exit = Some(format!("{e:#}"));
                    self.respawn_after = Some(now + APP_RESPAWN_BACKOFF);
                    break;
                }
            }
        }
        changed
    }

    /// The edge has (at `now`) a set without the draining instances, or
    /// cannot send them anything (its node is down): their drain grace
    /// starts.
    pub fn unregistered(&mut self, now: Instant) {
        for (_, stage) in &mut self.leaving {
            if let Leaving::Draining {
                since: since @ None,
            } = stage
            {
                *since = Some(now);
            }
        }
    }

    /// SIGTERMs instances drained for [`DRAIN_GRACE`] and SIGKILLs those
    /// that outlived [`APP_STOP_GRACE`] after it.
    pub fn advance_leaving(&mut self, now: Instant) {
        for (app, stage) in &mut self.leaving {
            match *stage {
                Leaving::Draining { since: Some(since) } if now >= since + DRAIN_GRACE => {
                    app.signal(libc::SIGTERM);
                    *stage = Leaving::Terminating {
                        kill_at: now + APP_STOP_GRACE,
                    };
                }
                Leaving::Terminating { kill_at } if now >= kill_at => {
                    tracing::warn!(instance = %app.name, "app instance did not stop in {APP_STOP_GRACE:?}; killing it");
                    app.signal(libc::SIGKILL);
                }
                _ => {}
            }
        }
    }

    /// Chaos: SIGKILLs every instance (a crash: the edge is not told
    /// first) and keeps the region at none until [`RegionApps::start_again`].
    /// Returns the pids killed.
    pub async fn crash_all(&mut self, launcher: &AppLauncher) -> Vec<u32> {
        self.stopped = true;
        let mut apps: Vec<AppProcess> = std::mem::take(&mut self.serving);
        apps.extend(
            std::mem::take(&mut self.leaving)
                .into_iter()
                .map(|(a, _)| a),
        );
        let pids = apps.iter().map(|a| a.pid).collect();
        for a in &apps {
            a.signal(libc::SIGKILL);
        }
        let deadline = tokio::time::Instant::now() + APP_STOP_GRACE;
        for mut a in apps {
            a.wait_or_kill(deadline).await;
            launcher.release(a.addr.port());
        }
        pids
    }

    /// Chaos: runs `min` fresh instances again (new ports) after
    /// [`RegionApps::crash_all`]; scaling resumes from there.
    pub fn start_again(&mut self, launcher: &AppLauncher, min: usize, now: Instant) {
        self.stopped = false;
        self.target = min;
        self.respawn_after = None;
        self.reconcile(launcher, now);
    }

    /// Shutdown, first step: SIGTERM to every instance.
    pub fn terminate_all(&self) {
        let leaving = self.leaving.iter().map(|(a, _)| a);
        for a in self.serving.iter().chain(leaving) {
            a.signal(libc::SIGTERM);
        }
    }

    /// Shutdown, second step: waits for every instance until `deadline`,
    /// SIGKILLing the ones still running then.
    pub async fn wait_all(&mut self, deadline: tokio::time::Instant) {
        let mut apps: Vec<AppProcess> = std::mem::take(&mut self.serving);
        apps.extend(
            std::mem::take(&mut self.leaving)
                .into_iter()
                .map(|(a, _)| a),
        );
        for mut a in apps {
            a.wait_or_kill(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_default_from_apps_per_region() {
        let o = AppOptions::resolve(2, None, None, 2.0, None).unwrap();
        assert_eq!((o.per_region, o.min, o.max), (2, 2, 4));
        let o = AppOptions::resolve(6, None, None, 2.0, None).unwrap();
        assert_eq!((o.min, o.max), (6, 6));
        let o = AppOptions::resolve(0, None, None, 2.0, None).unwrap();
        assert_eq!((o.min, o.max), (0, 4));
        let o = AppOptions::resolve(3, Some(1), Some(8), 0.5, Some("x".into())).unwrap();
        assert_eq!(
            o.policy(),
            ScalePolicy {
                min: 1,
                max: 8,
                target_load: 0.5
            }
        );
    }

    #[test]
    fn counts_out_of_order_or_bounds_are_refused_with_the_fix() {
        let err = |per, min, max, load: f64, cmd: Option<&str>| {
            AppOptions::resolve(per, min, max, load, cmd.map(str::to_string))
                .unwrap_err()
                .to_string()
        };
        assert!(err(2, Some(3), None, 2.0, None).contains("--apps-min ≤ --apps-per-region"));
        assert!(err(5, None, Some(4), 2.0, None).contains("got 5 ≤ 5 ≤ 4"));
        assert!(err(2, None, Some(APPS_MAX + 1), 2.0, None).contains("at most 32"));
        assert!(err(40, None, None, 2.0, None).contains("--apps-per-region 40 is too many"));
        assert!(err(2, Some(0), None, 2.0, None).contains("--apps-min 1"));
        assert!(err(2, None, None, 0.0, None).contains("--apps-target-load"));
        assert!(err(2, None, None, f64::NAN, None).contains("--apps-target-load"));
        assert!(err(2, None, None, 2.0, Some("  ")).contains("--app names no command"));
    }

    fn launcher(dir: &std::path::Path, command: &str) -> AppLauncher {
        AppLauncher::new(
            PathBuf::from("/nonexistent"),
            Some(command.to_string()),
            dir.to_path_buf(),
            BTreeSet::new(),
        )
    }

    fn region() -> RegionApps {
        let redis = SocketAddr::from(([127, 0, 0, 1], 6379));
        RegionApps::new(RegionName::new("us-east").unwrap(), redis, 2)
    }

    /// Waits (bounded) until `f` holds, reaping as the traffic loop does.
    async fn until(apps: &mut RegionApps, l: &AppLauncher, f: impl Fn(&RegionApps) -> bool) {
        for _ in 0..200 {
            apps.reap(l, Instant::now());
            if f(apps) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("condition not reached: {apps:?}");
    }

    #[tokio::test]
    async fn instances_get_their_environment_ports_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let l = launcher(
            dir.path(),
            "echo \"$PORT $MERIDIAN_REGION $MERIDIAN_REDIS $MERIDIAN_INSTANCE\"; exec sleep 30",
        );
        let mut apps = region();
        assert!(apps.reconcile(&l, Instant::now()));
        let addrs = apps.serving_addrs();
        assert_eq!(addrs.len(), 2);
        assert_ne!(addrs[0], addrs[1]);
        let log = dir.path().join("us-east-app-2.log");
        until(&mut apps, &l, |_| {
            std::fs::read_to_string(&log).is_ok_and(|t| t.ends_with('\n'))
        })
        .await;
        let line = std::fs::read_to_string(&log).unwrap();
        let port = apps.serving[1].addr.port();
        assert_eq!(line, format!("{port} us-east 127.0.0.1:6379 us-east-2\n"));
        apps.terminate_all();
        apps.wait_all(tokio::time::Instant::now() + APP_STOP_GRACE)
            .await;
        assert!(apps.serving_addrs().is_empty());
    }

    #[tokio::test]
    async fn scale_down_drains_the_newest_only_after_the_edge_was_told() {
        let dir = tempfile::tempdir().unwrap();
        let l = launcher(dir.path(), "exec sleep 30");
        let mut apps = region();
        let t = Instant::now();
        apps.reconcile(&l, t);
        let first = apps.serving_addrs();
        apps.set_target(1);
        assert!(apps.reconcile(&l, t));
        assert_eq!(apps.instances(), vec![apps.serving[0].instance()]);
        assert_eq!(apps.serving[0].name, "us-east-1");
        // Not told yet: the grace has not started, however long it waits.
        apps.advance_leaving(t + Duration::from_secs(60));
        assert!(matches!(
            apps.leaving[0].1,
            Leaving::Draining { since: None }
        ));
        apps.unregistered(t);
        apps.advance_leaving(t + DRAIN_GRACE / 2);
        assert!(matches!(apps.leaving[0].1, Leaving::Draining { .. }));
        apps.advance_leaving(t + DRAIN_GRACE);
        assert!(matches!(apps.leaving[0].1, Leaving::Terminating { .. }));
        until(&mut apps, &l, |a| a.leaving.is_empty()).await;
        assert_eq!(apps.serving_addrs().len(), 1);
        assert!(first.contains(&apps.serving_addrs()[0]));
        assert!(
            apps.last_exit().is_none(),
            "a drained instance did not crash"
        );
        apps.terminate_all();
        apps.wait_all(tokio::time::Instant::now() + APP_STOP_GRACE)
            .await;
    }

    #[tokio::test]
    async fn a_crashed_instance_is_replaced_after_the_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let l = launcher(dir.path(), "echo bye; exit 3");
        let mut apps = region();
        apps.set_target(1);
        let t = Instant::now();
        apps.reconcile(&l, t);
        until(&mut apps, &l, |a| a.serving.is_empty()).await;
        let exit = apps.last_exit().unwrap();
        assert!(exit.contains("us-east-1") && exit.contains("bye"), "{exit}");
        let now = Instant::now();
        assert!(
            !apps.reconcile(&l, now),
            "no replacement within the backoff"
        );
        assert!(apps.reconcile(&l, now + APP_RESPAWN_BACKOFF));
        assert_eq!(apps.serving[0].name, "us-east-2");
    }

    #[tokio::test]
    async fn chaos_kills_every_instance_and_start_again_runs_fresh_ones() {
        let dir = tempfile::tempdir().unwrap();
        let l = launcher(dir.path(), "exec sleep 30");
        let mut apps = region();
        let t = Instant::now();
        apps.reconcile(&l, t);
        let killed = apps.crash_all(&l).await;
        assert_eq!(killed.len(), 2);
        assert!(killed
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()));
        assert!(apps.stopped() && apps.serving_addrs().is_empty());
        // Stopped: reconciling starts nothing, whatever the target.
        apps.set_target(3);
        assert!(!apps.reconcile(&l, t + Duration::from_secs(60)));
        apps.start_again(&l, 1, t);
        assert!(!apps.stopped());
        assert_eq!(apps.serving_addrs().len(), 1);
        assert_eq!(apps.serving[0].name, "us-east-3");
        apps.terminate_all();
        apps.wait_all(tokio::time::Instant::now() + APP_STOP_GRACE)
            .await;
    }
}
