//! `meridian chaos run`: a workload under faults, checked.
//!
//! It starts a fresh three-region cluster (a `single_master` table homed in
//! us-east for registers), runs clients in every region through the Redis
//! endpoint while a scenario injects faults, heals everything, and checks
//! the recorded history ([`crate::history`]):
//!
//! - strong reads and forwarded writes of single-master registers are
//!   linearizable;
//! - session connections read their writes and never read backwards, while
//!   clients move between regions carrying their token (`MERIDIAN.TOKEN` →
//!   `MERIDIAN.AFTER`);
//! - a write acknowledged globally (`MERIDIAN.ACK global 2`) is held by every
//!   surviving region soon after its origin is killed, before it restarts;
//! - after healing, every region holds identical data (digests and version
//!   vectors; a pinned table among the regions that hold it);
//! - residency: a table pinned to us-east and eu-west is written in every
//!   region (from ap-south by forwarding), and afterwards neither ap-south's
//!   store nor the bytes that crossed its links (`--capture-links`) hold
//!   anything written in the allowed regions, nor its store anything
//!   forwarded from it.
//!
//! Scenarios: `partition` (random pairs cut and healed), `kill` (SIGKILL a
//! region, check global acks, restart it), `latency` (round-trip spikes),
//! `move` (planned switchovers of the registers' home), `mixed` (all of
//! them). Every loop is bounded by the duration and by [`CLIENT_OPS_MAX`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::faults::{self, Fault};
use crate::history::{self, Anomaly, RegisterOp, SessionOp};
use crate::resp_client::{RespConn, Value};
use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;

/// Operations per client at most, whatever the duration.
pub const CLIENT_OPS_MAX: usize = 200_000;

/// Longest a single client call may take (forwarding and strong reads wait
/// up to 5 s for the home).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Register keys live this long before clients move to fresh ones, which
/// keeps every key's history short enough to search.
const REGISTER_WINDOW: Duration = Duration::from_secs(3);

/// Register keys per window.
const REGISTER_KEYS: u64 = 4;

/// How long survivors may take to hold a killed region's globally
/// acknowledged writes (relayed between themselves).
const SURVIVOR_DEADLINE: Duration = Duration::from_secs(15);

/// How long the healed cluster may take to converge.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(90);

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

const TABLES: &str = r#"
[[tables]]
name = "registers"
key_prefixes = ["reg:"]
mode = { single_master = { home = "us-east" } }

[[tables]]
name = "pinned"
key_prefixes = ["pin:"]
mode = { pinned = { regions = ["us-east", "eu-west"], outside = "forward" } }
"#;

/// The region outside the pinned table's allowed regions.
const OUTSIDE: &str = "ap-south";

/// Which faults to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Cut random region pairs for a few seconds, then heal.
    Partition,
    /// SIGKILL a region, check its global acks survive, restart it.
    Kill,
    /// Raise a random pair's round trip to 300–700 ms, then restore it.
    Latency,
    /// Move the registers' home to another region (planned switchover).
    Move,
    /// All of the above, in turn.
    Mixed,
}

/// What `chaos run` does.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The faults.
    pub scenario: Scenario,
    /// How long the workload runs.
    pub duration: Duration,
    /// Clients per region.
    pub clients_per_region: usize,
    /// Seed of the fault schedule and the workload's choices.
    pub seed: u64,
    /// Where the cluster, its log and the history go.
    pub out: PathBuf,
}

/// What a run checked and found.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    /// The scenario.
    pub scenario: Option<Scenario>,
    /// The seed.
    pub seed: u64,
    /// Faults injected, in order.
    pub faults: Vec<String>,
    /// Operations sent.
    pub operations: usize,
    /// Operations that failed (refused, timed out, connection lost).
    pub failed: usize,
    /// Register operations checked for linearizability.
    pub linearizable_checked: usize,
    /// Session reads checked.
    pub session_reads_checked: usize,
    /// Globally acknowledged writes checked after a kill.
    pub global_acks_checked: usize,
    /// Pinned-table writes whose residency was checked.
    pub residency_writes_checked: usize,
    /// Bytes of ap-south's store and link captures searched for them.
    pub residency_bytes_searched: usize,
    /// Whether the healed cluster converged.
    pub converged: bool,
    /// Every broken promise.
    pub anomalies: Vec<Anomaly>,
}

/// The shared record of a run.
#[derive(Default)]
struct Recorder {
    registers: Vec<RegisterOp>,
    sessions: Vec<SessionOp>,
    /// Per client: its newest globally acknowledged write (value, region).
    global_acked: BTreeMap<usize, (u64, String)>,
    /// Pinned-table writes acknowledged: (made outside, forwarded).
    pinned_writes: (usize, usize),
    operations: usize,
    failed: usize,
}

/// Runs the scenario; an `Err` also when anomalies were found (the report
/// is written either way).
pub async fn run(opts: RunOptions) -> anyhow::Result<RunReport> {
    std::fs::create_dir_all(&opts.out)?;
    let out = opts.out.canonicalize()?;
    let extra = out.join("tables.toml");
    std::fs::write(&extra, TABLES)?;
    let extra = extra.to_string_lossy().into_owned();
    let (guard, file, dir) = crate::bench::cluster::start_cluster(
        &out,
        &REGIONS,
        // The workload speaks Redis: no app instances behind the edges.
        &[
            "--extra-config",
            &extra,
            "--capture-links",
            "--apps-per-region",
            "0",
        ],
    )
    .await?;
    // Marks what clients write to the pinned table, unique to this run.
    let nonce = format!("{:012x}", fastrand::u64(..) >> 16);
    let started = Instant::now();
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let deadline = Instant::now() + opts.duration;
    let regions: Vec<(String, String)> = REGIONS
        .iter()
        .map(|r| (r.to_string(), file.regions[*r].resp.clone()))
        .collect();

    let clients = spawn_clients(&opts, &regions, &nonce, started, deadline, &recorder);
    let mut report = RunReport {
        scenario: Some(opts.scenario),
        seed: opts.seed,
        ..RunReport::default()
    };
    let faults = faults(
        &dir,
        &file,
        opts.scenario,
        opts.seed,
        deadline,
        &recorder,
        &mut report,
    )
    .await;
    for c in clients {
        c.await.context("a client task failed")?;
    }
    faults?;

    heal_all(&dir, &file).await?;
    report.converged = converged(&file, CONVERGE_DEADLINE).await;
    if !report.converged {
        report.anomalies.push(Anomaly {
            check: "convergence",
            key: String::new(),
            detail: format!(
                "regions did not reach identical digests and version vectors within {} s of healing",
                CONVERGE_DEADLINE.as_secs()
            ),
        });
    }
    drop(guard);

    let rec = std::mem::take(&mut *recorder.lock().expect("recorder lock"));
    check_history(&rec, &dir, &nonce, &mut report)?;
    std::fs::write(
        out.join("history.json"),
        serde_json::to_vec(&serde_json::json!({
            "registers": rec.registers,
            "sessions": rec.sessions,
        }))?,
    )?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    summarize(&report, opts.scenario);
    if !report.anomalies.is_empty() {
        bail!(
            "{} anomalies; history in {}",
            report.anomalies.len(),
            out.join("history.json").display()
        );
    }
    Ok(report)
}

/// Starts `clients_per_region` clients in every region, each with its own
/// seeded generator, recording into `recorder` until `deadline`.
fn spawn_clients(
    opts: &RunOptions,
    regions: &[(String, String)],
    nonce: &str,
    started: Instant,
    deadline: Instant,
    recorder: &Arc<Mutex<Recorder>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let n = REGIONS.len() * opts.clients_per_region;
    (0..n)
        .map(|id| {
            let client = Client {
                id,
                clients: n,
                regions: regions.to_vec(),
                at: id % REGIONS.len(),
                conns: None,
                token: String::new(),
                next_session: 0,
                next_global: 0,
                rng: fastrand::Rng::with_seed(
                    opts.seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9),
                ),
                nonce: nonce.to_string(),
                next_pinned: 0,
                started,
                recorder: recorder.clone(),
            };
            tokio::spawn(client.run(deadline))
        })
        .collect()
}

/// Undoes every fault: links healed, latencies restored, every region
/// running.
async fn heal_all(dir: &Path, file: &ClusterFile) -> anyhow::Result<()> {
    say("healing every link, restarting every region, waiting for convergence");
    faults::apply(dir, Fault::Heal { a: None, b: None }).await?;
    for (i, a) in REGIONS.iter().enumerate() {
        for b in &REGIONS[i + 1..] {
            restore_latency(dir, a, b).await?;
        }
    }
    for r in REGIONS {
        if !region_up(file, r).await {
            faults::apply(dir, Fault::Restart { region: r.into() }).await?;
        }
    }
    Ok(())
}

/// Checks what the clients saw and what crossed the links: residency of
/// the pinned table, linearizability of registers, session guarantees.
fn check_history(
    rec: &Recorder,
    dir: &Path,
    nonce: &str,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    let (inside, forwarded) = rec.pinned_writes;
    report.residency_writes_checked = inside + forwarded;
    let (searched, breaches) = residency(dir, nonce, inside > 0)?;
    report.residency_bytes_searched = searched;
    report.anomalies.extend(breaches);
    let (lin, lin_checked) = history::check_linearizable(&rec.registers);
    let (ses, ses_checked) = history::check_session(&rec.sessions);
    report.linearizable_checked = lin_checked;
    report.session_reads_checked = ses_checked;
    report.anomalies.extend(lin);
    report.anomalies.extend(ses);
    report.operations = rec.operations;
    report.failed = rec.failed;
    Ok(())
}

/// One line of figures and one per anomaly, on stderr.
fn summarize(report: &RunReport, scenario: Scenario) {
    say(format!(
        "{:?}: {} operations ({} failed), {} register ops checked for linearizability, {} session reads, {} global acks after kills, {} pinned writes checked for residency in {} bytes, converged: {}, anomalies: {}",
        scenario,
        report.operations,
        report.failed,
        report.linearizable_checked,
        report.session_reads_checked,
        report.global_acks_checked,
        report.residency_writes_checked,
        report.residency_bytes_searched,
        report.converged,
        report.anomalies.len()
    ));
    for a in &report.anomalies {
        say(format!("ANOMALY {} {}: {}", a.check, a.key, a.detail));
    }
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[chaos run] {}", msg.as_ref());
}

/// A client's three connections in one region.
struct Conns {
    /// `session` reads, default acks.
    session: RespConn,
    /// `strong` reads of registers.
    strong: RespConn,
    /// `MERIDIAN.ACK global 2`.
    global: RespConn,
}

struct Client {
    id: usize,
    clients: usize,
    regions: Vec<(String, String)>,
    at: usize,
    conns: Option<Conns>,
    token: String,
    next_session: u64,
    next_global: u64,
    rng: fastrand::Rng,
    /// This run's marker for pinned writes.
    nonce: String,
    next_pinned: u64,
    started: Instant,
    recorder: Arc<Mutex<Recorder>>,
}

/// How one call ended.
enum Outcome {
    Ok(Value),
    /// An error reply: the server answered, nothing else is wrong.
    Refused(String),
    /// No usable answer: the connection is gone.
    Lost,
}

impl Client {
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn region(&self) -> String {
        self.regions[self.at].0.clone()
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let addr = self.regions[self.at].1.clone();
        let mut session = RespConn::connect(&addr, CALL_TIMEOUT).await?;
        if !self.token.is_empty() {
            let r = session
                .call(&["MERIDIAN.AFTER", &self.token, "5000"])
                .await?;
            if r != Value::Simple("OK".into()) {
                bail!("MERIDIAN.AFTER answered {r:?}");
            }
        }
        let mut strong = RespConn::connect(&addr, CALL_TIMEOUT).await?;
        strong.call(&["MERIDIAN.CONSISTENCY", "strong"]).await?;
        let mut global = RespConn::connect(&addr, CALL_TIMEOUT).await?;
        global
            .call(&["MERIDIAN.ACK", "global", "2", "3000"])
            .await?;
        self.conns = Some(Conns {
            session,
            strong,
            global,
        });
        Ok(())
    }

    /// Moves to the next region, carrying the session token.
    fn move_on(&mut self) {
        self.conns = None;
        self.at = (self.at + 1) % self.regions.len();
    }

    /// One call; a lost connection moves the client on to the next region.
    async fn call(&mut self, which: fn(&mut Conns) -> &mut RespConn, args: &[&str]) -> Outcome {
        let Some(conns) = self.conns.as_mut() else {
            return Outcome::Lost;
        };
        match which(conns).call(args).await {
            Ok(Value::Error(e)) => Outcome::Refused(e),
            Ok(v) => Outcome::Ok(v),
            Err(_) => {
                self.move_on();
                Outcome::Lost
            }
        }
    }

    fn record(&self, f: impl FnOnce(&mut Recorder)) {
        f(&mut self.recorder.lock().expect("recorder lock"));
    }

    fn record_session(&self, key: String, wrote: Option<u64>, read: Option<Option<u64>>) {
        let op = SessionOp {
            client: self.id,
            region: self.region(),
            key,
            wrote,
            read,
        };
        self.record(|r| r.sessions.push(op));
    }

    async fn run(mut self, deadline: Instant) {
        let mut ops = 0;
        while Instant::now() < deadline && ops < CLIENT_OPS_MAX {
            if self.conns.is_none() && self.connect().await.is_err() {
                self.move_on();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            ops += 1;
            let ok = match self.rng.u32(0..22) {
                0..=6 => self.register_op().await,
                7..=14 => self.session_op().await,
                15..=18 => self.global_op().await,
                19..=20 => self.pinned_op().await,
                _ => {
                    self.move_on();
                    true
                }
            };
            self.record(|r| {
                r.operations += 1;
                r.failed += usize::from(!ok);
            });
        }
    }

    /// A forwarded write or strong read of a register.
    async fn register_op(&mut self) -> bool {
        let window = self.started.elapsed().as_millis() as u64 / REGISTER_WINDOW.as_millis() as u64;
        let key = format!("reg:{window}:{}", self.rng.u64(0..REGISTER_KEYS));
        let write = self
            .rng
            .bool()
            .then(|| format!("c{}-{}", self.id, self.rng.u64(..)));
        // Before the call: a lost connection moves the client on.
        let region = self.region();
        let invoke_us = self.now_us();
        let outcome = match &write {
            Some(v) => self.call(|c| &mut c.strong, &["SET", &key, v]).await,
            None => self.call(|c| &mut c.strong, &["GET", &key]).await,
        };
        let complete_us = self.now_us();
        let mut op = RegisterOp {
            client: self.id,
            region,
            key,
            write: write.clone(),
            read: None,
            invoke_us,
            complete_us: Some(complete_us),
        };
        let ok = matches!(outcome, Outcome::Ok(_));
        match outcome {
            Outcome::Ok(v) => op.read = v.text().filter(|_| write.is_none()),
            // A write that may have been applied stays in the history with
            // no completion; anything else that failed left no trace.
            Outcome::Refused(e) if write.is_some() && e.contains("may or may not") => {
                op.complete_us = None
            }
            Outcome::Lost if write.is_some() => op.complete_us = None,
            Outcome::Refused(_) | Outcome::Lost => return false,
        }
        self.record(|r| r.registers.push(op));
        ok
    }

    /// A write of this client's session key, or a read of any client's.
    async fn session_op(&mut self) -> bool {
        if self.rng.bool() {
            let value = self.next_session + 1;
            let key = format!("s:c{}", self.id);
            match self
                .call(|c| &mut c.session, &["SET", &key, &value.to_string()])
                .await
            {
                Outcome::Ok(_) => {
                    self.next_session = value;
                    self.record_session(key, Some(value), None);
                }
                Outcome::Refused(_) => return false,
                Outcome::Lost => {
                    // Its fate is unknown: later values still increase.
                    self.next_session = value;
                    return false;
                }
            }
        } else {
            let key = format!("s:c{}", self.rng.usize(0..self.clients));
            let read = match self.call(|c| &mut c.session, &["GET", &key]).await {
                Outcome::Ok(Value::Bulk(None)) => None,
                Outcome::Ok(v) => match v.text().and_then(|t| t.parse::<u64>().ok()) {
                    Some(n) => Some(n),
                    None => return false,
                },
                Outcome::Refused(_) | Outcome::Lost => return false,
            };
            self.record_session(key, None, Some(read));
        }
        // Carry the token to wherever this client goes next.
        match self.call(|c| &mut c.session, &["MERIDIAN.TOKEN"]).await {
            Outcome::Ok(v) => {
                self.token = v.text().unwrap_or_default();
                true
            }
            Outcome::Refused(_) | Outcome::Lost => false,
        }
    }

    /// A write to the pinned table: marked `PIN<nonce>` in an allowed
    /// region, `FWD<nonce>` (forwarded) outside; outside, nothing is read
    /// back (a read reply would carry pinned data across, as asked).
    async fn pinned_op(&mut self) -> bool {
        self.next_pinned += 1;
        let outside = self.region() == OUTSIDE;
        let mark = if outside { "FWD" } else { "PIN" };
        let key = format!(
            "pin:{mark}{}:c{}:{}",
            self.nonce,
            self.id,
            self.next_pinned % 16
        );
        let value = format!("{mark}{}-{}", self.nonce, self.next_pinned);
        match self.call(|c| &mut c.session, &["SET", &key, &value]).await {
            Outcome::Ok(_) => {}
            Outcome::Refused(_) | Outcome::Lost => return false,
        }
        if !outside {
            // Read back where it is held: only exercises reads.
            let _ = self.call(|c| &mut c.session, &["GET", &key]).await;
        }
        self.record(|r| {
            if outside {
                r.pinned_writes.1 += 1;
            } else {
                r.pinned_writes.0 += 1;
            }
        });
        true
    }

    /// A globally acknowledged write of this client's global key.
    async fn global_op(&mut self) -> bool {
        let value = self.next_global + 1;
        self.next_global = value;
        let key = format!("g:c{}", self.id);
        match self
            .call(|c| &mut c.global, &["SET", &key, &value.to_string()])
            .await
        {
            Outcome::Ok(_) => {
                let (id, region) = (self.id, self.region());
                self.record(|r| {
                    r.global_acked.insert(id, (value, region));
                });
                true
            }
            Outcome::Refused(_) | Outcome::Lost => false,
        }
    }
}

/// Kills region `a`, checks that every write acknowledged globally there
/// survives in the others, and restarts it.
async fn kill_and_check(
    dir: &Path,
    file: &ClusterFile,
    a: &str,
    recorder: &Arc<Mutex<Recorder>>,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    report.faults.push(format!("kill {a}"));
    faults::apply(dir, Fault::Kill { region: a.into() }).await?;
    let acked: Vec<(usize, u64)> = recorder
        .lock()
        .expect("recorder lock")
        .global_acked
        .iter()
        .filter(|(_, (_, region))| region == a)
        .map(|(c, (v, _))| (*c, *v))
        .collect();
    report.global_acks_checked += acked.len();
    let survivors: Vec<&str> = REGIONS.iter().copied().filter(|r| *r != a).collect();
    for missing in survivors_hold(file, &survivors, &acked).await {
        report.anomalies.push(missing);
    }
    faults::apply(dir, Fault::Restart { region: a.into() }).await?;
    Ok(())
}

/// Asks a random region to move the `registers` table's home to a random
/// region, and records the outcome.
async fn move_registers(file: &ClusterFile, rng: &mut fastrand::Rng, report: &mut RunReport) {
    let to = REGIONS[rng.usize(0..REGIONS.len())];
    let asked = REGIONS[rng.usize(0..REGIONS.len())];
    let admin = AdminClient::new(Some(file.admin_token.clone()))
        .with_timeout(meridian_api::tables::CHANGE_TIMEOUT);
    let moved = admin
        .json::<meridian_api::tables::ChangeReport>(
            hyper::Method::PUT,
            &format!("{}/admin/tables/registers/mode", file.regions[asked].admin),
            Some(serde_json::json!({ "mode": { "single_master": { "home": to } } })),
        )
        .await;
    // A refused move (a previous one not yet applied there) is
    // a fact of the run, not a broken promise.
    report.faults.push(match moved {
        Ok(r) => format!(
            "move registers to {to} (epoch {}, unavailable {} ms)",
            r.epoch,
            r.unavailable_ms.map_or("-".into(), |ms| format!("{ms:.0}"))
        ),
        Err(e) => format!("move registers to {to} refused: {e:#}"),
    });
}

/// Injects the scenario's faults until `deadline`.
async fn faults(
    dir: &Path,
    file: &ClusterFile,
    scenario: Scenario,
    seed: u64,
    deadline: Instant,
    recorder: &Arc<Mutex<Recorder>>,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let kinds: &[Scenario] = match scenario {
        Scenario::Mixed => &[
            Scenario::Partition,
            Scenario::Kill,
            Scenario::Latency,
            Scenario::Move,
        ],
        _ => std::slice::from_ref(&scenario),
    };
    let mut turn = 0;
    // Let the workload start before the first fault.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while Instant::now() + Duration::from_secs(3) < deadline {
        let kind = kinds[turn % kinds.len()];
        turn += 1;
        let a = rng.usize(0..REGIONS.len());
        let b = (a + 1 + rng.usize(0..REGIONS.len() - 1)) % REGIONS.len();
        let (a, b) = (REGIONS[a], REGIONS[b]);
        let hold = Duration::from_millis(rng.u64(1500..3500));
        match kind {
            Scenario::Partition => {
                report
                    .faults
                    .push(format!("partition {a}-{b} {} ms", hold.as_millis()));
                faults::apply(
                    dir,
                    Fault::Partition {
                        a: a.into(),
                        b: b.into(),
                    },
                )
                .await?;
                tokio::time::sleep(hold).await;
                faults::apply(
                    dir,
                    Fault::Heal {
                        a: Some(a.into()),
                        b: Some(b.into()),
                    },
                )
                .await?;
            }
            Scenario::Latency => {
                let rtt = rng.f64() * 400.0 + 300.0;
                report.faults.push(format!(
                    "latency {a}-{b} {rtt:.0} ms for {} ms",
                    hold.as_millis()
                ));
                set_latency(dir, a, b, rtt).await?;
                tokio::time::sleep(hold).await;
                restore_latency(dir, a, b).await?;
            }
            Scenario::Kill => kill_and_check(dir, file, a, recorder, report).await?,
            Scenario::Move => {
                move_registers(file, &mut rng, report).await;
                tokio::time::sleep(hold).await;
            }
            Scenario::Mixed => unreachable!("mixed is expanded above"),
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(500..1500))).await;
    }
    Ok(())
}

/// Waits until every survivor holds at least each acknowledged value;
/// returns an anomaly per write some survivor still lacks at the deadline.
async fn survivors_hold(
    file: &ClusterFile,
    survivors: &[&str],
    acked: &[(usize, u64)],
) -> Vec<Anomaly> {
    let deadline = Instant::now() + SURVIVOR_DEADLINE;
    let mut lacking = Vec::new();
    for region in survivors {
        for (client, value) in acked {
            let key = format!("g:c{client}");
            let have = loop {
                let have = read_eventual(&file.regions[*region].resp, &key).await;
                if have.is_some_and(|h| h >= *value) || Instant::now() > deadline {
                    break have;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if have.is_none_or(|h| h < *value) {
                lacking.push(Anomaly {
                    check: "global-ack",
                    key: key.clone(),
                    detail: format!(
                        "value {value} was acknowledged globally, its origin was killed, and {region} holds {have:?} after {} s",
                        SURVIVOR_DEADLINE.as_secs()
                    ),
                });
            }
        }
    }
    lacking
}

async fn read_eventual(addr: &str, key: &str) -> Option<u64> {
    let mut c = RespConn::connect(addr, Duration::from_secs(2)).await.ok()?;
    c.call(&["MERIDIAN.CONSISTENCY", "eventual"]).await.ok()?;
    c.call(&["GET", key])
        .await
        .ok()?
        .text()
        .and_then(|t| t.parse().ok())
}

/// Puts a pair's round trip back to the default profile's.
async fn restore_latency(dir: &Path, a: &str, b: &str) -> anyhow::Result<()> {
    let rtt = meridian_core::geo::default_rtt_ms(a, None, b, None)
        .with_context(|| format!("no default round trip for {a}-{b}"))?;
    set_latency(dir, a, b, rtt).await
}

/// Sets a pair's round trip, ms.
async fn set_latency(dir: &Path, a: &str, b: &str, rtt_ms: f64) -> anyhow::Result<()> {
    faults::apply(
        dir,
        Fault::Latency {
            a: a.into(),
            b: b.into(),
            rtt_ms,
        },
    )
    .await
}

async fn region_up(file: &ClusterFile, region: &str) -> bool {
    AdminClient::new(None)
        .get::<meridian_api::status::NodeStatus>(&format!("{}/status", file.regions[region].admin))
        .await
        .is_ok()
}

/// Whether every region reaches identical digests and version vectors
/// within `limit`.
async fn converged(file: &ClusterFile, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let client = AdminClient::new(None);
    while Instant::now() < deadline {
        let mut digests = Vec::new();
        let mut vvs = Vec::new();
        for r in REGIONS {
            let admin = &file.regions[r].admin;
            let d = client
                .get::<BTreeMap<String, meridian_api::data::TableDigest>>(&format!(
                    "{admin}/digest"
                ))
                .await;
            let s = client
                .get::<meridian_api::status::NodeStatus>(&format!("{admin}/status"))
                .await;
            if let (Ok(d), Ok(s)) = (d, s) {
                digests.push(d);
                vvs.push(s.replication.map(|r| r.applied));
            }
        }
        // Each table identical among the regions that hold it.
        let tables: std::collections::BTreeSet<&String> =
            digests.iter().flat_map(|d| d.keys()).collect();
        let same = tables.iter().all(|t| {
            let held: Vec<_> = digests.iter().filter_map(|d| d.get(*t)).collect();
            held.windows(2).all(|w| w[0] == w[1])
        });
        if digests.len() == REGIONS.len() && same && vvs.iter().all(|v| *v == vvs[0]) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Searches the outside region's store and every capture of its links for
/// this run's pinned markers; returns the bytes searched and each breach.
fn residency(dir: &Path, nonce: &str, wrote_inside: bool) -> anyhow::Result<(usize, Vec<Anomaly>)> {
    let mut searched = 0;
    let mut breaches = Vec::new();
    let inside = format!("PIN{nonce}");
    let forwarded = format!("FWD{nonce}");
    let mut files = Vec::new();
    let mut stack = vec![
        dir.join("data").join(OUTSIDE),
        dir.join(crate::up::CAPTURE_DIR),
    ];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut seen_inside_elsewhere = false;
    for path in files {
        let name = path.to_string_lossy().into_owned();
        let is_capture = name.contains(crate::up::CAPTURE_DIR);
        let touches_outside = !is_capture
            || path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(OUTSIDE));
        let bytes = std::fs::read(&path).with_context(|| format!("reading {name}"))?;
        if !touches_outside {
            seen_inside_elsewhere |= contains(&bytes, inside.as_bytes());
            continue;
        }
        searched += bytes.len();
        // Data written where it may live never reaches ap-south; what
        // ap-south forwarded crossed its link (the client sent it there)
        // but is never stored there.
        let mut forbidden = vec![&inside];
        if !is_capture {
            forbidden.push(&forwarded);
        }
        for marker in forbidden {
            if contains(&bytes, marker.as_bytes()) {
                breaches.push(Anomaly {
                    check: "residency",
                    key: marker.clone(),
                    detail: format!("pinned data found in {name}"),
                });
            }
        }
    }
    // Not vacuous: the allowed regions did exchange the pinned writes.
    if wrote_inside && !seen_inside_elsewhere {
        breaches.push(Anomaly {
            check: "residency",
            key: inside,
            detail: "no pinned write crossed between the allowed regions: the capture saw nothing, so the check proved nothing".into(),
        });
    }
    Ok((searched, breaches))
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == first)
        .any(|(i, _)| haystack[i..].starts_with(needle))
}
