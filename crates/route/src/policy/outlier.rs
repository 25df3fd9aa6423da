//! [`Outlier`]: passive health on live traffic (Envoy's outlier
//! detection). `consecutive_failures` failed requests in a row (5xx,
//! connect failure, timeout, reset) eject an instance for the base time
//! times the number of its ejections so far (capped), as long as the pool's
//! ejected share stays under `max_ejection_pct` — at least one instance may
//! always be ejected, so a two-instance pool can shed its bad half. An
//! instance that stays clean for a full base period after returning earns
//! one ejection back, so an old incident fades.

use std::time::{Duration, Instant};

/// The ejection rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierRule {
    /// Failures in a row that eject (≥ 1).
    pub consecutive_failures: u32,
    /// The first ejection's length.
    pub base_ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
    /// Most of the pool ejected at once, percent.
    pub max_ejection_pct: u32,
}

impl OutlierRule {
    /// How many of a pool of `pool` instances may be ejected at once.
    pub fn ejectable(&self, pool: usize) -> usize {
        (pool * self.max_ejection_pct as usize / 100)
            .max(1)
            .min(pool)
    }
}

/// One instance's passive record.
#[derive(Clone, Debug, Default)]
pub struct Outlier {
    consecutive: u32,
    ejected_until: Option<Instant>,
    /// Ejections counting towards the next one's length.
    ejections: u32,
    /// When the last ejection ended or an ejection was forgiven.
    clean_since: Option<Instant>,
}

/// What a request's outcome did to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed.
    Kept,
    /// Ejected until the given instant.
    Ejected(Instant),
    /// It would have been ejected, but the pool's ejected share is full.
    SparedByPoolLimit,
}

impl Outlier {
    /// Whether the instance is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| now < t)
    }

    /// When the current ejection ends, if any.
    pub fn ejected_until(&self, now: Instant) -> Option<Instant> {
        self.ejected_until.filter(|t| now < *t)
    }

    /// Ejections counting towards the next one's length.
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// Whether nothing is held against the instance (no failures in a row,
    /// no ejection counting, none in force): successes change nothing.
    pub fn settled(&self) -> bool {
        self.consecutive == 0 && self.ejections == 0 && self.ejected_until.is_none()
    }

    /// Records a successful request.
    pub fn success(&mut self, rule: &OutlierRule, now: Instant) {
        self.consecutive = 0;
        self.end_if_over(now);
        if let Some(clean) = self.clean_since {
            if self.ejections > 0 && now.duration_since(clean) >= rule.base_ejection {
                self.ejections -= 1;
                self.clean_since = Some(now);
            }
        }
    }

    /// Records a failed request; `ejected_now` is how many instances of the
    /// pool of `pool` are ejected at `now` (this one excluded).
    pub fn failure(
        &mut self,
        rule: &OutlierRule,
        now: Instant,
        ejected_now: usize,
        pool: usize,
    ) -> Verdict {
        self.end_if_over(now);
        if self.is_ejected(now) {
            return Verdict::Kept;
        }
        self.consecutive += 1;
        if self.consecutive < rule.consecutive_failures {
            return Verdict::Kept;
        }
        if ejected_now + 1 > rule.ejectable(pool) {
            return Verdict::SparedByPoolLimit;
        }
        self.consecutive = 0;
        self.ejections = self.ejections.saturating_add(1);
        let length = rule
            .base_ejection
            .saturating_mul(self.ejections)
            .min(rule.max_ejection);
        let until = now + length;
        self.ejected_until = Some(until);
        self.clean_since = None;
        Verdict::Ejected(until)
    }

    /// Lets an instance back in early (its active checks say it is up after
    /// having been down: a restarted instance starts clean).
    pub fn forgive(&mut self, now: Instant) {
        self.consecutive = 0;
        if self.is_ejected(now) {
            self.ejected_until = None;
            self.clean_since = Some(now);
        }
    }

    fn end_if_over(&mut self, now: Instant) {
        if let Some(until) = self.ejected_until {
            if now >= until {
                self.ejected_until = None;
                self.clean_since = Some(until);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: OutlierRule = OutlierRule {
        consecutive_failures: 3,
        base_ejection: Duration::from_secs(5),
        max_ejection: Duration::from_secs(12),
        max_ejection_pct: 50,
    };

    fn fail(o: &mut Outlier, now: Instant, times: u32) -> Verdict {
        let mut v = Verdict::Kept;
        for _ in 0..times {
            v = o.failure(&RULE, now, 0, 4);
        }
        v
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_run() {
        let t0 = Instant::now();
        let mut o = Outlier::default();
        assert_eq!(fail(&mut o, t0, 2), Verdict::Kept);
        o.success(&RULE, t0);
        assert_eq!(fail(&mut o, t0, 2), Verdict::Kept);
        assert_eq!(
            fail(&mut o, t0, 1),
            Verdict::Ejected(t0 + Duration::from_secs(5))
        );
        assert!(o.is_ejected(t0 + Duration::from_secs(4)));
        assert!(!o.is_ejected(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn each_ejection_lasts_longer_up_to_the_cap() {
        let mut now = Instant::now();
        let mut o = Outlier::default();
        let mut lengths = Vec::new();
        for _ in 0..4 {
            match fail(&mut o, now, 3) {
                Verdict::Ejected(until) => {
                    lengths.push(until - now);
                    now = until;
                }
                v => panic!("expected an ejection, got {v:?}"),
            }
        }
        let secs: Vec<u64> = lengths.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 10, 12, 12]);
    }

    #[test]
    fn the_pool_limit_spares_instances_but_one_may_always_go() {
        let now = Instant::now();
        assert_eq!(RULE.ejectable(2), 1);
        assert_eq!(RULE.ejectable(1), 1);
        assert_eq!(RULE.ejectable(10), 5);
        let zero = OutlierRule {
            max_ejection_pct: 0,
            ..RULE
        };
        assert_eq!(zero.ejectable(10), 1);
        let mut o = Outlier::default();
        for _ in 0..2 {
            o.failure(&RULE, now, 1, 2);
        }
        assert_eq!(o.failure(&RULE, now, 1, 2), Verdict::SparedByPoolLimit);
        assert!(!o.is_ejected(now));
    }

    #[test]
    fn a_clean_period_earns_an_ejection_back() {
        let t0 = Instant::now();
        let mut o = Outlier::default();
        let Verdict::Ejected(until) = fail(&mut o, t0, 3) else {
            panic!("expected an ejection")
        };
        assert_eq!(o.ejections(), 1);
        o.success(&RULE, until + Duration::from_secs(1));
        assert_eq!(o.ejections(), 1, "not clean for a full base period yet");
        o.success(&RULE, until + Duration::from_secs(5));
        assert_eq!(o.ejections(), 0);
    }

    #[test]
    fn forgiving_lets_an_instance_back_at_once() {
        let t0 = Instant::now();
        let mut o = Outlier::default();
        fail(&mut o, t0, 3);
        assert!(o.is_ejected(t0));
        o.forgive(t0);
        assert!(!o.is_ejected(t0));
    }
}
