//! The traffic layer's decisions, pure: no sockets, no clocks (time is
//! passed in), no tasks. The runtime (`crate::edge` and friends) feeds them
//! events and does what they say; the tests here need no network.
//!
//! - [`check`]: rise/fall hysteresis of active checks and probes.
//! - [`outlier`]: passive ejection on live failures.
//! - [`balance`]: round robin, smooth weighted, least request (P2C).
//! - [`sticky`]: the sticky-session cookie.
//! - [`retry`]: idempotency, backoff with jitter, the retry budget.
//! - [`quorum`]: region health by quorum of observers, forwarding order.
//! - [`routes`]: `[[routes]]` matching and where writes go.
//! - [`replay`]: the replay and hop headers.

pub mod balance;
pub mod check;
pub mod outlier;
pub mod quorum;
pub mod replay;
pub mod retry;
pub mod routes;
pub mod sticky;
