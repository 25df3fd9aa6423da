//! [`ApiError`]: every way an HTTP request can fail, by what the caller can
//! do about it, and the one place each becomes an HTTP status. Errors from
//! the layers below arrive typed (the Redis endpoint's error kinds, the
//! table coordinator's change errors) and are sorted here, never by their
//! text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use meridian_api::auth::ErrorBody;
use meridian_resp::modes::ChangeError;
use meridian_resp::{ErrorKind, ErrorReply};

/// A failed request; the body is `{"error": message}`.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed or names nothing sensible (400).
    BadRequest(String),
    /// The admin token is missing or wrong (401).
    Unauthorized(String),
    /// The table, key or peer does not exist (404).
    NotFound(String),
    /// Refused by the state the request meets: a table mode, data
    /// residency, a conflict policy, a value of another type (409).
    Conflict(String),
    /// The body exceeds a named limit (413).
    TooLarge(String),
    /// Not possible right now; the same request may succeed later: a home
    /// region unreachable, a mode change under way, a token or global
    /// acknowledgement not reached in time, the storage engine failing (503).
    Unavailable(String),
    /// A fault inside this node (500).
    Internal(String),
}

impl ApiError {
    /// The HTTP status of each kind: the one place statuses are chosen.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What is said to the caller.
    pub fn message(&self) -> &str {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::TooLarge(m)
            | ApiError::Unavailable(m)
            | ApiError::Internal(m) => m,
        }
    }
}

impl From<ErrorReply> for ApiError {
    /// A Redis error reply, by its kind.
    fn from(e: ErrorReply) -> ApiError {
        let line = e.line().to_string();
        match e.kind() {
            ErrorKind::Retry | ErrorKind::NotStored => ApiError::Unavailable(line),
            ErrorKind::ReadOnly | ErrorKind::WrongType | ErrorKind::Refused => {
                ApiError::Conflict(line)
            }
            ErrorKind::Invalid | ErrorKind::NoAuth | ErrorKind::Internal => {
                ApiError::BadRequest(line)
            }
        }
    }
}

impl From<ChangeError> for ApiError {
    /// A refused table mode change, by its variant.
    fn from(e: ChangeError) -> ApiError {
        let text = e.to_string();
        match e {
            ChangeError::Retry(_) => ApiError::Unavailable(text),
            ChangeError::UnknownTable(_) => ApiError::NotFound(text),
            ChangeError::Invalid(_) | ChangeError::NotStored(_) => ApiError::BadRequest(text),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: self.message().to_string(),
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: impl Into<ApiError>) -> StatusCode {
        e.into().status()
    }

    #[test]
    fn redis_error_kinds_become_the_statuses_the_data_api_documents() {
        let here: meridian_core::RegionName = "ap-south".parse().unwrap();
        let allowed = ["eu-west".to_string()];
        // TRYAGAIN and a failed commit: retry later (503).
        assert_eq!(
            status(ErrorReply::retry("home unreachable")),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(ErrorReply::not_stored("disk full")),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // Refused by the state it meets: mode, residency, policy, type (409).
        assert_eq!(
            status(ErrorReply::read_only("not the home")),
            StatusCode::CONFLICT
        );
        assert_eq!(status(ErrorReply::wrong_type()), StatusCode::CONFLICT);
        assert_eq!(
            status(ErrorReply::not_pinned_here("eu_data", &allowed, &here)),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(ErrorReply::policy_forbids(
                "counters", "counter", "SET", "INCRBY"
            )),
            StatusCode::CONFLICT
        );
        // Anything else the caller sent wrong (400).
        assert_eq!(
            status(ErrorReply::invalid("syntax error")),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn change_errors_become_statuses_by_variant_and_keep_their_text() {
        let e = ApiError::from(ChangeError::retry("a change is under way"));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.message().starts_with("TRYAGAIN"), "{}", e.message());
        assert_eq!(
            status(ChangeError::UnknownTable("t".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(ChangeError::Invalid("bad".into())),
            StatusCode::BAD_REQUEST
        );
    }
}
