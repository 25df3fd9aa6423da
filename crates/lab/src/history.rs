//! The history checker of `meridian chaos run`: clients record every
//! operation (invoke and completion times, region, result) and this module
//! decides whether the history keeps Meridian's promises. Pure: no I/O, no
//! clock.
//!
//! - **Linearizability** of single-key registers read with `strong` on a
//!   single-master table: a Wing–Gong search per key for an order of the
//!   operations that respects real time (an operation that completed before
//!   another was invoked comes first) and register semantics (a read returns
//!   the latest write). A write whose outcome is unknown (no answer) may
//!   take effect at any time after its invocation, or never.
//! - **Session guarantees** of `session` connections: read-your-writes
//!   (a client's read of a key only it writes returns at least its last
//!   acknowledged value) and monotonic reads (a client's successive reads of
//!   a key never go back), across the regions the client moves between.
//!   Values written to session keys increase per key, so "newer" is `>`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// Longest per-key history the linearizability search takes; the workload
/// spreads operations over enough keys to stay below it.
pub const KEY_OPS_MAX: usize = 128;

/// Search steps per key before the checker gives up (and says so).
pub const SEARCH_STEPS_MAX: u64 = 5_000_000;

/// One register operation of a strong-read workload.
#[derive(Clone, Debug, Serialize)]
pub struct RegisterOp {
    /// Which client.
    pub client: usize,
    /// Where it ran.
    pub region: String,
    /// The key.
    pub key: String,
    /// `Some(v)`: a write of `v`; `None`: a read.
    pub write: Option<String>,
    /// For a read, what it returned (`None`: the key was absent).
    pub read: Option<String>,
    /// When it was sent (µs since the run began).
    pub invoke_us: u64,
    /// When its answer came; `None` for a write with no answer (it may or
    /// may not have taken effect).
    pub complete_us: Option<u64>,
}

/// One operation on a session connection: a write of an increasing value
/// or a read.
#[derive(Clone, Debug, Serialize)]
pub struct SessionOp {
    /// Which client.
    pub client: usize,
    /// Where it ran.
    pub region: String,
    /// The key.
    pub key: String,
    /// `Some(v)`: an acknowledged write of `v`.
    pub wrote: Option<u64>,
    /// For a read: the value it returned (`None`: absent).
    pub read: Option<Option<u64>>,
}

/// A broken promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// Which check.
    pub check: &'static str,
    /// The key.
    pub key: String,
    /// What happened.
    pub detail: String,
}

/// Checks every key's register history; returns anomalies (one per
/// non-linearizable key) and how many operations were checked.
pub fn check_linearizable(ops: &[RegisterOp]) -> (Vec<Anomaly>, usize) {
    let mut by_key: BTreeMap<&str, Vec<&RegisterOp>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut anomalies = Vec::new();
    let mut checked = 0;
    for (key, ops) in by_key {
        if ops.len() > KEY_OPS_MAX {
            anomalies.push(Anomaly {
                check: "linearizable",
                key: key.to_string(),
                detail: format!(
                    "{} operations: more than the checker's {KEY_OPS_MAX} per key; not checked",
                    ops.len()
                ),
            });
            continue;
        }
        checked += ops.len();
        match linearize(&ops) {
            Search::Found => {}
            Search::Impossible => anomalies.push(Anomaly {
                check: "linearizable",
                key: key.to_string(),
                detail: describe(&ops),
            }),
            Search::GaveUp => anomalies.push(Anomaly {
                check: "linearizable",
                key: key.to_string(),
                detail: format!("search gave up after {SEARCH_STEPS_MAX} steps; not decided"),
            }),
        }
    }
    (anomalies, checked)
}

enum Search {
    Found,
    Impossible,
    GaveUp,
}

/// Wing–Gong search with memoisation of (done set, register value).
fn linearize(ops: &[&RegisterOp]) -> Search {
    let n = ops.len();
    let required: u128 = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.complete_us.is_some())
        .fold(0, |m, (i, _)| m | (1 << i));
    let mut seen: HashSet<(u128, Option<usize>)> = HashSet::new();
    let mut steps = 0u64;
    // The register's value is the index of the write that set it.
    let mut stack: Vec<(u128, Option<usize>)> = vec![(0, None)];
    while let Some((done, value)) = stack.pop() {
        if done & required == required {
            return Search::Found;
        }
        if !seen.insert((done, value)) {
            continue;
        }
        steps += 1;
        if steps > SEARCH_STEPS_MAX {
            return Search::GaveUp;
        }
        // Only an op invoked before every pending op's completion can go
        // next (real-time order).
        let horizon = (0..n)
            .filter(|i| done & (1 << i) == 0)
            .filter_map(|i| ops[i].complete_us)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..n {
            if done & (1 << i) != 0 || ops[i].invoke_us > horizon {
                continue;
            }
            let op = ops[i];
            let next = match &op.write {
                Some(_) => Some(i),
                None => {
                    let current = value.and_then(|w| ops[w].write.as_ref());
                    if current != op.read.as_ref() {
                        continue;
                    }
                    value
                }
            };
            stack.push((done | (1 << i), next));
        }
    }
    Search::Impossible
}

fn describe(ops: &[&RegisterOp]) -> String {
    let mut sorted: Vec<&&RegisterOp> = ops.iter().collect();
    sorted.sort_by_key(|o| o.invoke_us);
    let shown: Vec<String> = sorted
        .iter()
        .take(40)
        .map(|o| {
            let done = o.complete_us.map_or("?".to_string(), |c| c.to_string());
            match &o.write {
                Some(v) => format!(
                    "[{}..{done}] c{} {} write {v}",
                    o.invoke_us, o.client, o.region
                ),
                None => format!(
                    "[{}..{done}] c{} {} read {}",
                    o.invoke_us,
                    o.client,
                    o.region,
                    o.read.as_deref().unwrap_or("nil")
                ),
            }
        })
        .collect();
    format!("no linearization of: {}", shown.join("; "))
}

/// Checks read-your-writes and monotonic reads; `ops` in each client's
/// order. Returns anomalies and how many reads were checked.
pub fn check_session(ops: &[SessionOp]) -> (Vec<Anomaly>, usize) {
    let mut anomalies = Vec::new();
    let mut checked = 0;
    // Per client: last acknowledged write per key, highest read per key.
    let mut wrote: HashMap<(usize, &str), u64> = HashMap::new();
    let mut seen: HashMap<(usize, &str), u64> = HashMap::new();
    for op in ops {
        let id = (op.client, op.key.as_str());
        if let Some(v) = op.wrote {
            let w = wrote.entry(id).or_default();
            *w = (*w).max(v);
            continue;
        }
        let Some(read) = op.read else { continue };
        checked += 1;
        let got = read.unwrap_or(0);
        if let Some(&w) = wrote.get(&id) {
            if got < w {
                anomalies.push(Anomaly {
                    check: "read-your-writes",
                    key: op.key.clone(),
                    detail: format!(
                        "client {} wrote {w}, then read {} in {}",
                        op.client,
                        show(read),
                        op.region
                    ),
                });
            }
        }
        let before = seen.entry(id).or_default();
        if got < *before {
            anomalies.push(Anomaly {
                check: "monotonic-reads",
                key: op.key.clone(),
                detail: format!(
                    "client {} read {before}, then {} in {}",
                    op.client,
                    show(read),
                    op.region
                ),
            });
        }
        *before = (*before).max(got);
    }
    (anomalies, checked)
}

fn show(v: Option<u64>) -> String {
    v.map_or("nil".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(client: usize, v: &str, invoke: u64, complete: Option<u64>) -> RegisterOp {
        RegisterOp {
            client,
            region: "r".into(),
            key: "k".into(),
            write: Some(v.into()),
            read: None,
            invoke_us: invoke,
            complete_us: complete,
        }
    }

    fn r(client: usize, v: Option<&str>, invoke: u64, complete: u64) -> RegisterOp {
        RegisterOp {
            client,
            region: "r".into(),
            key: "k".into(),
            write: None,
            read: v.map(String::from),
            invoke_us: invoke,
            complete_us: Some(complete),
        }
    }

    #[test]
    fn sequential_and_concurrent_histories_that_linearize_pass() {
        let ops = [
            r(0, None, 0, 5),
            w(0, "a", 10, Some(20)),
            r(1, Some("a"), 25, 30),
            // Concurrent write and read: the read may see either value.
            w(0, "b", 40, Some(60)),
            r(1, Some("a"), 45, 50),
            r(1, Some("b"), 55, 70),
        ];
        let (anomalies, checked) = check_linearizable(&ops);
        assert!(anomalies.is_empty(), "{anomalies:?}");
        assert_eq!(checked, 6);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let ops = [
            w(0, "a", 0, Some(10)),
            w(0, "b", 20, Some(30)),
            // Invoked after "b" completed, yet returns "a".
            r(1, Some("a"), 40, 50),
        ];
        let (anomalies, _) = check_linearizable(&ops);
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].check, "linearizable");
    }

    #[test]
    fn reads_going_back_between_two_readers_are_caught() {
        // One reader saw "b", a later reader (invoked after) saw "a" again.
        let ops = [
            w(0, "a", 0, Some(10)),
            w(0, "b", 20, Some(100)),
            r(1, Some("b"), 30, 40),
            r(2, Some("a"), 50, 60),
        ];
        assert_eq!(check_linearizable(&ops).0.len(), 1);
    }

    #[test]
    fn a_write_without_an_answer_may_or_may_not_have_happened() {
        let took = [w(0, "a", 0, None), r(1, Some("a"), 50, 60)];
        assert!(check_linearizable(&took).0.is_empty());
        let never = [w(0, "a", 0, None), r(1, None, 50, 60)];
        assert!(check_linearizable(&never).0.is_empty());
        // But it cannot take effect before it was sent.
        let early = [r(1, Some("a"), 0, 5), w(0, "a", 10, None)];
        assert_eq!(check_linearizable(&early).0.len(), 1);
    }

    #[test]
    fn too_long_a_key_history_is_reported_not_skipped() {
        let ops: Vec<RegisterOp> = (0..=KEY_OPS_MAX as u64)
            .map(|i| r(0, None, i * 10, i * 10 + 1))
            .collect();
        let (anomalies, checked) = check_linearizable(&ops);
        assert_eq!(checked, 0);
        assert!(anomalies[0].detail.contains("not checked"));
    }

    fn s(client: usize, key: &str, wrote: Option<u64>, read: Option<Option<u64>>) -> SessionOp {
        SessionOp {
            client,
            region: "r".into(),
            key: key.into(),
            wrote,
            read,
        }
    }

    #[test]
    fn session_histories_keep_or_break_their_promises() {
        let good = [
            s(0, "a", Some(1), None),
            s(0, "a", None, Some(Some(1))),
            s(0, "b", None, Some(None)),
            s(0, "b", None, Some(Some(3))),
            s(1, "b", None, Some(Some(2))), // another client: its own order
        ];
        let (anomalies, checked) = check_session(&good);
        assert!(anomalies.is_empty(), "{anomalies:?}");
        assert_eq!(checked, 4);

        let ryw = [s(0, "a", Some(2), None), s(0, "a", None, Some(Some(1)))];
        assert_eq!(check_session(&ryw).0[0].check, "read-your-writes");
        let back = [s(0, "b", None, Some(Some(3))), s(0, "b", None, Some(None))];
        assert_eq!(check_session(&back).0[0].check, "monotonic-reads");
    }
}
