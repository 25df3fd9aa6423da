//! The Redis suite of `meridian bench`: `redis-benchmark` against a
//! Meridian region (which replicates every write to two other regions over
//! the emulated WAN) and against Debian's `redis-server`, in the same run,
//! durability matched:
//!
//! | Meridian | redis-server |
//! |---|---|
//! | `--durability fsync` (group commit, fsync before the reply) | `appendonly yes`, `appendfsync always` |
//! | `--durability none` | its defaults (RDB snapshots, no AOF) |
//!
//! Each side is started here and stopped by its pid.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use meridian_api::cluster::ClusterFile;

/// Tests run, as `redis-benchmark -t` names them.
pub const TESTS: &str = "set,get,incr,hset";

/// Concurrent clients (`-c`).
pub const CLIENTS: u32 = 50;

/// One test's figures from both servers.
#[derive(Serialize, Clone, Debug)]
pub struct RedisRow {
    /// `fsync` or `none`.
    pub durability: String,
    /// Commands per pipeline (`-P`).
    pub pipeline: u32,
    /// `SET`, `GET`, ...
    pub test: String,
    /// Meridian requests/s.
    pub meridian_rps: f64,
    /// redis-server requests/s.
    pub redis_rps: f64,
    /// Meridian over redis-server.
    pub ratio: f64,
    /// A single-region Meridian (nothing to replicate) requests/s: what
    /// the endpoint and engine cost alone on this machine.
    pub solo_rps: f64,
    /// Its p99 latency, ms.
    pub solo_p99_ms: f64,
    /// Meridian p99 latency, ms.
    pub meridian_p99_ms: f64,
    /// redis-server p99 latency, ms.
    pub redis_p99_ms: f64,
}

/// A child process stopped by pid (SIGTERM, then SIGKILL after 20 s) on
/// drop, however the benchmark ends.
pub(crate) struct Stopped(pub(crate) Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Waits until the server listens and answers `PING` with `PONG` (not
/// `LOADING`).
fn wait_ping(addr: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{addr} did not answer PING within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_redis(dir: &Path, durability: &str) -> anyhow::Result<(Stopped, String)> {
    // A fresh dataset each time, as Meridian gets.
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(dir);
    if durability == "fsync" {
        cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context(
        "cannot start redis-server (install Debian's redis-server; scripts/install-test-deps does)",
    )?;
    let guard = Stopped(child);
    let addr = format!("127.0.0.1:{port}");
    wait_ping(&addr)?;
    Ok((guard, addr))
}

fn start_meridian(
    dir: &Path,
    regions: &str,
    durability: &str,
) -> anyhow::Result<(Stopped, String)> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.with_extension("log"))?;
    let child = Command::new(std::env::current_exe()?)
        .args([
            "up",
            "--regions",
            regions,
            "--durability",
            durability,
            // Nothing but the Redis endpoint is measured here.
            "--apps-per-region",
            "0",
            "--dir",
        ])
        .arg(dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()?;
    let guard = Stopped(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = loop {
        if let Ok(f) = ClusterFile::load(dir) {
            break f;
        }
        if Instant::now() > deadline {
            bail!("the Meridian cluster for the Redis suite did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let addr = file.regions["us-east"].resp.clone();
    wait_ping(&addr)?;
    Ok((guard, addr))
}

/// `(test, rps, p99 ms)` from `redis-benchmark --csv`.
fn benchmark(addr: &str, requests: u64, pipeline: u32) -> anyhow::Result<Vec<(String, f64, f64)>> {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            port,
            "-t",
            TESTS,
            "-c",
            &CLIENTS.to_string(),
        ])
        .args([
            "-n",
            &requests.to_string(),
            "-P",
            &pipeline.to_string(),
            "--csv",
            "-q",
        ])
        .stdin(Stdio::null())
        .output()
        .context("cannot run redis-benchmark (Debian's redis-tools)")?;
    if !out.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_csv(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `redis-benchmark --csv`: a header, then one quoted row per test.
pub fn parse_csv(text: &str) -> anyhow::Result<Vec<(String, f64, f64)>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .context("redis-benchmark printed nothing")?
        .split(',')
        .map(|f| f.trim_matches('"').to_string())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("redis-benchmark's CSV has no `{name}` column"))
    };
    let (rps, p99) = (col("rps")?, col("p99_latency_ms")?);
    let mut rows = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        let num = |i: usize| -> anyhow::Result<f64> {
            f.get(i)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("bad redis-benchmark row: {line}"))
        };
        let test = f[0].split_whitespace().next().unwrap_or(f[0]).to_string();
        rows.push((test, num(rps)?, num(p99)?));
    }
    Ok(rows)
}

/// Runs the suite: for each durability, both servers, with and without
/// pipelining.
pub fn run(work: &Path, quick: bool, say: impl Fn(String)) -> anyhow::Result<Vec<RedisRow>> {
    let requests = if quick { 8_000 } else { 200_000 };
    let mut rows = Vec::new();
    for durability in ["fsync", "none"] {
        say(format!(
            "redis: redis-benchmark -t {TESTS} -c {CLIENTS} -n {requests}, -P 1 and 16, durability {durability}"
        ));
        let mut results: Vec<[Vec<(String, f64, f64)>; 3]> = Vec::new();
        for pipeline in [1u32, 16] {
            // One server at a time, so they never share the two cores.
            let m = {
                let dir = work.join(format!("meridian-{durability}"));
                let (_g, addr) = start_meridian(&dir, "us-east,eu-west,ap-south", durability)?;
                benchmark(&addr, requests, pipeline)?
            };
            let solo = {
                let dir = work.join(format!("meridian-solo-{durability}"));
                let (_g, addr) = start_meridian(&dir, "us-east", durability)?;
                benchmark(&addr, requests, pipeline)?
            };
            let r = {
                let (_g, addr) =
                    start_redis(&work.join(format!("redis-{durability}")), durability)?;
                benchmark(&addr, requests, pipeline)?
            };
            results.push([m, solo, r]);
        }
        for (pipeline, [m, solo, r]) in [1u32, 16].into_iter().zip(results) {
            for (test, m_rps, m_p99) in &m {
                let Some((_, r_rps, r_p99)) = r.iter().find(|(t, _, _)| t == test) else {
                    continue;
                };
                let (solo_rps, solo_p99_ms) = solo
                    .iter()
                    .find(|(t, _, _)| t == test)
                    .map_or((f64::NAN, f64::NAN), |(_, a, b)| (*a, *b));
                rows.push(RedisRow {
                    durability: durability.to_string(),
                    pipeline,
                    test: test.clone(),
                    meridian_rps: *m_rps,
                    redis_rps: *r_rps,
                    ratio: m_rps / r_rps,
                    solo_rps,
                    solo_p99_ms,
                    meridian_p99_ms: *m_p99,
                    redis_p99_ms: *r_p99,
                });
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_redis_benchmark_csv() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"SET\",\"38910.51\",\"1.203\",\"0.328\",\"1.135\",\"1.879\",\"2.431\",\"4.871\"\n\"HSET\",\"100.00\",\"1\",\"1\",\"1\",\"1\",\"9.5\",\"10\"\n";
        let rows = super::parse_csv(text).unwrap();
        assert_eq!(
            rows,
            vec![("SET".into(), 38910.51, 2.431), ("HSET".into(), 100.0, 9.5)]
        );
        assert!(super::parse_csv("").is_err());
    }
}
