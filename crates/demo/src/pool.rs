//! [`RedisPool`]: a bounded pool of dedicated connections to the region's
//! Redis endpoint, and [`Lease`], one request's exclusive use of one.
//!
//! Why not one shared multiplexed connection: Meridian keeps a causal token
//! per connection (`MERIDIAN.AFTER` raises it; every keyed command first
//! waits until the region has applied it). On a shared connection one
//! caller's `AFTER` would make every other caller's commands wait for it, and
//! a request's own `AFTER` could be overtaken by another's reads. So a
//! request leases a connection, and nobody else sends on it until the lease
//! ends.
//!
//! A token cannot be lowered (Meridian has no reset), so what keeps one
//! request's token from harming the next is when a connection may go back:
//! only when its last keyed command succeeded, which proves the region had
//! applied everything in its token — from then on the token is covered and
//! makes nobody wait. A connection whose `AFTER` was not yet followed by a
//! successful keyed command, whose command failed or timed out, or whose
//! request was cancelled mid-command is dropped, never reused. (A token
//! covered here tells a later caller nothing it could not read anyway: every
//! session read raises the token to all this region has applied.) A
//! forwarded write (a single-master table's, outside its home) proves the
//! home applied the token rather than this region; that token is real, so at
//! worst the next request waits a moment for replication.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisError};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

/// Most connections one instance holds. Each is a client slot on the
/// region's endpoint (shared with every other app and tool) and a driver
/// task here; 64 requests talking to Redis at once is more than a demo
/// instance on a couple of cores serves, and past that it is better to make
/// callers wait (then 503, so the edge retries elsewhere) than to pile more
/// connections onto the region.
pub const POOL_CONNECTIONS_MAX: usize = 64;

/// How long a request waits for a free connection before it answers 503:
/// long enough to ride out a burst, short enough that the edge's own
/// timeout and retry still have time.
pub const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest TCP connect to the local endpoint: it is in the same region,
/// so anything slower means it is down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Time a reply may take beyond the session wait: a write forwarded to a
/// single-master home crosses the WAN and may wait for a home move.
pub const REPLY_MARGIN: Duration = Duration::from_secs(5);

/// Dedicated connections to one Redis endpoint, at most
/// [`POOL_CONNECTIONS_MAX`] of them.
pub struct RedisPool {
    client: Client,
    config: AsyncConnectionConfig,
    /// One permit per connection that may exist; a lease holds one.
    permits: Semaphore,
    /// Connections known to be clean, most recently used last.
    idle: Mutex<Vec<MultiplexedConnection>>,
}

impl RedisPool {
    /// A pool for `client`; replies may take `session_wait` plus
    /// [`REPLY_MARGIN`]. Connects lazily.
    pub fn new(client: Client, session_wait: Duration) -> RedisPool {
        RedisPool {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(session_wait + REPLY_MARGIN),
            permits: Semaphore::new(POOL_CONNECTIONS_MAX),
            idle: Mutex::new(Vec::with_capacity(POOL_CONNECTIONS_MAX)),
        }
    }

    /// A connection for this request alone: an idle one, or a new one;
    /// 503 if none frees up within [`POOL_WAIT_TIMEOUT`].
    pub async fn lease(&self) -> Result<Lease<'_>, ApiError> {
        let permit = tokio::time::timeout(POOL_WAIT_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| {
                ApiError::Busy(format!(
                    "all {POOL_CONNECTIONS_MAX} Redis connections busy for {} ms",
                    POOL_WAIT_TIMEOUT.as_millis()
                ))
            })?
            .map_err(|_| ApiError::Internal("connection pool closed".into()))?;
        let idle = self.lock_idle().pop();
        let con = match idle {
            Some(con) => con,
            None => self
                .client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
                .map_err(|e| ApiError::RedisUnavailable(e.to_string()))?,
        };
        Ok(Lease {
            pool: self,
            con,
            clean: true,
            _permit: permit,
        })
    }

    /// The idle list; a panic elsewhere while holding it cannot leave it
    /// half-changed (push and pop only), so a poisoned lock is used as is.
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<MultiplexedConnection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One request's connection. Dropped, it goes back to the pool only if it
/// is clean (see the module doc); otherwise it is closed.
pub struct Lease<'a> {
    pool: &'a RedisPool,
    con: MultiplexedConnection,
    /// Whether the server side holds nothing this request left behind: no
    /// token it has not proven applied, no reply still in flight.
    clean: bool,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    /// `MERIDIAN.AFTER token timeout_ms`: this connection's next keyed
    /// commands wait until the region has applied `token`. Meridian refuses
    /// only a malformed token, which is the caller's cookie: a 400.
    pub async fn after(&mut self, token: &str, wait_ms: u64) -> Result<(), ApiError> {
        let mut cmd = redis::cmd("MERIDIAN.AFTER");
        cmd.arg(token).arg(wait_ms);
        self.clean = false;
        match cmd.query_async::<()>(&mut self.con).await {
            // Still not clean: the token is not proven applied until a keyed
            // command succeeds.
            Ok(()) => Ok(()),
            Err(e) if e.kind() == redis::ErrorKind::ResponseError => Err(ApiError::BadRequest(
                format!("the meridian-token cookie is not a causal token: {e}"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `MERIDIAN.TOKEN`: what this connection has written or read, for the
    /// caller to carry to another region.
    pub async fn token(&mut self) -> Result<String, ApiError> {
        let was_clean = self.clean;
        self.clean = false;
        let token = redis::cmd("MERIDIAN.TOKEN")
            .query_async::<String>(&mut self.con)
            .await?;
        self.clean = was_clean;
        Ok(token)
    }

    /// A command that touches keys: once it succeeds, the region has
    /// applied the connection's token, so the connection is clean.
    pub async fn keyed<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, ApiError> {
        self.clean = false;
        let out: Result<T, RedisError> = cmd.query_async(&mut self.con).await;
        let out = out?;
        self.clean = true;
        Ok(out)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.clean {
            self.pool.lock_idle().push(self.con.clone());
        }
        // Otherwise the connection's last handle goes with the lease and
        // its driver task closes it.
    }
}
