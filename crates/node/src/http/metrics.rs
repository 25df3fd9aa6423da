//! `GET /metrics`: Prometheus text (the OpenMetrics flavour), encoded by
//! `prometheus-client` from the node's registry ([`crate::metrics`]).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AdminState;

/// The content type `prometheus-client`'s text encoder writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn metrics(State(s): State<AdminState>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &s.metrics) {
        // Writing into a String fails only if a collector reports an error.
        return super::ApiError::Internal(format!("metrics not encoded: {e}")).into_response();
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
