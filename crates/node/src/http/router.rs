//! The admin listener's routes and the server loop.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use meridian_api::data::VALUE_BYTES_MAX;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{data, digest, edge, faults, links, load, metrics, status, tables, AdminState};

/// Serves the API on `listener` until `shutdown`, finishing open requests.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Every route of the admin listener.
fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(status::health))
        .route("/status", get(status::status))
        .route("/metrics", get(metrics::metrics))
        .route("/admin/links", get(links::list))
        .route("/admin/links/{peer}", put(links::patch))
        .route(
            "/data/{table}/{key}",
            put(data::put).get(data::get).delete(data::delete),
        )
        .route("/data/{table}/{key}/incr", post(data::incr))
        .route("/conflicts", get(data::conflicts))
        .route("/digest", get(digest::digest))
        .route("/tables", get(tables::list))
        .route("/admin/tables/{table}/mode", put(tables::change))
        .route("/edge", get(edge::status))
        .route("/admin/edge/backends", put(edge::backends))
        .route("/admin/edge/drain", post(edge::drain))
        .route("/admin/edge/undrain", post(edge::undrain))
        .route("/health/regions", get(edge::regions))
        .route("/admin/bench/load", post(load::bench_load))
        .route(
            "/admin/faults/forget/{table}/{key}",
            post(faults::forget_key),
        )
        .route("/admin/replication/reset-lag", post(faults::reset_lag))
        // Values up to the limit plus room for nothing else: the data API
        // takes raw bodies.
        .layer(DefaultBodyLimit::max(VALUE_BYTES_MAX + 1))
        .with_state(state)
}
