//! Test harness: a real `meridian up` cluster in a temp directory, stopped
//! (SIGTERM, then SIGKILL) when the handle drops, whatever the test did.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::status::NodeStatus;

/// The binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_meridian")
}

/// A running `meridian up`.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub up: Child,
    pub file: ClusterFile,
}

/// Polls `f` every 50 ms until it returns `Some`, up to `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// Starts `meridian up --regions <regions>` and waits for cluster.json.
    pub async fn start(regions: &str) -> Cluster {
        Cluster::start_with(regions, &[]).await
    }

    /// The same with extra `up` arguments. Without `--apps-per-region`,
    /// no app instances run: most tests speak Redis only, and six idle
    /// instances per cluster would cost the parallel test run.
    pub async fn start_with(regions: &str, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let apps: &[&str] = if extra.contains(&"--apps-per-region") {
            &[]
        } else {
            &["--apps-per-region", "0"]
        };
        let up = Command::new(exe())
            .args(["up", "--regions", regions, "--dir"])
            .arg(dir.path())
            .args(apps)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut cluster = Cluster {
            file: ClusterFile {
                cluster: String::new(),
                config: PathBuf::new(),
                up_pid: up.id(),
                supervisor: String::new(),
                admin_token: String::new(),
                regions: Default::default(),
            },
            dir,
            up,
        };
        let path = cluster.dir.path().to_path_buf();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(file) = ClusterFile::load(&path) {
                cluster.file = file;
                return cluster;
            }
            if let Ok(Some(status)) = cluster.up.try_wait() {
                let out = cluster.up.wait_with_output_lossy();
                panic!("meridian up exited early ({status}): {out}");
            }
            assert!(Instant::now() < deadline, "cluster did not come up in 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn admin(&self, region: &str) -> String {
        self.file.regions[region].admin.clone()
    }

    pub fn reload(&mut self) {
        self.file = ClusterFile::load(self.dir.path()).unwrap();
    }

    pub async fn status(&self, region: &str) -> Option<NodeStatus> {
        AdminClient::new(None)
            .get::<NodeStatus>(&format!("{}/status", self.admin(region)))
            .await
            .ok()
    }

    /// Runs a `meridian` subcommand against this cluster's directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(exe());
        cmd.arg(args[0])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&args[1..]);
        cmd.output().unwrap()
    }

    /// Sends `signal` to `up` and waits (bounded) for it to exit.
    pub fn signal_up(&mut self, signal: i32) -> std::process::ExitStatus {
        unsafe { libc::kill(self.up.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.up.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "meridian up did not exit after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn node_pids(&self) -> Vec<u32> {
        self.file.regions.values().filter_map(|r| r.pid).collect()
    }
}

trait OutputLossy {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl OutputLossy for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.up.try_wait().ok().flatten().is_none() {
            self.signal_up(libc::SIGTERM);
        }
        // Belt and braces: nothing this test started may outlive it.
        for pid in processes_mentioning(self.dir.path()) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Processes whose command line mentions `dir` (nodes started for it).
pub fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Waits until none of `pids` is alive.
pub fn wait_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The data API of one cluster, with its token.
impl Cluster {
    pub fn data(&self) -> AdminClient {
        AdminClient::new(Some(self.file.admin_token.clone()))
    }

    /// PUT a value; returns the write's token.
    pub async fn put(&self, region: &str, key: &str, value: &str) -> String {
        self.put_ttl(region, key, value, None).await
    }

    pub async fn put_ttl(
        &self,
        region: &str,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
    ) -> String {
        let ttl = ttl_ms.map(|t| format!("?ttl_ms={t}")).unwrap_or_default();
        let url = format!("{}/data/default/{key}{ttl}", self.admin(region));
        let (status, body) = self
            .data()
            .request_bytes(hyper::Method::PUT, &url, value.as_bytes().to_vec())
            .await
            .unwrap();
        assert!(status.is_success(), "PUT {url}: {status} {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// GET a value (None if absent), optionally after a token.
    pub async fn get(&self, region: &str, key: &str, after: Option<&str>) -> Option<String> {
        let q = after
            .map(|t| format!("?after={t}&wait_ms=10000"))
            .unwrap_or_default();
        let url = format!("{}/data/default/{key}{q}", self.admin(region));
        let (status, body) = self
            .data()
            .request(hyper::Method::GET, &url, None)
            .await
            .unwrap();
        match status.as_u16() {
            200 => Some(body),
            404 => None,
            _ => panic!("GET {url}: {status} {body}"),
        }
    }

    pub async fn incr(&self, region: &str, key: &str, by: i64) -> i64 {
        let url = format!("{}/data/default/{key}/incr?by={by}", self.admin(region));
        let v: serde_json::Value = self
            .data()
            .json(hyper::Method::POST, &url, None)
            .await
            .unwrap();
        v["value"].as_str().unwrap().parse().unwrap()
    }

    /// Each answering region's digest of the default table.
    pub async fn digests(
        &self,
    ) -> std::collections::BTreeMap<String, meridian_api::data::TableDigest> {
        let mut out = std::collections::BTreeMap::new();
        for (name, r) in &self.file.regions {
            let d: Result<std::collections::BTreeMap<String, meridian_api::data::TableDigest>, _> =
                AdminClient::new(None)
                    .get(&format!("{}/digest", r.admin))
                    .await;
            if let Ok(mut d) = d {
                out.insert(name.clone(), d.remove("default").unwrap());
            }
        }
        out
    }

    /// Waits until every region answers with the same digest holding
    /// `keys` keys (any count when `None`).
    pub async fn converged(&self, keys: Option<u64>, limit: Duration) {
        let n = self.file.regions.len();
        eventually(
            "identical digests and version vectors in every region",
            limit,
            || async {
                let d = self.digests().await;
                let first = d.values().next()?.clone();
                // Equal digests alone can pass while writes are in flight; every
                // region must also have applied the same writes.
                let mut vvs = Vec::new();
                for region in self.file.regions.keys() {
                    vvs.push(self.status(region).await?.replication?.applied);
                }
                (d.len() == n
                    && d.values().all(|x| *x == first)
                    && vvs.iter().all(|v| *v == vvs[0])
                    && keys.is_none_or(|k| first.keys == k))
                .then_some(())
            },
        )
        .await;
    }

    /// A `redis` crate connection to a region's Redis endpoint (30 s read
    /// timeout: forwarded writes and strong reads wait for other regions).
    pub fn redis(&self, region: &str) -> redis::Connection {
        let addr = &self.file.regions[region].resp;
        let con = redis::Client::open(format!("redis://{addr}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        con
    }

    /// Writes `region` itself originated (its own entry of its applied
    /// vector); 0 when it does not answer.
    pub async fn own_writes(&self, region: &str) -> u64 {
        self.status(region)
            .await
            .and_then(|s| s.replication)
            .and_then(|r| r.applied.get(region).copied())
            .unwrap_or(0)
    }

    /// One metric sample from a region's /metrics (first match).
    pub async fn metric(&self, region: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (_, text) = AdminClient::new(None)
            .request(
                hyper::Method::GET,
                &format!("{}/metrics", self.admin(region)),
                None,
            )
            .await
            .ok()?;
        parse_metric(&text, name, labels)
    }
}

/// Parses Prometheus text with a real parser (failing the test if it does
/// not parse) and returns the first sample of `name` with these labels.
pub fn parse_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).expect("metrics must parse as Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}
