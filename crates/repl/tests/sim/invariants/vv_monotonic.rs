//! A region's durable version vector never goes backwards, crashes included.

use meridian_core::VersionVector;

use meridian_store::Backend;

use super::{violated, Invariant};
use crate::sim::Sim;

#[derive(Default)]
pub struct VersionVectorsNeverGoBack {
    seen: [VersionVector; 3],
}

impl Invariant for VersionVectorsNeverGoBack {
    fn on_step(&mut self, sim: &Sim) {
        for i in 0..3 {
            let durable = sim.nodes[i].store.meta().unwrap().vv;
            if !durable.covers(&self.seen[i]) {
                violated(
                    sim,
                    "version vectors never go back",
                    format!("node {i} went from {:?} to {durable:?}", self.seen[i]),
                );
            }
            if let Some(live) = sim.vv(i) {
                if live != durable {
                    violated(
                        sim,
                        "version vectors never go back",
                        format!("node {i} reports {live:?} but its disk has {durable:?}"),
                    );
                }
            }
            self.seen[i] = durable;
        }
    }
}
