//! Each decision of the machine, asserted on the commands it returns.

use super::*;

fn r(s: &str) -> RegionName {
    RegionName::new(s).unwrap()
}

fn vv(pairs: &[(&str, u64)]) -> VersionVector {
    let mut v = VersionVector::new();
    for (o, s) in pairs {
        v.advance(&r(o), *s);
    }
    v
}

fn machine(me: &str) -> Replicator {
    let mut c = ReplConfig::new(r(me), vec![r("a"), r("b"), r("c")]);
    c.batch_entries_max = 10;
    c.window_entries_max = 25;
    c.gc_min_entries = 5;
    Replicator::new(c, VersionVector::new(), &BTreeMap::new(), BTreeMap::new())
}

fn ships(cmds: &[Command]) -> Vec<(String, String, u64, u64)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Ship {
                peer,
                origin,
                from_seq,
                max_entries,
            } => Some((
                peer.to_string(),
                origin.to_string(),
                *from_seq,
                *max_entries,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn own_writes_ship_at_once_to_up_peers_only() {
    let mut m = machine("a");
    let up = m.handle(0, Event::PeerUp(r("b")));
    assert_eq!(
        up,
        vec![Command::Ack {
            peer: r("b"),
            vv: VersionVector::new()
        }]
    );
    let cmds = m.handle(1, Event::LocalVv(vv(&[("a", 3)])));
    assert_eq!(ships(&cmds), vec![("b".into(), "a".into(), 1, 3)]);
    assert!(cmds.contains(&Command::Ack {
        peer: r("b"),
        vv: vv(&[("a", 3)])
    }));
    m.validate();
}

#[test]
fn one_batch_in_hand_at_a_time_and_the_window_bounds_the_rest() {
    let mut m = machine("a");
    m.handle(0, Event::PeerUp(r("b")));
    let cmds = m.handle(1, Event::LocalVv(vv(&[("a", 100)])));
    assert_eq!(ships(&cmds), vec![("b".into(), "a".into(), 1, 10)]);
    assert!(
        ships(&m.handle(2, Event::Tick)).is_empty(),
        "a batch is still being handed off"
    );
    let cmds = m.handle(
        3,
        Event::Sent {
            peer: r("b"),
            origin: r("a"),
            through_seq: 10,
        },
    );
    assert_eq!(ships(&cmds), vec![("b".into(), "a".into(), 11, 10)]);
    let cmds = m.handle(
        4,
        Event::Sent {
            peer: r("b"),
            origin: r("a"),
            through_seq: 20,
        },
    );
    assert_eq!(
        ships(&cmds),
        vec![("b".into(), "a".into(), 21, 5)],
        "window of 25 leaves 5"
    );
    let cmds = m.handle(
        5,
        Event::Sent {
            peer: r("b"),
            origin: r("a"),
            through_seq: 25,
        },
    );
    assert!(ships(&cmds).is_empty(), "window full");
    let cmds = m.handle(
        6,
        Event::PeerVv {
            peer: r("b"),
            vv: vv(&[("a", 20)]),
        },
    );
    assert_eq!(ships(&cmds), vec![("b".into(), "a".into(), 26, 10)]);
    assert_eq!(m.pending_ops(&r("b")), 80);
    m.validate();
}

#[test]
fn other_origins_are_relayed_only_after_relay_after() {
    let mut m = machine("b");
    m.handle(0, Event::PeerUp(r("c")));
    // b applies a's entries 1..=5 at t=0; c says it has none of them.
    let cmds = m.handle(0, Event::LocalVv(vv(&[("a", 5)])));
    assert!(ships(&cmds).is_empty(), "a delivers its own entries to c");
    assert!(ships(&m.handle(999, Event::Tick)).is_empty());
    // More of a's entries arrive later: they are not relayed yet either.
    let cmds = m.handle(1500, Event::LocalVv(vv(&[("a", 9)])));
    assert_eq!(
        ships(&cmds),
        vec![("c".into(), "a".into(), 1, 5)],
        "only what b had 1 s ago"
    );
    assert_eq!(m.counters(&r("c")).unwrap().relayed, 5);
    // Once c has a's entries (from a or from us), nothing more goes.
    m.handle(
        1501,
        Event::Sent {
            peer: r("c"),
            origin: r("a"),
            through_seq: 5,
        },
    );
    let cmds = m.handle(
        2600,
        Event::PeerVv {
            peer: r("c"),
            vv: vv(&[("a", 9)]),
        },
    );
    assert!(ships(&cmds).is_empty());
    m.validate();
}

#[test]
fn a_healthy_peer_never_gets_relays() {
    let mut m = machine("b");
    m.handle(0, Event::PeerUp(r("c")));
    for t in 0..50u64 {
        let now = t * 100;
        m.handle(now, Event::LocalVv(vv(&[("a", t + 1)])));
        // c keeps up with a directly, 80 ms behind us.
        let cmds = m.handle(
            now + 80,
            Event::PeerVv {
                peer: r("c"),
                vv: vv(&[("a", t + 1)]),
            },
        );
        assert!(ships(&cmds).is_empty(), "relayed at {now}");
    }
}

#[test]
fn a_lost_link_restarts_from_the_acknowledged_position() {
    let mut m = machine("a");
    m.handle(0, Event::PeerUp(r("b")));
    m.handle(1, Event::LocalVv(vv(&[("a", 8)])));
    m.handle(
        2,
        Event::Sent {
            peer: r("b"),
            origin: r("a"),
            through_seq: 8,
        },
    );
    m.handle(
        3,
        Event::PeerVv {
            peer: r("b"),
            vv: vv(&[("a", 3)]),
        },
    );
    m.handle(4, Event::PeerDown(r("b")));
    assert!(
        ships(&m.handle(5, Event::LocalVv(vv(&[("a", 9)])))).is_empty(),
        "peer is down"
    );
    let cmds = m.handle(6, Event::PeerUp(r("b")));
    assert_eq!(ships(&cmds), vec![("b".into(), "a".into(), 4, 6)]);
    m.validate();
}

#[test]
fn stalled_acknowledgements_trigger_go_back_n() {
    let mut m = machine("a");
    m.handle(0, Event::PeerUp(r("b")));
    m.handle(0, Event::LocalVv(vv(&[("a", 5)])));
    m.handle(
        1,
        Event::Sent {
            peer: r("b"),
            origin: r("a"),
            through_seq: 5,
        },
    );
    assert!(ships(&m.handle(2000, Event::Tick)).is_empty());
    let cmds = m.handle(3001, Event::Tick);
    assert_eq!(ships(&cmds), vec![("b".into(), "a".into(), 1, 5)]);
    assert_eq!(m.counters(&r("b")).unwrap().retransmitted, 5);
}

#[test]
fn a_gap_at_the_peer_rewinds_the_stream() {
    let mut m = machine("a");
    m.handle(0, Event::PeerUp(r("b")));
    m.handle(0, Event::LocalVv(vv(&[("a", 9)])));
    m.handle(
        1,
        Event::Sent {
            peer: r("b"),
            origin: r("a"),
            through_seq: 9,
        },
    );
    let cmds = m.handle(
        2,
        Event::Resend {
            peer: r("b"),
            origin: r("a"),
            from_seq: 4,
        },
    );
    assert_eq!(ships(&cmds), vec![("b".into(), "a".into(), 4, 6)]);
}

#[test]
fn garbage_collection_waits_for_every_region() {
    let mut m = machine("a");
    m.handle(0, Event::PeerUp(r("b")));
    m.handle(0, Event::LocalVv(vv(&[("a", 20)])));
    let cmds = m.handle(
        1,
        Event::PeerVv {
            peer: r("b"),
            vv: vv(&[("a", 20)]),
        },
    );
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Truncate { .. })),
        "c has acknowledged nothing"
    );
    let cmds = m.handle(
        2,
        Event::PeerVv {
            peer: r("c"),
            vv: vv(&[("a", 12)]),
        },
    );
    assert!(cmds.contains(&Command::Truncate {
        origin: r("a"),
        through_seq: 12
    }));
    let cmds = m.handle(
        3,
        Event::PeerVv {
            peer: r("c"),
            vv: vv(&[("a", 14)]),
        },
    );
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Truncate { .. })),
        "below gc_min_entries"
    );
    m.validate();
}

#[test]
fn the_origin_itself_never_gets_its_entries_back() {
    let mut m = machine("b");
    m.handle(0, Event::PeerUp(r("a")));
    m.handle(0, Event::LocalVv(vv(&[("a", 5)])));
    assert!(ships(&m.handle(5000, Event::Tick)).is_empty());
}

#[test]
fn an_unchanged_vector_is_not_acknowledged_again() {
    let mut m = machine("a");
    m.handle(0, Event::PeerUp(r("b")));
    let first = m.handle(1, Event::LocalVv(vv(&[("a", 2)])));
    assert!(first.iter().any(|c| matches!(c, Command::Ack { .. })));
    let again = m.handle(2, Event::LocalVv(vv(&[("a", 2)])));
    assert!(
        !again.iter().any(|c| matches!(c, Command::Ack { .. })),
        "{again:?}"
    );
}
