//! [`RegionBoard`]: one node's picture of every other region. The node's
//! own probes give its view of each region ([`Hysteresis`], so one lost
//! probe never flaps it); each probe answer also carries the probed
//! region's own views of the others, so every node learns every observer's
//! opinion without a separate gossip channel. A region is *down* only when
//! a majority of its observers (every region but itself) say so in fresh
//! reports: one cut link is one vote and never fails a region over.
//!
//! Forwarding prefers regions that are up by quorum, reachable from here
//! and serving; when no other region is, it fails open and tries them all
//! in order of distance (static stability: an edge that believes every
//! region is down is more likely wrong than right).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use meridian_core::RegionName;

use super::check::{Hysteresis, Thresholds};

/// One observer's opinion of one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vote {
    /// It answers the observer's probes.
    Up,
    /// It failed `fall` probes in a row.
    Down,
    /// No fresh report from that observer.
    Unknown,
}

/// What a probed region said in its answer.
#[derive(Clone, Debug, Default)]
pub struct ProbeAnswer {
    /// It has an instance that can take a request.
    pub serving: bool,
    /// It is drained.
    pub draining: bool,
    /// Its own views of the others: up or not, and for how long.
    pub views: BTreeMap<RegionName, (bool, Duration)>,
}

#[derive(Clone, Debug)]
struct OwnView {
    check: Hysteresis,
    serving: bool,
    draining: bool,
}

#[derive(Clone, Debug)]
struct Report {
    received: Instant,
    views: BTreeMap<RegionName, (bool, Duration)>,
}

/// A region's quorum verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Down by a majority of its observers.
    pub down: bool,
    /// Since when.
    pub since: Instant,
    /// Observers saying down now.
    pub down_votes: usize,
}

/// One node's picture of the other regions.
#[derive(Clone, Debug)]
pub struct RegionBoard {
    me: RegionName,
    regions: Vec<RegionName>,
    thresholds: Thresholds,
    report_ttl: Duration,
    own: BTreeMap<RegionName, OwnView>,
    reports: BTreeMap<RegionName, Report>,
    verdicts: BTreeMap<RegionName, Verdict>,
}

impl RegionBoard {
    /// The board of `me` among `regions` (which include `me`). Reports older
    /// than `report_ttl` count as unknown. Every region starts up.
    pub fn new(
        me: RegionName,
        regions: Vec<RegionName>,
        thresholds: Thresholds,
        report_ttl: Duration,
        now: Instant,
    ) -> Self {
        debug_assert!(regions.contains(&me), "a node is one of the regions");
        let others = regions.iter().filter(|r| **r != me);
        let own = others
            .clone()
            .map(|r| {
                let v = OwnView {
                    check: Hysteresis::new(true, now),
                    serving: true,
                    draining: false,
                };
                (r.clone(), v)
            })
            .collect();
        let verdicts = others
            .map(|r| {
                let v = Verdict {
                    down: false,
                    since: now,
                    down_votes: 0,
                };
                (r.clone(), v)
            })
            .collect();
        RegionBoard {
            me,
            regions,
            thresholds,
            report_ttl,
            own,
            reports: BTreeMap::new(),
            verdicts,
        }
    }

    /// This node's region.
    pub fn me(&self) -> &RegionName {
        &self.me
    }

    /// Records one probe of `target`: its answer, or `None` if it failed.
    /// Returns the regions whose verdict changed.
    pub fn probed(
        &mut self,
        target: &RegionName,
        answer: Option<ProbeAnswer>,
        now: Instant,
    ) -> Vec<(RegionName, Verdict)> {
        let Some(view) = self.own.get_mut(target) else {
            return Vec::new();
        };
        view.check.observe(answer.is_some(), self.thresholds, now);
        if let Some(a) = answer {
            view.serving = a.serving;
            view.draining = a.draining;
            self.reports.insert(
                target.clone(),
                Report {
                    received: now,
                    views: a.views,
                },
            );
        }
        self.recompute(now)
    }

    /// Re-derives every verdict (reports age even without probes).
    pub fn recompute(&mut self, now: Instant) -> Vec<(RegionName, Verdict)> {
        let mut changed = Vec::new();
        let targets: Vec<RegionName> = self.verdicts.keys().cloned().collect();
        for t in targets {
            let down_votes = self
                .observers(&t)
                .filter(|o| self.vote(o, &t, now) == Vote::Down)
                .count();
            let down = down_votes >= self.quorum();
            let v = self
                .verdicts
                .get_mut(&t)
                .expect("targets come from the map");
            v.down_votes = down_votes;
            if v.down != down {
                v.down = down;
                v.since = now;
                changed.push((t.clone(), *v));
            }
        }
        changed
    }

    /// Observers of `target`: every region but it.
    pub fn observers<'a>(
        &'a self,
        target: &'a RegionName,
    ) -> impl Iterator<Item = &'a RegionName> + 'a {
        self.regions.iter().filter(move |r| *r != target)
    }

    /// Down votes needed: a majority of a region's observers.
    pub fn quorum(&self) -> usize {
        (self.regions.len() - 1) / 2 + 1
    }

    /// `observer`'s opinion of `target` at `now`.
    pub fn vote(&self, observer: &RegionName, target: &RegionName, now: Instant) -> Vote {
        if observer == &self.me {
            return match self.own.get(target) {
                Some(v) if v.check.is_up() => Vote::Up,
                Some(_) => Vote::Down,
                None => Vote::Unknown,
            };
        }
        match self.reports.get(observer) {
            Some(r) if now.saturating_duration_since(r.received) <= self.report_ttl => {
                match r.views.get(target) {
                    Some((true, _)) => Vote::Up,
                    Some((false, _)) => Vote::Down,
                    None => Vote::Unknown,
                }
            }
            _ => Vote::Unknown,
        }
    }

    /// When `observer`'s report was received and how long `observer` had
    /// held its view of `target` then.
    pub fn report_of(
        &self,
        observer: &RegionName,
        target: &RegionName,
    ) -> Option<(Instant, Duration)> {
        let r = self.reports.get(observer)?;
        r.views.get(target).map(|(_, held)| (r.received, *held))
    }

    /// This node's own view of `target`: up, since when, serving, draining.
    pub fn own_view(&self, target: &RegionName) -> Option<(bool, Instant, bool, bool)> {
        self.own
            .get(target)
            .map(|v| (v.check.is_up(), v.check.since(), v.serving, v.draining))
    }

    /// The quorum verdict on `target` (`None` for this node's own region).
    pub fn verdict(&self, target: &RegionName) -> Option<Verdict> {
        self.verdicts.get(target).copied()
    }

    /// Where to forward a request this region cannot serve, best first:
    /// `nearest` (the other regions, nearest first) filtered to those up by
    /// quorum, reachable from here, serving and not drained. When none is,
    /// every other region in `nearest`'s order, and `true` (fail open).
    pub fn forward_order(&self, nearest: &[RegionName]) -> (Vec<RegionName>, bool) {
        let good: Vec<RegionName> = nearest
            .iter()
            .filter(|r| {
                let up = self.verdicts.get(*r).is_some_and(|v| !v.down);
                let own = self.own.get(*r);
                up && own.is_some_and(|v| v.check.is_up() && v.serving && !v.draining)
            })
            .cloned()
            .collect();
        if good.is_empty() {
            let all = nearest.iter().filter(|r| **r != self.me).cloned().collect();
            (all, true)
        } else {
            (good, false)
        }
    }

    /// Whether every other region is down by quorum (routing fails open).
    pub fn all_down(&self) -> bool {
        !self.verdicts.is_empty() && self.verdicts.values().all(|v| v.down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds { rise: 2, fall: 2 };
    const TTL: Duration = Duration::from_secs(3);

    fn r(s: &str) -> RegionName {
        RegionName::new(s).unwrap()
    }

    fn board(me: &str, now: Instant) -> RegionBoard {
        let all = ["us-east", "eu-west", "ap-south"].map(r).to_vec();
        RegionBoard::new(r(me), all, T, TTL, now)
    }

    fn answer(views: &[(&str, bool)]) -> ProbeAnswer {
        ProbeAnswer {
            serving: true,
            draining: false,
            views: views
                .iter()
                .map(|(n, up)| (r(n), (*up, Duration::ZERO)))
                .collect(),
        }
    }

    #[test]
    fn one_cut_link_is_one_vote_and_fails_nothing_over() {
        let t0 = Instant::now();
        let mut b = board("us-east", t0);
        // us-east cannot reach eu-west; ap-south can and says so.
        for i in 0..5 {
            let now = t0 + Duration::from_millis(100 * i);
            b.probed(&r("eu-west"), None, now);
            b.probed(
                &r("ap-south"),
                Some(answer(&[("eu-west", true), ("us-east", true)])),
                now,
            );
        }
        let now = t0 + Duration::from_millis(500);
        assert_eq!(b.vote(&r("us-east"), &r("eu-west"), now), Vote::Down);
        let v = b.verdict(&r("eu-west")).unwrap();
        assert!(!v.down);
        assert_eq!(v.down_votes, 1);
        assert_eq!(b.quorum(), 2);
        // But forwarding from here avoids it: this node cannot reach it.
        let (order, open) = b.forward_order(&[r("eu-west"), r("ap-south")]);
        assert_eq!(order, [r("ap-south")]);
        assert!(!open);
    }

    #[test]
    fn a_dead_region_is_down_once_a_majority_agrees() {
        let t0 = Instant::now();
        let mut b = board("us-east", t0);
        b.probed(&r("eu-west"), None, t0);
        let changed = b.probed(&r("eu-west"), None, t0);
        assert!(changed.is_empty(), "one vote of two needed");
        let t1 = t0 + Duration::from_millis(300);
        let changed = b.probed(&r("ap-south"), Some(answer(&[("eu-west", false)])), t1);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, r("eu-west"));
        assert!(changed[0].1.down);
        assert_eq!(changed[0].1.since, t1);
        let (order, open) = b.forward_order(&[r("eu-west"), r("ap-south")]);
        assert_eq!(order, [r("ap-south")]);
        assert!(!open);
    }

    #[test]
    fn stale_reports_stop_counting() {
        let t0 = Instant::now();
        let mut b = board("us-east", t0);
        b.probed(&r("eu-west"), None, t0);
        b.probed(&r("eu-west"), None, t0);
        b.probed(&r("ap-south"), Some(answer(&[("eu-west", false)])), t0);
        assert!(b.verdict(&r("eu-west")).unwrap().down);
        let late = t0 + TTL + Duration::from_millis(1);
        assert_eq!(b.vote(&r("ap-south"), &r("eu-west"), late), Vote::Unknown);
        let changed = b.recompute(late);
        assert_eq!(changed.len(), 1);
        assert!(!b.verdict(&r("eu-west")).unwrap().down);
    }

    #[test]
    fn when_everything_looks_down_routing_fails_open() {
        let t0 = Instant::now();
        let mut b = board("us-east", t0);
        for _ in 0..2 {
            b.probed(&r("eu-west"), None, t0);
            b.probed(&r("ap-south"), None, t0);
        }
        let nearest = [r("eu-west"), r("ap-south")];
        let (order, open) = b.forward_order(&nearest);
        assert!(open);
        assert_eq!(order, nearest);
    }

    #[test]
    fn a_region_that_is_not_serving_or_drained_is_skipped() {
        let t0 = Instant::now();
        let mut b = board("us-east", t0);
        let mut a = answer(&[]);
        a.serving = false;
        b.probed(&r("eu-west"), Some(a), t0);
        let mut a = answer(&[]);
        a.draining = true;
        b.probed(&r("ap-south"), Some(a), t0);
        let (order, open) = b.forward_order(&[r("eu-west"), r("ap-south")]);
        assert!(open, "no region can serve, so try them all");
        assert_eq!(order.len(), 2);
        b.probed(&r("eu-west"), Some(answer(&[])), t0);
        assert_eq!(
            b.forward_order(&[r("eu-west"), r("ap-south")]).0,
            [r("eu-west")]
        );
    }

    #[test]
    fn a_region_recovers_after_rise_probes() {
        let t0 = Instant::now();
        let mut b = board("us-east", t0);
        for _ in 0..2 {
            b.probed(&r("eu-west"), None, t0);
        }
        b.probed(&r("ap-south"), Some(answer(&[("eu-west", false)])), t0);
        assert!(b.verdict(&r("eu-west")).unwrap().down);
        b.probed(&r("eu-west"), Some(answer(&[])), t0);
        assert!(b.verdict(&r("eu-west")).unwrap().down, "rise is 2");
        b.probed(&r("eu-west"), Some(answer(&[])), t0);
        assert!(
            !b.verdict(&r("eu-west")).unwrap().down,
            "one vote left of the two needed"
        );
    }

    #[test]
    fn two_regions_have_one_observer_each() {
        let t0 = Instant::now();
        let all = ["us-east", "eu-west"].map(r).to_vec();
        let mut b = RegionBoard::new(r("us-east"), all, T, TTL, t0);
        assert_eq!(b.quorum(), 1);
        b.probed(&r("eu-west"), None, t0);
        b.probed(&r("eu-west"), None, t0);
        assert!(b.verdict(&r("eu-west")).unwrap().down);
        assert!(b.all_down());
    }
}
