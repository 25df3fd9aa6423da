//! The edge's own cost: `wrk` through the edge to one local app instance,
//! against `wrk` straight to the instance (the floor: no proxy at all) and
//! through Debian's haproxy 2.6 to the same instance (the fair peer), the
//! same connections and duration, one after another in the same run.
//! Reported: requests/s, p50/p99, and CPU time per request of the proxy
//! process (the node's whole process for the edge: it also runs the
//! replicated store, idle here).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

/// `wrk` connections, one thread (the machine has two cores: one for the
/// load, the rest for proxy and app).
pub const WRK_CONNECTIONS: u32 = 32;

/// One row: a path from `wrk` to the instance.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyRow {
    /// `direct`, `meridian edge` or `haproxy 2.6`.
    pub path: String,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Responses that were not 2xx/3xx, plus socket errors.
    pub errors: u64,
    /// CPU time of the proxy process per request, µs (none for direct).
    pub cpu_us_per_request: Option<f64>,
}

/// `wrk`'s figures.
struct Wrk {
    rps: f64,
    requests: u64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Runs `wrk` against `url` for `secs`.
fn wrk(url: &str, secs: u64) -> anyhow::Result<Wrk> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{WRK_CONNECTIONS}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .context("cannot run wrk (Debian package `wrk`; scripts/install-test-deps installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> anyhow::Result<Wrk> {
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim())
    };
    let rps: f64 = field("Requests/sec:").context("no Requests/sec")?.parse()?;
    let requests: u64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .context("no request count")?
        .parse()?;
    let p50_ms = duration_ms(field("50%").context("no 50%")?)?;
    let p99_ms = duration_ms(field("99%").context("no 99%")?)?;
    let non2xx: u64 = field("Non-2xx or 3xx responses:").map_or(Ok(0), str::parse)?;
    let socket: u64 = field("Socket errors:")
        .map(|s| {
            s.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(Wrk {
        rps,
        requests,
        p50_ms,
        p99_ms,
        errors: non2xx + socket,
    })
}

/// `1.23ms`, `456.00us`, `1.2s` in ms.
fn duration_ms(text: &str) -> anyhow::Result<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("`{text}` is not a wrk duration")
    };
    Ok(num.trim().parse::<f64>()? * scale)
}

/// CPU time (user + system) of `pid` so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = fields.get(11).context("no utime")?.parse::<u64>()?
        + fields.get(12).context("no stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

fn row(path: &str, w: &Wrk, cpu: Option<Duration>) -> ProxyRow {
    ProxyRow {
        path: path.into(),
        rps: w.rps,
        p50_ms: w.p50_ms,
        p99_ms: w.p99_ms,
        errors: w.errors,
        cpu_us_per_request: cpu.map(|c| c.as_secs_f64() * 1e6 / w.requests.max(1) as f64),
    }
}

/// haproxy in the foreground, stopped by its pid when dropped.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_haproxy(dir: &Path, listen: &str, backend: &str) -> anyhow::Result<Haproxy> {
    let cfg = dir.join("haproxy.cfg");
    // Keep-alive both ways and connection reuse: what the edge does.
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  http-reuse always\n  option http-keep-alive\nfrontend f\n  bind {listen}\n  default_backend b\nbackend b\n  server app {backend}\n"
        ),
    )?;
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log"))?)
        .spawn()
        .context(
            "cannot run haproxy (Debian package `haproxy`; scripts/install-test-deps installs it)",
        )?;
    let h = Haproxy(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(listen).is_err() {
        if Instant::now() > deadline {
            bail!(
                "haproxy did not listen on {listen}; see {}",
                dir.join("haproxy.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(h)
}

/// The three rows: direct, the edge (in the node `node_pid`), haproxy.
pub fn measure(
    dir: &Path,
    edge_url: &str,
    node_pid: u32,
    app: &str,
    path: &str,
    secs: u64,
) -> anyhow::Result<Vec<ProxyRow>> {
    let mut rows = Vec::new();
    // A short warm-up so pools and caches are filled for everyone.
    wrk(&format!("http://{app}{path}"), 1)?;
    let direct = wrk(&format!("http://{app}{path}"), secs)?;
    rows.push(row("direct to the instance (floor)", &direct, None));
    wrk(&format!("{edge_url}{path}"), 1)?;
    let before = cpu_time(node_pid)?;
    let edge = wrk(&format!("{edge_url}{path}"), secs)?;
    rows.push(row(
        "meridian edge",
        &edge,
        Some(cpu_time(node_pid)? - before),
    ));
    let listen = format!("127.0.0.1:{}", free_port()?);
    let h = start_haproxy(dir, &listen, app)?;
    wrk(&format!("http://{listen}{path}"), 1)?;
    let before = cpu_time(h.0.id())?;
    let hap = wrk(&format!("http://{listen}{path}"), secs)?;
    rows.push(row("haproxy 2.6", &hap, Some(cpu_time(h.0.id())? - before)));
    Ok(rows)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 2s test @ http://127.0.0.1:1/\n  1 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   610.23us  100.00us   5.00ms   90.00%\n  Latency Distribution\n     50%  580.00us\n     75%  650.00us\n     90%  700.00us\n     99%    1.25ms\n  98765 requests in 2.00s, 12.34MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 5\nRequests/sec:  49382.50\nTransfer/sec:      6.17MB\n";
        let w = parse_wrk(text).unwrap();
        assert_eq!(w.requests, 98765);
        assert!((w.rps - 49382.5).abs() < 0.01);
        assert!((w.p50_ms - 0.58).abs() < 1e-9);
        assert!((w.p99_ms - 1.25).abs() < 1e-9);
        assert_eq!(w.errors, 8);
        assert!(duration_ms("3x").is_err());
    }
}
