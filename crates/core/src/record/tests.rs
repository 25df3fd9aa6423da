//! The merge rules, and the property everything rests on: replicas that
//! apply the same writes, each origin's in sequence, in any interleaving,
//! end with identical states.

use super::*;

fn r(name: &str) -> RegionName {
    RegionName::new(name).unwrap()
}

fn entry(origin: &str, seq: u64, hlc: u64, observed: Option<Version>, op: Op) -> LogEntry {
    LogEntry {
        origin: r(origin),
        seq,
        hlc: Hlc::from_u64(hlc),
        table: "t".into(),
        key: b"k".to_vec(),
        observed,
        op,
    }
}

fn run(entries: &[&LogEntry]) -> (Option<KeyState>, Vec<Conflict>) {
    let mut state: Option<KeyState> = None;
    let mut conflicts = Vec::new();
    for e in entries {
        let a = apply(state.as_ref(), e);
        conflicts.extend(a.conflict);
        state = Some(a.state);
    }
    (state, conflicts)
}

#[test]
fn last_writer_wins_for_concurrent_puts_and_reports_the_conflict() {
    let a = entry(
        "a",
        1,
        10,
        None,
        Op::Put {
            value: b"A".to_vec(),
            expires_at_ms: None,
        },
    );
    let b = entry(
        "b",
        1,
        12,
        None,
        Op::Put {
            value: b"B".to_vec(),
            expires_at_ms: None,
        },
    );
    for order in [[&a, &b], [&b, &a]] {
        let (s, conflicts) = run(&order);
        let s = s.unwrap();
        assert_eq!(s.bytes().unwrap(), b"B");
        assert_eq!(
            conflicts,
            vec![Conflict {
                winner: b.version(),
                loser: a.version()
            }]
        );
    }
}

#[test]
fn a_causal_overwrite_is_not_a_conflict() {
    let a = entry(
        "a",
        1,
        10,
        None,
        Op::Put {
            value: b"A".to_vec(),
            expires_at_ms: None,
        },
    );
    let b = entry(
        "b",
        1,
        12,
        Some(a.version()),
        Op::Put {
            value: b"B".to_vec(),
            expires_at_ms: None,
        },
    );
    for order in [[&a, &b], [&b, &a]] {
        let (s, conflicts) = run(&order);
        assert_eq!(s.unwrap().bytes().unwrap(), b"B");
        assert!(conflicts.is_empty(), "{conflicts:?}");
    }
}

#[test]
fn equal_hlc_ties_break_by_origin() {
    let a = entry(
        "a",
        1,
        10,
        None,
        Op::Put {
            value: b"A".to_vec(),
            expires_at_ms: None,
        },
    );
    let b = entry(
        "b",
        1,
        10,
        None,
        Op::Put {
            value: b"B".to_vec(),
            expires_at_ms: None,
        },
    );
    assert_eq!(run(&[&b, &a]).0.unwrap().bytes().unwrap(), b"B");
}

#[test]
fn concurrent_increments_all_count() {
    let set = entry(
        "a",
        1,
        10,
        None,
        Op::Put {
            value: b"5".to_vec(),
            expires_at_ms: None,
        },
    );
    let inc = set.version();
    let x = entry(
        "a",
        2,
        20,
        Some(inc.clone()),
        Op::Add {
            target: Target::Existing(inc.clone()),
            delta: 3,
        },
    );
    let y = entry(
        "b",
        1,
        21,
        Some(inc.clone()),
        Op::Add {
            target: Target::Existing(inc.clone()),
            delta: -1,
        },
    );
    let z = entry(
        "c",
        1,
        22,
        Some(inc.clone()),
        Op::Add {
            target: Target::Existing(inc),
            delta: 10,
        },
    );
    // Including the dependent writes arriving before the SET they build on.
    for order in [[&set, &x, &y, &z], [&y, &z, &set, &x], [&z, &set, &y, &x]] {
        let (s, conflicts) = run(&order);
        assert_eq!(s.unwrap().bytes().unwrap(), b"17");
        assert!(conflicts.is_empty());
    }
}

#[test]
fn pending_incarnation_is_hidden_until_its_creator_arrives() {
    let set = entry(
        "a",
        1,
        10,
        None,
        Op::Put {
            value: b"5".to_vec(),
            expires_at_ms: None,
        },
    );
    let inc = entry(
        "b",
        1,
        11,
        Some(set.version()),
        Op::Add {
            target: Target::Existing(set.version()),
            delta: 1,
        },
    );
    let (s, _) = run(&[&inc]);
    assert!(s.as_ref().unwrap().is_absent(0));
    let (s, _) = run(&[&inc, &set]);
    assert_eq!(s.unwrap().bytes().unwrap(), b"6");
}

#[test]
fn delete_beats_older_increments_and_newer_set_beats_delete() {
    let set = entry(
        "a",
        1,
        10,
        None,
        Op::Put {
            value: b"1".to_vec(),
            expires_at_ms: None,
        },
    );
    let del = entry("b", 1, 20, Some(set.version()), Op::Delete);
    let inc = entry(
        "c",
        1,
        15,
        Some(set.version()),
        Op::Add {
            target: Target::Existing(set.version()),
            delta: 1,
        },
    );
    let (s, conflicts) = run(&[&set, &inc, &del]);
    assert!(s.unwrap().is_absent(0));
    assert_eq!(
        conflicts,
        vec![Conflict {
            winner: del.version(),
            loser: inc.version()
        }]
    );
    // The delete saw the SET (no conflict) but not the concurrent INCR: the
    // same single conflict whatever the arrival order.
    let (s, conflicts) = run(&[&del, &set, &inc]);
    assert!(s.unwrap().is_absent(0));
    assert_eq!(
        conflicts,
        vec![Conflict {
            winner: del.version(),
            loser: inc.version()
        }]
    );
}

#[test]
fn hash_fields_merge_per_field() {
    let h = entry(
        "a",
        1,
        10,
        None,
        Op::HashSet {
            target: Target::New,
            fields: vec![(b"f".to_vec(), b"1".to_vec())],
        },
    );
    let t = Target::Existing(h.version());
    let x = entry(
        "a",
        2,
        20,
        Some(h.version()),
        Op::HashSet {
            target: t.clone(),
            fields: vec![(b"g".to_vec(), b"a".to_vec())],
        },
    );
    let y = entry(
        "b",
        1,
        21,
        Some(h.version()),
        Op::HashSet {
            target: t,
            fields: vec![
                (b"g".to_vec(), b"b".to_vec()),
                (b"h".to_vec(), b"z".to_vec()),
            ],
        },
    );
    let d = entry(
        "c",
        1,
        22,
        Some(h.version()),
        Op::HashDel {
            target: h.version(),
            fields: vec![b"f".to_vec()],
        },
    );
    let (s, _) = run(&[&y, &d, &h, &x]);
    let Value::Hash(map) = s.unwrap().value else {
        panic!("not a hash")
    };
    let live: Vec<(&[u8], &[u8])> = map
        .iter()
        .filter_map(|(k, f)| f.value.as_deref().map(|v| (k.as_slice(), v)))
        .collect();
    assert_eq!(live, vec![(&b"g"[..], &b"b"[..]), (&b"h"[..], &b"z"[..])]);
}

#[test]
fn set_add_wins_over_a_concurrent_remove() {
    let add1 = entry(
        "a",
        1,
        10,
        None,
        Op::SetAdd {
            target: Target::New,
            members: vec![b"m".to_vec()],
        },
    );
    let inc = add1.version();
    // b removes m having seen add1; c concurrently re-adds m.
    let rem = entry(
        "b",
        1,
        20,
        Some(inc.clone()),
        Op::SetRemove {
            target: inc.clone(),
            members: vec![(b"m".to_vec(), vec![inc.clone()])],
        },
    );
    let add2 = entry(
        "c",
        1,
        19,
        Some(inc.clone()),
        Op::SetAdd {
            target: Target::Existing(inc),
            members: vec![b"m".to_vec()],
        },
    );
    for order in [
        [&add1, &rem, &add2],
        [&add2, &rem, &add1],
        [&rem, &add1, &add2],
    ] {
        let Value::Set(set) = run(&order).0.unwrap().value else {
            panic!()
        };
        assert!(set[&b"m"[..]].present(), "add-wins violated for {order:?}");
    }
    let only_rem = run(&[&add1, &rem]).0.unwrap();
    assert!(only_rem.is_absent(0));
}

#[test]
fn expiry_is_last_writer_wins_and_purge_waits_for_closed_time() {
    let set = entry(
        "a",
        1,
        10,
        None,
        Op::Put {
            value: b"v".to_vec(),
            expires_at_ms: Some(1000),
        },
    );
    let persist = entry(
        "b",
        1,
        20,
        Some(set.version()),
        Op::Expire {
            target: set.version(),
            expires_at_ms: None,
        },
    );
    let (s, _) = run(&[&persist, &set]);
    let mut s = s.unwrap();
    assert_eq!(s.expires_at_ms(), None);
    assert!(!s.is_absent(5000));
    let (s2, _) = run(&[&set]);
    let mut s2 = s2.unwrap();
    assert!(!s2.is_absent(999) && s2.is_absent(1000));
    assert!(
        !s2.purge_expired(1400, 500),
        "purged while writes before the deadline may still arrive"
    );
    assert!(s2.purge_expired(1501, 500));
    assert!(!s.purge_expired(10_000, 500));
    // A late write to the purged incarnation changes nothing.
    let late = entry(
        "c",
        1,
        15,
        Some(set.version()),
        Op::Expire {
            target: set.version(),
            expires_at_ms: Some(99_999),
        },
    );
    let a = apply(Some(&s2), &late);
    assert!(!a.changed);
}

#[test]
fn version_vectors_cover_and_merge() {
    let mut a = VersionVector::new();
    a.advance(&r("x"), 3);
    let mut b = VersionVector::new();
    b.advance(&r("x"), 2);
    b.advance(&r("y"), 1);
    assert!(!a.covers(&b));
    a.merge(&b);
    assert!(a.covers(&b));
    assert_eq!((a.get(&r("x")), a.get(&r("y")), a.get(&r("z"))), (3, 1, 0));
    assert_eq!(a.min_with(&b).get(&r("x")), 2);
}

mod convergence {
    //! Random writes from three origins, each origin acting only on what it
    //! has seen; then replicas apply everything in many interleavings.

    use super::*;

    const ORIGINS: [&str; 3] = ["a", "b", "c"];
    const KEYS: [&[u8]; 3] = [b"k0", b"k1", b"k2"];

    struct Origin {
        name: RegionName,
        seq: u64,
        clock: u64,
        states: BTreeMap<Vec<u8>, KeyState>,
        applied: [usize; 3],
    }

    fn apply_into(states: &mut BTreeMap<Vec<u8>, KeyState>, e: &LogEntry) {
        let a = apply(states.get(&e.key), e);
        states.insert(e.key.clone(), a.state);
    }

    fn write(o: &mut Origin, rng: &mut fastrand::Rng) -> LogEntry {
        let key = KEYS[rng.usize(..KEYS.len())].to_vec();
        let cur = o.states.get(&key);
        let now = 0;
        let observed = cur.map(|s| s.last.clone());
        let target = KeyState::target(cur, now);
        let live = cur.filter(|s| !s.is_absent(now));
        let member = vec![b'm', b'0' + rng.u8(..3)];
        let byte = rng.u8(..);
        let digit = rng.u8(..10);
        let delta = rng.i64(-5..6);
        let at = rng.u64(1..1_000_000);
        let op = match (live.map(|s| &s.value), rng.u8(..10)) {
            (_, 0) => Op::Delete,
            (_, 1) => Op::Put {
                value: vec![b'0' + digit],
                expires_at_ms: None,
            },
            (None, 2..=4) => Op::Add { target, delta },
            (None, 5..=7) => Op::HashSet {
                target,
                fields: vec![(member.clone(), vec![byte])],
            },
            (None, _) => Op::SetAdd {
                target,
                members: vec![member.clone()],
            },
            (Some(Value::Bytes(b)), n) if b.iter().all(u8::is_ascii_digit) && n < 8 => {
                Op::Add { target, delta }
            }
            (Some(Value::Bytes(_)), _) => Op::Expire {
                target: live.unwrap().incarnation.clone(),
                expires_at_ms: Some(at),
            },
            (Some(Value::Hash(_)), n) if n < 7 => Op::HashSet {
                target,
                fields: vec![(member.clone(), vec![byte])],
            },
            (Some(Value::Hash(_)), _) => Op::HashDel {
                target: live.unwrap().incarnation.clone(),
                fields: vec![member.clone()],
            },
            (Some(Value::Set(_)), n) if n < 6 => Op::SetAdd {
                target,
                members: vec![member.clone()],
            },
            (Some(Value::Set(set)), _) => {
                let m = member.clone();
                let seen = set.get(&m).map(Member::live_adds).unwrap_or_default();
                Op::SetRemove {
                    target: live.unwrap().incarnation.clone(),
                    members: vec![(m, seen)],
                }
            }
            (Some(v), _) => unreachable!("live value {v:?}"),
        };
        o.seq += 1;
        o.clock += 1 + rng.u64(..3);
        let e = LogEntry {
            origin: o.name.clone(),
            seq: o.seq,
            hlc: Hlc::from_u64(o.clock),
            table: "t".into(),
            key,
            observed,
            op,
        };
        apply_into(&mut o.states, &e);
        e
    }

    fn receive(o: &mut Origin, logs: &[Vec<LogEntry>; 3], from: usize, upto: usize) {
        while o.applied[from] < upto {
            let e = &logs[from][o.applied[from]];
            o.clock = o.clock.max(e.hlc.as_u64());
            apply_into(&mut o.states, e);
            o.applied[from] += 1;
        }
    }

    /// Applies all logs interleaved at random, each origin in order.
    fn replay(logs: &[Vec<LogEntry>; 3], rng: &mut fastrand::Rng) -> BTreeMap<Vec<u8>, KeyState> {
        let mut next = [0usize; 3];
        let mut states = BTreeMap::new();
        loop {
            let open: Vec<usize> = (0..3).filter(|i| next[*i] < logs[*i].len()).collect();
            if open.is_empty() {
                return states;
            }
            let i = open[rng.usize(..open.len())];
            apply_into(&mut states, &logs[i][next[i]]);
            next[i] += 1;
        }
    }

    fn scenario(seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut origins: Vec<Origin> = ORIGINS
            .iter()
            .map(|n| Origin {
                name: r(n),
                seq: 0,
                clock: 0,
                states: BTreeMap::new(),
                applied: [0; 3],
            })
            .collect();
        let mut logs: [Vec<LogEntry>; 3] = Default::default();
        for _ in 0..rng.usize(5..60) {
            let i = rng.usize(..3);
            if rng.u8(..4) == 0 {
                let from = rng.usize(..3);
                if from != i {
                    let upto = rng.usize(origins[i].applied[from]..=logs[from].len());
                    receive(&mut origins[i], &logs, from, upto);
                }
            } else {
                let e = write(&mut origins[i], &mut rng);
                origins[i].applied[i] += 1;
                logs[i].push(e);
            }
        }
        let reference = replay(&logs, &mut rng);
        for _ in 0..8 {
            assert_eq!(
                replay(&logs, &mut rng),
                reference,
                "seed {seed}: replicas diverged"
            );
        }
        // The origins themselves converge once they have everything.
        for o in &mut origins {
            for from in 0..3 {
                receive(o, &logs, from, logs[from].len());
            }
            assert_eq!(
                o.states, reference,
                "seed {seed}: origin {} diverged",
                o.name
            );
        }
    }

    #[test]
    fn any_interleaving_converges() {
        let seeds: u64 = std::env::var("MERIDIAN_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2000);
        for seed in 0..seeds {
            scenario(seed);
        }
    }
}
