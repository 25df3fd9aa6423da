//! Replication across real node processes over emulated WAN links: writes
//! reach every region, concurrent counters sum, partitions catch up, a third
//! region relays, TTLs expire everywhere at once, conflicts are logged.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, Cluster};

const REGIONS: &str = "us-east,eu-west,ap-south";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_every_region_and_session_reads_wait_for_their_token() {
    let c = Cluster::start(REGIONS).await;
    let token = c.put("us-east", "user:1", "alice").await;
    // A session read in ap-south (108 ms away) waits until the write is there.
    let start = Instant::now();
    assert_eq!(
        c.get("ap-south", "user:1", Some(&token)).await.as_deref(),
        Some("alice")
    );
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "session read took {waited:?}"
    );
    assert_eq!(
        c.get("eu-west", "user:1", Some(&token)).await.as_deref(),
        Some("alice")
    );
    // Overwrite and delete travel too.
    let t2 = c.put("eu-west", "user:1", "bob").await;
    assert_eq!(
        c.get("us-east", "user:1", Some(&t2)).await.as_deref(),
        Some("bob")
    );
    c.converged(Some(1), Duration::from_secs(10)).await;
    let lag = c
        .metric(
            "ap-south",
            "meridian_replication_latency_seconds_count",
            &[("from", "us-east"), ("to", "ap-south")],
        )
        .await;
    assert_eq!(
        lag,
        Some(1.0),
        "one write from us-east measured in ap-south"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_in_every_region_sum_exactly() {
    let c = Cluster::start(REGIONS).await;
    let mut tasks = Vec::new();
    for region in ["us-east", "eu-west", "ap-south"] {
        let c = &c;
        tasks.push(async move {
            for _ in 0..30 {
                c.incr(region, "counter", 1).await;
            }
        });
    }
    futures_join(tasks).await;
    c.converged(Some(1), Duration::from_secs(10)).await;
    for region in ["us-east", "eu-west", "ap-south"] {
        assert_eq!(
            c.get(region, "counter", None).await.as_deref(),
            Some("90"),
            "{region}"
        );
    }
    assert_eq!(
        c.metric(
            "us-east",
            "meridian_conflicts_total",
            &[("table", "default")]
        )
        .await,
        None,
        "increments never conflict"
    );
}

async fn futures_join<F: std::future::Future<Output = ()>>(futs: Vec<F>) {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    // Poll all to completion concurrently on this task.
    std::future::poll_fn(|cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_region_catches_up_after_heal() {
    let c = Cluster::start(REGIONS).await;
    for peer in ["eu-west", "ap-south"] {
        assert!(c
            .cli(&["chaos", "partition", "us-east", peer])
            .status
            .success());
    }
    let mut last = String::new();
    for i in 0..300 {
        last = c
            .put("us-east", &format!("k{i:03}"), &format!("v{i}"))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        c.get("eu-west", "k000", None).await,
        None,
        "a write crossed the partition"
    );
    let pending = c
        .metric(
            "us-east",
            "meridian_replication_pending_operations",
            &[("from", "us-east"), ("to", "eu-west")],
        )
        .await;
    assert_eq!(pending, Some(300.0));
    assert!(c.cli(&["chaos", "heal"]).status.success());
    assert_eq!(
        c.get("ap-south", "k299", Some(&last)).await.as_deref(),
        Some("v299")
    );
    c.converged(Some(300), Duration::from_secs(20)).await;
    eventually("pending drained", Duration::from_secs(10), || async {
        let p = c
            .metric(
                "us-east",
                "meridian_replication_pending_operations",
                &[("from", "us-east"), ("to", "ap-south")],
            )
            .await?;
        (p == 0.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_region_relays_across_a_cut_link() {
    let c = Cluster::start(REGIONS).await;
    assert!(c
        .cli(&["chaos", "partition", "us-east", "ap-south"])
        .status
        .success());
    let mut last = String::new();
    for i in 0..50 {
        last = c.put("us-east", &format!("r{i}"), "x").await;
    }
    // us-east cannot reach ap-south; eu-west has the writes and relays them.
    assert_eq!(
        c.get("ap-south", "r49", Some(&last)).await.as_deref(),
        Some("x")
    );
    let relayed = c
        .metric(
            "eu-west",
            "meridian_replication_relayed_operations_total",
            &[("via", "eu-west"), ("to", "ap-south")],
        )
        .await
        .unwrap();
    assert!(relayed >= 50.0, "eu-west relayed {relayed}");
    // And the other way: ap-south's writes reach us-east through eu-west.
    let t = c.put("ap-south", "back", "y").await;
    assert_eq!(
        c.get("us-east", "back", Some(&t)).await.as_deref(),
        Some("y")
    );
    c.converged(Some(51), Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_expires_at_the_same_deadline_everywhere() {
    let c = Cluster::start(REGIONS).await;
    let token = c.put_ttl("us-east", "ttl:abc", "data", Some(2000)).await;
    let mut deadlines = Vec::new();
    for region in ["us-east", "eu-west", "ap-south"] {
        assert_eq!(
            c.get(region, "ttl:abc", Some(&token)).await.as_deref(),
            Some("data")
        );
        deadlines.push(expires_at(&c, region).await);
    }
    assert!(
        deadlines.windows(2).all(|w| w[0] == w[1]),
        "deadlines differ: {deadlines:?}"
    );
    let deadline_ms = deadlines[0];
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(
        deadline_ms.saturating_sub(now_ms) + 50,
    ))
    .await;
    for region in ["us-east", "eu-west", "ap-south"] {
        assert_eq!(
            c.get(region, "ttl:abc", None).await,
            None,
            "{region} still serves an expired key"
        );
    }
    c.converged(Some(0), Duration::from_secs(5)).await;
    // Purged locally in every region once every origin's time is closed
    // past deadline + max clock offset (500 ms); the sweep runs each second.
    for region in ["us-east", "eu-west", "ap-south"] {
        eventually(
            "the expired key purged from disk",
            Duration::from_secs(10),
            || async {
                let n = c
                    .metric(region, "meridian_store_purged_keys_total", &[])
                    .await?;
                (n >= 1.0).then_some(())
            },
        )
        .await;
    }
}

/// The `x-meridian-expires-at-ms` header a region serves for the key.
async fn expires_at(c: &Cluster, region: &str) -> u64 {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    let url = format!("{}/data/default/ttl:abc", c.admin(region));
    let client: Client<_, Empty<hyper::body::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = hyper::Request::get(url)
        .header("authorization", format!("Bearer {}", c.file.admin_token))
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    resp.headers()["x-meridian-expires-at-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_during_a_partition_are_logged_as_conflicts() {
    let c = Cluster::start("us-east,eu-west").await;
    assert!(c
        .cli(&["chaos", "partition", "us-east", "eu-west"])
        .status
        .success());
    c.put("us-east", "basket:7", "from-us").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.put("eu-west", "basket:7", "from-eu").await;
    assert!(c.cli(&["chaos", "heal"]).status.success());
    c.converged(Some(1), Duration::from_secs(15)).await;
    // The later write wins everywhere.
    for region in ["us-east", "eu-west"] {
        assert_eq!(
            c.get(region, "basket:7", None).await.as_deref(),
            Some("from-eu")
        );
    }
    // us-east saw its own write overwritten by a write that had not seen it.
    let url = format!("{}/conflicts", c.admin("us-east"));
    let v: serde_json::Value = c.data().get(&url).await.unwrap();
    assert_eq!(v["totals"]["default"], 1, "{v}");
    let entry = &v["conflicts"][0];
    assert_eq!(entry["key"], "basket:7");
    assert!(
        entry["winner"].as_str().unwrap().starts_with("eu-west@"),
        "{entry}"
    );
    assert!(
        entry["loser"].as_str().unwrap().starts_with("us-east@"),
        "{entry}"
    );
    assert_eq!(entry["loser_value"], "from-us");
    assert_eq!(
        c.metric(
            "us-east",
            "meridian_conflicts_total",
            &[("table", "default")]
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_covers_the_writes_an_increment_built_on() {
    // Found in review: a token naming only the INCR let a reader elsewhere
    // see the INCR before the SET it builds on, and answer "no such key".
    let c = Cluster::start(REGIONS).await;
    // eu-west's writes reach ap-south only by relay (after ~1 s).
    assert!(c
        .cli(&["chaos", "partition", "eu-west", "ap-south"])
        .status
        .success());
    let set = c.put("eu-west", "hits", "5").await;
    assert_eq!(
        c.get("us-east", "hits", Some(&set)).await.as_deref(),
        Some("5")
    );
    let url = format!("{}/data/default/hits/incr", c.admin("us-east"));
    let v: serde_json::Value = c
        .data()
        .json(hyper::Method::POST, &url, None)
        .await
        .unwrap();
    assert_eq!(v["value"], "6");
    let token = v["token"].as_str().unwrap();
    assert!(
        token.contains("eu-west:1"),
        "the INCR's token must cover the SET: {token}"
    );
    assert_eq!(
        c.get("ap-south", "hits", Some(token)).await.as_deref(),
        Some("6")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_beyond_the_clock_range_is_refused() {
    let c = Cluster::start("us-east,eu-west").await;
    let url = format!(
        "{}/data/default/k?ttl_ms=18446744073709551615",
        c.admin("us-east")
    );
    let (status, body) = c
        .data()
        .request_bytes(hyper::Method::PUT, &url, b"v".to_vec())
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 400, "{body}");
    assert!(body.contains("ttl_ms"), "{body}");
    assert_eq!(
        c.get("us-east", "k", None).await,
        None,
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_entropy_restores_a_key_a_region_lost() {
    let c = Cluster::start_with(REGIONS, &["--anti-entropy-ms", "300"]).await;
    let token = c.put("us-east", "profile:9", "kept").await;
    c.incr("ap-south", "visits", 5).await;
    assert_eq!(
        c.get("eu-west", "profile:9", Some(&token)).await.as_deref(),
        Some("kept")
    );
    c.converged(Some(2), Duration::from_secs(10)).await;
    // eu-west's disk "loses" both keys; nothing about it is replicated.
    for key in ["profile:9", "visits"] {
        let url = format!("{}/admin/faults/forget/default/{key}", c.admin("eu-west"));
        let _: serde_json::Value = c
            .data()
            .json(hyper::Method::POST, &url, None)
            .await
            .unwrap();
    }
    assert_eq!(
        c.get("eu-west", "profile:9", None).await,
        None,
        "the fault did not take"
    );
    // Anti-entropy finds the differing buckets and joins the peers' states.
    c.converged(Some(2), Duration::from_secs(15)).await;
    assert_eq!(
        c.get("eu-west", "profile:9", None).await.as_deref(),
        Some("kept")
    );
    assert_eq!(c.get("eu-west", "visits", None).await.as_deref(), Some("5"));
    let repaired = c
        .metric("eu-west", "meridian_anti_entropy_repaired_keys_total", &[])
        .await
        .unwrap();
    assert!(repaired >= 2.0, "repaired {repaired}");
    // Without faults anti-entropy repairs nothing.
    assert_eq!(
        c.metric("us-east", "meridian_anti_entropy_repaired_keys_total", &[])
            .await,
        Some(0.0)
    );
}
