//! The HTTP side: [`router`] (routes, JSON fallbacks, the in-flight limit
//! and the instance header) and [`serve`], the server loop with its bounded
//! graceful shutdown. What the handlers share is [`AppState`], below both.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, DemoError};
use crate::routes;
use crate::state::{AppState, REQUESTS_IN_FLIGHT_MAX};

/// The header every answer carries, so a caller (or a test behind the
/// edge) sees which instance served it.
pub const INSTANCE_HEADER: &str = "x-meridian-instance";

/// How long a shutdown waits for requests in flight: a little more than
/// the longest `/work` sleep, so a scaling test's requests finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(12);

/// Every route, with JSON answers for unknown paths and methods.
pub fn router(state: Arc<AppState>) -> Router {
    // The instance name was checked against the name rule, so it is a valid
    // header value; the fallback only guards that invariant.
    let instance = HeaderValue::from_str(&state.opts.instance)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    Router::new()
        .route("/healthz", get(routes::probe::healthz))
        .route("/whoami", get(routes::probe::whoami))
        .route("/work", get(routes::probe::work))
        .route("/login", post(routes::account::login))
        .route("/me", get(routes::account::me))
        .route(
            "/cart/items",
            post(routes::cart::add).get(routes::cart::count),
        )
        .route("/orders", post(routes::orders::place))
        .route("/orders/{id}", get(routes::orders::show))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_in_flight,
        ))
        .layer(axum::middleware::map_response(move |mut r: Response| {
            let instance = instance.clone();
            async move {
                r.headers_mut()
                    .insert(HeaderName::from_static(INSTANCE_HEADER), instance);
                r
            }
        }))
        .with_state(state)
}

/// Refuses a request beyond [`REQUESTS_IN_FLIGHT_MAX`] at once (503).
async fn limit_in_flight(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match state.in_flight.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::Busy(format!(
            "more than {REQUESTS_IN_FLIGHT_MAX} requests in flight"
        ))
        .into_response(),
    }
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// Serves `state` on `listener` until `shutdown`, then lets requests in
/// flight finish for at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<(), DemoError> {
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = std::future::IntoFuture::into_future(server) => result.map_err(DemoError::Serve),
        () = grace => {
            tracing::warn!(grace_s = SHUTDOWN_GRACE.as_secs(), "requests still in flight after the shutdown grace; stopping");
            Ok(())
        }
    }
}
