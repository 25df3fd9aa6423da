//! Table modes and consistency levels through the Redis endpoint, with the
//! `redis` crate against real nodes over emulated WAN links: writes to a
//! single-master table forwarded to its home, strong reads, globally
//! acknowledged writes — and what each does when a link is cut.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use redis::Commands;

const TABLES: &str = r#"
[[tables]]
name = "ledger"
key_prefixes = ["ledger:"]
mode = { single_master = { home = "us-east" } }

[[tables]]
name = "orders"
key_prefixes = ["order:"]
write_ack = "global"
"#;

/// us-east ↔ eu-west round trip in the default latency profile.
const US_EU_RTT: Duration = Duration::from_millis(80);
/// us-east ↔ ap-south round trip.
const US_AP_RTT: Duration = Duration::from_millis(216);

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("tables.toml");
    std::fs::write(&extra, TABLES).unwrap();
    Cluster::start_with(
        "us-east,eu-west,ap-south",
        &["--extra-config", extra.to_str().unwrap()],
    )
    .await
}

fn cmd(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_single_master_table_are_forwarded_to_its_home() {
    let c = cluster().await;
    let mut eu = c.redis("eu-west");
    let mut us = c.redis("us-east");

    // One round trip to the home, at least: the emulated link's physics.
    let start = Instant::now();
    let _: () = eu.set("ledger:acct", "100").unwrap();
    let took = start.elapsed();
    assert!(took >= US_EU_RTT, "forwarded SET took {took:?}");
    // The writer reads its own write back in its own region.
    let v: Option<String> = eu.get("ledger:acct").unwrap();
    assert_eq!(v.as_deref(), Some("100"));
    let v: Option<String> = us.get("ledger:acct").unwrap();
    assert_eq!(v.as_deref(), Some("100"));

    // Replies and errors are the home's, exactly.
    let n: i64 = eu.incr("ledger:n", 5).unwrap();
    assert_eq!(n, 5);
    let e = eu.sadd::<_, _, i64>("ledger:acct", "x").unwrap_err();
    assert!(e.to_string().contains("WRONGTYPE"), "{e}");
    let old: Option<String> = redis::cmd("SET")
        .arg("ledger:acct")
        .arg("90")
        .arg("GET")
        .query(&mut eu)
        .unwrap();
    assert_eq!(old.as_deref(), Some("100"));
    let _: () = eu.mset(&[("ledger:a", "1"), ("ledger:b", "2")]).unwrap();
    let both: Vec<Option<String>> = eu.mget(&["ledger:a", "ledger:b"]).unwrap();
    assert_eq!(both, [Some("1".to_string()), Some("2".to_string())]);
    // A command whose keys are written in different regions is refused.
    let e = eu
        .mset::<_, _, ()>(&[("ledger:c", "1"), ("plain", "2")])
        .unwrap_err();
    assert!(e.to_string().contains("different regions"), "{e}");

    // Concurrent increments from every region all commit at the home.
    let handles: Vec<_> = ["us-east", "eu-west", "ap-south"]
        .into_iter()
        .map(|region| {
            let mut con = c.redis(region);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let _: i64 = con.incr("ledger:hits", 1).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let hits: i64 = us.get("ledger:hits").unwrap();
    assert_eq!(hits, 60);
    // No region but the home originated a ledger write.
    assert_eq!(c.own_writes("eu-west").await, 0);
    assert_eq!(c.own_writes("ap-south").await, 0);

    // The round trips are in /metrics, per serving region.
    let n = c
        .metric(
            "eu-west",
            "meridian_forwarded_request_seconds_count",
            &[("to", "us-east")],
        )
        .await
        .unwrap();
    let sum = c
        .metric(
            "eu-west",
            "meridian_forwarded_request_seconds_sum",
            &[("to", "us-east")],
        )
        .await
        .unwrap();
    assert!(n >= 20.0, "{n} forwarded requests counted");
    assert!(sum / n >= US_EU_RTT.as_secs_f64(), "mean {} s", sum / n);
    let answered = c
        .metric(
            "eu-west",
            "meridian_forwarded_requests_total",
            &[("to", "us-east"), ("outcome", "answered")],
        )
        .await;
    assert_eq!(answered, Some(n));

    // WAIT counts regions for the forwarded write too.
    let _: () = eu.set("ledger:w", "1").unwrap();
    let n: i64 = redis::cmd("WAIT").arg(2).arg(5000).query(&mut eu).unwrap();
    assert_eq!(n, 2);

    // A cut link to the home: the write fails loudly and says whether it
    // may have happened.
    assert!(c
        .cli(&["chaos", "partition", "eu-west", "us-east"])
        .status
        .success());
    let e = eu.set::<_, _, ()>("ledger:cut", "1").unwrap_err();
    assert_eq!(e.kind(), redis::ErrorKind::TryAgain, "{e}");
    // Refused at once (link down) or after the forwarding timeout (bytes
    // held by the partition): either way it names the home.
    assert!(e.to_string().contains("region us-east"), "{e}");
    // Writes to other tables still work locally.
    let _: () = eu.set("plain:during-cut", "1").unwrap();
    assert!(c.cli(&["chaos", "heal"]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_reads_see_every_write_the_home_committed_before_them() {
    let c = cluster().await;
    let mut us = c.redis("us-east");
    let mut ap = c.redis("ap-south");
    assert_eq!(
        cmd(&mut ap, &["MERIDIAN.CONSISTENCY"]).unwrap(),
        redis::Value::BulkString(b"session".to_vec())
    );
    let _: () = redis::cmd("MERIDIAN.CONSISTENCY")
        .arg("strong")
        .query(&mut ap)
        .unwrap();
    for i in 0..5 {
        // Written at the home through another connection; read at once
        // 108 ms away: a strong read must see it.
        let _: () = us.set("ledger:price", i).unwrap();
        let start = Instant::now();
        let v: i64 = ap.get("ledger:price").unwrap();
        assert_eq!(v, i, "strong read {i} missed a committed write");
        assert!(
            start.elapsed() >= US_AP_RTT,
            "a strong read outside the home asks the home"
        );
    }
    // Strong reads need a single home.
    let e = ap.get::<_, Option<String>>("plain").unwrap_err();
    assert!(e.to_string().contains("single_master"), "{e}");
    // Bad levels are named.
    let e = cmd(&mut ap, &["MERIDIAN.CONSISTENCY", "linear"]).unwrap_err();
    assert!(e.to_string().contains("eventual, session or strong"), "{e}");

    // Session reads wait for the connection's token (here one no region
    // will reach) and fail loudly; eventual reads never wait.
    let mut eu = c.redis("eu-west");
    let _: () = redis::cmd("MERIDIAN.AFTER")
        .arg("us-east:999999999")
        .arg(200)
        .query(&mut eu)
        .unwrap();
    let e = eu.get::<_, Option<String>>("plain").unwrap_err();
    assert_eq!(e.kind(), redis::ErrorKind::TryAgain, "{e}");
    let _: () = redis::cmd("MERIDIAN.CONSISTENCY")
        .arg("eventual")
        .query(&mut eu)
        .unwrap();
    let v: Option<String> = eu.get("plain").unwrap();
    assert_eq!(v, None);

    // Cut from the home, a strong read fails after its wait, loudly.
    assert!(c
        .cli(&["chaos", "partition", "ap-south", "us-east"])
        .status
        .success());
    let e = ap.get::<_, Option<String>>("ledger:price").unwrap_err();
    assert_eq!(e.kind(), redis::ErrorKind::TryAgain, "{e}");
    assert!(c.cli(&["chaos", "heal"]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_acks_wait_for_the_regions_they_need() {
    let c = cluster().await;
    let mut us = c.redis("us-east");
    // `orders` acknowledges globally by default: all three regions, so at
    // least the round trip to the farthest one (ap-south).
    let start = Instant::now();
    let _: () = us.set("order:1", "paid").unwrap();
    let took = start.elapsed();
    assert!(took >= US_AP_RTT, "global ack after {took:?}");
    for region in ["eu-west", "ap-south"] {
        let mut con = c.redis(region);
        let _: () = redis::cmd("MERIDIAN.CONSISTENCY")
            .arg("eventual")
            .query(&mut con)
            .unwrap();
        let v: Option<String> = con.get("order:1").unwrap();
        assert_eq!(
            v.as_deref(),
            Some("paid"),
            "acknowledged before {region} had it"
        );
    }
    assert_eq!(
        cmd(&mut us, &["MERIDIAN.ACK"]).unwrap(),
        redis::Value::BulkString(b"table".to_vec())
    );
    let _: () = redis::cmd("MERIDIAN.ACK")
        .arg("global")
        .arg(2)
        .arg(1500)
        .query(&mut us)
        .unwrap();
    let start = Instant::now();
    let _: () = us.set("plain:2", "y").unwrap();
    let took = start.elapsed();
    assert!(took >= US_EU_RTT, "global 2 after {took:?}");

    // With ap-south cut off, two regions can still acknowledge; three
    // cannot, and the error says how far the write got.
    assert!(c
        .cli(&["chaos", "partition", "us-east", "ap-south"])
        .status
        .success());
    let _: () = us.set("plain:3", "z").unwrap();
    // The table's global default cannot be met either; a local ack can.
    let _: () = redis::cmd("MERIDIAN.ACK")
        .arg("table")
        .query(&mut us)
        .unwrap();
    let _: () = us.set("plain:local", "x").unwrap();
    let _: () = redis::cmd("MERIDIAN.ACK")
        .arg("global")
        .arg(3)
        .arg(1000)
        .query(&mut us)
        .unwrap();
    let e = us.set::<_, _, ()>("plain:4", "w").unwrap_err();
    let text = e.to_string();
    assert_eq!(e.kind(), redis::ErrorKind::TryAgain, "{text}");
    assert!(text.contains("only 2 of the 3 regions"), "{text}");
    // Committed all the same: readable here, and everywhere after heal.
    let v: Option<String> = us.get("plain:4").unwrap();
    assert_eq!(v.as_deref(), Some("w"));
    let _: () = redis::cmd("MERIDIAN.ACK")
        .arg("local")
        .query(&mut us)
        .unwrap();
    assert!(c.cli(&["chaos", "heal"]).status.success());
    c.converged(None, Duration::from_secs(20)).await;

    // Bad settings are named.
    for bad in [
        &["MERIDIAN.ACK", "global", "4"][..],
        &["MERIDIAN.ACK", "global", "0"],
        &["MERIDIAN.ACK", "global", "2", "0"],
        &["MERIDIAN.ACK", "sometimes"],
    ] {
        assert!(cmd(&mut us, bad).is_err(), "{bad:?} accepted");
    }
}

/// `(status, body)` of a data-API request.
async fn data(
    c: &Cluster,
    method: hyper::Method,
    region: &str,
    path_and_query: &str,
    body: &str,
) -> (u16, String) {
    let url = format!("{}/data/{path_and_query}", c.admin(region));
    let (status, text) = c
        .data()
        .request_bytes(method, &url, body.as_bytes().to_vec())
        .await
        .unwrap();
    (status.as_u16(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_api_has_the_same_modes_consistency_and_acks() {
    let c = cluster().await;
    use hyper::Method;
    // A single-master write made in eu-west is forwarded to us-east.
    let (status, body) = data(&c, Method::PUT, "eu-west", "ledger/ledger:api", "7").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["origin"], "us-east", "{body}");
    let token = v["token"].as_str().unwrap().to_string();
    assert!(token.contains("us-east:"), "{token}");
    // No eu-west origin write for the ledger.
    assert_eq!(c.own_writes("eu-west").await, 0);
    // A strong read 108 ms from the home sees it at once.
    let start = Instant::now();
    let (status, body) = data(
        &c,
        Method::GET,
        "ap-south",
        "ledger/ledger:api?consistency=strong",
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "7"));
    assert!(start.elapsed() >= US_AP_RTT, "strong reads ask the home");
    // Strong reads of a multi-master table are refused, as on Redis.
    let (status, body) = data(
        &c,
        Method::GET,
        "ap-south",
        "default/x?consistency=strong",
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("single_master"), "{body}");
    let (status, body) = data(
        &c,
        Method::POST,
        "ap-south",
        "ledger/ledger:n/incr?by=3",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"value\":\"3\""), "{body}");

    // The route names the key's table.
    let (status, body) = data(&c, Method::PUT, "us-east", "default/ledger:x", "1").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("belongs to table `ledger`"), "{body}");
    for bad in [
        "consistency=linear",
        "ack=global:9",
        "ack=everywhere",
        "ack_timeout_ms=0",
    ] {
        let (status, body) =
            data(&c, Method::PUT, "us-east", &format!("default/k?{bad}"), "1").await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Global acks per request: 2 regions can answer with ap-south cut off,
    // 3 cannot, and the error says the write is committed.
    assert!(c
        .cli(&["chaos", "partition", "us-east", "ap-south"])
        .status
        .success());
    let (status, body) = data(&c, Method::PUT, "us-east", "default/g2?ack=global:2", "1").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = data(
        &c,
        Method::PUT,
        "us-east",
        "default/g3?ack=global&ack_timeout_ms=500",
        "1",
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("applied in only 2 of the 3"), "{body}");
    // The table's own default (orders: global) applies without `ack`.
    let (status, body) = data(
        &c,
        Method::PUT,
        "us-east",
        "orders/order:api?ack_timeout_ms=500",
        "1",
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(c.cli(&["chaos", "heal"]).status.success());
    // A session read elsewhere waits for the token of the write.
    let (status, body) = data(&c, Method::PUT, "us-east", "default/after", "x").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["token"].as_str().unwrap();
    let (status, body) = data(
        &c,
        Method::GET,
        "ap-south",
        &format!("default/after?after={token}&wait_ms=10000"),
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "x"));
}
