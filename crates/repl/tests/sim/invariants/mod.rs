//! The properties the simulation checks, one file each. Each is called
//! after every step and once at the end; a violation panics with the seed.

use super::Sim;

mod convergence;
mod gc_safety;
mod idempotent_apply;
mod no_acked_write_lost;
mod vv_monotonic;

/// One checked property.
pub trait Invariant {
    /// After every simulation step.
    fn on_step(&mut self, _sim: &Sim) {}
    /// After the final heal, once everything is quiet.
    fn at_end(&mut self, _sim: &Sim) {}
}

/// Every invariant, fresh for one run.
pub fn all() -> Vec<Box<dyn Invariant>> {
    vec![
        Box::new(convergence::Convergence),
        Box::new(no_acked_write_lost::NoAckedWriteLost),
        Box::new(idempotent_apply::IdempotentApply),
        Box::new(vv_monotonic::VersionVectorsNeverGoBack::default()),
        Box::new(gc_safety::GcNeverDropsWhatSomeoneLacks),
    ]
}

/// Panics naming the invariant and how to replay the seed.
pub fn violated(sim: &Sim, invariant: &str, detail: String) -> ! {
    panic!(
        "invariant `{invariant}` violated at {} ms: {detail}\nreplay: MERIDIAN_SIM_SEED={} cargo test -p meridian-repl --test simulation",
        sim.now_ms, sim.seed
    )
}
