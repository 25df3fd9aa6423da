//! [`Hysteresis`]: HAProxy's `rise`/`fall` rule for one checked target (an
//! app instance, or another region's edge as one observer sees it). A down
//! target comes up after `rise` passes in a row, an up one goes down after
//! `fall` failures in a row; anything in between keeps the state, so one
//! lost probe never flaps a target.

use std::time::Instant;

/// Passes and failures in a row that change the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Passes in a row that bring a down target up (≥ 1).
    pub rise: u32,
    /// Failures in a row that take an up target down (≥ 1).
    pub fall: u32,
}

/// One target's checked state.
#[derive(Clone, Debug)]
pub struct Hysteresis {
    up: bool,
    /// Results in a row that disagree with `up`.
    against: u32,
    since: Instant,
    /// Whether any check has come back yet.
    checked: bool,
}

impl Hysteresis {
    /// A target in state `up` since `now`, not checked yet.
    pub fn new(up: bool, now: Instant) -> Self {
        Hysteresis {
            up,
            against: 0,
            since: now,
            checked: false,
        }
    }

    /// Records one check result; returns the new state when it changed.
    pub fn observe(&mut self, passed: bool, t: Thresholds, now: Instant) -> Option<bool> {
        debug_assert!(t.rise >= 1 && t.fall >= 1, "thresholds are validated ≥ 1");
        self.checked = true;
        if passed == self.up {
            self.against = 0;
            return None;
        }
        self.against += 1;
        let needed = if self.up { t.fall } else { t.rise };
        if self.against < needed {
            return None;
        }
        self.up = passed;
        self.against = 0;
        self.since = now;
        Some(passed)
    }

    /// Whether the target counts as up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// When the state last changed (or the target was added).
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Whether any result was recorded.
    pub fn checked(&self) -> bool {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T: Thresholds = Thresholds { rise: 2, fall: 3 };

    #[test]
    fn a_down_target_needs_rise_passes_in_a_row() {
        let t0 = Instant::now();
        let mut h = Hysteresis::new(false, t0);
        assert_eq!(h.observe(true, T, t0), None);
        assert_eq!(h.observe(false, T, t0), None, "a failure resets the run");
        assert_eq!(h.observe(true, T, t0), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(h.observe(true, T, t1), Some(true));
        assert!(h.is_up());
        assert_eq!(h.since(), t1);
    }

    #[test]
    fn an_up_target_needs_fall_failures_in_a_row() {
        let t0 = Instant::now();
        let mut h = Hysteresis::new(true, t0);
        for _ in 0..2 {
            assert_eq!(h.observe(false, T, t0), None);
        }
        assert_eq!(h.observe(true, T, t0), None, "a pass resets the run");
        for _ in 0..2 {
            assert_eq!(h.observe(false, T, t0), None);
        }
        assert_eq!(h.observe(false, T, t0), Some(false));
        assert!(!h.is_up());
        assert!(h.checked());
    }

    #[test]
    fn agreeing_results_change_nothing() {
        let t0 = Instant::now();
        let mut h = Hysteresis::new(true, t0);
        for _ in 0..10 {
            assert_eq!(h.observe(true, T, t0 + Duration::from_secs(5)), None);
        }
        assert_eq!(h.since(), t0);
    }
}
