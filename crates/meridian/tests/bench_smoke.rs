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
    // The disk probe ran beside each lag run and measured real fdatasyncs.
    let disk = json["disk"].as_array().unwrap();
    assert_eq!(disk.len(), 2);
    for d in disk {
        assert!(d["samples"].as_u64().unwrap() > 100, "{d}");
        assert!(d["p99_ms"].as_f64().unwrap() > 0.0, "{d}");
    }
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
    // Scale curves: three value sizes on 3 regions, then 3 and 5 regions.
    let scale = json["scale"].as_array().unwrap();
    let axis = |a: &str| scale.iter().filter(|r| r["axis"] == a).count();
    assert_eq!((axis("value_bytes"), axis("regions")), (3, 2), "{scale:?}");
    for row in scale {
        assert!(row["achieved_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["lag_p99_excess_ms"].as_f64().is_some(), "{row}");
    }
    let restart = &json["restart"];
    assert!(restart["ready_s"].as_f64().unwrap() > 0.0, "{restart}");
    assert!(
        restart["caught_up_s"].as_f64().unwrap() >= restart["ready_s"].as_f64().unwrap(),
        "{restart}"
    );
    // Plots: a lag CDF per rate with a line and a floor per pair, and the
    // two scale curves; each a complete SVG document the report links.
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let plots = json["plots"].as_array().unwrap();
    assert_eq!(plots.len(), 4, "{plots:?}");
    for p in plots {
        let file = p[0].as_str().unwrap();
        let svg = std::fs::read_to_string(out.path().join(file)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{file}"
        );
        assert!(svg.contains("<polyline"), "{file} draws no line");
        if file.starts_with("lag-cdf") {
            assert_eq!(svg.matches("<polyline").count(), 6, "{file}");
            assert_eq!(svg.matches("stroke-dasharray").count(), 6, "{file}");
        }
        assert!(
            md.contains(&format!("]({file})")),
            "report.md does not show {file}"
        );
    }
    for section in [
        "## Replication lag vs the one-way delay",
        "## Local writes",
        "The disk itself during the 1000/s run",
        "## Catch-up after a partition",
        "## Footprint",
        "## Restart and recovery",
        "## Scale curves",
        "## Consistency costs",
        "## Plots",
    ] {
        assert!(md.contains(section), "report.md lacks {section}");
    }
    // The cluster it started is gone.
    assert!(
        common::processes_mentioning(out.path()).is_empty(),
        "bench left nodes running"
    );
}
