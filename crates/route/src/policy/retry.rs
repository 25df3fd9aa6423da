//! When a failed request may be sent again: only idempotent requests
//! ([`is_idempotent`]), after a jittered backoff ([`backoff`]), and only
//! while retries stay within the [`RetryBudget`] — at most a share of the
//! requests of the last [`BUDGET_WINDOW`], plus a small floor so a quiet
//! edge can still retry. A budget, unlike a per-request retry count, keeps
//! a failing backend from receiving twice its load exactly when it is
//! least able to take it.

use std::time::{Duration, Instant};

/// How far back the budget counts requests and retries.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// The window's slots; counts older than a slot's age drop out whole.
const SLOTS: usize = 10;

/// Whether a request may safely be sent twice: GET, HEAD, OPTIONS, PUT and
/// DELETE are idempotent by RFC 9110; any other method only when the
/// client marks it with an `Idempotency-Key`.
pub fn is_idempotent(method: &str, has_idempotency_key: bool) -> bool {
    has_idempotency_key
        || matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
        )
}

/// Whether a method writes (routes with `writes_to_home_of` send these to
/// the table's home).
pub fn is_write(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// The wait before retry `attempt` (1 for the first): full jitter over
/// `base × 2^(attempt−1)`, so clients that failed together do not retry
/// together.
pub fn backoff(base: Duration, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let ceiling = base.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(0..=nanos))
}

/// Requests and retries over the last [`BUDGET_WINDOW`].
#[derive(Debug)]
pub struct RetryBudget {
    /// Retries allowed per request, as a percentage.
    pct: u32,
    /// Retries always allowed per window.
    floor: u32,
    start: Instant,
    /// Per slot: (slot number, requests, retries).
    slots: [(u64, u64, u64); SLOTS],
}

impl RetryBudget {
    /// A budget of `pct` percent of requests plus `floor` per window.
    pub fn new(pct: u32, floor: u32, now: Instant) -> Self {
        RetryBudget {
            pct,
            floor,
            start: now,
            slots: [(0, 0, 0); SLOTS],
        }
    }

    fn slot(&mut self, now: Instant) -> &mut (u64, u64, u64) {
        let width = BUDGET_WINDOW / SLOTS as u32;
        let n = (now.saturating_duration_since(self.start).as_nanos() / width.as_nanos()) as u64;
        let s = &mut self.slots[(n % SLOTS as u64) as usize];
        if s.0 != n {
            *s = (n, 0, 0);
        }
        s
    }

    fn totals(&mut self, now: Instant) -> (u64, u64) {
        let current = self.slot(now).0;
        self.slots
            .iter()
            .filter(|s| current.saturating_sub(s.0) < SLOTS as u64)
            .fold((0, 0), |(q, r), s| (q + s.1, r + s.2))
    }

    /// Counts one request (first attempts only).
    pub fn request(&mut self, now: Instant) {
        self.slot(now).1 += 1;
    }

    /// Takes one retry from the budget if there is one left.
    pub fn try_retry(&mut self, now: Instant) -> bool {
        let (requests, retries) = self.totals(now);
        let allowed = requests * u64::from(self.pct) / 100 + u64::from(self.floor);
        if retries < allowed {
            self.slot(now).2 += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_follows_the_method_or_the_key() {
        for m in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] {
            assert!(is_idempotent(m, false), "{m}");
        }
        assert!(!is_idempotent("POST", false));
        assert!(is_idempotent("POST", true));
        assert!(!is_idempotent("PATCH", false));
        assert!(is_write("POST") && is_write("PUT") && is_write("DELETE"));
        assert!(!is_write("GET") && !is_write("HEAD"));
    }

    #[test]
    fn backoff_is_jittered_under_an_exponential_ceiling() {
        let mut rng = fastrand::Rng::with_seed(1);
        let base = Duration::from_millis(10);
        let waits: Vec<Duration> = (0..200).map(|_| backoff(base, 1, &mut rng)).collect();
        assert!(waits.iter().all(|w| *w <= base));
        assert!(waits.iter().any(|w| *w < base / 2) && waits.iter().any(|w| *w > base / 2));
        assert!((0..200).all(|_| backoff(base, 3, &mut rng) <= base * 4));
        assert_eq!(backoff(Duration::ZERO, 5, &mut rng), Duration::ZERO);
    }

    #[test]
    fn retries_stay_within_the_share_plus_the_floor() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(20, 0, t0);
        for _ in 0..100 {
            b.request(t0);
        }
        let granted = (0..100).filter(|_| b.try_retry(t0)).count();
        assert_eq!(granted, 20);
        let mut b = RetryBudget::new(20, 3, t0);
        let granted = (0..10).filter(|_| b.try_retry(t0)).count();
        assert_eq!(granted, 3, "the floor, with no requests at all");
    }

    #[test]
    fn old_requests_and_retries_leave_the_window() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(20, 0, t0);
        for _ in 0..50 {
            b.request(t0);
        }
        assert_eq!((0..50).filter(|_| b.try_retry(t0)).count(), 10);
        let later = t0 + BUDGET_WINDOW + Duration::from_secs(1);
        assert!(
            !b.try_retry(later),
            "the requests aged out with the retries"
        );
        for _ in 0..10 {
            b.request(later);
        }
        assert!(b.try_retry(later));
        assert!(b.try_retry(later));
        assert!(!b.try_retry(later));
    }
}
