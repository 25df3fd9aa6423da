//! [`HealthProbe`]: whether this instance can reach its region's Redis, as
//! `GET /healthz` (the edge's active health check) reports it.
//!
//! The probe has its own connection, apart from the request pool: a `PING`
//! carries no session state, and a pool exhausted by slow requests should
//! show as 503s on those requests, not as an instance the edge ejects while
//! Redis is fine.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::Mutex;

/// Longest a health check may take, dial included: a local `PING` answers
/// in well under a millisecond, so 200 ms means Redis is in trouble.
pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(200);

/// The health check's connection, redialled after any failure.
pub struct HealthProbe {
    client: Client,
    con: Mutex<Option<MultiplexedConnection>>,
}

impl HealthProbe {
    /// A probe of `client`'s endpoint; connects on the first check.
    pub fn new(client: Client) -> HealthProbe {
        HealthProbe {
            client,
            con: Mutex::new(None),
        }
    }

    /// `Ok` if a `PING` answers `PONG` within [`HEALTH_TIMEOUT`], else why
    /// not.
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(HEALTH_TIMEOUT, self.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                *self.con.lock().await = None;
                Err(e)
            }
            Err(_) => {
                *self.con.lock().await = None;
                Err(format!(
                    "redis did not answer PING within {} ms",
                    HEALTH_TIMEOUT.as_millis()
                ))
            }
        }
    }

    async fn ping(&self) -> Result<(), String> {
        // Held across the dial, so concurrent checks share one connection.
        let mut slot = self.con.lock().await;
        let mut con = match slot.as_ref() {
            Some(con) => con.clone(),
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(HEALTH_TIMEOUT)
                    .set_response_timeout(HEALTH_TIMEOUT);
                let con = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| format!("cannot connect to redis: {e}"))?;
                slot.insert(con).clone()
            }
        };
        drop(slot);
        let pong: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .map_err(|e| format!("redis PING: {e}"))?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(format!("redis answered PING with {pong:?}"))
        }
    }
}
