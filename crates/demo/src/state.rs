//! [`AppState`]: what every handler shares — the options, the request
//! connection pool, the health probe and the in-flight limit. It sits below
//! both the router and the handlers, so neither imports the other.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::DemoError;
use crate::health::HealthProbe;
use crate::options::DemoOptions;
use crate::pool::RedisPool;

/// Most requests served at once. Requests that wait for Redis are bounded
/// by the pool; this bounds the rest (`/work` sleeps up to 10 s each), so a
/// flood costs tasks and memory in proportion to this, not to the flood.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 1_024;

/// What every handler shares.
pub struct AppState {
    /// The options the app runs with.
    pub opts: DemoOptions,
    /// Dedicated connections for requests.
    pub pool: RedisPool,
    /// `/healthz`'s own connection.
    pub health: HealthProbe,
    /// One permit per request being served.
    pub(crate) in_flight: Semaphore,
}

impl AppState {
    /// The state for `opts`; nothing connects until a request needs it.
    pub fn new(opts: DemoOptions) -> Result<AppState, DemoError> {
        let client = redis::Client::open(format!("redis://{}/", opts.redis)).map_err(|source| {
            DemoError::RedisAddress {
                addr: opts.redis.clone(),
                source,
            }
        })?;
        Ok(AppState {
            pool: RedisPool::new(client.clone(), Duration::from_millis(opts.session_wait_ms)),
            health: HealthProbe::new(client),
            opts,
            in_flight: Semaphore::new(REQUESTS_IN_FLIGHT_MAX),
        })
    }
}
