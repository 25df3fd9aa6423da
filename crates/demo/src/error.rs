//! The app's errors: [`DemoError`], why [`crate::run`] stopped, and
//! [`ApiError`], why one request failed — with the one place each kind
//! becomes an HTTP status and a `{"error": …}` body.

use std::net::SocketAddr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Why the app could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The listen address could not be bound (in use, not local).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The Redis endpoint's address does not make a client.
    #[error("--redis {addr}: {source}")]
    RedisAddress {
        /// The address as given.
        addr: String,
        /// The client's complaint.
        #[source]
        source: redis::RedisError,
    },
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Serve(#[source] std::io::Error),
}

/// A failed request, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter or cookie breaks a rule; the message names it (400).
    #[error("{0}")]
    BadRequest(String),
    /// No live session (401).
    #[error("not logged in")]
    NotLoggedIn,
    /// No such order or route (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists for other methods (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Redis answered with an error (`TRYAGAIN` during a home move or while
    /// the caller's token is not yet applied here, a home unreachable): the
    /// same request may succeed later (503, with Redis's message).
    #[error("redis: {0}")]
    Redis(String),
    /// Redis did not answer: unreachable, closed, too slow (503).
    #[error("redis unavailable: {0}")]
    RedisUnavailable(String),
    /// This instance is at a limit (connections, requests in flight) (503).
    #[error("{0}")]
    Busy(String),
    /// A fault in this instance (500).
    #[error("{0}")]
    Internal(String),
}

/// How long a caller should wait before retrying a 503: Meridian's moves
/// and token waits settle within a second or two.
const RETRY_AFTER_S: &str = "1";

impl ApiError {
    /// The status of each kind: the one place statuses are chosen.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotLoggedIn => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Redis(_) | ApiError::RedisUnavailable(_) | ApiError::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<redis::RedisError> for ApiError {
    /// An error reply is Redis's judgement of the request and is passed on;
    /// anything else means Redis could not be asked.
    fn from(e: redis::RedisError) -> ApiError {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            ApiError::RedisUnavailable(e.to_string())
        } else {
            ApiError::Redis(e.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status() {
        assert_eq!(ApiError::NotLoggedIn.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ApiError::NotLoggedIn.to_string(), "not logged in");
        let tryagain = redis::RedisError::from((
            redis::ErrorKind::TryAgain,
            "An error was signalled by the server",
            "table orders is moving".to_string(),
        ));
        let e = ApiError::from(tryagain);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.to_string().contains("table orders is moving"), "{e}");
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(ApiError::from(io), ApiError::RedisUnavailable(_)));
    }
}
