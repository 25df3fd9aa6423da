//! `meridian-demo`: `meridian demo-app`, a small stateless HTTP app that
//! keeps all its state in its region's Meridian Redis endpoint — the app
//! the edge, scaling and failover tests put in front of users. Any number of
//! instances run per region; they share nothing but Redis.
//!
//! It is an application on top of Meridian, not a layer of it: it depends
//! on no other Meridian crate and speaks only the Redis protocol, with
//! Meridian's session commands (`MERIDIAN.TOKEN`, `MERIDIAN.AFTER`) for
//! session consistency across regions.
//!
//! # Endpoints
//! Answers are JSON; every error is `{"error": "..."}` with a fitting status
//! (400 bad input, naming the rule; 401 no session; 404; 503 Redis error or
//! unreachable, with Redis's message, or this instance at a limit). Every
//! answer carries `x-meridian-instance`.
//! - `GET /healthz`: 200 `{"ok":true}` when Redis answers `PING` within
//!   200 ms, else 503 (the edge's active health check).
//! - `GET /whoami`: `{"region", "instance"}`.
//! - `POST /login?user=U`: a new session; sets `meridian-session` and
//!   `meridian-token`.
//! - `GET /me`: the session's user, after the caller's token.
//! - `POST /cart/items?sku=S` / `GET /cart/items?sku=S`: the caller's count
//!   of S (logged in).
//! - `POST /orders?item=X` / `GET /orders/{id}`.
//! - `GET /work?ms=N`: sleeps N ≤ 10000 ms, a load knob.
//!
//! Names (user, sku, item, order id) are 1 to 128 bytes of
//! `[A-Za-z0-9_.-]`. Requests that read or write data carry the caller's
//! causal token in the `meridian-token` cookie: the app runs
//! `MERIDIAN.AFTER` with it before touching keys and answers with the
//! connection's new token, so a user who moves between regions never reads
//! older data than they saw.
//!
//! # Tables it expects
//! Configured by whoever runs the cluster (`meridian up --extra-config`
//! now; `up` may declare them itself later). Without them the keys land in
//! the default table and the app still works, but a cart count is not
//! protected from plain writes and orders have no home region:
//! - `sessions`: key prefix `session:` (`session:<id>` → user, with a TTL);
//! - `carts`: key prefix `cart:`, `conflict = "pn_counter"`
//!   (`cart:<user>:<sku>` → count). Meridian's `INCR` is a commutative
//!   add, so additions made concurrently in several regions all count; the
//!   policy also refuses anything but counter writes on these keys;
//! - `orders`: key prefix `order:`, `mode = { single_master = { home = … } }`
//!   (`order:<id>` → item).
//!
//! # Layout
//! - [`options`]: [`DemoArgs`] (the command line), [`DemoOptions`] and their
//!   resolution from the environment the binary passes in.
//! - [`app`]: router, limits, the server loop; [`state`]: what handlers
//!   share.
//! - [`routes`]: the handlers, by resource.
//! - [`pool`]: dedicated Redis connections, leased per request;
//!   [`health`]: `/healthz`'s probe.
//! - [`cookies`], [`names`]: the cookies and the input rules and keys.
//! - [`error`]: [`DemoError`] and [`ApiError`], with the one place a status
//!   is chosen.

#![warn(missing_docs)]

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub mod app;
pub mod cookies;
pub mod error;
pub mod health;
pub mod names;
pub mod options;
pub mod pool;
pub mod routes;
pub mod state;

pub use error::{ApiError, DemoError};
pub use options::{DemoArgs, DemoOptions, OptionsError};

/// Runs the app until `shutdown` is cancelled: binds `opts.listen` (a port
/// in use fails here, before anything else), then serves. Redis is dialled
/// lazily, so the app starts while its region is still coming up and says
/// so on `/healthz`.
pub async fn run(opts: DemoOptions, shutdown: CancellationToken) -> Result<(), DemoError> {
    let state = Arc::new(state::AppState::new(opts)?);
    let addr = state.opts.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })?;
    tracing::info!(
        addr = %listener.local_addr().unwrap_or(addr),
        region = %state.opts.region,
        instance = %state.opts.instance,
        redis = %state.opts.redis,
        "demo app listening"
    );
    app::serve(listener, state, shutdown).await
}
