//! Deterministic simulation of the replication protocol under faults, one
//! seed at a time; every invariant in `sim/invariants/` is checked after
//! every step. `MERIDIAN_SIM_SEEDS=100000` runs more; a failure prints the
//! command that replays its seed.

mod sim;

use sim::{Counts, Faults};

/// Runs every seed and prints what the runs exercised, so a simulation that
/// stopped injecting faults would show it (and fail the asserts below).
fn run_all(name: &str, offset: u64, faults: Faults) -> Counts {
    let mut total = Counts::default();
    let seeds = sim::seeds();
    for seed in &seeds {
        total += sim::run(seed + offset, faults.clone());
    }
    eprintln!("{name}: {} seeds, {total:?}", seeds.len());
    total
}

#[test]
fn replication_under_partitions_crashes_loss_and_duplication() {
    let faults = Faults {
        drop_pct: 5,
        dup_pct: 5,
        partition_permille: 10,
        crash_permille: 4,
    };
    let c = run_all("partitions+crashes", 0, faults);
    assert!(
        c.crashes > 0 && c.crashes_before_ack > 0 && c.partitions > 0,
        "{c:?}"
    );
    assert!(c.truncations > 0 && c.relayed > 0 && c.gaps > 0, "{c:?}");
}

#[test]
fn replication_over_a_very_lossy_duplicating_network() {
    let faults = Faults {
        drop_pct: 25,
        dup_pct: 30,
        partition_permille: 2,
        crash_permille: 1,
    };
    let c = run_all("lossy", 1_000_000, faults);
    assert!(
        c.dropped > 0 && c.duplicated > 0 && c.retransmitted > 0,
        "{c:?}"
    );
}
