//! The foundation, end to end: `meridian up` with three real node processes
//! over emulated links, then status, metrics, admin auth, chaos and cleanup.

mod common;

use std::time::Duration;

use common::{eventually, wait_gone, Cluster};
use hyper::{Method, StatusCode};
use meridian_api::client::AdminClient;
use serde_json::json;

use common::parse_metric as metric;

async fn metrics_text(c: &Cluster, region: &str) -> String {
    let (status, body) = AdminClient::new(None)
        .request(Method::GET, &format!("{}/metrics", c.admin(region)), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_brings_three_linked_regions_with_status_and_metrics() {
    let c = Cluster::start("us-east,eu-west,ap-south").await;
    assert_eq!(c.file.regions.len(), 3);
    for (name, r) in &c.file.regions {
        assert!(
            r.admin.starts_with("http://127.0.0.1:"),
            "{name}: {}",
            r.admin
        );
        assert!(r.resp.starts_with("127.0.0.1:"), "{name}: {}", r.resp);
        assert!(r.pid.is_some(), "{name} has no pid");
    }

    // `meridian status` shows every region up and every link up.
    let out = c.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3/3 regions up"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" -> ") && l.contains(" up "))
            .count(),
        6,
        "{text}"
    );

    // The heartbeat RTT over the emulated us-east <-> eu-west link is ~80 ms.
    let s = c.status("us-east").await.unwrap();
    let eu = s
        .peers
        .iter()
        .find(|p| p.link.region.as_str() == "eu-west")
        .unwrap();
    let rtt = eventually("an RTT sample", Duration::from_secs(5), || async {
        c.status("us-east")
            .await?
            .peers
            .into_iter()
            .find(|p| p.link.region.as_str() == "eu-west")?
            .link
            .rtt_ms
    })
    .await;
    assert!(
        (79.0..95.0).contains(&rtt),
        "us-east -> eu-west heartbeat RTT {rtt} ms"
    );
    assert_eq!(eu.emulated.as_ref().unwrap().figures.rtt_ms, 80.0);

    // /metrics parses with a real Prometheus parser and says the same.
    let m = metrics_text(&c, "us-east").await;
    assert_eq!(
        metric(
            &m,
            "meridian_peer_link_up",
            &[("peer", "eu-west"), ("direction", "outbound")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "meridian_peer_link_up",
            &[("peer", "ap-south"), ("direction", "inbound")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "meridian_wan_link_one_way_delay_seconds",
            &[("peer", "ap-south")]
        ),
        Some(0.108)
    );
    assert_eq!(
        metric(&m, "meridian_build_info", &[("region", "us-east")]),
        Some(1.0)
    );
    // The store's write-ahead log reports itself.
    assert!(metric(&m, "meridian_store_wal_bytes", &[]).is_some());
    assert!(metric(&m, "meridian_store_memtable_bytes", &[]).is_some());
    assert!(metric(&m, "meridian_store_logged_commits_total", &[]).is_some());
    assert!(metric(&m, "meridian_store_checkpoint_seconds", &[]).is_some());
    assert!(
        metric(
            &m,
            "meridian_wan_link_bytes_total",
            &[("peer", "eu-west"), ("direction", "outbound")]
        )
        .unwrap()
            > 0.0
    );

    // /health answers for load balancers.
    let h: serde_json::Value = AdminClient::new(None)
        .get(&format!("{}/health", c.admin("ap-south")))
        .await
        .unwrap();
    assert_eq!(h["ready"], json!(true));
    assert_eq!(h["peers_total"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_endpoints_refuse_requests_without_the_admin_token() {
    let c = Cluster::start("us-east,eu-west").await;
    let url = format!("{}/admin/links/eu-west", c.admin("us-east"));
    let body = Some(json!({ "partitioned": true }));
    for token in [None, Some("wrong-token".to_string())] {
        let (status, text) = AdminClient::new(token)
            .request(Method::PUT, &url, body.clone())
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert!(text.contains("admin token"), "{text}");
    }
    let (status, _) = AdminClient::new(None)
        .request(
            Method::GET,
            &format!("{}/admin/links", c.admin("us-east")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing changed, and the refusals were counted.
    let s = c.status("us-east").await.unwrap();
    assert!(!s.peers[0].emulated.as_ref().unwrap().partitioned);
    let m = metrics_text(&c, "us-east").await;
    assert_eq!(
        metric(&m, "meridian_admin_unauthorized_total", &[]),
        Some(3.0)
    );

    let authed = AdminClient::new(Some(c.file.admin_token.clone()));
    let (status, text) = authed.request(Method::PUT, &url, body).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    // Bad figures are refused with the rule, unknown peers with 404.
    let (status, text) = authed
        .request(Method::PUT, &url, Some(json!({ "rtt_ms": -3 })))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("rtt_ms: -3 is out of range"), "{text}");
    let bad_peer = format!("{}/admin/links/mars", c.admin("us-east"));
    let (status, _) = authed
        .request(Method::PUT, &bad_peer, Some(json!({})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = authed
        .request(Method::PUT, &url, Some(json!({ "bogus": 1 })))
        .await
        .unwrap();
    assert!(
        status.is_client_error(),
        "unknown fields must be refused, got {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_partitions_heals_kills_and_restarts_regions() {
    let mut c = Cluster::start("us-east,eu-west,ap-south").await;
    let link_up = |s: &meridian_api::status::NodeStatus, peer: &str| {
        s.peers
            .iter()
            .find(|p| p.link.region.as_str() == peer)
            .map(|p| p.link.outbound_up)
            .unwrap()
    };

    let out = c.cli(&["chaos", "partition", "us-east", "eu-west"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        "us-east -/- eu-west both ways",
        Duration::from_secs(10),
        || async {
            let (a, b) = (c.status("us-east").await?, c.status("eu-west").await?);
            (!link_up(&a, "eu-west") && !link_up(&b, "us-east")).then_some(())
        },
    )
    .await;
    assert!(
        link_up(&c.status("us-east").await.unwrap(), "ap-south"),
        "other links must stay up"
    );
    let text = String::from_utf8_lossy(&c.cli(&["status"]).stdout).to_string();
    assert_eq!(text.matches("PARTITIONED").count(), 2, "{text}");

    let out = c.cli(&["chaos", "heal"]);
    assert!(out.status.success());
    eventually("links back", Duration::from_secs(10), || async {
        let (a, b) = (c.status("us-east").await?, c.status("eu-west").await?);
        (link_up(&a, "eu-west") && link_up(&b, "us-east")).then_some(())
    })
    .await;

    let out = c.cli(&["chaos", "latency", "us-east", "eu-west", "30"]);
    assert!(out.status.success());
    let rtt = eventually("RTT near 30 ms", Duration::from_secs(10), || async {
        let p = c
            .status("eu-west")
            .await?
            .peers
            .into_iter()
            .find(|p| p.link.region.as_str() == "us-east")?;
        p.link.rtt_ms.filter(|r| *r < 45.0)
    })
    .await;
    assert!(rtt >= 29.0, "{rtt}");

    // Bad input: unknown region, out-of-range loss.
    let out = c.cli(&["chaos", "partition", "us-east", "mars"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown region `mars`"));
    let out = c.cli(&["chaos", "loss", "us-east", "eu-west", "100"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loss_pct: 100 is out of range"));

    // Kill is a crash; the others see the links drop; restart brings it back.
    let old_pid = c.file.regions["ap-south"].pid.unwrap();
    let out = c.cli(&["chaos", "kill", "ap-south"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_gone(&[old_pid], Duration::from_secs(5)).is_empty(),
        "killed node still alive"
    );
    assert!(c.status("ap-south").await.is_none());
    c.reload();
    assert_eq!(c.file.regions["ap-south"].pid, None);
    let text = String::from_utf8_lossy(&c.cli(&["status"]).stdout).to_string();
    assert!(
        text.contains("2/3 regions up") && text.contains("DOWN"),
        "{text}"
    );

    let out = c.cli(&["chaos", "restart", "ap-south"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.reload();
    let new_pid = c.file.regions["ap-south"].pid.unwrap();
    assert_ne!(new_pid, old_pid);
    eventually("ap-south relinked", Duration::from_secs(15), || async {
        let s = c.status("ap-south").await?;
        (s.pid == new_pid && s.peers.iter().all(|p| p.link.outbound_up)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_every_node_and_removes_cluster_json() {
    let mut c = Cluster::start("us-east,eu-west,ap-south").await;
    let pids = c.node_pids();
    assert_eq!(pids.len(), 3);
    let status = c.signal_up(libc::SIGINT);
    assert!(status.success(), "up exited with {status}");
    assert!(
        wait_gone(&pids, Duration::from_secs(10)).is_empty(),
        "nodes left running"
    );
    assert!(common::processes_mentioning(c.path()).is_empty());
    assert!(!c.path().join("cluster.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_die_with_up_even_when_it_is_killed_hard() {
    let mut c = Cluster::start("us-east,eu-west").await;
    let pids = c.node_pids();
    c.signal_up(libc::SIGKILL);
    assert!(
        wait_gone(&pids, Duration::from_secs(15)).is_empty(),
        "orphaned nodes survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_cluster_secret_is_refused_and_logged() {
    let c = Cluster::start("us-east,eu-west").await;
    let peer_addr = c.file.regions["us-east"].peer.clone();
    let identity = meridian_wan::PeerIdentity::new(
        c.file.cluster.clone(),
        meridian_core::RegionName::new("eu-west").unwrap(),
        b"an-attacker-guessing-the-secret",
    );
    let stream = tokio::net::TcpStream::connect(&peer_addr).await.unwrap();
    let expected = meridian_core::RegionName::new("us-east").unwrap();
    let err = meridian_wan::auth::connect(stream, &identity, &expected)
        .await
        .unwrap_err();
    assert!(
        matches!(err, meridian_wan::AuthError::Refused(_)),
        "{err:?}"
    );

    let failures = eventually(
        "the refusal in /metrics",
        Duration::from_secs(5),
        || async {
            let m = metrics_text(&c, "us-east").await;
            metric(&m, "meridian_peer_auth_failures_total", &[]).filter(|v| *v >= 1.0)
        },
    )
    .await;
    assert_eq!(failures, 1.0);
    let log = std::fs::read_to_string(&c.file.regions["us-east"].log).unwrap();
    assert!(log.contains("refused peer connection"), "{log}");
    // The real peer link is unaffected.
    let s = c.status("us-east").await.unwrap();
    assert!(s.peers[0].link.outbound_up && s.peers[0].link.inbound_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_fails_up_with_the_node_log_and_leaves_nothing() {
    // Hold a port, then ask for fixed ports that put us-east's admin on it.
    // The port comes from below the ephemeral range, as `up`'s own do, so
    // no outgoing connection of a parallel test can sit on the others.
    let (holder, taken) = (0..1000)
        .find_map(|_| {
            let p = fastrand_port();
            std::net::TcpListener::bind(("127.0.0.1", p))
                .ok()
                .map(|l| (l, p))
        })
        .expect("a free port below the ephemeral range");
    let base = taken - 2;
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::exe())
        .args([
            "up",
            "--regions",
            "us-east",
            "--base-port",
            &base.to_string(),
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("node us-east exited during start-up"), "{err}");
    assert!(
        err.contains(&format!(
            "cannot listen for the admin API on 127.0.0.1:{taken}"
        )),
        "{err}"
    );
    assert!(
        common::processes_mentioning(dir.path()).is_empty(),
        "processes left behind"
    );
    drop(holder);
}

#[test]
fn node_refuses_a_bad_config_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        "[cluster]\nsecret = \"0123456789abcdef0123\"\n[[regions]]\nname = \"us-east\"\npeer = \"127.0.0.1:7001\"\nresp = \"127.0.0.1:7001\"\nadmin = \"127.0.0.1:7002\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::exe())
        .args(["node", "--region", "us-east", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("regions[0].resp: address 127.0.0.1:7001 is also used by regions[0].peer"),
        "{err}"
    );
    let out = std::process::Command::new(common::exe())
        .args(["check-config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read topology file"));
}

#[test]
fn up_refuses_unknown_or_repeated_regions() {
    for (regions, needle) in [
        ("us-east,mars", "no city in the default latency profile"),
        ("us-east,us-east", "listed twice"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(common::exe())
            .args(["up", "--regions", regions, "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle));
    }
}

/// A pseudo-random port in `up`'s free range (time-seeded; no extra crate).
fn fastrand_port() -> u16 {
    let r = meridian_lab::up::FREE_PORTS;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let span = u32::from(r.end - r.start - 16);
    r.start + 8 + (nanos.wrapping_mul(2_654_435_761) % span) as u16
}
