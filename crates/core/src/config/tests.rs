//! Every validation rule has a test here: one good config, then one broken
//! field at a time, asserting the exact error variant and field path.

use std::time::Duration;

use super::*;
use crate::region::RegionName;

const GOOD: &str = r#"
[cluster]
name = "test"
secret = "0123456789abcdef0123"
admin_token = "tok"

[[regions]]
name = "us-east"
peer = "127.0.0.1:7001"
resp = "127.0.0.1:6001"
admin = "127.0.0.1:8001"

[[regions]]
name = "eu-west"
peer = "127.0.0.1:7002"
resp = "127.0.0.1:6002"
admin = "127.0.0.1:8002"

[[regions]]
name = "ap-south"
peer = "127.0.0.1:7003"
resp = "127.0.0.1:6003"
admin = "127.0.0.1:8003"

[wan]
emulate = true

[[wan.links]]
a = "us-east"
b = "eu-west"
rtt_ms = 80
jitter_ms = 2
bandwidth_mbit = 100
loss_pct = 1

[[tables]]
name = "sessions"
key_prefixes = ["session:"]

[[tables]]
name = "ledger"
key_prefixes = ["ledger:"]
mode = { single_master = { home = "us-east" } }

[[tables]]
name = "eu_users"
key_prefixes = ["eu:"]
mode = { pinned = { regions = ["eu-west"] } }
conflict = "lww_hash"
"#;

fn errors_of(text: &str) -> Vec<ConfigError> {
    TopologyConfig::from_toml(text)
        .and_then(|c| c.validate())
        .expect_err("config should be rejected")
        .0
}

fn edit(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "fixture lacks {from:?}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn good_config_validates_with_defaults_filled_in() {
    let t = TopologyConfig::from_toml(GOOD).unwrap().validate().unwrap();
    assert_eq!(t.regions.len(), 3);
    assert_eq!(t.master_region.as_str(), "us-east");
    let us = RegionName::new("us-east").unwrap();
    let eu = RegionName::new("eu-west").unwrap();
    let ap = RegionName::new("ap-south").unwrap();
    let row = t.link(&eu, &us);
    assert_eq!(row.one_way_delay, Duration::from_millis(40));
    assert_eq!(row.jitter, Duration::from_millis(2));
    assert_eq!(row.bandwidth_bytes_per_sec, Some(12_500_000));
    assert!((row.loss - 0.01).abs() < 1e-12);
    // Pairs without a row come from the default profile.
    assert_eq!(t.link(&us, &ap).one_way_delay, Duration::from_millis(108));
    assert_eq!(t.link(&ap, &eu).one_way_delay, Duration::from_millis(60));
    assert_eq!(t.tables[1].mode, TableMode::SingleMaster { home: us });
    assert_eq!(t.tables[2].conflict, ConflictPolicy::LwwHash);
    assert_eq!(t.peers_of(&eu).count(), 2);
}

#[test]
fn rendered_config_round_trips() {
    let c = TopologyConfig::from_toml(GOOD).unwrap();
    let again = TopologyConfig::from_toml(&c.to_toml()).unwrap();
    assert_eq!(again.tables[2].mode, c.tables[2].mode);
    again.validate().unwrap();
}

#[test]
fn syntax_errors_and_unknown_fields_name_the_line() {
    let errs = errors_of("[cluster\n");
    assert!(matches!(&errs[0], ConfigError::Parse { message } if message.contains("line 1")));
    let errs = errors_of(&edit("admin_token = \"tok\"", "admin_tokn = \"tok\""));
    assert!(
        matches!(&errs[0], ConfigError::Parse { message } if message.contains("admin_tokn")),
        "{errs:?}"
    );
}

#[test]
fn missing_weak_and_double_secrets() {
    let errs = errors_of(&edit("secret = \"0123456789abcdef0123\"", ""));
    assert_eq!(errs, vec![ConfigError::MissingSecret]);
    let errs = errors_of(&edit(
        "secret = \"0123456789abcdef0123\"",
        "secret = \"short\"",
    ));
    assert_eq!(errs, vec![ConfigError::WeakSecret { len: 5 }]);
    let errs = errors_of(&edit(
        "secret = \"0123456789abcdef0123\"",
        "secret = \"0123456789abcdef0123\"\nsecret_file = \"/etc/s\"",
    ));
    assert_eq!(errs, vec![ConfigError::SecretTwice]);
}

#[test]
fn bad_cluster_name() {
    let errs = errors_of(&edit("name = \"test\"", "name = \"has space\""));
    assert!(matches!(&errs[0], ConfigError::InvalidClusterName { .. }));
}

#[test]
fn no_regions() {
    let text = "[cluster]\nsecret = \"0123456789abcdef0123\"\nregions = []\n";
    let errs = errors_of(
        &text
            .replace("regions = []\n", "")
            .replace("[cluster]", "regions = []\n[cluster]"),
    );
    assert!(errs.contains(&ConfigError::NoRegions), "{errs:?}");
}

#[test]
fn invalid_and_duplicate_region_names() {
    let errs = errors_of(&edit("name = \"ap-south\"", "name = \"AP_South\""));
    assert!(
        matches!(&errs[0], ConfigError::InvalidRegionName { field, .. } if field == "regions[2].name"),
        "{errs:?}"
    );
    let errs = errors_of(&edit("name = \"ap-south\"", "name = \"eu-west\""));
    assert!(
        matches!(&errs[0], ConfigError::DuplicateRegion { field, name } if field == "regions[2].name" && name == "eu-west"),
        "{errs:?}"
    );
}

#[test]
fn duplicate_port_names_both_fields() {
    let errs = errors_of(&edit(
        "resp = \"127.0.0.1:6002\"",
        "resp = \"127.0.0.1:8001\"",
    ));
    assert_eq!(
        errs,
        vec![ConfigError::DuplicateAddress {
            field: "regions[1].resp".into(),
            other_field: "regions[0].admin".into(),
            addr: "127.0.0.1:8001".parse().unwrap(),
        }]
    );
    // The wildcard address clashes with any IP on the same port.
    let errs = errors_of(&edit(
        "resp = \"127.0.0.1:6002\"",
        "resp = \"0.0.0.0:6001\"",
    ));
    assert!(
        matches!(&errs[0], ConfigError::DuplicateAddress { .. }),
        "{errs:?}"
    );
    // Same port on different IPs is fine.
    let ok = edit("resp = \"127.0.0.1:6002\"", "resp = \"127.0.0.2:6001\"");
    TopologyConfig::from_toml(&ok).unwrap().validate().unwrap();
}

#[test]
fn port_zero_is_refused() {
    let errs = errors_of(&edit(
        "admin = \"127.0.0.1:8003\"",
        "admin = \"127.0.0.1:0\"",
    ));
    assert_eq!(
        errs,
        vec![ConfigError::PortZero {
            field: "regions[2].admin".into()
        }]
    );
}

#[test]
fn unknown_region_in_latency_row() {
    let errs = errors_of(&edit("b = \"eu-west\"", "b = \"eu-wset\""));
    assert!(
        matches!(&errs[0], ConfigError::UnknownRegion { field, name, known }
            if field == "wan.links[0].b" && name == "eu-wset" && known == "us-east, eu-west, ap-south"),
        "{errs:?}"
    );
}

#[test]
fn negative_or_absurd_link_figures() {
    for (from, to, field) in [
        ("rtt_ms = 80", "rtt_ms = -5", "wan.links[0].rtt_ms"),
        ("rtt_ms = 80", "rtt_ms = 1e9", "wan.links[0].rtt_ms"),
        ("rtt_ms = 80", "rtt_ms = nan", "wan.links[0].rtt_ms"),
        ("jitter_ms = 2", "jitter_ms = -1", "wan.links[0].jitter_ms"),
        ("loss_pct = 1", "loss_pct = 100", "wan.links[0].loss_pct"),
        (
            "bandwidth_mbit = 100",
            "bandwidth_mbit = 0",
            "wan.links[0].bandwidth_mbit",
        ),
    ] {
        let errs = errors_of(&edit(from, to));
        assert!(
            matches!(&errs[0], ConfigError::OutOfRange { field: f, .. } if f == field),
            "{to}: {errs:?}"
        );
    }
}

#[test]
fn self_link_and_duplicate_link() {
    let errs = errors_of(&edit("b = \"eu-west\"", "b = \"us-east\""));
    assert!(matches!(&errs[0], ConfigError::SelfLink { .. }), "{errs:?}");
    let doubled = format!("{GOOD}\n[[wan.links]]\na = \"eu-west\"\nb = \"us-east\"\nrtt_ms = 70\n");
    // Appending after [[tables]] would land in the table; insert before it.
    let doubled = doubled.replacen(
        "[[tables]]",
        "[[wan.links]]\na = \"eu-west\"\nb = \"us-east\"\nrtt_ms = 70\n\n[[tables]]",
        1,
    );
    let errs = errors_of(&doubled);
    assert!(
        errs.iter().any(
            |e| matches!(e, ConfigError::DuplicateLink { field, other_field, .. }
            if field == "wan.links[1]" && other_field == "wan.links[0]")
        ),
        "{errs:?}"
    );
}

#[test]
fn emulation_needs_a_latency_for_every_pair() {
    let text = edit("name = \"ap-south\"", "name = \"mars-base\"");
    let errs = errors_of(&text);
    assert!(
        errs.contains(&ConfigError::MissingLatency {
            a: "us-east".into(),
            b: "mars-base".into()
        }),
        "{errs:?}"
    );
    // A location makes the pair derivable.
    let located = text.replacen(
        "admin = \"127.0.0.1:8003\"",
        "admin = \"127.0.0.1:8003\"\nlocation = { lat = 10.0, lon = 10.0 }",
        1,
    );
    TopologyConfig::from_toml(&located)
        .unwrap()
        .validate()
        .unwrap();
    // Without emulation no latency is needed.
    let off = text.replacen("emulate = true", "emulate = false", 1);
    TopologyConfig::from_toml(&off).unwrap().validate().unwrap();
}

#[test]
fn location_off_the_globe() {
    let text = edit(
        "admin = \"127.0.0.1:8003\"",
        "admin = \"127.0.0.1:8003\"\nlocation = { lat = 91.0, lon = 0.0 }",
    );
    assert_eq!(
        errors_of(&text),
        vec![ConfigError::InvalidLocation {
            field: "regions[2].location".into()
        }]
    );
}

/// TOML allows `nan` and `inf`: such a location is refused like any other
/// off the globe, and the latency derived from it must not panic on its
/// way to a `Duration` (found writing the edge_config fuzz target).
#[test]
fn non_finite_location_is_refused_without_panicking() {
    // No published row and no catalogue city: the location is what counts.
    let text = edit("name = \"ap-south\"", "name = \"mars-base\"");
    for (lat, lon) in [
        ("nan", "0.0"),
        ("inf", "0.0"),
        ("0.0", "-inf"),
        ("nan", "nan"),
    ] {
        let located = text.replacen(
            "admin = \"127.0.0.1:8003\"",
            &format!("admin = \"127.0.0.1:8003\"\nlocation = {{ lat = {lat}, lon = {lon} }}"),
            1,
        );
        assert_eq!(
            errors_of(&located),
            vec![ConfigError::InvalidLocation {
                field: "regions[2].location".into()
            }],
            "lat = {lat}, lon = {lon}"
        );
    }
}

#[test]
fn table_homed_or_pinned_in_unknown_region() {
    let errs = errors_of(&edit("home = \"us-east\"", "home = \"us-central\""));
    assert!(
        matches!(&errs[0], ConfigError::UnknownRegion { field, .. } if field == "tables[1].mode.single_master.home"),
        "{errs:?}"
    );
    let errs = errors_of(&edit(
        "regions = [\"eu-west\"]",
        "regions = [\"eu-west\", \"eu-north\"]",
    ));
    assert!(
        matches!(&errs[0], ConfigError::UnknownRegion { field, .. } if field == "tables[2].mode.pinned.regions[1]"),
        "{errs:?}"
    );
    let errs = errors_of(&edit("regions = [\"eu-west\"]", "regions = []"));
    assert!(
        matches!(&errs[0], ConfigError::EmptyPinnedRegions { .. }),
        "{errs:?}"
    );
}

#[test]
fn write_ack_defaults_to_local_and_global_counts_regions() {
    let t = TopologyConfig::from_toml(GOOD).unwrap().validate().unwrap();
    assert_eq!(t.tables[0].write_ack, WriteAck::Local);
    let ledger = "mode = { single_master = { home = \"us-east\" } }";
    let t = TopologyConfig::from_toml(&edit(ledger, &format!("{ledger}\nwrite_ack = \"global\"")))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(t.tables[1].write_ack, WriteAck::Global { regions: 3 });
    let t = TopologyConfig::from_toml(&edit(
        ledger,
        &format!("{ledger}\nwrite_ack = \"global\"\nack_regions = 2"),
    ))
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(t.tables[1].write_ack, WriteAck::Global { regions: 2 });
    for bad in [0, 4] {
        let errs = errors_of(&edit(
            ledger,
            &format!("{ledger}\nwrite_ack = \"global\"\nack_regions = {bad}"),
        ));
        assert!(
            matches!(&errs[0], ConfigError::LimitOutOfRange { field, value, .. }
                if field == "tables[1].ack_regions" && *value == bad),
            "{errs:?}"
        );
    }
    let errs = errors_of(&edit(ledger, &format!("{ledger}\nack_regions = 2")));
    assert!(
        matches!(&errs[0], ConfigError::AckRegionsWithoutGlobal { field } if field == "tables[1].ack_regions"),
        "{errs:?}"
    );
    let errs = errors_of(&edit(
        ledger,
        &format!("{ledger}\nwrite_ack = \"everywhere\""),
    ));
    assert!(matches!(&errs[0], ConfigError::Parse { .. }), "{errs:?}");
}

#[test]
fn unknown_master_region() {
    let errs = errors_of(&edit(
        "admin_token = \"tok\"",
        "admin_token = \"tok\"\nmaster_region = \"nowhere\"",
    ));
    assert!(
        matches!(&errs[0], ConfigError::UnknownRegion { field, .. } if field == "cluster.master_region"),
        "{errs:?}"
    );
}

#[test]
fn table_names_and_prefixes() {
    let errs = errors_of(&edit("name = \"ledger\"", "name = \"sessions\""));
    assert!(
        matches!(&errs[0], ConfigError::DuplicateTable { .. }),
        "{errs:?}"
    );
    let errs = errors_of(&edit("name = \"ledger\"", "name = \"Ledger!\""));
    assert!(
        matches!(&errs[0], ConfigError::InvalidTableName { .. }),
        "{errs:?}"
    );
    let errs = errors_of(&edit(
        "key_prefixes = [\"ledger:\"]",
        "key_prefixes = [\"session:\"]",
    ));
    assert!(
        matches!(&errs[0], ConfigError::DuplicatePrefix { field, other_field, .. }
            if field == "tables[1].key_prefixes[0]" && other_field == "tables[0].key_prefixes[0]"),
        "{errs:?}"
    );
    let errs = errors_of(&edit(
        "key_prefixes = [\"ledger:\"]",
        "key_prefixes = [\"\"]",
    ));
    assert!(
        matches!(&errs[0], ConfigError::EmptyPrefix { .. }),
        "{errs:?}"
    );
    let errs = errors_of(&edit("conflict = \"lww_hash\"", "conflict = \"mystery\""));
    assert!(matches!(&errs[0], ConfigError::Parse { .. }), "{errs:?}");
}

#[test]
fn all_problems_are_reported_together_with_fixes() {
    let text = edit("rtt_ms = 80", "rtt_ms = -1").replacen("home = \"us-east\"", "home = \"x\"", 1);
    let err = TopologyConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(err.0.len(), 2);
    let shown = err.to_string();
    assert!(shown.contains("2 problems"), "{shown}");
    assert!(
        shown.contains("wan.links[0].rtt_ms: -1 is out of range"),
        "{shown}"
    );
    assert!(shown.contains("define it under [[regions]]"), "{shown}");
}

#[test]
fn link_figures_round_trip_through_conditions() {
    let f = LinkFigures {
        rtt_ms: 80.0,
        jitter_ms: 3.0,
        bandwidth_mbit: Some(100.0),
        loss_pct: 2.5,
    };
    let back = LinkFigures::from(f.to_conditions("x").unwrap());
    assert!((back.rtt_ms - 80.0).abs() < 1e-6 && (back.loss_pct - 2.5).abs() < 1e-9);
    assert_eq!(back.bandwidth_mbit, Some(100.0));
    let bad = LinkFigures {
        rtt_ms: -1.0,
        loss_pct: 100.0,
        ..f
    };
    let errs = bad.to_conditions("admin").unwrap_err();
    assert_eq!(errs.len(), 2);
    assert!(matches!(&errs[0], ConfigError::OutOfRange { field, .. } if field == "admin.rtt_ms"));
}

#[test]
fn keys_map_to_the_table_with_the_longest_prefix() {
    let text = GOOD.replace(
        "key_prefixes = [\"session:\"]",
        "key_prefixes = [\"session:\", \"s\"]",
    );
    let t = TopologyConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap();
    let name = |k: &str| t.table_for_key(k.as_bytes()).map(|t| t.name.as_str());
    assert_eq!(name("session:42"), Some("sessions"));
    assert_eq!(name("sx"), Some("sessions"));
    assert_eq!(name("ledger:1"), Some("ledger"));
    assert_eq!(name("eu:anna"), Some("eu_users"));
    assert_eq!(name("cart:1"), None);
    assert_eq!(name("ledger"), None, "a prefix must match in full");
}

#[test]
fn resp_defaults_and_limits() {
    let t = TopologyConfig::from_toml(GOOD).unwrap().validate().unwrap();
    assert_eq!(t.resp.bulk_bytes_max, 16 * 1024 * 1024);
    assert!(!t.resp.auth_required());
    let text = format!(
        "{GOOD}\n[resp]\nbulk_bytes_max = 10\nconnections_max = 0\nreply_bytes_max = 2048\n"
    );
    let errs = errors_of(&text);
    let fields: Vec<String> = errs
        .iter()
        .map(|e| match e {
            ConfigError::LimitOutOfRange { field, .. } => field.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        ["resp.bulk_bytes_max", "resp.connections_max"],
        "reply_bytes_max of 2048 is fine next to a 1 KiB floor"
    );
    let text = format!("{GOOD}\n[resp]\nbulk_bytes_max = 4096\nreply_bytes_max = 2048\n");
    assert!(matches!(&errors_of(&text)[0],
        ConfigError::LimitOutOfRange { field, .. } if field == "resp.reply_bytes_max"));
    let text = format!("{GOOD}\n[resp]\nbulk_size = 1\n");
    assert!(matches!(&errors_of(&text)[0], ConfigError::Parse { .. }));
}

#[test]
fn resp_users_must_be_usable() {
    let text = format!(
        "{GOOD}\n[resp]\nrequirepass = \"pw\"\n\
         [[resp.users]]\nname = \"app\"\npassword = \"x\"\n\
         [[resp.users]]\nname = \"app\"\npassword = \"y\"\n\
         [[resp.users]]\nname = \"default\"\npassword = \"z\"\n\
         [[resp.users]]\nname = \"ops\"\npassword = \"\"\n"
    );
    let errs = errors_of(&text);
    let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(shown[0].starts_with("resp.users[1]: user `app` is defined twice"));
    assert!(shown[1].starts_with("resp.users[2]: user `default` is also given"));
    assert!(shown[2].starts_with("resp.users[3]: user `ops` has an empty password"));
    let ok = format!("{GOOD}\n[resp]\nrequirepass = \"pw\"\n");
    let t = TopologyConfig::from_toml(&ok).unwrap().validate().unwrap();
    assert!(t.resp.auth_required());
}

#[test]
fn pinned_tables_refuse_outside_by_default_and_say_who_holds_them() {
    use super::{PinnedOutside, TableMode};
    let t = TopologyConfig::from_toml(GOOD).unwrap().validate().unwrap();
    let (us, eu) = (
        RegionName::new("us-east").unwrap(),
        RegionName::new("eu-west").unwrap(),
    );
    assert!(matches!(
        &t.tables[2].mode,
        TableMode::Pinned {
            outside: PinnedOutside::Refuse,
            ..
        }
    ));
    assert!(t.holds(&eu, "eu_users") && !t.holds(&us, "eu_users"));
    assert!(t.holds(&us, "default") && t.holds(&us, "ledger"));
    assert!(!t.tables_held_by(&us).contains(&"eu_users".to_string()));
    assert_eq!(t.residency().len(), 1);

    let forward = edit(
        "regions = [\"eu-west\"]",
        "regions = [\"eu-west\"], outside = \"forward\"",
    );
    let t = TopologyConfig::from_toml(&forward)
        .unwrap()
        .validate()
        .unwrap();
    assert!(matches!(
        &t.tables[2].mode,
        TableMode::Pinned {
            outside: PinnedOutside::Forward,
            ..
        }
    ));
    let bad = edit(
        "regions = [\"eu-west\"]",
        "regions = [\"eu-west\"], outside = \"copy\"",
    );
    let e = TopologyConfig::from_toml(&bad).unwrap_err().to_string();
    assert!(e.contains("refuse") && e.contains("forward"), "{e}");
}

#[test]
fn edge_settings_validate_and_default() {
    let text = edit(
        "admin = \"127.0.0.1:8001\"",
        "admin = \"127.0.0.1:8001\"\nedge = \"127.0.1.1:8080\"\nbackends = [{ addr = \"127.0.0.1:9001\", weight = 3 }]",
    ) + "\n[edge]\npolicy = \"least_request\"\nsticky_cookie = \"pin\"\n[[routes]]\npath_prefix = \"/ledger\"\nwrites_to_home_of = \"ledger\"\n";
    let t = TopologyConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(t.edge.policy, BalancePolicy::LeastRequest);
    assert_eq!(t.edge.health.rise, 2);
    assert_eq!(t.edge.probe.interval_ms, 250);
    assert_eq!(t.regions[0].edge, Some("127.0.1.1:8080".parse().unwrap()));
    assert_eq!(t.regions[0].backends[0].weight, 3);
    assert_eq!(t.routes[0].writes_to_home_of.as_deref(), Some("ledger"));
}

#[test]
fn bad_edge_settings_name_the_field() {
    let cases = [
        (
            "[edge]\nconnect_timeout_ms = 0\n",
            "edge.connect_timeout_ms",
        ),
        ("[edge]\nheader_bytes_max = 100\n", "edge.header_bytes_max"),
        ("[edge]\nretry_budget_pct = 150\n", "edge.retry_budget_pct"),
        (
            "[edge.health]\ninterval_ms = 100\ntimeout_ms = 500\n",
            "edge.health.timeout_ms",
        ),
        ("[edge.health]\npath = \"healthz\"\n", "edge.health.path"),
        (
            "[edge.outlier]\nbase_ejection_ms = 1000\nmax_ejection_ms = 10\n",
            "edge.outlier.max_ejection_ms",
        ),
        ("[edge]\nsticky_cookie = \"a b\"\n", "edge.sticky_cookie"),
        (
            "[[routes]]\npath_prefix = \"orders\"\n",
            "routes[0].path_prefix",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\n[[routes]]\npath_prefix = \"/a\"\n",
            "routes[1].path_prefix",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nwrites_to_home_of = \"nope\"\n",
            "routes[0].writes_to_home_of",
        ),
    ];
    for (extra, field) in cases {
        let errors = errors_of(&format!("{GOOD}\n{extra}"));
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                ConfigError::EdgeOutOfRange { field, .. }
                | ConfigError::InvalidRoute { field, .. } => field.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(fields, [field], "{extra}");
    }
    let clash = edit(
        "admin = \"127.0.0.1:8001\"",
        "admin = \"127.0.0.1:8001\"\nedge = \"127.0.0.1:8001\"",
    );
    assert!(
        matches!(&errors_of(&clash)[0], ConfigError::DuplicateAddress { field, .. } if field == "regions[0].edge")
    );
    let weight = edit(
        "admin = \"127.0.0.1:8001\"",
        "admin = \"127.0.0.1:8001\"\nbackends = [{ addr = \"127.0.0.1:9001\", weight = 0 }]",
    );
    assert!(
        matches!(&errors_of(&weight)[0], ConfigError::InvalidRoute { field, .. } if field == "regions[0].backends[0].weight")
    );
}

/// The edge_config fuzz target's contract on the inputs that once broke it:
/// its preamble, then the input, is a config or a list of errors, never a
/// panic.
#[test]
fn inputs_that_once_failed_the_edge_config_fuzzer_validate_without_panicking() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let preamble = std::fs::read_to_string(fuzz.join("fuzz_targets/edge_config_preamble.toml"))
        .expect("the fuzz target's preamble exists");
    // Valid alone, so whatever happens below is the input's doing.
    TopologyConfig::from_toml(&preamble)
        .unwrap()
        .validate()
        .unwrap();
    let dir = fuzz.join("regressions/edge_config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/edge_config exists") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let text = format!("{preamble}\n{}", String::from_utf8_lossy(&data));
        let _ = TopologyConfig::from_toml(&text).and_then(|c| c.validate());
        seen += 1;
    }
    assert!(seen > 0, "no regression inputs in {}", dir.display());
}
