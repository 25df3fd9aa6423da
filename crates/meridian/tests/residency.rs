//! Data residency: a pinned table's keys and values never reach a region
//! outside its allowed regions — neither its store nor the bytes that
//! cross its links — while that region still replicates everything else,
//! serves the table by forwarding when the table allows it, and relaying
//! around a partition never lets a placeholder stand in for real data.
//!
//! Every node records what its emulated links deliver (`up
//! --capture-links`); the test greps those captures and the data files for
//! markers it put in the pinned keys, fields and values.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{eventually, Cluster};
use meridian_api::client::AdminClient;
use meridian_api::data::TableDigest;
use redis::Commands;

const TABLES: &str = r#"
[[tables]]
name = "gdpr"
key_prefixes = ["gdpr:"]
mode = { pinned = { regions = ["eu-west", "us-east"], outside = "forward" } }

[[tables]]
name = "vault"
key_prefixes = ["vault:"]
mode = { pinned = { regions = ["eu-west"] } }
"#;

/// Every table digest of every answering region.
async fn digests(c: &Cluster) -> BTreeMap<String, BTreeMap<String, TableDigest>> {
    let mut out = BTreeMap::new();
    for (name, r) in &c.file.regions {
        if let Ok(d) = AdminClient::new(None)
            .get::<BTreeMap<String, TableDigest>>(&format!("{}/digest", r.admin))
            .await
        {
            out.insert(name.clone(), d);
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The bytes of every file under `dir` whose name passes `pick`.
fn read_files(dir: &Path, pick: &dyn Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if pick(&p.file_name().unwrap().to_string_lossy()) {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_data_never_reaches_other_regions_on_disk_or_on_the_wire() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = tmp.path().join("tables.toml");
    std::fs::write(&extra, TABLES).unwrap();
    let mut c = Cluster::start_with(
        "us-east,eu-west,ap-south",
        &[
            "--extra-config",
            extra.to_str().unwrap(),
            "--capture-links",
            // Anti-entropy runs often, so its refusal to compare pinned
            // tables with ap-south is exercised too.
            "--anti-entropy-ms",
            "500",
        ],
    )
    .await;
    let nonce = format!("{:016x}", fastrand::u64(..));
    let pinned = format!("P1N-{nonce}");
    let vault = format!("V4ULT-{nonce}");
    let public = format!("PUB-{nonce}");
    let forwarded = format!("FWD-{nonce}");

    let mut eu = c.redis("eu-west");
    let mut us = c.redis("us-east");
    let mut ap = c.redis("ap-south");

    // Every kind of write, in both allowed regions.
    for (con, region) in [(&mut eu, "eu"), (&mut us, "us")] {
        for i in 0..20 {
            let _: () = con
                .set(
                    format!("gdpr:{pinned}-{region}-k{i}"),
                    format!("{pinned}-v{i}"),
                )
                .unwrap();
            let _: () = con
                .hset(
                    format!("gdpr:{pinned}-h"),
                    format!("{pinned}-{region}-f{i}"),
                    format!("{pinned}-hv{i}"),
                )
                .unwrap();
            let _: () = con
                .sadd(
                    format!("gdpr:{pinned}-s"),
                    format!("{pinned}-{region}-m{i}"),
                )
                .unwrap();
            let _: () = con.incr(format!("gdpr:{pinned}-c"), 1).unwrap();
            let _: () = con
                .set(format!("public:{region}-{i}"), format!("{public}-{i}"))
                .unwrap();
        }
    }
    for i in 0..10 {
        let _: () = eu
            .set(format!("vault:{vault}-k{i}"), format!("{vault}-v{i}"))
            .unwrap();
        let _: () = ap
            .set(format!("public:ap-{i}"), format!("{public}-ap{i}"))
            .unwrap();
    }

    // Outside the allowed regions: `vault` refuses by name…
    let e = us.get::<_, Option<String>>("vault:x").unwrap_err();
    assert!(e.to_string().contains("pinned to eu-west"), "{e}");
    let e = ap.set::<_, _, ()>("vault:x", "1").unwrap_err();
    assert!(e.to_string().contains("pinned to eu-west"), "{e}");
    // …`gdpr` forwards to the nearest allowed region: the client's own
    // request and reply cross the link, nothing is stored here.
    let _: () = ap
        .set(format!("gdpr:{forwarded}-k"), format!("{forwarded}-v"))
        .unwrap();
    let v: String = ap.get(format!("gdpr:{forwarded}-k")).unwrap();
    assert_eq!(v, format!("{forwarded}-v"), "read your forwarded write");
    let n: i64 = ap.incr(format!("gdpr:{forwarded}-c"), 5).unwrap();
    assert_eq!(n, 5);
    let all: Vec<String> = ap.keys("gdpr:*").unwrap();
    assert!(all.is_empty(), "ap-south lists no pinned keys: {all:?}");

    // Cut eu-west ↔ us-east: ap-south relays eu-west's log to us-east…
    assert!(c
        .cli(&["chaos", "partition", "eu-west", "us-east"])
        .status
        .success());
    let _: () = eu.set("public:during-cut", &public).unwrap();
    let mut us_reader = c.redis("us-east");
    let _: () = redis::cmd("MERIDIAN.CONSISTENCY")
        .arg("eventual")
        .query(&mut us_reader)
        .unwrap();
    eventually(
        "a public write relayed through ap-south",
        Duration::from_secs(20),
        || {
            let v: Option<String> = us_reader.get("public:during-cut").unwrap();
            std::future::ready((v.as_deref() == Some(public.as_str())).then_some(()))
        },
    )
    .await;
    // …but it holds only placeholders of gdpr writes, which it must not
    // pass on: us-east's position in eu-west's log stops before them.
    let eu_seq_at_us = |s: meridian_api::status::NodeStatus| {
        s.replication
            .unwrap()
            .applied
            .get("eu-west")
            .copied()
            .unwrap_or(0)
    };
    let before = eu_seq_at_us(c.status("us-east").await.unwrap());
    for i in 0..10 {
        let _: () = eu
            .set(
                format!("gdpr:{pinned}-late{i}"),
                format!("{pinned}-late-v{i}"),
            )
            .unwrap();
    }
    // Long past the relay delay (1 s) and ap-south's own copy.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let ap_has = eu_seq_at_us(c.status("ap-south").await.unwrap());
    assert!(ap_has >= before + 10, "ap-south applied the placeholders");
    assert_eq!(
        eu_seq_at_us(c.status("us-east").await.unwrap()),
        before,
        "us-east took no placeholder for data it must hold"
    );
    assert!(c.cli(&["chaos", "heal"]).status.success());
    // …and after the heal they do, with their values.
    eventually(
        "late pinned writes at us-east",
        Duration::from_secs(30),
        || {
            let v: Option<String> = us_reader.get(format!("gdpr:{pinned}-late9")).unwrap();
            std::future::ready((v == Some(format!("{pinned}-late-v9"))).then_some(()))
        },
    )
    .await;

    // Converged: equal version vectors everywhere (ap-south applied every
    // sequence number, as placeholders), the default table identical in
    // all three, gdpr identical where it is held and absent elsewhere.
    let d = eventually(
        "converged per residency",
        Duration::from_secs(60),
        || async {
            let d = digests(&c).await;
            let mut vvs = Vec::new();
            for region in c.file.regions.keys() {
                vvs.push(c.status(region).await?.replication?.applied);
            }
            let same = |t: &str, regions: &[&str]| {
                regions
                    .iter()
                    .all(|r| d.get(*r).and_then(|x| x.get(t)) == d["eu-west"].get(t))
            };
            (d.len() == 3
                && vvs.iter().all(|v| *v == vvs[0])
                && same("default", &["us-east", "ap-south"])
                && same("gdpr", &["us-east"]))
            .then_some(d)
        },
    )
    .await;
    assert!(!d["ap-south"].contains_key("gdpr") && !d["ap-south"].contains_key("vault"));
    assert!(!d["us-east"].contains_key("vault"));
    // 40 strings + 10 late + hash + set + counter + 2 forwarded.
    assert_eq!(d["eu-west"]["gdpr"].keys, 55, "{:?}", d["eu-west"]["gdpr"]);
    assert_eq!(d["eu-west"]["vault"].keys, 10);

    // What crossed the links.
    let captures = read_files(&c.path().join("capture"), &|_| true);
    assert_eq!(captures.len(), 12, "3 nodes × 2 links × 2 directions");
    let touches_ap = |name: &str| name.contains("ap-south");
    let mut ap_bytes = 0usize;
    for (name, bytes) in &captures {
        assert!(!contains(bytes, &vault), "{name} carries vault data");
        if touches_ap(name) {
            ap_bytes += bytes.len();
            assert!(!contains(bytes, &pinned), "{name} carries pinned gdpr data");
        }
    }
    // Not vacuous: the captures hold real traffic of every other kind.
    let joined = |pick: &dyn Fn(&str) -> bool| -> Vec<u8> {
        captures
            .iter()
            .filter(|(n, _)| pick(n))
            .flat_map(|(_, b)| b.clone())
            .collect()
    };
    assert!(
        ap_bytes > 10_000,
        "ap-south's links carried {ap_bytes} bytes"
    );
    assert!(
        contains(&joined(&touches_ap), &public),
        "public data crossed to ap-south"
    );
    assert!(
        contains(&joined(&touches_ap), &forwarded),
        "the forwarded request crossed from ap-south"
    );
    assert!(
        contains(&joined(&|n| !touches_ap(n)), &pinned),
        "gdpr data crossed between eu-west and us-east"
    );

    // What the stores hold, read after the nodes stopped.
    c.signal_up(libc::SIGTERM);
    let data = c.path().join("data");
    let store = |region: &str| -> Vec<u8> {
        read_files(&data.join(region), &|_| true)
            .into_iter()
            .flat_map(|(_, b)| b)
            .collect()
    };
    let (eu_store, us_store, ap_store) = (store("eu-west"), store("us-east"), store("ap-south"));
    for (marker, what) in [
        (&pinned, "gdpr"),
        (&vault, "vault"),
        (&forwarded, "forwarded gdpr"),
    ] {
        assert!(
            !contains(&ap_store, marker),
            "ap-south's store holds {what} data"
        );
    }
    assert!(
        !contains(&us_store, &vault),
        "us-east's store holds vault data"
    );
    assert!(contains(&ap_store, &public), "ap-south stores public data");
    for (marker, what) in [
        (&pinned, "gdpr"),
        (&vault, "vault"),
        (&forwarded, "forwarded"),
    ] {
        assert!(contains(&eu_store, marker), "eu-west stores {what} data");
    }
    assert!(contains(&us_store, &pinned) && contains(&us_store, &forwarded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_pinned_at_run_time_leaves_the_regions_outside_and_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = tmp.path().join("tables.toml");
    std::fs::write(
        &extra,
        "[[tables]]\nname = \"docs\"\nkey_prefixes = [\"doc:\"]\n",
    )
    .unwrap();
    let c = Cluster::start_with(
        "us-east,eu-west,ap-south",
        &[
            "--extra-config",
            extra.to_str().unwrap(),
            "--capture-links",
            // Anti-entropy brings the data back after un-pinning.
            "--anti-entropy-ms",
            "300",
        ],
    )
    .await;
    let nonce = format!("{:016x}", fastrand::u64(..));
    let (before, after, restarted) = (
        format!("B3F0RE-{nonce}"),
        format!("4FTER-{nonce}"),
        format!("R3START-{nonce}"),
    );
    for region in ["us-east", "eu-west", "ap-south"] {
        let mut con = c.redis(region);
        for i in 0..10 {
            let _: () = con
                .set(format!("doc:{region}-{i}"), format!("{before}-{i}"))
                .unwrap();
        }
    }
    let mut ap = c.redis("ap-south");
    let _: () = redis::cmd("MERIDIAN.CONSISTENCY")
        .arg("eventual")
        .query(&mut ap)
        .unwrap();
    eventually("ap-south holds every doc", Duration::from_secs(20), || {
        let n: Vec<String> = ap.keys("doc:*").unwrap();
        std::future::ready((n.len() == 30).then_some(()))
    })
    .await;

    // Pinned to us-east and eu-west at run time.
    let out = c.cli(&["table", "set-mode", "docs", "pinned:us-east,eu-west"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("ap-south gave docs up", Duration::from_secs(20), || async {
        let d = digests(&c).await;
        (!d.get("ap-south")?.contains_key("docs")).then_some(())
    })
    .await;
    let n: Vec<String> = ap.keys("doc:*").unwrap();
    assert!(n.is_empty(), "ap-south still lists {n:?}");
    // It dropped the 30 states it held and rewrote their 30 log entries.
    let metric = |name: &'static str| c.metric("ap-south", name, &[]);
    assert_eq!(
        metric("meridian_store_withheld_states_total").await,
        Some(30.0)
    );
    assert!(metric("meridian_store_withheld_entries_total").await >= Some(30.0));
    let e = ap.get::<_, Option<String>>("doc:us-east-1").unwrap_err();
    assert!(e.to_string().contains("pinned to eu-west, us-east"), "{e}");

    // New writes where it is held never reach ap-south — not even after
    // ap-south restarts (it gives the table up again before serving).
    let mut us = c.redis("us-east");
    for i in 0..10 {
        let _: () = us
            .set(format!("doc:new-{i}"), format!("{after}-{i}"))
            .unwrap();
    }
    assert!(c.cli(&["chaos", "kill", "ap-south"]).status.success());
    for i in 0..10 {
        let _: () = us
            .set(format!("doc:while-down-{i}"), format!("{restarted}-{i}"))
            .unwrap();
    }
    assert!(c.cli(&["chaos", "restart", "ap-south"]).status.success());
    eventually(
        "every region applied every write",
        Duration::from_secs(30),
        || async {
            let mut vvs = Vec::new();
            for region in c.file.regions.keys() {
                vvs.push(c.status(region).await?.replication?.applied);
            }
            vvs.iter().all(|v| *v == vvs[0]).then_some(())
        },
    )
    .await;
    let ap_links: Vec<u8> = read_files(&c.path().join("capture"), &|n| n.contains("ap-south"))
        .into_iter()
        .flat_map(|(_, b)| b)
        .collect();
    let ap_store: Vec<u8> = read_files(&c.path().join("data").join("ap-south"), &|_| true)
        .into_iter()
        .flat_map(|(_, b)| b)
        .collect();
    for marker in [&after, &restarted] {
        assert!(!contains(&ap_links, marker), "{marker} crossed to ap-south");
        assert!(!contains(&ap_store, marker), "{marker} stored in ap-south");
    }
    assert!(
        contains(&ap_links, &before),
        "the capture saw the earlier writes"
    );

    // Un-pinned: ap-south holds docs again, and anti-entropy brings back
    // what it gave up and what it missed.
    let out = c.cli(&["table", "set-mode", "docs", "multi_master"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ap = c.redis("ap-south");
    let _: () = redis::cmd("MERIDIAN.CONSISTENCY")
        .arg("eventual")
        .query(&mut ap)
        .unwrap();
    eventually(
        "ap-south holds docs again, identical",
        Duration::from_secs(60),
        || async {
            let d = digests(&c).await;
            let docs: Vec<_> = d.values().filter_map(|t| t.get("docs")).collect();
            (docs.len() == 3 && docs.iter().all(|x| *x == docs[0]) && docs[0].keys == 50)
                .then_some(())
        },
    )
    .await;
    let v: String = ap.get("doc:while-down-3").unwrap();
    assert_eq!(v, format!("{restarted}-3"));
    let v: String = ap.get("doc:ap-south-3").unwrap();
    assert_eq!(v, format!("{before}-3"));
}
