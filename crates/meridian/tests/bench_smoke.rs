//! `meridian bench --quick` runs end to end and writes a well-formed report.
//! A smoke test: it checks the report, not the speed (a debug build on a
//! shared CI machine says nothing about performance).

mod common;

#[test]
fn quick_bench_writes_a_complete_report() {
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(common::exe())
        .args(["bench", "--quick", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed:\n{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let lag = json["lag"].as_array().unwrap();
    // 2 rates × 6 ordered pairs, each with a measured, positive lag.
    assert_eq!(lag.len(), 12, "{lag:?}");
    for row in lag {
        assert!(row["writes"].as_u64().unwrap() > 0, "{row}");
        assert!(
            row["p50_ms"].as_f64().unwrap() >= row["one_way_ms"].as_f64().unwrap() - 1.0,
            "lag below physics: {row}"
        );
    }
    assert_eq!(json["load"].as_array().unwrap().len(), 6);
    assert!(json["catch_up"]["backlog_entries"].as_u64().unwrap() > 0);
    assert!(json["footprint"]["keys"].as_u64().unwrap() > 0);
    // Local write at the home, forwarded write and strong read from two
    // regions, two global acks, one session read: none beats its floor.
    let consistency = json["consistency"].as_array().unwrap();
    assert_eq!(consistency.len(), 10, "{consistency:?}");
    for row in consistency {
        assert!(row["samples"].as_u64().unwrap() > 0, "{row}");
        if let Some(floor) = row["floor_ms"].as_f64() {
            assert!(
                row["p50_ms"].as_f64().unwrap() >= floor - 1.0,
                "faster than physics: {row}"
            );
        }
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    for section in [
        "## Replication lag vs the one-way delay",
        "## Local writes",
        "## Catch-up after a partition",
        "## Footprint",
        "## Consistency costs",
    ] {
        assert!(md.contains(section), "report.md lacks {section}");
    }
    // The cluster it started is gone.
    assert!(
        common::processes_mentioning(out.path()).is_empty(),
        "bench left nodes running"
    );
}
