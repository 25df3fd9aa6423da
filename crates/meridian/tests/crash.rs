//! Crash safety with real processes: SIGKILL a region in the middle of a
//! write burst, restart it, and check that every acknowledged write is there
//! and every region converges to identical data. Twenty rounds.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Cluster;

const ROUNDS: usize = 20;
const WRITERS: usize = 4;
/// Bound on one writer's writes per round, so a round ends even if the kill
/// came late.
const WRITES_PER_WRITER_MAX: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_burst_a_region_keeps_every_acknowledged_write() {
    let mut c = Cluster::start("us-east,eu-west,ap-south").await;
    let mut acked_total: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (client, admin) = (c.data(), c.admin("eu-west"));
            let (acked, stop) = (acked.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                for j in 0..WRITES_PER_WRITER_MAX {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let key = format!("r{round:02}-w{w}-{j:04}");
                    let url = format!("{admin}/data/default/{key}");
                    match client
                        .request_bytes(hyper::Method::PUT, &url, key.clone().into_bytes())
                        .await
                    {
                        Ok((status, _)) if status.is_success() => acked.lock().unwrap().push(key),
                        // The node died under us: this write was never
                        // acknowledged, and the writer is done.
                        _ => return,
                    }
                }
            }));
        }
        // Kill at a different point of each burst.
        tokio::time::sleep(Duration::from_millis(100 + (round as u64 * 37) % 200)).await;
        let out = c.cli(&["chaos", "kill", "eu-west"]);
        assert!(
            out.status.success(),
            "kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        let out = c.cli(&["chaos", "restart", "eu-west"]);
        assert!(
            out.status.success(),
            "restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.reload();

        let acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(
            !acked.is_empty(),
            "round {round}: no write was acknowledged before the kill"
        );
        // Every acknowledged write is in the restarted region at once: it
        // was durable before it was acknowledged.
        for key in &acked {
            let got = c.get("eu-west", key, None).await;
            assert_eq!(
                got.as_deref(),
                Some(key.as_str()),
                "round {round}: acknowledged write {key} lost"
            );
        }
        acked_total.extend(acked);
        // Every region converges on identical data, holding at least every
        // acknowledged write (a write committed just before the kill may be
        // there without its acknowledgement having been delivered).
        c.converged(None, Duration::from_secs(30)).await;
        let digests = c.digests().await;
        let keys = digests.values().next().unwrap().keys as usize;
        assert!(
            keys >= acked_total.len(),
            "round {round}: {keys} keys < {} acknowledged",
            acked_total.len()
        );
    }
    eprintln!(
        "{} acknowledged writes across {ROUNDS} SIGKILLs: none lost, all regions identical",
        acked_total.len()
    );
    // Spot-check the oldest writes in the farthest region.
    for key in acked_total.iter().take(20) {
        assert_eq!(
            c.get("ap-south", key, None).await.as_deref(),
            Some(key.as_str())
        );
    }
}
