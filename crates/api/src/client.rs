//! A small JSON-over-HTTP/1 client for the admin and supervisor APIs, used by
//! `up`, `chaos`, `status` and the integration tests. Loopback and LAN only:
//! no TLS, no redirects, one bounded timeout per request.

use std::time::Duration;

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

/// Why a request got no usable answer. Each says which request it was.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL or a header could not make a request.
    #[error("bad URL {url}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// No connection, or it broke before the whole answer arrived.
    #[error("{method} {url} failed: {reason}")]
    Transport {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// No whole answer within the client's timeout.
    #[error("{method} {url} timed out after {after:?}")]
    Timeout {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The server answered with a status other than 2xx.
    #[error("{method} {url}: {status}: {message}")]
    Status {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The server's `error` message, or its body.
        message: String,
    },
    /// A 2xx answer that is not the expected JSON.
    #[error("{method} {url}: unexpected answer: {source}")]
    Decode {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// What the JSON decoder said.
        #[source]
        source: serde_json::Error,
    },
}

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
    ) -> Result<(StatusCode, String), ClientError> {
        let bytes = body
            .as_ref()
            .map(|v| serde_json::to_vec(v).expect("a JSON value always encodes"));
        self.send(method, url, bytes, "application/json").await
    }

    /// Sends raw bytes and returns the status and body text.
    pub async fn request_bytes(
        &self,
        method: Method,
        url: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, String), ClientError> {
        self.send(method, url, Some(body), "application/octet-stream")
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<(StatusCode, String), ClientError> {
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
            .map_err(|e| ClientError::BadUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| {
                // The connector's own error says why (refused, reset, ...).
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                cause.map_or(e.to_string(), |c| format!("{e}: {c}"))
            })?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), RESPONSE_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| format!("reading body: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => Err(ClientError::Timeout {
                method,
                url: url.to_string(),
                after: self.timeout,
            }),
            Ok(Err(reason)) => Err(ClientError::Transport {
                method,
                url: url.to_string(),
                reason,
            }),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Sends and decodes a 2xx JSON answer; other statuses become errors
    /// carrying the server's `error` message.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ClientError> {
        let (status, text) = self.request(method.clone(), url, body).await?;
        if !status.is_success() {
            return Err(ClientError::Status {
                method,
                url: url.to_string(),
                status,
                message: error_message(text),
            });
        }
        serde_json::from_str(&text).map_err(|source| ClientError::Decode {
            method,
            url: url.to_string(),
            source,
        })
    }

    /// `GET` and decode.
    pub async fn get<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
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
