//! A small JSON-over-HTTP/1 client for the admin and supervisor APIs, used by
//! `up`, `chaos`, `status` and the integration tests. Loopback and LAN only:
//! no TLS, no redirects, one bounded timeout per request.

use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

/// Longest a single admin request may take, connect included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response body read, so a wrong port cannot make us buffer forever.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Client with an optional bearer token.
#[derive(Clone)]
pub struct AdminClient {
    client: Client<HttpConnector, Full<Bytes>>,
    token: Option<String>,
    timeout: Duration,
}

impl AdminClient {
    /// A client sending `token` as `Authorization: Bearer` when given.
    pub fn new(token: Option<String>) -> Self {
        AdminClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            token,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// The same client with another per-request timeout (benchmark runs
    /// answer after minutes).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends a JSON body (or none) and returns the status and body text.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, String)> {
        let bytes = match &body {
            Some(v) => Some(serde_json::to_vec(v)?),
            None => None,
        };
        self.send(method, url, bytes, "application/json").await
    }

    /// Sends raw bytes and returns the status and body text.
    pub async fn request_bytes(
        &self,
        method: Method,
        url: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(StatusCode, String)> {
        self.send(method, url, Some(body), "application/octet-stream")
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> anyhow::Result<(StatusCode, String)> {
        let mut req = Request::builder().method(method.clone()).uri(url);
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let payload = match body {
            Some(b) => {
                req = req.header("content-type", content_type);
                Bytes::from(b)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .with_context(|| format!("bad URL {url}"))?;
        let work = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), RESPONSE_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading body: {e}"))?
                .to_bytes();
            anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .with_context(|| format!("{method} {url} timed out after {:?}", self.timeout))?
            .with_context(|| format!("{method} {url} failed"))
    }

    /// Sends and decodes a 2xx JSON answer; other statuses become errors
    /// carrying the server's `error` message.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let (status, text) = self.request(method.clone(), url, body).await?;
        if !status.is_success() {
            bail!("{method} {url}: {status}: {}", error_message(text));
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {url}: unexpected answer"))
    }

    /// `GET` and decode.
    pub async fn get<T: DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        self.json(Method::GET, url, None).await
    }
}

/// The `error` of an admin API error body (`{"error": "..."}`), or the body
/// itself when it is not one.
pub fn error_message(body: String) -> String {
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or(body)
}
