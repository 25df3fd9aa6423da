//! The `consistency` suite of `meridian bench`: what each consistency
//! choice costs, next to the round trip it cannot beat.
//!
//! Through the Redis endpoint, one request at a time:
//! - a write to a single-master table (homed in us-east) made in eu-west and
//!   ap-south is forwarded: its floor is one round trip to the home;
//! - a globally acknowledged write in us-east waits for 2 or 3 regions: its
//!   floor is the round trip to the nearest / farthest region it needs;
//! - a strong read outside the home asks the home for its commit point: one
//!   round trip;
//! - a write in us-east followed by a session read in ap-south (the token
//!   carried over) waits for replication: one one-way delay, timed from
//!   the write's sending to the read's answer;
//! - a planned switchover of a single-master home between us-east and
//!   eu-west while a client at the old home keeps writing: the move as the
//!   coordinator measures it (fence → new home confirmed: one round trip)
//!   and the longest write the client saw, retries included.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::resp_client::{RespConn, Value};
use meridian_api::cluster::ClusterFile;

/// The single-master tables the suite writes, for `meridian up
/// --extra-config`: `reg:` stays homed in us-east, `mv:` is moved.
pub const TABLES: &str = r#"
[[tables]]
name = "bench_registers"
key_prefixes = ["reg:"]
mode = { single_master = { home = "us-east" } }

[[tables]]
name = "bench_moves"
key_prefixes = ["mv:"]
mode = { single_master = { home = "us-east" } }
"#;

/// Attempts of one write while its table moves (`TRYAGAIN` is retried).
const MOVE_WRITE_ATTEMPTS_MAX: usize = 1000;

/// One measured operation kind.
#[derive(Serialize, Clone, Debug)]
pub struct ConsistencyRow {
    /// What was measured.
    pub operation: String,
    /// Where the client was.
    pub region: String,
    /// Operations timed.
    pub samples: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The physical floor it is compared with, ms.
    pub floor_ms: f64,
    /// What the floor is.
    pub floor: String,
    /// p50 over the floor.
    pub ratio: f64,
}

async fn conn(file: &ClusterFile, region: &str, setup: &[&[&str]]) -> anyhow::Result<RespConn> {
    let mut c = RespConn::connect(&file.regions[region].resp, Duration::from_secs(30)).await?;
    for args in setup {
        expect_ok(c.call(args).await?, args)?;
    }
    Ok(c)
}

fn expect_ok(v: Value, what: &[&str]) -> anyhow::Result<Value> {
    if let Value::Error(e) = &v {
        bail!("{} failed: {e}", what.join(" "));
    }
    Ok(v)
}

fn row(
    operation: &str,
    region: &str,
    mut ms: Vec<f64>,
    floor_ms: f64,
    floor: String,
) -> ConsistencyRow {
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    let p50 = q(0.5);
    ConsistencyRow {
        operation: operation.into(),
        region: region.into(),
        samples: ms.len(),
        p50_ms: p50,
        p99_ms: q(0.99),
        floor_ms,
        floor,
        ratio: p50 / floor_ms,
    }
}

/// Times `n` calls of `args(i)` on `c`, in ms.
async fn time_calls(
    c: &mut RespConn,
    n: usize,
    args: impl Fn(usize) -> Vec<String>,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let a = args(i);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let start = Instant::now();
        expect_ok(c.call(&a).await?, &a)?;
        out.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

/// Runs the suite against a cluster started with [`TABLES`].
pub async fn run(file: &ClusterFile, quick: bool) -> anyhow::Result<Vec<ConsistencyRow>> {
    let n = if quick { 10 } else { 100 };
    let mut rows = Vec::new();
    // Floors from the links as this cluster emulates them.
    let statuses = super::cluster::statuses(file).await?;
    let rtt = |a: &str, b: &str| {
        statuses
            .get(a)
            .and_then(|s| super::cluster::emulated_rtt_ms(s, b))
            .unwrap_or(f64::NAN)
    };
    let set = |prefix: &'static str| {
        move |i: usize| vec!["SET".into(), format!("{prefix}{i}"), "v".into()]
    };

    let mut home = conn(file, "us-east", &[]).await?;
    let ms = time_calls(&mut home, n, set("reg:local:")).await?;
    rows.push(row(
        "single-master write at its home",
        "us-east",
        ms,
        f64::NAN,
        "(local fsync; no WAN floor)".into(),
    ));
    for region in ["eu-west", "ap-south"] {
        let mut c = conn(file, region, &[]).await?;
        let ms = time_calls(&mut c, n, set("reg:fwd:")).await?;
        rows.push(row(
            "forwarded write (single-master)",
            region,
            ms,
            rtt(region, "us-east"),
            format!("RTT {region} ↔ us-east"),
        ));
        let mut strong = conn(file, region, &[&["MERIDIAN.CONSISTENCY", "strong"]]).await?;
        let ms = time_calls(&mut strong, n, |i| {
            vec!["GET".into(), format!("reg:fwd:{i}")]
        })
        .await?;
        rows.push(row(
            "strong read (single-master)",
            region,
            ms,
            rtt(region, "us-east"),
            format!("RTT {region} ↔ us-east"),
        ));
    }
    for (regions, floor_to) in [(2, "eu-west"), (3, "ap-south")] {
        let mut c = conn(
            file,
            "us-east",
            &[&["MERIDIAN.ACK", "global", &regions.to_string(), "10000"]],
        )
        .await?;
        let ms = time_calls(&mut c, n, set("ack:")).await?;
        rows.push(row(
            &format!("global-ack write ({regions} of 3 regions)"),
            "us-east",
            ms,
            rtt("us-east", floor_to),
            format!("RTT us-east ↔ {floor_to}"),
        ));
    }

    let waits = session_moves(file, n).await?;
    rows.push(row(
        "write in us-east, then session read in ap-south",
        "ap-south",
        waits,
        rtt("us-east", "ap-south") / 2.0,
        "one-way us-east → ap-south".into(),
    ));
    rows.extend(switchovers(file, if quick { 2 } else { 10 }, rtt("us-east", "eu-west")).await?);
    Ok(rows)
}

/// A session moving from us-east to ap-south right after each of `n`
/// writes: ms from the write's sending to the read's answer there.
async fn session_moves(file: &ClusterFile, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut writer = conn(file, "us-east", &[]).await?;
    let mut reader = conn(file, "ap-south", &[]).await?;
    let mut waits = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("sess:{i}");
        // From the write's sending to the read's answer: the write cannot
        // reach ap-south sooner than the one-way delay.
        let start = Instant::now();
        expect_ok(writer.call(&["SET", &key, "v"]).await?, &["SET"])?;
        let token = writer
            .call(&["MERIDIAN.TOKEN"])
            .await?
            .text()
            .context("MERIDIAN.TOKEN gave no token")?;
        expect_ok(
            reader.call(&["MERIDIAN.AFTER", &token, "10000"]).await?,
            &["MERIDIAN.AFTER"],
        )?;
        let got = expect_ok(reader.call(&["GET", &key]).await?, &["GET"])?;
        if got.text().as_deref() != Some("v") {
            bail!("session read in ap-south missed the write it waited for: {got:?}");
        }
        waits.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(waits)
}

/// Moves `mv:`'s home between us-east and eu-west `moves` times while a
/// client at each move's old home writes without pause.
async fn switchovers(
    file: &ClusterFile,
    moves: usize,
    rtt_ms: f64,
) -> anyhow::Result<Vec<ConsistencyRow>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let admin = meridian_api::client::AdminClient::new(Some(file.admin_token.clone()))
        .with_timeout(meridian_api::tables::CHANGE_TIMEOUT);
    let mut measured = Vec::with_capacity(moves);
    let mut longest = Vec::with_capacity(moves);
    for i in 0..moves {
        let (from, to) = if i % 2 == 0 {
            ("us-east", "eu-west")
        } else {
            ("eu-west", "us-east")
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut c = conn(file, from, &[]).await?;
        let writer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut worst = 0f64;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 100_000 {
                    n += 1;
                    let start = Instant::now();
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        match c.call(&["SET", "mv:k", &n.to_string()]).await? {
                            Value::Error(e)
                                if e.starts_with("TRYAGAIN")
                                    && attempts < MOVE_WRITE_ATTEMPTS_MAX =>
                            {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            Value::Error(e) => bail!("write during a switchover failed: {e}"),
                            _ => break,
                        }
                    }
                    worst = worst.max(start.elapsed().as_secs_f64() * 1e3);
                }
                anyhow::Ok(worst)
            })
        };
        // Let the writer settle into its steady rate first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let report: meridian_api::tables::ChangeReport = admin
            .json(
                hyper::Method::PUT,
                &format!("{}/admin/tables/bench_moves/mode", file.regions[from].admin),
                Some(serde_json::json!({ "mode": { "single_master": { "home": to } } })),
            )
            .await
            .with_context(|| format!("moving bench_moves from {from} to {to}"))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        longest.push(writer.await.context("switchover writer panicked")??);
        measured.push(
            report
                .unavailable_ms
                .context("a move reported no unavailability")?,
        );
    }
    Ok(vec![
        row(
            "switchover: fence at old home → new home confirmed",
            "us-east ↔ eu-west",
            measured,
            rtt_ms,
            "RTT us-east ↔ eu-west".into(),
        ),
        row(
            "switchover: longest write at the old home, retries included",
            "us-east ↔ eu-west",
            longest,
            rtt_ms,
            "RTT us-east ↔ eu-west".into(),
        ),
    ])
}

/// The report's section.
pub fn render(s: &mut String, rows: &[ConsistencyRow]) {
    use std::fmt::Write;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Consistency costs\n");
    let _ = writeln!(s, "One request at a time through the Redis endpoint; `reg:` keys are a single-master table homed in us-east; `mv:` keys are a single-master table whose home is moved between us-east and eu-west (`PUT /admin/tables/bench_moves/mode`) while a client at the old home writes without pause. The floor is the emulated WAN delay the operation cannot avoid.\n");
    let _ = writeln!(
        s,
        "| operation | client in | samples | p50 ms | p99 ms | floor ms | floor | p50 / floor |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---|---:|");
    for r in rows {
        let (floor_ms, ratio) = if r.floor_ms.is_finite() {
            (format!("{:.0}", r.floor_ms), format!("{:.2}×", r.ratio))
        } else {
            ("—".to_string(), "—".to_string())
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.1} | {floor_ms} | {} | {ratio} |",
            r.operation, r.region, r.samples, r.p50_ms, r.p99_ms, r.floor
        );
    }
}
