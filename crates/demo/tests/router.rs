//! The app's HTTP surface without a Redis behind it: the real server on a
//! loopback port, spoken to in raw HTTP/1.1, with the Redis endpoint a port
//! nobody listens on. What must not need Redis (whoami, input rules, the
//! 401 without a cookie, JSON errors, the instance header) works, and what
//! needs it fails as a JSON 503 — never a hang or a panic.

use std::sync::Arc;
use std::time::Duration;

use meridian_demo::app::serve;
use meridian_demo::state::AppState;
use meridian_demo::DemoOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Every exchange here is local; anything slower is a hang.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

struct App {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> App {
    // A port that was free a moment ago: connecting to it is refused.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redis = dead.local_addr().unwrap().to_string();
    drop(dead);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(DemoOptions {
        listen: addr,
        region: "us-east".into(),
        instance: "web-7".into(),
        redis,
        session_ttl_s: 60,
        session_wait_ms: 100,
    })
    .unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(state), shutdown.clone()));
    App { addr, shutdown }
}

struct Answer {
    status: u16,
    head: String,
    body: serde_json::Value,
}

/// One request on its own connection (`Connection: close`), read to EOF.
async fn call(app: &App, method: &str, path: &str, extra: &str) -> Answer {
    let exchange = async {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    };
    let text = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer in {EXCHANGE_TIMEOUT:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {body:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body,
    }
}

#[tokio::test]
async fn what_needs_no_redis_answers_and_every_error_is_json() {
    let app = start().await;

    let a = call(&app, "GET", "/whoami", "").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        serde_json::json!({"region": "us-east", "instance": "web-7"})
    );
    assert!(a.head.contains("x-meridian-instance: web-7"), "{}", a.head);
    assert!(
        a.head.contains("content-type: application/json"),
        "{}",
        a.head
    );

    let a = call(&app, "GET", "/work?ms=5", "").await;
    assert_eq!((a.status, a.body["slept_ms"].as_u64()), (200, Some(5)));
    let a = call(&app, "GET", "/work?ms=20000", "").await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["error"], "ms must be 0 to 10000");
    let a = call(&app, "GET", "/work?ms=soon", "").await;
    assert_eq!(a.status, 400, "{}", a.body);

    let a = call(&app, "POST", "/cart/items?sku=a:b", "").await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body["error"],
        "sku must be 1 to 128 bytes of [A-Za-z0-9_.-]"
    );
    let a = call(&app, "POST", "/login", "").await;
    assert_eq!(a.status, 400);
    assert!(a.body["error"]
        .as_str()
        .unwrap()
        .contains("user is required"));
    let long = format!("/orders?item={}", "x".repeat(129));
    assert_eq!(call(&app, "POST", &long, "").await.status, 400);

    // No session cookie (or one that cannot be an id): 401 without asking Redis.
    for cookie in ["", "Cookie: meridian-session=../../x\r\n"] {
        let a = call(&app, "GET", "/me", cookie).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.body, serde_json::json!({"error": "not logged in"}));
    }
    assert_eq!(
        call(&app, "GET", "/cart/items?sku=apple", "").await.status,
        401
    );

    let a = call(&app, "GET", "/nowhere", "").await;
    assert_eq!(a.status, 404);
    assert!(a.head.contains("x-meridian-instance: web-7"), "{}", a.head);
    let a = call(&app, "GET", "/login", "").await;
    assert_eq!(a.status, 405);
    assert!(a.body["error"].as_str().unwrap().contains("not allowed"));
}

#[tokio::test]
async fn an_unreachable_redis_is_a_json_503() {
    let app = start().await;
    let a = call(&app, "GET", "/healthz", "").await;
    assert_eq!(a.status, 503);
    assert!(
        a.body["error"].as_str().unwrap().contains("redis"),
        "{}",
        a.body
    );
    assert!(a.head.contains("retry-after: 1"), "{}", a.head);

    let cookie = "Cookie: meridian-session=0123456789abcdef0123456789abcdef\r\n";
    let a = call(&app, "GET", "/me", cookie).await;
    assert_eq!(a.status, 503, "{}", a.body);
    let a = call(&app, "POST", "/login?user=anna", "").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(call(&app, "GET", "/orders/abc", "").await.status, 503);
}
