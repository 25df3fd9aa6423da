//! How many app instances a region of `meridian up` should run: a pure
//! decision from the load its edge reports (`GET /edge`,
//! `load_per_instance`), with time passed in. The driver (`up`'s traffic
//! loop) samples, asks [`Autoscaler::decide`], and starts or drains
//! instances; nothing here does I/O or reads a clock.
//!
//! Scale-up is fast and scale-down slow: a region under load gets what the
//! load needs at once, because queued requests are what users feel; one
//! instance leaves at a time after a quiet cooldown, because a load that
//! comes back would otherwise flap the pool. Also here: [`ScaleHistory`],
//! the bounded record of decisions the supervisor API serves.
//!
//! (Not `bench/scale.rs`, the benchmark that adds regions.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use meridian_api::supervisor::ScaleEvent;

/// Samples in a row above the target load before scaling up: one sample
/// over is a burst the edge's queue absorbs; two (a second at the driver's
/// 500 ms tick) is load that stays.
pub const SCALE_UP_SAMPLES: u32 = 2;

/// How long the load must stay below half the target before one instance
/// leaves (and again before the next): long enough that a load that pauses
/// between bursts keeps its instances.
pub const SCALE_DOWN_COOLDOWN: Duration = Duration::from_secs(10);

/// Scale decisions [`ScaleHistory`] keeps (a benchmark reads the recent
/// ones; older ones are in `up`'s log).
pub const SCALE_EVENTS_MAX: usize = 100;

/// The bounds and the goal of one region's pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScalePolicy {
    /// Fewest instances while apps run.
    pub min: usize,
    /// Most instances.
    pub max: usize,
    /// Requests in flight per instance the pool is sized for.
    pub target_load: f64,
}

/// One reading of a region's edge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadSample {
    /// Mean requests in flight per up instance over the last second.
    pub load_per_instance: f64,
    /// Instances the edge has up (the load is spread over these).
    pub instances_up: usize,
}

impl LoadSample {
    /// Requests in flight over the whole region.
    pub fn total_load(&self) -> f64 {
        self.load_per_instance * self.instances_up as f64
    }
}

/// A change of a region's instance count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleDecision {
    /// Instances before.
    pub from: usize,
    /// Instances wanted now.
    pub to: usize,
}

/// One region's scaling state: how long the load has been high or low.
#[derive(Clone, Debug, Default)]
pub struct Autoscaler {
    /// Samples in a row above the target.
    above: u32,
    /// Since when every sample was below half the target (or the last
    /// scale-down, which starts the next cooldown).
    quiet_since: Option<Instant>,
}

impl Autoscaler {
    /// What to do with a region running `current` instances, given the
    /// newest `sample` (`None`: the edge did not answer) at `now`.
    /// A region whose apps chaos stopped is never scaled, and a missing
    /// sample breaks both streaks: neither "stays above" nor "stays below"
    /// is known across it.
    pub fn decide(
        &mut self,
        policy: &ScalePolicy,
        now: Instant,
        current: usize,
        sample: Option<LoadSample>,
        stopped: bool,
    ) -> Option<ScaleDecision> {
        debug_assert!(policy.min <= policy.max && policy.target_load > 0.0);
        let Some(sample) = sample.filter(|_| !stopped) else {
            *self = Autoscaler::default();
            return None;
        };
        let clamped = current.clamp(policy.min, policy.max);
        if clamped != current {
            *self = Autoscaler::default();
            return Some(ScaleDecision {
                from: current,
                to: clamped,
            });
        }
        if sample.load_per_instance > policy.target_load {
            self.quiet_since = None;
            self.above += 1;
            if self.above < SCALE_UP_SAMPLES {
                return None;
            }
            let needed = (sample.total_load() / policy.target_load).ceil() as usize;
            let to = needed.min(policy.max);
            if to <= current {
                // Already sized for it; the new instances are not up yet,
                // or the pool is at its maximum.
                return None;
            }
            self.above = 0;
            return Some(ScaleDecision { from: current, to });
        }
        self.above = 0;
        if sample.load_per_instance >= policy.target_load / 2.0 {
            self.quiet_since = None;
            return None;
        }
        let since = *self.quiet_since.get_or_insert(now);
        if current > policy.min && now.duration_since(since) >= SCALE_DOWN_COOLDOWN {
            self.quiet_since = Some(now);
            return Some(ScaleDecision {
                from: current,
                to: current - 1,
            });
        }
        None
    }
}

/// The last [`SCALE_EVENTS_MAX`] scale decisions, oldest first.
#[derive(Debug, Default)]
pub struct ScaleHistory {
    events: VecDeque<ScaleEvent>,
    next_id: u64,
}

impl ScaleHistory {
    /// Records a decision; returns its id, for [`ScaleHistory::settle`].
    pub fn record(
        &mut self,
        region: &str,
        decision: ScaleDecision,
        load_per_instance: f64,
        at_unix_ms: u64,
    ) -> u64 {
        self.next_id += 1;
        if self.events.len() == SCALE_EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back(ScaleEvent {
            id: self.next_id,
            region: region.to_string(),
            from: decision.from,
            to: decision.to,
            load_per_instance,
            at_unix_ms,
            settled_after_ms: None,
        });
        self.next_id
    }

    /// Notes that event `id` took effect (the edge had `to` instances up)
    /// `after` it was decided. Nothing when it was already dropped.
    pub fn settle(&mut self, id: u64, after: Duration) {
        if let Some(e) = self.events.iter_mut().find(|e| e.id == id) {
            e.settled_after_ms.get_or_insert(after.as_millis() as u64);
        }
    }

    /// Every event kept, oldest first.
    pub fn events(&self) -> Vec<ScaleEvent> {
        self.events.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ScalePolicy = ScalePolicy {
        min: 2,
        max: 6,
        target_load: 2.0,
    };

    fn load(load_per_instance: f64, instances_up: usize) -> Option<LoadSample> {
        Some(LoadSample {
            load_per_instance,
            instances_up,
        })
    }

    #[test]
    fn load_above_target_twice_scales_up_at_once_to_what_it_needs() {
        let mut s = Autoscaler::default();
        let t = Instant::now();
        // 2 instances at 5 in flight each: 10 in flight, 5 instances at 2.
        assert_eq!(s.decide(&POLICY, t, 2, load(5.0, 2), false), None);
        assert_eq!(
            s.decide(
                &POLICY,
                t + Duration::from_millis(500),
                2,
                load(5.0, 2),
                false
            ),
            Some(ScaleDecision { from: 2, to: 5 })
        );
        // The new instances are not up yet: the same total needs no more.
        let t2 = t + Duration::from_secs(1);
        assert_eq!(s.decide(&POLICY, t2, 5, load(5.0, 2), false), None);
        assert_eq!(s.decide(&POLICY, t2, 5, load(5.0, 2), false), None);
    }

    #[test]
    fn one_sample_above_target_is_a_burst() {
        let mut s = Autoscaler::default();
        let t = Instant::now();
        assert_eq!(s.decide(&POLICY, t, 2, load(9.0, 2), false), None);
        assert_eq!(s.decide(&POLICY, t, 2, load(1.5, 2), false), None);
        assert_eq!(s.decide(&POLICY, t, 2, load(9.0, 2), false), None);
        // A missing sample breaks the streak too.
        assert_eq!(s.decide(&POLICY, t, 2, None, false), None);
        assert_eq!(s.decide(&POLICY, t, 2, load(9.0, 2), false), None);
        assert!(s.decide(&POLICY, t, 2, load(9.0, 2), false).is_some());
    }

    #[test]
    fn scale_up_stops_at_the_maximum() {
        let mut s = Autoscaler::default();
        let t = Instant::now();
        s.decide(&POLICY, t, 2, load(100.0, 2), false);
        assert_eq!(
            s.decide(&POLICY, t, 2, load(100.0, 2), false),
            Some(ScaleDecision { from: 2, to: 6 })
        );
        s.decide(&POLICY, t, 6, load(100.0, 6), false);
        assert_eq!(s.decide(&POLICY, t, 6, load(100.0, 6), false), None);
    }

    #[test]
    fn scale_down_is_one_instance_per_quiet_cooldown_and_stops_at_the_minimum() {
        let mut s = Autoscaler::default();
        let t = Instant::now();
        let at = |secs: u64| t + Duration::from_secs(secs);
        assert_eq!(s.decide(&POLICY, at(0), 4, load(0.5, 4), false), None);
        assert_eq!(s.decide(&POLICY, at(9), 4, load(0.5, 4), false), None);
        assert_eq!(
            s.decide(&POLICY, at(10), 4, load(0.5, 4), false),
            Some(ScaleDecision { from: 4, to: 3 })
        );
        // The next step waits a whole cooldown again.
        assert_eq!(s.decide(&POLICY, at(15), 3, load(0.5, 3), false), None);
        assert_eq!(
            s.decide(&POLICY, at(20), 3, load(0.5, 3), false),
            Some(ScaleDecision { from: 3, to: 2 })
        );
        assert_eq!(s.decide(&POLICY, at(40), 2, load(0.0, 2), false), None);
    }

    #[test]
    fn load_between_half_and_the_target_restarts_the_cooldown() {
        let mut s = Autoscaler::default();
        let t = Instant::now();
        let at = |secs: u64| t + Duration::from_secs(secs);
        s.decide(&POLICY, at(0), 4, load(0.5, 4), false);
        // 1.5 is not below half of 2.0: not quiet.
        assert_eq!(s.decide(&POLICY, at(8), 4, load(1.5, 4), false), None);
        assert_eq!(s.decide(&POLICY, at(12), 4, load(0.5, 4), false), None);
        assert_eq!(s.decide(&POLICY, at(21), 4, load(0.5, 4), false), None);
        assert!(s.decide(&POLICY, at(22), 4, load(0.5, 4), false).is_some());
    }

    #[test]
    fn a_region_whose_apps_are_stopped_is_never_scaled() {
        let mut s = Autoscaler::default();
        let t = Instant::now();
        for i in 0..5 {
            let now = t + Duration::from_secs(i * 10);
            assert_eq!(s.decide(&POLICY, now, 0, load(50.0, 0), true), None);
            assert_eq!(s.decide(&POLICY, now, 0, load(0.0, 0), true), None);
        }
        // Nor does stopped time count towards a streak afterwards.
        assert_eq!(s.decide(&POLICY, t, 2, load(9.0, 2), false), None);
    }

    #[test]
    fn a_count_outside_the_bounds_is_brought_back_in() {
        let mut s = Autoscaler::default();
        let t = Instant::now();
        assert_eq!(
            s.decide(&POLICY, t, 1, load(1.0, 1), false),
            Some(ScaleDecision { from: 1, to: 2 })
        );
        assert_eq!(
            s.decide(&POLICY, t, 9, load(1.0, 9), false),
            Some(ScaleDecision { from: 9, to: 6 })
        );
    }

    #[test]
    fn the_history_keeps_the_last_events_and_their_settling_time() {
        let mut h = ScaleHistory::default();
        let d = ScaleDecision { from: 2, to: 3 };
        let first = h.record("us-east", d, 3.0, 1);
        h.settle(first, Duration::from_millis(700));
        h.settle(first, Duration::from_millis(900));
        assert_eq!(h.events()[0].settled_after_ms, Some(700));
        for i in 0..SCALE_EVENTS_MAX as u64 {
            h.record("eu-west", d, 3.0, 2 + i);
        }
        let events = h.events();
        assert_eq!(events.len(), SCALE_EVENTS_MAX);
        assert_eq!(events[0].id, first + 1);
        h.settle(first, Duration::from_millis(1));
        assert!(h.events().iter().all(|e| e.settled_after_ms.is_none()));
    }
}
