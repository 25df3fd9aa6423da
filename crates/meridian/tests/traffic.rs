//! The traffic layer as a user meets it: `meridian up` with demo apps
//! behind every region's edge on 127.0.N.1 (one port for all), `curl` as
//! the client, and the CLI's faults — `chaos stop-apps` / `start-apps`,
//! `region drain` / `undrain` — with sessions that follow the user between
//! regions and writes that go to the orders table's home.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{eventually, Cluster};

/// `curl` answer: status, serving region, body.
#[derive(Debug)]
struct Curl {
    status: u16,
    region: String,
    body: String,
}

/// Runs curl with `args` (a 10 s limit), reading status and region from
/// its header dump.
fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-D", "-"])
        .args(args)
        .output()
        .expect("curl runs (scripts/install-test-deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let region = head
        .lines()
        .find_map(|l| l.strip_prefix("x-meridian-region: "))
        .unwrap_or("")
        .to_string();
    Curl {
        status,
        region,
        body: body.to_string(),
    }
}

fn edge(c: &Cluster, region: &str) -> String {
    c.file.regions[region]
        .edge
        .clone()
        .expect("up gives every region an edge")
}

fn cli_ok(c: &Cluster, args: &[&str]) -> String {
    let out = c.cli(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "meridian {args:?} failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_behind_edges_fail_over_drain_and_follow_the_user() {
    let mut c = Cluster::start_with("us-east,eu-west,ap-south", &["--apps-per-region", "2"]).await;
    // One port, one loopback address per region.
    let edges: Vec<String> = ["us-east", "eu-west", "ap-south"]
        .iter()
        .map(|r| edge(&c, r))
        .collect();
    let port = edges[0].rsplit(':').next().unwrap().to_string();
    for (i, e) in edges.iter().enumerate() {
        assert_eq!(e, &format!("http://127.0.{}.1:{port}", i + 1));
    }
    assert_eq!(c.file.regions["us-east"].apps.len(), 2);
    let us = edges[0].clone();
    let eu = edges[1].clone();

    let who = curl(&[&format!("{us}/whoami")]);
    assert_eq!(
        (who.status, who.region.as_str()),
        (200, "us-east"),
        "{who:?}"
    );
    assert!(who.body.contains("\"region\":\"us-east\""), "{}", who.body);

    // A session made in us-east is seen in eu-west (session-consistent):
    // one host name that resolves to another region's edge, as GeoDNS
    // would send a travelling user, so the browser's cookies follow.
    let jar = c.path().join("cookies");
    let jar = jar.to_str().unwrap();
    let at = |n: u8| format!("app.test:{port}:127.0.{n}.1");
    let app = format!("http://app.test:{port}");
    let login = curl(&[
        "--resolve",
        &at(1),
        "-X",
        "POST",
        "-c",
        jar,
        &format!("{app}/login?user=ada"),
    ]);
    assert_eq!(
        (login.status, login.region.as_str()),
        (200, "us-east"),
        "{login:?}"
    );
    let me = curl(&["--resolve", &at(2), "-b", jar, &format!("{app}/me")]);
    assert_eq!((me.status, me.region.as_str()), (200, "eu-west"), "{me:?}");
    assert!(me.body.contains("ada"), "{}", me.body);
    let anon = curl(&["--resolve", &at(2), &format!("{app}/me")]);
    assert_eq!(anon.status, 401, "{anon:?}");

    // Writes on /orders go to the orders table's home (us-east).
    let order = curl(&["-X", "POST", &format!("{eu}/orders?item=book")]);
    assert_eq!(
        (order.status, order.region.as_str()),
        (200, "us-east"),
        "{order:?}"
    );

    // us-east loses its instances: every request is still answered, from
    // eu-west, the nearest region.
    cli_ok(&c, &["chaos", "stop-apps", "us-east"]);
    let stopped = Instant::now();
    let mut regions = Vec::new();
    for _ in 0..20 {
        let g = curl(&[&format!("{us}/whoami")]);
        assert_eq!(g.status, 200, "{g:?}");
        regions.push(g.region);
    }
    assert!(
        regions.iter().skip(5).all(|r| r == "eu-west"),
        "{regions:?}"
    );
    assert!(stopped.elapsed() < Duration::from_secs(30));
    c.reload();
    assert!(c.file.regions["us-east"].apps.is_empty());

    // And back once new instances pass their checks.
    cli_ok(&c, &["chaos", "start-apps", "us-east"]);
    eventually("us-east serving again", Duration::from_secs(15), || async {
        (curl(&[&format!("{us}/whoami")]).region == "us-east").then_some(())
    })
    .await;

    // A planned drain routes us-east's traffic away, and back.
    let drained = cli_ok(&c, &["region", "drain", "us-east"]);
    assert!(drained.contains("us-east"), "{drained}");
    assert_eq!(curl(&[&format!("{us}/whoami")]).region, "eu-west");
    cli_ok(&c, &["region", "undrain", "us-east"]);
    assert_eq!(curl(&[&format!("{us}/whoami")]).region, "us-east");

    // `meridian status` shows the edges and the verdicts.
    let status = cli_ok(&c, &["status"]);
    assert!(
        status.contains("EDGE") && status.contains("SEEN FROM"),
        "{status}"
    );
    let metrics = curl(&[&format!("{}/metrics", c.admin("us-east"))]);
    assert!(
        metrics.body.contains("meridian_edge_load_per_instance"),
        "no scaling signal"
    );
    assert!(metrics
        .body
        .contains("meridian_edge_forwarded_total{to=\"eu-west\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_and_a_scale_up_under_load() {
    let mut c = Cluster::start_with(
        "us-east",
        &[
            "--apps-per-region",
            "1",
            "--apps-min",
            "1",
            "--apps-max",
            "2",
            "--apps-target-load",
            "1",
        ],
    )
    .await;
    let us = edge(&c, "us-east");
    // HTTP/2 from the client (h2c with prior knowledge), HTTP/1.1 behind.
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(format!("{us}/whoami"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");

    // Eight clients in a loop of 300 ms requests: about 8 in flight on one
    // instance, eight times the target, so up adds the second one.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (url, stop) = (format!("{us}/work?ms=300"), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    curl(&[&url]);
                }
            })
        })
        .collect();
    let admin = c.admin("us-east");
    let scaled = eventually("a second instance", Duration::from_secs(15), || {
        let admin = admin.clone();
        async move {
            let e: meridian_api::edge::EdgeStatus = meridian_api::client::AdminClient::new(None)
                .get(&format!("{admin}/edge"))
                .await
                .ok()?;
            (e.backends.iter().filter(|b| b.up).count() == 2).then_some(e)
        }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in clients {
        t.join().unwrap();
    }
    assert_eq!(scaled.backends.len(), 2);
    let events: meridian_api::supervisor::ScaleEvents =
        meridian_api::client::AdminClient::new(Some(c.file.admin_token.clone()))
            .get(&format!("{}/scale/events", c.file.supervisor))
            .await
            .unwrap();
    let up = events
        .events
        .iter()
        .find(|e| e.region == "us-east" && e.to == 2)
        .expect("a scale-up event");
    assert_eq!(up.from, 1);
    assert!(up.load_per_instance > 1.0, "{up:?}");
    c.reload();
    assert_eq!(c.file.regions["us-east"].apps.len(), 2);
}
