//! [`Balancer`]: which eligible app instance takes the next request —
//! round robin, smooth weighted round robin (nginx's algorithm: every pick
//! adds each instance's weight to its score, takes the highest and lowers
//! it by the total, so a 3:1 pair goes A A B A, never A A A B), or least
//! request by the power of two choices (two instances drawn at random, the
//! one with fewer requests in flight wins: near-best spread without a
//! global scan or herding onto one idle instance).
//!
//! The caller passes only eligible instances (up, not ejected, breaker
//! closed); the balancer never sees the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use meridian_core::config::BalancePolicy;

/// An eligible instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The instance's stable id.
    pub id: u64,
    /// Its weight (≥ 1).
    pub weight: u32,
    /// Requests in flight to it now.
    pub in_flight: u64,
}

/// Picks instances under one policy.
#[derive(Debug)]
pub struct Balancer {
    policy: BalancePolicy,
    next: AtomicUsize,
    /// Smooth weighted round robin's current scores by instance id.
    scores: Mutex<HashMap<u64, i64>>,
}

impl Balancer {
    /// A balancer for `policy`.
    pub fn new(policy: BalancePolicy) -> Self {
        Balancer {
            policy,
            next: AtomicUsize::new(0),
            scores: Mutex::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> BalancePolicy {
        self.policy
    }

    /// The index in `candidates` of the instance to use; `None` only when
    /// `candidates` is empty.
    pub fn pick(&self, candidates: &[Candidate], rng: &mut fastrand::Rng) -> Option<usize> {
        match candidates.len() {
            0 => None,
            1 => Some(0),
            n => Some(match self.policy {
                BalancePolicy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
                BalancePolicy::Weighted => self.weighted(candidates),
                BalancePolicy::LeastRequest => two_choices(candidates, rng),
            }),
        }
    }

    fn weighted(&self, candidates: &[Candidate]) -> usize {
        let mut scores = self.scores.lock().expect("balancer lock is never poisoned");
        // Forget instances that left, so the map stays the pool's size.
        if scores.len() > candidates.len() * 2 {
            scores.retain(|id, _| candidates.iter().any(|c| c.id == *id));
        }
        let total: i64 = candidates.iter().map(|c| i64::from(c.weight)).sum();
        let mut best = 0;
        let mut best_score = i64::MIN;
        for (i, c) in candidates.iter().enumerate() {
            let s = scores.entry(c.id).or_insert(0);
            *s += i64::from(c.weight);
            if *s > best_score {
                best_score = *s;
                best = i;
            }
        }
        *scores
            .get_mut(&candidates[best].id)
            .expect("every candidate was scored above") -= total;
        best
    }
}

/// Power of two choices on in-flight requests; ties go to the first drawn.
fn two_choices(candidates: &[Candidate], rng: &mut fastrand::Rng) -> usize {
    let n = candidates.len();
    let a = rng.usize(..n);
    // A second draw among the others, so the two always differ.
    let b = (a + 1 + rng.usize(..n - 1)) % n;
    if candidates[b].in_flight < candidates[a].in_flight {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Candidate {
                id: i as u64 + 10,
                weight: *w,
                in_flight: 0,
            })
            .collect()
    }

    fn picks(b: &Balancer, c: &[Candidate], n: usize) -> Vec<usize> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..n).map(|_| b.pick(c, &mut rng).unwrap()).collect()
    }

    #[test]
    fn round_robin_takes_each_in_turn() {
        let b = Balancer::new(BalancePolicy::RoundRobin);
        assert_eq!(picks(&b, &pool(&[1, 1, 1]), 6), [0, 1, 2, 0, 1, 2]);
        assert_eq!(b.pick(&[], &mut fastrand::Rng::new()), None);
    }

    #[test]
    fn weighted_is_proportional_and_smooth() {
        let b = Balancer::new(BalancePolicy::Weighted);
        let p = pool(&[3, 1]);
        assert_eq!(picks(&b, &p, 8), [0, 0, 1, 0, 0, 0, 1, 0]);
        let b = Balancer::new(BalancePolicy::Weighted);
        let p = pool(&[90, 10]);
        let got = picks(&b, &p, 1000);
        let second = got.iter().filter(|&&i| i == 1).count();
        assert_eq!(second, 100, "a 90/10 canary gets exactly its share");
    }

    #[test]
    fn weighted_forgets_instances_that_left() {
        let b = Balancer::new(BalancePolicy::Weighted);
        for k in 0..50u64 {
            let p = [
                Candidate {
                    id: k,
                    weight: 1,
                    in_flight: 0,
                },
                Candidate {
                    id: 1000,
                    weight: 1,
                    in_flight: 0,
                },
            ];
            b.pick(&p, &mut fastrand::Rng::new());
        }
        assert!(b.scores.lock().unwrap().len() <= 5);
    }

    #[test]
    fn least_request_prefers_the_idle_instance() {
        let b = Balancer::new(BalancePolicy::LeastRequest);
        let mut p = pool(&[1, 1]);
        p[0].in_flight = 10;
        assert!(picks(&b, &p, 100).iter().all(|&i| i == 1));
        // Among many, the busiest is never chosen (it loses every pair).
        let mut p = pool(&[1, 1, 1, 1]);
        p[2].in_flight = 50;
        let got = picks(&b, &p, 400);
        assert!(!got.contains(&2));
        for i in [0, 1, 3] {
            assert!(
                got.iter().filter(|&&g| g == i).count() > 60,
                "spread over the rest"
            );
        }
    }
}
