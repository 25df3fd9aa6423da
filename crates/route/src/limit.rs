//! Rate limits: a token bucket per client address and one per route, from
//! `governor` (GCRA, the token bucket's exact equivalent with one
//! timestamp of state). A refused request gets 429 with `Retry-After`.
//!
//! The per-client map is bounded (`edge.rate_clients_max`): a sweeper
//! drops addresses whose bucket is full again every
//! [`SWEEP_INTERVAL`]; while the map is still at its bound, addresses
//! share one overflow bucket, so a flood of spoofed sources costs memory
//! no more than the bound and is limited as one client.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use meridian_core::config::{EdgeConfig, RouteConfig};

/// How often idle client buckets are dropped.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The key of the per-client limiter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ClientKey {
    Addr(IpAddr),
    /// Every address met while the map is full.
    Overflow,
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The client's own.
    Client,
    /// The route's.
    Route,
}

/// A refusal: which limit, and when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// The limit.
    pub scope: Scope,
    /// When a token is next free.
    pub retry_after: Duration,
}

/// The edge's rate limits.
#[derive(Debug)]
pub struct RateLimits {
    clients: Option<DefaultKeyedRateLimiter<ClientKey>>,
    clients_max: usize,
    /// One per route (by config index); `None` for unlimited routes.
    routes: Vec<Option<DefaultDirectRateLimiter>>,
    clock: DefaultClock,
}

fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits {
    /// The limits of `config` and `routes`.
    pub fn new(config: &EdgeConfig, routes: &[RouteConfig]) -> Self {
        RateLimits {
            clients: quota(config.rate_limit_per_client, config.rate_burst_per_client)
                .map(DefaultKeyedRateLimiter::keyed),
            clients_max: config.rate_clients_max,
            routes: routes
                .iter()
                .map(|r| quota(r.rate_limit, r.rate_burst).map(DefaultDirectRateLimiter::direct))
                .collect(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes a token for a request from `client` on route `route` (config
    /// index), or says which limit refused it.
    pub fn check(&self, client: IpAddr, route: Option<usize>) -> Result<(), Limited> {
        if let Some(limiter) = &self.clients {
            let key = if limiter.len() >= self.clients_max {
                ClientKey::Overflow
            } else {
                ClientKey::Addr(client)
            };
            if let Err(not_until) = limiter.check_key(&key) {
                return Err(Limited {
                    scope: Scope::Client,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                });
            }
        }
        if let Some(Some(limiter)) = route.and_then(|i| self.routes.get(i)) {
            if let Err(not_until) = limiter.check() {
                return Err(Limited {
                    scope: Scope::Route,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                });
            }
        }
        Ok(())
    }

    /// Drops client buckets that are full again; run every
    /// [`SWEEP_INTERVAL`].
    pub fn sweep(&self) {
        if let Some(limiter) = &self.clients {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Client addresses remembered now.
    pub fn clients_tracked(&self) -> usize {
        self.clients.as_ref().map_or(0, |l| l.len())
    }
}

/// `Retry-After` in whole seconds, at least 1 (the header has no finer
/// unit, and 0 would invite an immediate retry).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.as_secs() == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_client_gets_its_burst_then_a_429_with_a_wait() {
        let cfg = EdgeConfig {
            rate_limit_per_client: 1,
            rate_burst_per_client: 3,
            ..EdgeConfig::default()
        };
        let l = RateLimits::new(&cfg, &[]);
        for _ in 0..3 {
            l.check(ip(1), None).unwrap();
        }
        let refused = l.check(ip(1), None).unwrap_err();
        assert_eq!(refused.scope, Scope::Client);
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1)
        );
        l.check(ip(2), None)
            .expect("another client has its own bucket");
    }

    #[test]
    fn routes_have_their_own_bucket_and_unlimited_is_unlimited() {
        let routes = [
            RouteConfig {
                path_prefix: "/a".into(),
                writes_to_home_of: None,
                rate_limit: 1,
                rate_burst: 2,
            },
            RouteConfig {
                path_prefix: "/b".into(),
                writes_to_home_of: None,
                rate_limit: 0,
                rate_burst: 1,
            },
        ];
        let l = RateLimits::new(&EdgeConfig::default(), &routes);
        l.check(ip(1), Some(0)).unwrap();
        l.check(ip(2), Some(0)).unwrap();
        assert_eq!(l.check(ip(3), Some(0)).unwrap_err().scope, Scope::Route);
        for _ in 0..1000 {
            l.check(ip(1), Some(1)).unwrap();
            l.check(ip(1), None).unwrap();
        }
        assert_eq!(l.clients_tracked(), 0);
    }

    #[test]
    fn the_client_map_is_bounded() {
        let cfg = EdgeConfig {
            rate_limit_per_client: 1,
            rate_burst_per_client: 1,
            rate_clients_max: 4,
            ..EdgeConfig::default()
        };
        let l = RateLimits::new(&cfg, &[]);
        for i in 0..4 {
            l.check(ip(i), None).unwrap();
        }
        assert_eq!(l.clients_tracked(), 4);
        // The map is full: newcomers share the overflow bucket.
        l.check(ip(100), None).unwrap();
        assert!(l.check(ip(101), None).is_err());
        assert!(l.clients_tracked() <= 5);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
