//! A log entry is garbage-collected only once every region has applied it:
//! any region can always serve any origin's entries a peer still lacks.

use meridian_store::Backend;

use super::{violated, Invariant};
use crate::sim::{region, Sim};

pub struct GcNeverDropsWhatSomeoneLacks;

impl Invariant for GcNeverDropsWhatSomeoneLacks {
    fn on_step(&mut self, sim: &Sim) {
        let durable: Vec<_> = (0..3).map(|i| sim.nodes[i].store.meta().unwrap()).collect();
        for (i, meta) in durable.iter().enumerate() {
            for (origin, start) in &meta.log_start {
                let truncated_through = start - 1;
                let lowest = durable.iter().map(|m| m.vv.get(origin)).min().unwrap();
                if truncated_through > lowest {
                    violated(
                        sim,
                        "GC never drops what someone lacks",
                        format!("node {i} ({}) truncated {origin} through {truncated_through}, but a region has only {lowest}", region(i)),
                    );
                }
            }
        }
    }
}
