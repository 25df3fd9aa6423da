//! The edge proxy with real `meridian node` processes on an emulated WAN
//! (the default latency profile) and app instances that this test runs
//! and breaks on purpose: balancing, failover to the nearest region when a
//! region loses its instances and the way back, faulty instances (hang,
//! reset, garbage, 5xx), replay and writes to a table's home that follow a
//! `table move`, drain, the region quorum under a cut link and a killed
//! region, and the limits (rate, body, header, slowloris) — with hyper's
//! client and, once, Python's `http.client`.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::eventually;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use meridian_api::client::AdminClient;
use meridian_api::edge::{BackendSet, BackendSpec, EdgeStatus, RegionsHealth};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];
const TOKEN: &str = "edge-test-token";

/// What a test instance does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// 200 with its name.
    Ok = 0,
    /// 500.
    Fail = 1,
    /// Never answers.
    Hang = 2,
    /// Closes the connection without an answer.
    Reset = 3,
    /// Writes bytes that are not HTTP.
    Garbage = 4,
}

/// An app instance inside the test process.
struct App {
    name: String,
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicU64>,
    stop: CancellationToken,
    /// Cancelled on every mode change: open connections close, as they
    /// would when a process restarts in another state.
    generation: Arc<std::sync::Mutex<CancellationToken>>,
}

impl App {
    async fn start(name: &str) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = App {
            name: name.to_string(),
            addr,
            mode: Arc::new(AtomicU8::new(Mode::Ok as u8)),
            hits: Arc::default(),
            stop: CancellationToken::new(),
            generation: Arc::default(),
        };
        let (mode, hits, stop, name) = (
            app.mode.clone(),
            app.hits.clone(),
            app.stop.clone(),
            app.name.clone(),
        );
        let generation = app.generation.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a.unwrap(),
                };
                let (mode, hits, stop, name) =
                    (mode.clone(), hits.clone(), stop.clone(), name.clone());
                let current = generation.lock().unwrap().clone();
                tokio::spawn(async move {
                    match mode.load(Relaxed) {
                        3 => return drop(stream),
                        4 => {
                            let _ = stream.write_all(b"\x00\x01 this is not http\r\n\r\n").await;
                            return;
                        }
                        _ => {}
                    }
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (mode, hits, name) = (mode.clone(), hits.clone(), name.clone());
                            async move {
                                Ok::<_, Infallible>(
                                    answer(req, &name, mode.load(Relaxed), &hits).await,
                                )
                            }
                        });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = current.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
        app
    }

    fn set(&self, mode: Mode) {
        let before = self.mode.swap(mode as u8, Relaxed);
        // Resets and garbage are decided per connection: open ones close, as
        // they would when a process restarts in another state. 5xx and hangs
        // are per request, on the connections already open.
        let per_connection = |m: u8| m == Mode::Reset as u8 || m == Mode::Garbage as u8;
        if per_connection(before) || per_connection(mode as u8) {
            std::mem::take(&mut *self.generation.lock().unwrap()).cancel();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    name: &str,
    mode: u8,
    hits: &AtomicU64,
) -> Response<Full<Bytes>> {
    if req.uri().path() == "/healthz" {
        let status = if mode == Mode::Fail as u8 { 500 } else { 200 };
        return Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap();
    }
    hits.fetch_add(1, Relaxed);
    if mode == Mode::Hang as u8 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let xff = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let replay = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("replay="))
        .map(str::to_string);
    let hop = req.headers().contains_key("x-meridian-hop");
    let body =
        serde_json::json!({"instance": name, "xff": xff, "path": req.uri().path()}).to_string();
    let mut resp = Response::builder().status(if mode == Mode::Fail as u8 { 500 } else { 200 });
    if let (Some(region), false) = (replay, hop) {
        resp = resp.header("meridian-replay", format!("region={region}"));
    }
    resp.body(Full::new(Bytes::from(body))).unwrap()
}

/// Three nodes with edges on 127.0.N.1, the same port each.
struct Nodes {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    procs: BTreeMap<String, Child>,
    admin: BTreeMap<String, String>,
    edge: BTreeMap<String, String>,
}

fn free_port(ips: &[[u8; 4]]) -> u16 {
    loop {
        let p = 20_000 + fastrand::u16(..12_000);
        let held: Vec<_> = ips
            .iter()
            .filter_map(|ip| std::net::TcpListener::bind(SocketAddr::from((*ip, p))).ok())
            .collect();
        if held.len() == ips.len() {
            return p;
        }
    }
}

impl Nodes {
    async fn start(extra: &str) -> Nodes {
        Nodes::start_with("", extra).await
    }

    /// With `edge_keys` (lines of `key = value`) added to `[edge]`.
    async fn start_with(edge_keys: &str, extra: &str) -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        let edge_port = free_port(&[[127, 0, 1, 1], [127, 0, 2, 1], [127, 0, 3, 1]]);
        let mut toml = format!("[cluster]\nsecret = \"0123456789abcdef0123456789abcdef\"\nadmin_token = \"{TOKEN}\"\n[wan]\nemulate = true\n");
        let (mut admin, mut edge) = (BTreeMap::new(), BTreeMap::new());
        for (i, r) in REGIONS.iter().enumerate() {
            let [p, q, a] = [0; 3].map(|_| free_port(&[[127, 0, 0, 1]]));
            toml += &format!(
                "[[regions]]\nname = \"{r}\"\npeer = \"127.0.0.1:{p}\"\nresp = \"127.0.0.1:{q}\"\nadmin = \"127.0.0.1:{a}\"\nedge = \"127.0.{n}.1:{edge_port}\"\n",
                n = i + 1
            );
            admin.insert(r.to_string(), format!("http://127.0.0.1:{a}"));
            edge.insert(
                r.to_string(),
                format!("http://127.0.{}.1:{edge_port}", i + 1),
            );
        }
        toml += "[edge]\n";
        toml += edge_keys;
        toml += "request_timeout_ms = 700\nretry_backoff_ms = 1\n[edge.health]\ninterval_ms = 100\ntimeout_ms = 90\n[edge.probe]\ninterval_ms = 100\ntimeout_ms = 600\n";
        toml += extra;
        let config = dir.path().join("topology.toml");
        std::fs::write(&config, toml).unwrap();
        let mut nodes = Nodes {
            dir,
            config,
            procs: BTreeMap::new(),
            admin,
            edge,
        };
        for r in REGIONS {
            nodes.spawn(r);
        }
        for r in REGIONS {
            let url = format!("{}/health", nodes.admin[r]);
            eventually("the nodes to answer", Duration::from_secs(30), || async {
                AdminClient::new(None)
                    .get::<serde_json::Value>(&url)
                    .await
                    .ok()
            })
            .await;
        }
        nodes
    }

    fn spawn(&mut self, region: &str) {
        let log = std::fs::File::create(self.dir.path().join(format!("{region}.log"))).unwrap();
        let child = Command::new(common::exe())
            .args(["node", "--config"])
            .arg(&self.config)
            .args(["--region", region, "--data-dir"])
            .arg(self.dir.path().join(region))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.procs.insert(region.to_string(), child);
    }

    fn kill(&mut self, region: &str) {
        if let Some(mut c) = self.procs.remove(region) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn admin_client(&self) -> AdminClient {
        AdminClient::new(Some(TOKEN.to_string()))
    }

    async fn register(&self, region: &str, apps: &[&App]) {
        let set = BackendSet {
            backends: apps
                .iter()
                .map(|a| BackendSpec {
                    addr: a.addr.to_string(),
                    weight: 1,
                })
                .collect(),
        };
        let url = format!("{}/admin/edge/backends", self.admin[region]);
        let (status, body) = self
            .admin_client()
            .request(
                hyper::Method::PUT,
                &url,
                Some(serde_json::to_value(&set).unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn edge_status(&self, region: &str) -> EdgeStatus {
        AdminClient::new(None)
            .get(&format!("{}/edge", self.admin[region]))
            .await
            .unwrap()
    }

    async fn health(&self, region: &str) -> RegionsHealth {
        AdminClient::new(None)
            .get(&format!("{}/health/regions", self.admin[region]))
            .await
            .unwrap()
    }

    /// Waits until `region`'s edge has `n` instances up.
    async fn wait_up(&self, region: &str, n: usize) {
        eventually(
            &format!("{n} instances up in {region}"),
            Duration::from_secs(10),
            || async {
                let s = self.edge_status(region).await;
                (s.backends.iter().filter(|b| b.up).count() == n).then_some(())
            },
        )
        .await;
    }

    async fn metric(&self, region: &str, line_start: &str) -> f64 {
        let (_, text) = AdminClient::new(None)
            .request(
                hyper::Method::GET,
                &format!("{}/metrics", self.admin[region]),
                None,
            )
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.procs) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
struct Got {
    status: u16,
    region: String,
    instance: String,
    headers: hyper::HeaderMap,
    body: String,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    c: &HttpClient,
    method: &str,
    url: &str,
    body: &'static [u8],
    headers: &[(&str, &str)],
) -> Got {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from_static(body))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .expect("the edge answers in time")
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body =
        String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    let region = headers
        .get("x-meridian-region")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let instance = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["instance"].as_str().map(str::to_string))
        .unwrap_or_default();
    Got {
        status,
        region,
        instance,
        headers,
        body,
    }
}

async fn get(c: &HttpClient, url: &str) -> Got {
    send(c, "GET", url, b"", &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_fails_over_to_the_nearest_region_and_comes_back() {
    let n = Nodes::start("").await;
    let (us1, us2, eu, ap) = (
        App::start("us1").await,
        App::start("us2").await,
        App::start("eu1").await,
        App::start("ap1").await,
    );
    n.register("us-east", &[&us1, &us2]).await;
    n.register("eu-west", &[&eu]).await;
    n.register("ap-south", &[&ap]).await;
    for r in REGIONS {
        n.wait_up(r, if r == "us-east" { 2 } else { 1 }).await;
    }
    let c = client();
    let url = format!("{}/items", n.edge["us-east"]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let g = get(&c, &url).await;
        assert_eq!((g.status, g.region.as_str()), (200, "us-east"), "{g:?}");
        assert!(
            g.body.contains("127.0.0.1"),
            "the instance saw X-Forwarded-For: {}",
            g.body
        );
        seen.insert(g.instance);
    }
    assert_eq!(seen.len(), 2, "round robin uses both instances");

    // The region loses every instance while a client keeps asking: no
    // GET fails, and the answers come from eu-west, the nearest region.
    drop(us1);
    drop(us2);
    let started = Instant::now();
    let mut first_eu = None;
    let mut from_eu = 0;
    for i in 0..40 {
        let g = get(&c, &url).await;
        assert_eq!(g.status, 200, "request {i} after the instances died: {g:?}");
        if g.region == "eu-west" {
            from_eu += 1;
            first_eu.get_or_insert(started.elapsed());
        }
        if i >= 20 {
            assert_eq!(
                g.region, "eu-west",
                "every answer from eu-west once the checks saw it: {g:?}"
            );
        }
    }
    assert!(
        first_eu.unwrap() < Duration::from_secs(1),
        "failover took {first_eu:?}"
    );
    let forwarded = n
        .metric("us-east", "meridian_edge_forwarded_total{to=\"eu-west\"}")
        .await;
    assert!(
        from_eu >= 38 && forwarded >= f64::from(from_eu),
        "forwarded {forwarded}, from eu-west {from_eu}"
    );
    let health = n.edge_status("us-east").await;
    assert!(!health.serving);

    // Instances come back: after `rise` checks, traffic returns.
    let back = App::start("us3").await;
    n.register("us-east", &[&back]).await;
    let returned = Instant::now();
    eventually(
        "traffic back in us-east",
        Duration::from_secs(5),
        || async {
            let g = get(&c, &url).await;
            (g.status == 200 && g.region == "us-east").then_some(())
        },
    )
    .await;
    assert!(
        returned.elapsed() < Duration::from_millis(2 * 100 + 1000),
        "back after {:?}",
        returned.elapsed()
    );

    // A drained region sends its traffic away, and takes it back.
    let admin = n.admin_client();
    let (s, _) = admin
        .request(
            hyper::Method::POST,
            &format!("{}/admin/edge/drain", n.admin["us-east"]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(get(&c, &url).await.region, "eu-west");
    eventually(
        "others to see the drain",
        Duration::from_secs(5),
        || async {
            let h = n.health("eu-west").await;
            h.regions["us-east"].draining.then_some(())
        },
    )
    .await;
    admin
        .request(
            hyper::Method::POST,
            &format!("{}/admin/edge/undrain", n.admin["us-east"]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(get(&c, &url).await.region, "us-east");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_instances_get_retried_or_a_clear_status() {
    let n = Nodes::start("").await;
    let (good, bad) = (App::start("good").await, App::start("bad").await);
    n.register("us-east", &[&good, &bad]).await;
    n.wait_up("us-east", 2).await;
    let c = client();
    let url = format!("{}/x", n.edge["us-east"]);
    // 5xx, resets and garbage: every GET is retried on the good instance.
    for mode in [Mode::Fail, Mode::Reset, Mode::Garbage] {
        bad.set(mode);
        for _ in 0..4 {
            let g = get(&c, &url).await;
            assert_eq!(
                (g.status, g.instance.as_str()),
                (200, "good"),
                "{mode:?}: {g:?}"
            );
        }
        bad.set(Mode::Ok);
        n.wait_up("us-east", 2).await;
    }
    assert!(n.metric("us-east", "meridian_edge_retries_total").await >= 1.0);
    // A POST is not idempotent: a 5xx is passed on, never repeated.
    good.set(Mode::Fail);
    bad.set(Mode::Fail);
    let g = send(&c, "POST", &url, b"x", &[]).await;
    assert_eq!(g.status, 500);
    let before = good.hits.load(Relaxed) + bad.hits.load(Relaxed);
    let g = send(&c, "POST", &url, b"x", &[]).await;
    assert_eq!(g.status, 500);
    assert_eq!(
        good.hits.load(Relaxed) + bad.hits.load(Relaxed),
        before + 1,
        "sent once"
    );
    // With an Idempotency-Key, it may be retried.
    good.set(Mode::Ok);
    let mut retried = false;
    for _ in 0..6 {
        let g = send(&c, "POST", &url, b"x", &[("idempotency-key", "k1")]).await;
        retried |= g.status == 200;
    }
    assert!(retried);
    // A hanging instance: 504 after the request timeout, not a stuck client.
    good.set(Mode::Hang);
    bad.set(Mode::Hang);
    let t = Instant::now();
    let g = send(&c, "POST", &url, b"x", &[]).await;
    assert_eq!(g.status, 504, "{g:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(
        n.metric(
            "us-east",
            "meridian_edge_upstream_errors_total{kind=\"timeout\"}"
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_writes_to_home_follow_the_table() {
    let extra = "[[tables]]\nname = \"orders\"\nkey_prefixes = [\"order:\"]\nmode = { single_master = { home = \"eu-west\" } }\n[[routes]]\npath_prefix = \"/orders\"\nwrites_to_home_of = \"orders\"\n";
    let n = Nodes::start(extra).await;
    let apps = [
        App::start("us1").await,
        App::start("eu1").await,
        App::start("ap1").await,
    ];
    for (r, a) in REGIONS.iter().zip(&apps) {
        n.register(r, &[a]).await;
        n.wait_up(r, 1).await;
    }
    let c = client();
    let us = &n.edge["us-east"];
    // Writes go to the home, reads stay local.
    let g = send(&c, "POST", &format!("{us}/orders"), b"{}", &[]).await;
    assert_eq!(
        (g.status, g.region.as_str(), g.instance.as_str()),
        (200, "eu-west", "eu1"),
        "{g:?}"
    );
    assert_eq!(get(&c, &format!("{us}/orders/1")).await.region, "us-east");
    // Moving the table moves the writes.
    let url = format!("{}/admin/tables/orders/mode", n.admin["us-east"]);
    let change = serde_json::json!({"mode": {"single_master": {"home": "ap-south"}}});
    let (s, body) = n
        .admin_client()
        .request(hyper::Method::PUT, &url, Some(change))
        .await
        .unwrap();
    assert_eq!(s, 200, "{body}");
    eventually(
        "writes to follow the move",
        Duration::from_secs(10),
        || async {
            let g = send(&c, "POST", &format!("{us}/orders"), b"{}", &[]).await;
            (g.region == "ap-south").then_some(())
        },
    )
    .await;
    // An app asks for a replay elsewhere: the edge returns that region's answer.
    let g = send(
        &c,
        "POST",
        &format!("{us}/anything?replay=eu-west"),
        b"body",
        &[],
    )
    .await;
    assert_eq!((g.status, g.region.as_str()), (200, "eu-west"), "{g:?}");
    assert!(!g.headers.contains_key("meridian-replay"));
    // A replay header that names no region is an error, not a guess.
    let g = send(&c, "GET", &format!("{us}/x?replay=mars%20base"), b"", &[]).await;
    assert_eq!(g.status, 502, "{g:?}");
    assert!(g.body.contains("meridian-replay"), "{}", g.body);
    assert!(
        n.metric("us-east", "meridian_edge_replayed_total{to=\"eu-west\"}")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_fails_no_region_over_but_a_dead_region_is_down_by_quorum() {
    let mut n = Nodes::start("").await;
    let apps = [
        App::start("us1").await,
        App::start("eu1").await,
        App::start("ap1").await,
    ];
    for (r, a) in REGIONS.iter().zip(&apps) {
        n.register(r, &[a]).await;
    }
    // Cut us-east <-> eu-west on both ends.
    let admin = n.admin_client();
    for (a, b) in [("us-east", "eu-west"), ("eu-west", "us-east")] {
        let url = format!("{}/admin/links/{b}", n.admin[a]);
        let (s, body) = admin
            .request(
                hyper::Method::PUT,
                &url,
                Some(serde_json::json!({"partitioned": true})),
            )
            .await
            .unwrap();
        assert_eq!(s, 200, "{body}");
    }
    eventually(
        "us-east to lose sight of eu-west",
        Duration::from_secs(10),
        || async {
            let h = n.health("us-east").await;
            (h.regions["eu-west"].observers["us-east"].state == "down").then_some(())
        },
    )
    .await;
    // Held for a while: one vote of the two needed, never down.
    for _ in 0..10 {
        let h = n.health("us-east").await;
        assert_eq!(h.regions["eu-west"].verdict, "up", "{h:?}");
        assert_eq!(h.regions["eu-west"].down_votes, 1);
        let h = n.health("ap-south").await;
        assert_eq!(h.regions["eu-west"].verdict, "up");
        assert_eq!(h.regions["us-east"].verdict, "up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (a, b) in [("us-east", "eu-west"), ("eu-west", "us-east")] {
        let url = format!("{}/admin/links/{b}", n.admin[a]);
        admin
            .request(
                hyper::Method::PUT,
                &url,
                Some(serde_json::json!({"partitioned": false})),
            )
            .await
            .unwrap();
    }
    // A killed region: both observers agree, the verdict flips.
    n.kill("eu-west");
    let killed = Instant::now();
    for r in ["us-east", "ap-south"] {
        eventually(
            &format!("{r} to see eu-west down"),
            Duration::from_secs(10),
            || async {
                let h = n.health(r).await;
                (h.regions["eu-west"].verdict == "down").then_some(())
            },
        )
        .await;
    }
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "verdict after {:?}",
        killed.elapsed()
    );
    assert_eq!(
        n.metric("us-east", "meridian_region_up{region=\"eu-west\"}")
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_with_named_statuses() {
    let extra = "[[routes]]\npath_prefix = \"/limited\"\nrate_limit = 1\nrate_burst = 2\n";
    let n = Nodes::start(extra).await;
    let app = App::start("us1").await;
    n.register("us-east", &[&app]).await;
    n.wait_up("us-east", 1).await;
    let c = client();
    let us = &n.edge["us-east"];
    // A route's rate limit: the burst, then 429 with Retry-After.
    let codes: Vec<u16> = futures_ok(&c, &format!("{us}/limited"), 4).await;
    assert_eq!(&codes[..2], [200, 200]);
    let g = get(&c, &format!("{us}/limited")).await;
    assert_eq!(g.status, 429, "{g:?}");
    assert!(g.headers.get("retry-after").is_some());
    // A body over edge.body_bytes_max (16 MiB) is refused before it is read.
    let g = send(
        &c,
        "POST",
        &format!("{us}/x"),
        b"",
        &[("content-length", "0")],
    )
    .await;
    assert_eq!(g.status, 200);
    // Python's http.client: oversized headers get 431, a malformed request 400.
    let script = format!(
        r#"
import http.client, socket
h = http.client.HTTPConnection("{host}", {port}, timeout=10)
h.request("GET", "/ok")
r = h.getresponse(); r.read(); print(r.status, r.getheader("x-meridian-region"))
h = http.client.HTTPConnection("{host}", {port}, timeout=10)
h.putrequest("POST", "/big"); h.putheader("Content-Length", str(64 * 1024 * 1024)); h.endheaders()
r = h.getresponse(); print(r.status)
h = http.client.HTTPConnection("{host}", {port}, timeout=10)
h.request("GET", "/x", headers={{"X-Big": "a" * 40000}})
print(h.getresponse().status)
s = socket.create_connection(("{host}", {port}), timeout=10)
s.sendall(b"NOT HTTP AT ALL\r\n\r\n"); print(s.recv(12).decode())
"#,
        host = "127.0.1.1",
        port = us.rsplit(':').next().unwrap()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "200 us-east");
    assert_eq!(lines[1], "413");
    assert_eq!(lines[2], "431");
    assert!(lines[3].starts_with("HTTP/1.1 400"), "{}", lines[3]);
    assert!(
        n.metric(
            "us-east",
            "meridian_edge_rejected_total{reason=\"body_too_large\"}"
        )
        .await
            >= 1.0
    );
    assert!(
        n.metric(
            "us-east",
            "meridian_edge_rejected_total{reason=\"rate_limited_route\"}"
        )
        .await
            >= 1.0
    );
}

async fn futures_ok(c: &HttpClient, url: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(c, url).await.status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_breakers_and_slow_clients() {
    let keys = "sticky_cookie = \"pin\"\nmax_pending_per_backend = 1\nheader_timeout_ms = 500\n";
    let n = Nodes::start_with(keys, "").await;
    let (a, b) = (App::start("a").await, App::start("b").await);
    n.register("us-east", &[&a, &b]).await;
    n.wait_up("us-east", 2).await;
    let c = client();
    let url = format!("{}/s", n.edge["us-east"]);
    // The first answer pins the client; later ones go to the same instance.
    let first = get(&c, &url).await;
    let cookie = first
        .headers
        .get("set-cookie")
        .expect("a pin")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("pin="), "{cookie}");
    for _ in 0..6 {
        let g = send(&c, "GET", &url, b"", &[("cookie", &cookie)]).await;
        assert_eq!(g.instance, first.instance, "sticky");
        assert!(
            !g.headers.contains_key("set-cookie"),
            "no re-pin while it is up"
        );
    }
    // Its instance goes: the client is re-pinned to the other one.
    let (gone, other) = if first.instance == "a" {
        (&a, "b")
    } else {
        (&b, "a")
    };
    gone.set(Mode::Fail);
    eventually(
        "the pinned instance down",
        Duration::from_secs(5),
        || async {
            (n.edge_status("us-east")
                .await
                .backends
                .iter()
                .filter(|x| x.up)
                .count()
                == 1)
                .then_some(())
        },
    )
    .await;
    let g = send(&c, "GET", &url, b"", &[("cookie", &cookie)]).await;
    assert_eq!(g.instance, other);
    assert!(g.headers.get("set-cookie").is_some(), "re-pinned");
    // The breaker: one request in flight per instance. With the other one
    // hanging, a second concurrent request gets 503 naming the limit.
    let hang = if other == "a" { &a } else { &b };
    hang.set(Mode::Hang);
    let slow = tokio::spawn({
        let (c, url) = (c.clone(), url.clone());
        async move { send(&c, "POST", &url, b"x", &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let g = send(&c, "POST", &url, b"x", &[]).await;
    assert_eq!(g.status, 503, "{g:?}");
    assert!(g.body.contains("circuit open"), "{}", g.body);
    assert_eq!(slow.await.unwrap().status, 504);
    // A client that never finishes its request head is cut off.
    let edge_addr = n.edge["us-east"].trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&edge_addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "the edge closed the slow connection"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "after {:?}",
        t.elapsed()
    );
    assert!(
        n.metric(
            "us-east",
            "meridian_edge_connection_errors_total{kind=\"header_timeout\"}"
        )
        .await
            >= 1.0
    );
    assert!(
        n.metric(
            "us-east",
            "meridian_edge_rejected_total{reason=\"breaker_open\"}"
        )
        .await
            >= 1.0
    );
}
