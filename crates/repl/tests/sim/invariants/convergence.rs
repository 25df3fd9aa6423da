//! After every fault heals, all regions hold identical data and have applied
//! the same writes.

use meridian_store::digest::table_digest;

use super::{violated, Invariant};
use crate::sim::Sim;

pub struct Convergence;

impl Invariant for Convergence {
    fn at_end(&mut self, sim: &Sim) {
        let digests: Vec<_> = (0..3)
            .map(|i| table_digest(sim.nodes[i].store.as_ref(), "t", u64::MAX / 2).unwrap())
            .collect();
        if digests.windows(2).any(|w| w[0] != w[1]) {
            violated(sim, "convergence", format!("digests differ: {digests:?}"));
        }
        let vvs: Vec<_> = (0..3).map(|i| sim.vv(i)).collect();
        if vvs.windows(2).any(|w| w[0] != w[1]) {
            violated(
                sim,
                "convergence",
                format!("version vectors differ: {vvs:?}"),
            );
        }
    }
}
