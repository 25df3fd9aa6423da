//! The merge rules, and the property everything rests on: replicas that
//! apply the same writes, each origin's in sequence, in any interleaving,
//! end with identical states.

use super::*;

#[test]
fn byte_strings_encode_as_before_and_decode_either_way() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Plain {
        v: Vec<u8>,
        o: Option<Vec<u8>>,
        n: Option<Vec<u8>>,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Fast {
        #[serde(with = "bytes")]
        v: Vec<u8>,
        #[serde(with = "bytes::opt")]
        o: Option<Vec<u8>>,
        #[serde(with = "bytes::opt")]
        n: Option<Vec<u8>>,
    }
    let v: Vec<u8> = (0..=255).collect();
    let plain = Plain {
        v: v.clone(),
        o: Some(b"abc".to_vec()),
        n: None,
    };
    let fast = Fast {
        v,
        o: Some(b"abc".to_vec()),
        n: None,
    };
    let p = postcard::to_stdvec(&plain).unwrap();
    assert_eq!(
        postcard::to_stdvec(&fast).unwrap(),
        p,
        "stored bytes unchanged"
    );
    assert_eq!(postcard::from_bytes::<Fast>(&p).unwrap(), fast);
    let j = serde_json::to_string(&plain).unwrap();
    assert_eq!(serde_json::to_string(&fast).unwrap(), j, "JSON unchanged");
    assert_eq!(serde_json::from_str::<Fast>(&j).unwrap(), fast);
}

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

fn put(value: &[u8]) -> Op {
    Op::Put {
        value: value.to_vec(),
        expires_at_ms: None,
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
    let a = entry("a", 1, 10, None, put(b"A"));
    let b = entry("b", 1, 12, None, put(b"B"));
    for order in [[&a, &b], [&b, &a]] {
        let (s, conflicts) = run(&order);
        assert_eq!(s.unwrap().bytes().unwrap(), b"B");
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
    let a = entry("a", 1, 10, None, put(b"A"));
    let b = entry("b", 1, 12, Some(a.version()), put(b"B"));
    for order in [[&a, &b], [&b, &a]] {
        let (s, conflicts) = run(&order);
        assert_eq!(s.unwrap().bytes().unwrap(), b"B");
        assert!(conflicts.is_empty(), "{conflicts:?}");
    }
}

#[test]
fn equal_hlc_ties_break_by_origin() {
    let a = entry("a", 1, 10, None, put(b"A"));
    let b = entry("b", 1, 10, None, put(b"B"));
    assert_eq!(run(&[&b, &a]).0.unwrap().bytes().unwrap(), b"B");
}

#[test]
fn concurrent_increments_all_count() {
    let set = entry("a", 1, 10, None, put(b"5"));
    let t = Target::Existing(set.version());
    let obs = Some(set.version());
    let x = entry(
        "a",
        2,
        20,
        obs.clone(),
        Op::Add {
            target: t.clone(),
            delta: 3,
        },
    );
    let y = entry(
        "b",
        1,
        21,
        obs.clone(),
        Op::Add {
            target: t.clone(),
            delta: -1,
        },
    );
    let z = entry(
        "c",
        1,
        22,
        obs,
        Op::Add {
            target: t,
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
fn concurrent_first_increments_of_a_new_key_all_count() {
    // Three regions INCR a key none of them has seen: the genesis incarnation.
    let x = entry(
        "a",
        1,
        10,
        None,
        Op::Add {
            target: Target::Genesis,
            delta: 1,
        },
    );
    let y = entry(
        "b",
        1,
        11,
        None,
        Op::Add {
            target: Target::Genesis,
            delta: 10,
        },
    );
    let z = entry(
        "c",
        1,
        12,
        None,
        Op::Add {
            target: Target::Genesis,
            delta: 100,
        },
    );
    for order in [[&x, &y, &z], [&z, &y, &x], [&y, &x, &z]] {
        let (s, conflicts) = run(&order);
        assert_eq!(s.unwrap().bytes().unwrap(), b"111");
        assert!(conflicts.is_empty());
    }
}

#[test]
fn increments_after_a_delete_revive_its_tombstone_and_merge() {
    let set = entry("a", 1, 10, None, put(b"7"));
    let del = entry("a", 2, 20, Some(set.version()), Op::Delete);
    let t = Target::Existing(del.version());
    let x = entry(
        "b",
        1,
        30,
        Some(del.version()),
        Op::Add {
            target: t.clone(),
            delta: 2,
        },
    );
    let y = entry(
        "c",
        1,
        31,
        Some(del.version()),
        Op::Add {
            target: t,
            delta: 3,
        },
    );
    for order in [
        [&set, &del, &x, &y],
        [&y, &x, &del, &set],
        [&x, &set, &y, &del],
    ] {
        let (s, _) = run(&order);
        assert_eq!(
            s.unwrap().bytes().unwrap(),
            b"5",
            "the deleted 7 must not come back"
        );
    }
    let (s, _) = run(&[&set, &del]);
    assert!(s.unwrap().is_absent(0));
}

#[test]
fn increments_after_expiry_start_a_fresh_incarnation_everywhere() {
    let set = entry(
        "a",
        1,
        Hlc::new(10, 0).as_u64(),
        None,
        Op::Put {
            value: b"7".to_vec(),
            expires_at_ms: Some(1000),
        },
    );
    let s = run(&[&set]).0.unwrap();
    let t = KeyState::typed_target(Some(&s), 2000);
    assert!(
        matches!(&t, Target::Fresh(v) if v.hlc.wall_ms() == 1000),
        "{t:?}"
    );
    assert_eq!(
        KeyState::typed_target(Some(&s), 999),
        Target::Existing(set.version())
    );
    let x = entry(
        "b",
        1,
        Hlc::new(2000, 0).as_u64(),
        Some(set.version()),
        Op::Add {
            target: t.clone(),
            delta: 1,
        },
    );
    let y = entry(
        "c",
        1,
        Hlc::new(2001, 0).as_u64(),
        Some(set.version()),
        Op::Add {
            target: t,
            delta: 1,
        },
    );
    for order in [[&set, &x, &y], [&y, &x, &set]] {
        let s = run(&order).0.unwrap();
        assert_eq!(s.bytes().unwrap(), b"2");
        assert!(
            !s.is_absent(5000),
            "the fresh incarnation does not inherit the expiry"
        );
    }
}

#[test]
fn regions_that_saw_different_writes_name_the_same_fresh_incarnation() {
    // Found in review: the name must not depend on the key's `last`.
    let set = entry(
        "a",
        1,
        Hlc::new(10, 0).as_u64(),
        None,
        Op::Put {
            value: b"5".to_vec(),
            expires_at_ms: Some(1000),
        },
    );
    let late = entry(
        "c",
        1,
        Hlc::new(1001, 0).as_u64(),
        Some(set.version()),
        Op::Add {
            target: Target::Existing(set.version()),
            delta: 1,
        },
    );
    let seen_late = run(&[&set, &late]).0.unwrap();
    let not_seen = run(&[&set]).0.unwrap();
    assert_eq!(
        KeyState::typed_target(Some(&seen_late), 2000),
        KeyState::typed_target(Some(&not_seen), 2000)
    );
}

#[test]
fn concurrent_writes_of_different_types_show_the_newest_type_everywhere() {
    let h = entry(
        "a",
        1,
        10,
        None,
        Op::HashSet {
            target: Target::Genesis,
            fields: vec![(b"f".to_vec(), b"v".to_vec())],
        },
    );
    let s = entry(
        "b",
        1,
        11,
        None,
        Op::SetAdd {
            target: Target::Genesis,
            members: vec![b"m".to_vec()],
        },
    );
    for order in [[&h, &s], [&s, &h]] {
        let st = run(&order).0.unwrap();
        assert_eq!(st.kind(), Some(Kind::Set));
        assert_eq!(st.set_members(), vec![&b"m"[..]]);
        assert!(st.hash_fields().is_empty());
    }
}

#[test]
fn pending_incarnation_is_hidden_until_its_creator_arrives() {
    let set = entry("a", 1, 10, None, put(b"5"));
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
fn delete_beats_older_increments_and_reports_only_the_unseen_one() {
    let set = entry("a", 1, 10, None, put(b"1"));
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
    // The delete saw the SET (no conflict) but not the concurrent INCR: the
    // same single conflict whatever the arrival order.
    for order in [[&set, &inc, &del], [&del, &set, &inc], [&inc, &del, &set]] {
        let (s, conflicts) = run(&order);
        assert!(s.unwrap().is_absent(0));
        assert_eq!(
            conflicts,
            vec![Conflict {
                winner: del.version(),
                loser: inc.version()
            }],
            "{order:?}"
        );
    }
}

#[test]
fn hash_fields_merge_per_field() {
    let h = entry(
        "a",
        1,
        10,
        None,
        Op::HashSet {
            target: Target::Genesis,
            fields: vec![(b"f".to_vec(), b"1".to_vec())],
        },
    );
    let x = entry(
        "a",
        2,
        20,
        Some(h.version()),
        Op::HashSet {
            target: Target::Genesis,
            fields: vec![(b"g".to_vec(), b"a".to_vec())],
        },
    );
    let y = entry(
        "b",
        1,
        21,
        Some(h.version()),
        Op::HashSet {
            target: Target::Genesis,
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
            target: Target::Genesis,
            fields: vec![b"f".to_vec()],
        },
    );
    let s = run(&[&y, &d, &h, &x]).0.unwrap();
    assert_eq!(
        s.hash_fields(),
        vec![(&b"g"[..], &b"b"[..]), (&b"h"[..], &b"z"[..])]
    );
}

#[test]
fn set_add_wins_over_a_concurrent_remove() {
    let add1 = entry(
        "a",
        1,
        10,
        None,
        Op::SetAdd {
            target: Target::Genesis,
            members: vec![b"m".to_vec()],
        },
    );
    let tag = add1.version();
    // b removes m having seen add1; c concurrently re-adds m.
    let rem = entry(
        "b",
        1,
        20,
        Some(tag.clone()),
        Op::SetRemove {
            target: Target::Genesis,
            members: vec![(b"m".to_vec(), vec![tag.clone()])],
        },
    );
    let add2 = entry(
        "c",
        1,
        19,
        Some(tag),
        Op::SetAdd {
            target: Target::Genesis,
            members: vec![b"m".to_vec()],
        },
    );
    for order in [
        [&add1, &rem, &add2],
        [&add2, &rem, &add1],
        [&rem, &add1, &add2],
    ] {
        let s = run(&order).0.unwrap();
        assert_eq!(
            s.set_members(),
            vec![&b"m"[..]],
            "add-wins violated for {order:?}"
        );
    }
    assert!(run(&[&add1, &rem]).0.unwrap().is_absent(0));
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
            target: Target::Existing(set.version()),
            expires_at_ms: None,
        },
    );
    let mut s = run(&[&persist, &set]).0.unwrap();
    assert_eq!(s.expires_at_ms(), None);
    assert!(!s.is_absent(5000));
    let mut s2 = run(&[&set]).0.unwrap();
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
            target: Target::Existing(set.version()),
            expires_at_ms: Some(99_999),
        },
    );
    assert!(!apply(Some(&s2), &late).changed);
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
    //! has seen (with its own clock, TTLs that expire, every op type); then
    //! replicas apply everything in many interleavings.

    use super::*;

    const KEYS: [&[u8]; 3] = [b"k0", b"k1", b"k2"];

    struct Origin {
        name: RegionName,
        seq: u64,
        clock_ms: u64,
        states: BTreeMap<Vec<u8>, KeyState>,
        applied: [usize; 3],
    }

    fn apply_into(states: &mut BTreeMap<Vec<u8>, KeyState>, e: &LogEntry) {
        let a = apply(states.get(&e.key), e);
        states.insert(e.key.clone(), a.state);
    }

    fn write(o: &mut Origin, rng: &mut fastrand::Rng) -> LogEntry {
        o.clock_ms += 1 + rng.u64(..3);
        let now = o.clock_ms;
        let key = KEYS[rng.usize(..KEYS.len())].to_vec();
        let cur = o.states.get(&key);
        let observed = cur.map(|s| s.last.clone());
        let target = KeyState::typed_target(cur, now);
        let live = cur.filter(|s| !s.is_absent(now));
        let kind = live.and_then(KeyState::kind);
        let member = vec![b'm', b'0' + rng.u8(..3)];
        let byte = rng.u8(..);
        let digit = rng.u8(..10);
        let delta = rng.i64(-5..6);
        let ttl = (rng.u8(..3) == 0).then(|| now + rng.u64(1..15));
        let numeric = live
            .and_then(KeyState::bytes)
            .is_some_and(|b| std::str::from_utf8(&b).is_ok_and(|t| t.parse::<i64>().is_ok()));
        let op = match (kind, rng.u8(..10)) {
            (_, 0) => Op::Delete,
            (_, 1) => Op::Put {
                value: vec![b'0' + digit],
                expires_at_ms: ttl,
            },
            (None, 2..=4) => Op::Add { target, delta },
            (None, 5..=7) => Op::HashSet {
                target,
                fields: vec![(member, vec![byte])],
            },
            (None, _) => Op::SetAdd {
                target,
                members: vec![member],
            },
            (Some(_), 9) => Op::Expire {
                target,
                expires_at_ms: ttl,
            },
            (Some(Kind::String), n) if numeric && n < 7 => Op::Add { target, delta },
            (Some(Kind::String), _) => Op::Expire {
                target,
                expires_at_ms: None,
            },
            (Some(Kind::Hash), n) if n < 7 => Op::HashSet {
                target,
                fields: vec![(member, vec![byte])],
            },
            (Some(Kind::Hash), _) => Op::HashDel {
                target,
                fields: vec![member],
            },
            (Some(Kind::Set), n) if n < 6 => Op::SetAdd {
                target,
                members: vec![member],
            },
            (Some(Kind::Set), _) => {
                let seen = live
                    .unwrap()
                    .set
                    .get(&member)
                    .map(Member::live_adds)
                    .unwrap_or_default();
                Op::SetRemove {
                    target,
                    members: vec![(member, seen)],
                }
            }
        };
        o.seq += 1;
        let e = LogEntry {
            origin: o.name.clone(),
            seq: o.seq,
            hlc: Hlc::new(now, 0),
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
            o.clock_ms = o.clock_ms.max(e.hlc.wall_ms());
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

    /// The logs three origins write for `seed`, and the origins' own states.
    fn histories(seed: u64) -> ([Vec<LogEntry>; 3], Vec<Origin>) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut origins: Vec<Origin> = ["a", "b", "c"]
            .iter()
            .map(|n| Origin {
                name: r(n),
                seq: 0,
                clock_ms: 1000,
                states: BTreeMap::new(),
                applied: [0; 3],
            })
            .collect();
        let mut logs: [Vec<LogEntry>; 3] = Default::default();
        for _ in 0..rng.usize(5..80) {
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
        (logs, origins)
    }

    fn scenario(seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(31));
        let (logs, mut origins) = histories(seed);
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

    /// Kind, string, hash fields, set members, expiry: what a reader sees.
    type View = (
        Option<Kind>,
        Option<Vec<u8>>,
        Vec<(Vec<u8>, Vec<u8>)>,
        Vec<Vec<u8>>,
        Option<u64>,
    );

    /// What a reader sees of a key at `now`, for comparing replicas.
    fn visible(s: Option<&KeyState>, now: u64) -> Option<View> {
        let s = s.filter(|s| !s.is_absent(now))?;
        Some((
            s.kind(),
            s.bytes(),
            s.hash_fields()
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
            s.set_members().into_iter().map(|m| m.to_vec()).collect(),
            s.expires_at_ms(),
        ))
    }

    /// Applies a per-origin prefix of each log (lengths `upto`), interleaved.
    fn replay_prefix(
        logs: &[Vec<LogEntry>; 3],
        upto: [usize; 3],
        rng: &mut fastrand::Rng,
    ) -> BTreeMap<Vec<u8>, KeyState> {
        let cut: [Vec<LogEntry>; 3] = std::array::from_fn(|i| logs[i][..upto[i]].to_vec());
        replay(&cut, rng)
    }

    /// Anti-entropy's premise: joining two replicas' states shows what a
    /// replica that applied both replicas' writes shows.
    fn join_scenario(seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
        let (logs, _) = histories(seed);
        let a: [usize; 3] = std::array::from_fn(|i| rng.usize(..=logs[i].len()));
        let b: [usize; 3] = std::array::from_fn(|i| rng.usize(..=logs[i].len()));
        let union: [usize; 3] = std::array::from_fn(|i| a[i].max(b[i]));
        let (ra, rb, ru) = (
            replay_prefix(&logs, a, &mut rng),
            replay_prefix(&logs, b, &mut rng),
            replay_prefix(&logs, union, &mut rng),
        );
        for key in KEYS {
            let joined = match (ra.get(key), rb.get(key)) {
                (Some(x), Some(y)) => {
                    let j = join(x, y);
                    assert_eq!(j, join(y, x), "seed {seed}: join is not commutative");
                    assert_eq!(join(&j, &j), j, "seed {seed}: join is not idempotent");
                    Some(j)
                }
                (x, y) => x.or(y).cloned(),
            };
            for now in [0, 1500, u64::MAX / 4] {
                assert_eq!(
                    visible(joined.as_ref(), now),
                    visible(ru.get(key), now),
                    "seed {seed}: join disagrees with apply on {key:?} at {now}"
                );
            }
        }
    }

    #[test]
    fn joining_replicas_equals_applying_their_union() {
        let seeds: u64 = std::env::var("MERIDIAN_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2000);
        for seed in 0..seeds {
            join_scenario(seed);
        }
    }

    /// `MERIDIAN_SEEDS=N` runs more seeds; a failing seed names itself.
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

#[test]
fn tokens_round_trip_and_bad_ones_say_why() {
    let vv = VersionVector::parse_token("us-east:17,eu-west:3").unwrap();
    assert_eq!(vv.to_token(), "eu-west:3,us-east:17");
    assert!(VersionVector::parse_token("us-east")
        .unwrap_err()
        .contains("not region:seq"));
    assert!(VersionVector::parse_token("us-east:x")
        .unwrap_err()
        .contains("no sequence"));
    assert!(VersionVector::parse_token("US:1").is_err());
    assert_eq!(
        VersionVector::parse_token("").unwrap(),
        VersionVector::new()
    );
}
