//! An acknowledged write is durable at its origin from the moment it is
//! acknowledged (across crashes), and in the end every region has it.

use meridian_store::Backend;

use super::{violated, Invariant};
use crate::sim::{region, Sim};

pub struct NoAckedWriteLost;

impl Invariant for NoAckedWriteLost {
    fn on_step(&mut self, sim: &Sim) {
        // Cheap per step: only the newest acknowledgement per origin.
        for origin in 0..3 {
            let Some(last) = sim.acked.iter().rev().find(|a| a.origin == origin) else {
                continue;
            };
            let durable = sim.nodes[origin]
                .store
                .meta()
                .unwrap()
                .vv
                .get(&region(origin));
            if durable < last.seq {
                violated(
                    sim,
                    "no acknowledged write lost",
                    format!(
                        "{} acknowledged seq {} but its disk has {durable}",
                        region(origin),
                        last.seq
                    ),
                );
            }
        }
    }

    fn at_end(&mut self, sim: &Sim) {
        for a in &sim.acked {
            for i in 0..3 {
                let have = sim.vv(i).unwrap().get(&region(a.origin));
                if have < a.seq {
                    violated(
                        sim,
                        "no acknowledged write lost",
                        format!(
                            "{} lacks {}:{} (has {have})",
                            region(i),
                            region(a.origin),
                            a.seq
                        ),
                    );
                }
            }
        }
    }
}
