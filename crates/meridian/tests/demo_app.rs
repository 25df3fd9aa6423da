//! `meridian demo-app` against a real two-region `meridian up` cluster, over
//! real HTTP (hyper's client): one app process per region, configured the
//! way a platform starts apps (`PORT`, `MERIDIAN_REGION`, `MERIDIAN_REDIS`).
//!
//! The cross-region claims are made under a partition, so they could not
//! pass by replication simply being fast: a session created in us-east is
//! absent in eu-west without the token and found with it once the link
//! heals; cart additions made in both regions while they cannot see each
//! other add up exactly afterwards (`INCR` is a commutative add in every
//! table; the `carts` table's `pn_counter` policy also keeps anything but
//! counter writes off its keys, which the test checks through Redis).

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, Cluster};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};

/// The tables the app expects (its crate doc), as `meridian up` takes them.
const TABLES: &str = r#"
[[tables]]
name = "sessions"
key_prefixes = ["session:"]

[[tables]]
name = "carts"
key_prefixes = ["cart:"]
conflict = "pn_counter"

[[tables]]
name = "orders"
key_prefixes = ["order:"]
mode = { single_master = { home = "us-east" } }
"#;

/// One HTTP exchange with a local app; anything slower is a hang. Above
/// the apps' session wait, so a token wait shows as the app's own 503.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an app waits for a caller's token: a healed link must redial
/// (capped backoff) before the held writes arrive.
const SESSION_WAIT_MS: &str = "10000";

/// The demo apps this test started, SIGKILLed by pid when it ends however
/// it ends (`stop` ends them gracefully first on the normal path).
struct Apps(Vec<(String, Child)>);

impl Apps {
    /// SIGTERM to each, then each must exit 0 within a bound.
    fn stop(&mut self) {
        for (_, child) in &self.0 {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for (name, child) in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(15);
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                assert!(Instant::now() < deadline, "{name} ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(status.success(), "{name} exited with {status}");
        }
    }
}

impl Drop for Apps {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            if child.try_wait().ok().flatten().is_none() {
                unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
                let _ = child.wait();
            }
        }
    }
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts one app for `region`, its logs in the cluster directory; returns
/// its base URL.
fn spawn_app(c: &Cluster, apps: &mut Apps, region: &str, instance: Option<&str>) -> String {
    let port = free_port();
    let log = File::create(c.path().join(format!("demo-{region}.log"))).unwrap();
    let mut cmd = Command::new(common::exe());
    cmd.args(["demo-app", "--session-wait-ms", SESSION_WAIT_MS])
        .env("PORT", port.to_string())
        .env("MERIDIAN_REGION", region)
        .env("MERIDIAN_REDIS", &c.file.regions[region].resp)
        .env_remove("MERIDIAN_INSTANCE")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if let Some(i) = instance {
        cmd.env("MERIDIAN_INSTANCE", i);
    }
    let child = cmd.spawn().unwrap();
    apps.0.push((region.to_string(), child));
    format!("http://127.0.0.1:{port}")
}

/// An answer: status, the instance header, the cookies set, the body.
struct Reply {
    status: u16,
    instance: String,
    set_cookies: Vec<String>,
    body: Value,
}

/// A browser's cookie jar, as far as the app needs one.
#[derive(Clone, Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join("; ")
    }

    fn take(&mut self, reply: &Reply) {
        for set in &reply.set_cookies {
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.0.insert(name.to_string(), value.to_string());
        }
    }

    fn token(&self) -> String {
        self.0["meridian-token"].replace("%2C", ",")
    }

    /// The entry-wise maximum of two tokens, as a cookie value.
    fn merged_token(a: &Jar, b: &Jar) -> String {
        let mut seqs: BTreeMap<String, u64> = BTreeMap::new();
        for t in [a.token(), b.token()] {
            for part in t.split(',').filter(|p| !p.is_empty()) {
                let (region, seq) = part.split_once(':').unwrap();
                let seq: u64 = seq.parse().unwrap();
                let e = seqs.entry(region.to_string()).or_default();
                *e = (*e).max(seq);
            }
        }
        let parts: Vec<String> = seqs.iter().map(|(r, s)| format!("{r}:{s}")).collect();
        parts.join("%2C")
    }
}

struct Http(Client<HttpConnector, Empty<Bytes>>);

impl Http {
    fn new() -> Http {
        Http(Client::builder(hyper_util::rt::TokioExecutor::new()).build_http())
    }

    async fn call(&self, method: &str, url: &str, cookie: Option<&str>) -> Reply {
        let mut req = hyper::Request::builder().method(method).uri(url);
        if let Some(c) = cookie.filter(|c| !c.is_empty()) {
            req = req.header("cookie", c);
        }
        let exchange = async {
            let res = self.0.request(req.body(Empty::new()).unwrap()).await?;
            let (parts, body) = res.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(HTTP_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {url}: no answer in {HTTP_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let content_type = parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap());
        assert_eq!(content_type, Some("application/json"), "{method} {url}");
        Reply {
            status: parts.status.as_u16(),
            instance: parts.headers["x-meridian-instance"]
                .to_str()
                .unwrap()
                .to_string(),
            set_cookies: parts
                .headers
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect(),
            body: serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {bytes:?}")),
        }
    }

    /// A call with the jar's cookies; the cookies set go back into it.
    async fn with(&self, jar: &mut Jar, method: &str, url: &str) -> Reply {
        let reply = self.call(method, url, Some(&jar.header())).await;
        jar.take(&reply);
        reply
    }
}

fn chaos(c: &Cluster, args: &[&str]) {
    let mut all = vec!["chaos"];
    all.extend_from_slice(args);
    let out = c.cli(&all);
    assert!(
        out.status.success(),
        "meridian chaos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether both ends see the us-east ↔ eu-west link as `up`.
async fn link_is(c: &Cluster, up: bool) -> Option<()> {
    for (region, peer) in [("us-east", "eu-west"), ("eu-west", "us-east")] {
        let s = c.status(region).await?;
        let p = s.peers.iter().find(|p| p.link.region.as_str() == peer)?;
        if p.link.outbound_up != up {
            return None;
        }
    }
    Some(())
}

async fn partition(c: &Cluster) {
    chaos(c, &["partition", "us-east", "eu-west"]);
    eventually("the link down", Duration::from_secs(15), || {
        link_is(c, false)
    })
    .await;
}

async fn heal(c: &Cluster) {
    chaos(c, &["heal"]);
    eventually("the link up", Duration::from_secs(30), || link_is(c, true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_app_keeps_sessions_and_carts_consistent_across_regions() {
    let tables = tempfile::tempdir().unwrap();
    let extra = tables.path().join("tables.toml");
    std::fs::write(&extra, TABLES).unwrap();
    let c = Cluster::start_with(
        "us-east,eu-west",
        &["--extra-config", extra.to_str().unwrap()],
    )
    .await;
    let mut apps = Apps(Vec::new());
    let us = spawn_app(&c, &mut apps, "us-east", Some("us-1"));
    let eu = spawn_app(&c, &mut apps, "eu-west", None);
    let eu_pid = apps.0[1].1.id().to_string();
    let http = Http::new();
    for base in [&us, &eu] {
        eventually("the app healthy", Duration::from_secs(30), || async {
            let url = format!("{base}/healthz");
            let req = hyper::Request::get(&url).body(Empty::new()).unwrap();
            let res = tokio::time::timeout(HTTP_TIMEOUT, http.0.request(req)).await;
            matches!(res, Ok(Ok(r)) if r.status() == 200).then_some(())
        })
        .await;
    }
    let health = http.call("GET", &format!("{us}/healthz"), None).await;
    assert_eq!((health.status, &health.body), (200, &json!({"ok": true})));

    // Each names its region; the unnamed instance is its process id.
    let who = http.call("GET", &format!("{us}/whoami"), None).await;
    assert_eq!(who.body, json!({"region": "us-east", "instance": "us-1"}));
    assert_eq!(who.instance, "us-1");
    let who = http.call("GET", &format!("{eu}/whoami"), None).await;
    assert_eq!(who.body, json!({"region": "eu-west", "instance": eu_pid}));
    assert_eq!(who.instance, eu_pid);

    let mut us_jar = sessions_follow_the_token(&c, &http, &us, &eu).await;
    carts_add_up_across_regions(&c, &http, &us, &eu, &mut us_jar).await;
    orders_and_input_rules(&http, &us, &eu, &mut us_jar).await;
    apps.stop();
}

/// A login in us-east, read in eu-west under a partition: absent without
/// the token, found with it once the link heals. Returns the us-east jar.
async fn sessions_follow_the_token(c: &Cluster, http: &Http, us: &str, eu: &str) -> Jar {
    let none = http.call("GET", &format!("{eu}/me"), None).await;
    assert_eq!(
        (none.status, &none.body),
        (401, &json!({"error": "not logged in"}))
    );

    partition(c).await;
    let mut jar = Jar::default();
    let login = http
        .with(&mut jar, "POST", &format!("{us}/login?user=anna"))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["user"], "anna");
    assert_eq!(login.body["region"], "us-east");
    let session = login.body["session"].as_str().unwrap().to_string();
    assert!(login.set_cookies.contains(&format!(
        "meridian-session={session}; Path=/; HttpOnly; SameSite=Lax"
    )));
    assert!(jar.token().contains("us-east:"), "{}", jar.token());

    // Without the token eu-west cannot know the session yet...
    let bare = format!("meridian-session={session}");
    let me = http.call("GET", &format!("{eu}/me"), Some(&bare)).await;
    assert_eq!(me.status, 401, "{}", me.body);
    // ...with it, eu-west waits for the login to arrive.
    let started = Instant::now();
    let waiting = {
        let (url, cookie) = (format!("{eu}/me"), jar.header());
        let http = Http::new();
        tokio::spawn(async move { http.call("GET", &url, Some(&cookie)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    heal(c).await;
    let me = waiting.await.unwrap();
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        me.body,
        json!({"user": "anna", "region": "eu-west", "instance": me.instance})
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it waited for the heal"
    );
    assert!(
        me.set_cookies
            .iter()
            .any(|s| s.starts_with("meridian-token=")),
        "the token is refreshed"
    );
    jar
}

/// Additions to one cart in both regions while they cannot see each
/// other, then exactly their sum in both.
async fn carts_add_up_across_regions(
    c: &Cluster,
    http: &Http,
    us: &str,
    eu: &str,
    us_jar: &mut Jar,
) {
    let mut eu_jar = us_jar.clone();
    let no_session = http
        .call("POST", &format!("{eu}/cart/items?sku=apple"), None)
        .await;
    assert_eq!(no_session.status, 401);

    partition(c).await;
    let add = |base: &str| format!("{base}/cart/items?sku=apple");
    let mut last = (0, 0);
    for _ in 0..3 {
        let r = http.with(us_jar, "POST", &add(us)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        last.0 = r.body["count"].as_i64().unwrap();
    }
    for _ in 0..2 {
        let r = http.with(&mut eu_jar, "POST", &add(eu)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["region"], "eu-west");
        last.1 = r.body["count"].as_i64().unwrap();
    }
    assert_eq!(
        last,
        (3, 2),
        "each region counted alone: the adds were concurrent"
    );
    heal(c).await;

    // One client that saw both regions' adds: its token covers all five.
    let mut both = us_jar.clone();
    both.0
        .insert("meridian-token".into(), Jar::merged_token(us_jar, &eu_jar));
    for base in [us, eu] {
        let r = http
            .with(
                &mut both.clone(),
                "GET",
                &format!("{base}/cart/items?sku=apple"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, json!({"sku": "apple", "count": 5}), "at {base}");
    }
    let other = http
        .with(us_jar, "GET", &format!("{us}/cart/items?sku=pear"))
        .await;
    assert_eq!(other.body, json!({"sku": "pear", "count": 0}));

    // The cluster took the app's tables: a cart key is a counter only.
    let refused = redis::cmd("SET")
        .arg("cart:anna:apple")
        .arg("0")
        .query::<()>(&mut c.redis("us-east"))
        .unwrap_err();
    assert!(refused.to_string().contains("pn_counter"), "{refused}");
}

/// Orders (single-master, placed outside the home) and the input rules.
async fn orders_and_input_rules(http: &Http, us: &str, eu: &str, jar: &mut Jar) {
    let placed = http
        .with(jar, "POST", &format!("{eu}/orders?item=book-1"))
        .await;
    assert_eq!(placed.status, 200, "{}", placed.body);
    assert_eq!(placed.body["region"], "eu-west");
    let id = placed.body["order"].as_str().unwrap().to_string();
    let shown = http.with(jar, "GET", &format!("{us}/orders/{id}")).await;
    assert_eq!(
        (shown.status, &shown.body),
        (200, &json!({"order": id, "item": "book-1"}))
    );
    let missing = http
        .with(jar, "GET", &format!("{us}/orders/nosuchorder"))
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    let bad = http
        .with(jar, "POST", &format!("{us}/cart/items?sku=no%3Away"))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body["error"],
        "sku must be 1 to 128 bytes of [A-Za-z0-9_.-]"
    );
    let long = http.call("GET", &format!("{us}/work?ms=20000"), None).await;
    assert_eq!(long.status, 400);
    assert_eq!(long.body["error"], "ms must be 0 to 10000");
    let work = http.call("GET", &format!("{eu}/work?ms=10"), None).await;
    assert_eq!(work.status, 200);
    assert_eq!(work.body["slept_ms"], 10);
    assert_eq!(work.body["region"], "eu-west");
    let junk = http
        .call(
            "GET",
            &format!("{eu}/me"),
            Some("meridian-session=0123456789abcdef0123456789abcdef; meridian-token=garbage"),
        )
        .await;
    assert_eq!(junk.status, 400, "a token that is not one: {}", junk.body);
}
