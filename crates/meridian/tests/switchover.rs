//! Table modes changed at run time, replicated: a planned switchover of a
//! single-master table's home under continuous writes from three regions
//! (no acknowledged write lost, none applied twice), the old home staying
//! fenced across a crash and restart, a change back to multi-master, and
//! bad changes refused by name.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, Cluster};
use meridian_api::tables::TableInfo;
use redis::Commands;

const TABLES: &str = r#"
[[tables]]
name = "ledger"
key_prefixes = ["ledger:"]
mode = { single_master = { home = "us-east" } }

[[tables]]
name = "vault"
key_prefixes = ["vault:"]
mode = { pinned = { regions = ["eu-west"] } }
"#;

async fn tables(c: &Cluster, region: &str) -> Vec<TableInfo> {
    meridian_api::client::AdminClient::new(None)
        .get(&format!("{}/tables", c.admin(region)))
        .await
        .unwrap()
}

async fn ledger_mode(c: &Cluster, region: &str) -> (String, u64) {
    let t = tables(c, region).await;
    let l = t.iter().find(|t| t.name == "ledger").unwrap();
    (l.mode.clone(), l.epoch)
}

/// Acknowledged and unknown-outcome INCRs of one writer.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    unknown: AtomicU64,
    retried: AtomicU64,
}

/// INCRs `ledger:n` from `region` until `stop`, retrying TRYAGAIN refusals
/// that say nothing was written; bounded by `limit` attempts.
fn writer(
    c: &Cluster,
    region: &str,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> std::thread::JoinHandle<()> {
    let mut con = c.redis(region);
    std::thread::spawn(move || {
        for _ in 0..20_000 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match con.incr::<_, _, i64>("ledger:n", 1) {
                Ok(_) => {
                    tally.acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.to_string().contains("may or may not") => {
                    tally.unknown.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == redis::ErrorKind::TryAgain => {
                    tally.retried.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("unexpected error from {e}"),
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_switchover_moves_the_home_without_losing_a_write() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = tmp.path().join("tables.toml");
    std::fs::write(&extra, TABLES).unwrap();
    let c = Cluster::start_with(
        "us-east,eu-west,ap-south",
        &["--extra-config", extra.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        ledger_mode(&c, "ap-south").await,
        ("single_master:us-east".into(), 0)
    );
    let out = c.cli(&["table", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ledger") && text.contains("single_master:us-east"),
        "{text}"
    );

    // Writers in all three regions, before, during and after the move.
    let stop = Arc::new(AtomicBool::new(false));
    let tallies: Vec<Arc<Tally>> = (0..3).map(|_| Arc::new(Tally::default())).collect();
    let threads: Vec<_> = ["us-east", "eu-west", "ap-south"]
        .iter()
        .zip(&tallies)
        .map(|(r, t)| writer(&c, r, stop.clone(), t.clone()))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let eu_own_before = c.own_writes("eu-west").await;
    let us_own_before_move = c.own_writes("us-east").await;

    // The move, asked of a region that is neither home: it goes to us-east.
    let started = Instant::now();
    let out = c.cli(&["table", "move", "ledger", "--to", "eu-west"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("single_master:eu-west at epoch 1"), "{text}");
    assert!(text.contains("decided by us-east"), "{text}");
    // Unavailability: about the us-east → eu-west one-way delay (40 ms)
    // plus a commit; far below the command's own duration bound.
    let ms: f64 = text
        .split("unavailable for ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no unavailability in {text}"));
    assert!((40.0..2_000.0).contains(&ms), "unavailable for {ms} ms");
    assert!(started.elapsed() < Duration::from_secs(15));

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    // Every region learned the move.
    for r in ["us-east", "eu-west", "ap-south"] {
        eventually(
            "every region applies epoch 1",
            Duration::from_secs(10),
            || async {
                (ledger_mode(&c, r).await == ("single_master:eu-west".into(), 1)).then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        c.metric("ap-south", "meridian_table_epoch", &[("table", "ledger")])
            .await,
        Some(1.0)
    );
    let out = c.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The modes section: after its COORDINATOR header.
    let modes = text.split("COORDINATOR").nth(1).unwrap_or_default();
    let row = modes
        .lines()
        .find(|l| l.starts_with("ledger"))
        .unwrap_or_default();
    assert!(row.contains("single_master:eu-west"), "{text}");
    let acked: u64 = tallies
        .iter()
        .map(|t| t.acked.load(Ordering::Relaxed))
        .sum();
    let unknown: u64 = tallies
        .iter()
        .map(|t| t.unknown.load(Ordering::Relaxed))
        .sum();
    let retried: u64 = tallies
        .iter()
        .map(|t| t.retried.load(Ordering::Relaxed))
        .sum();
    eprintln!("switchover: unavailable {ms:.1} ms; {acked} acked, {unknown} unknown, {retried} TRYAGAIN retries");
    assert!(acked > 50, "the writers made progress: {acked}");
    // The new home wrote after the move; the old home's log took nothing
    // of the table after it (its own count grew only by the mode record
    // and what it decided before the fence).
    assert!(c.own_writes("eu-west").await > eu_own_before + 10);
    let us_after = c.own_writes("us-east").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut us = c.redis("us-east");
    for _ in 0..5 {
        let _: i64 = us.incr("ledger:n", 1).unwrap();
    }
    assert_eq!(
        c.own_writes("us-east").await,
        us_after,
        "the old home forwards now"
    );
    assert!(
        us_after > us_own_before_move,
        "us-east wrote before the move"
    );
    // Nothing lost, nothing doubled: every region reads every acknowledged
    // increment (plus at most the unknown ones), the same value.
    let acked = acked + 5;
    let mut values = Vec::new();
    for r in ["us-east", "eu-west", "ap-south"] {
        let mut con = c.redis(r);
        let _: () = redis::cmd("MERIDIAN.CONSISTENCY")
            .arg("strong")
            .query(&mut con)
            .unwrap();
        let v: u64 = con.get("ledger:n").unwrap();
        values.push(v);
    }
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    assert!(
        values[0] >= acked && values[0] <= acked + unknown,
        "value {} vs {acked} acknowledged (+{unknown} unknown)",
        values[0]
    );

    // The old home crashes and comes back: it still knows it gave the
    // table away (the record is in its own log), so it forwards.
    assert!(c.cli(&["chaos", "kill", "us-east"]).status.success());
    assert!(c.cli(&["chaos", "restart", "us-east"]).status.success());
    let mut us = eventually("us-east back", Duration::from_secs(30), || async {
        redis::Client::open(format!("redis://{}/", c.file.regions["us-east"].resp))
            .ok()?
            .get_connection()
            .ok()
    })
    .await;
    assert_eq!(
        ledger_mode(&c, "us-east").await,
        ("single_master:eu-west".into(), 1)
    );
    let before = c.own_writes("us-east").await;
    let eu_before = c.own_writes("eu-west").await;
    // Its links come up again within a moment; until then it refuses.
    eventually(
        "a write at the restarted old home",
        Duration::from_secs(20),
        || {
            std::future::ready(match us.incr::<_, _, i64>("ledger:n", 1) {
                Ok(_) => Some(()),
                Err(e)
                    if e.kind() == redis::ErrorKind::TryAgain
                        && e.to_string().contains("nothing was written") =>
                {
                    None
                }
                Err(e) => panic!("{e}"),
            })
        },
    )
    .await;
    assert_eq!(c.own_writes("us-east").await, before);
    assert_eq!(c.own_writes("eu-west").await, eu_before + 1);

    // Back to multi-master: decided by the home, eu-west; writes are then
    // local everywhere.
    let out = c.cli(&["table", "set-mode", "ledger", "multi_master"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("multi_master at epoch 2") && text.contains("decided by eu-west"),
        "{text}"
    );
    eventually(
        "ap-south applies epoch 2",
        Duration::from_secs(10),
        || async { (ledger_mode(&c, "ap-south").await.1 == 2).then_some(()) },
    )
    .await;
    let ap_before = c.own_writes("ap-south").await;
    let mut ap = c.redis("ap-south");
    let _: i64 = ap.incr("ledger:n", 1).unwrap();
    assert_eq!(c.own_writes("ap-south").await, ap_before + 1);

    // Bad changes are refused before they reach the coordinator.
    for (table, mode, why) in [
        ("vault", "pinned:eu-west,mars-1", "unknown region `mars-1`"),
        ("vault", "pinned:Eu West", "bad region"),
        ("vault", "pinned:us-west", "unknown region `us-west`"),
        ("nope", "multi_master", "unknown table"),
        ("ledger", "sharded", "unknown mode"),
    ] {
        let out = c.cli(&["table", "set-mode", table, mode]);
        assert!(!out.status.success(), "{table} {mode}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{table} {mode}: {err}");
    }
}
