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
            // One line per pair (its distribution's points) and one dashed
            // floor per pair (short vertical segments in the pair's colour).
            let (lines, floors) = lines_and_floors(&svg);
            assert_eq!(lines, 6, "{file}");
            assert_eq!(floors, 6, "{file}");
        }
        assert!(
            md.contains(&format!("]({file})")),
            "report.md does not show {file}"
        );
    }
    // Traffic: the quorum held under a cut link, both failovers ran with
    // clients, and the proxy rows measured something on every path.
    let traffic = &json["traffic"];
    assert_eq!(traffic["cut_link"]["ever_down"], false, "{traffic}");
    assert!(traffic["cut_link"]["polls"].as_u64().unwrap() > 0);
    let failover = traffic["failover"].as_array().unwrap();
    assert_eq!(failover.len(), 2, "{traffic}");
    for f in failover {
        assert!(f["requests"].as_u64().unwrap() > 100, "{f}");
        assert!(
            f["first_from_target_ms"].as_f64().is_some(),
            "the target never answered: {f}"
        );
    }
    let proxy = traffic["proxy"].as_array().unwrap();
    assert_eq!(proxy.len(), 3, "{traffic}");
    for p in proxy {
        assert!(p["rps"].as_f64().unwrap() > 0.0, "{p}");
    }
    for section in [
        "## Traffic: the edge under faults",
        "### Proxy cost",
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

/// In a chart drawn by `plotters`' SVG backend: the polylines of more than
/// two points (data lines; legend marks, ticks and dashes have two), and the
/// data lines' colours that also draw vertical two-point segments (a dashed
/// vertical floor; the axes' ticks are black).
fn lines_and_floors(svg: &str) -> (usize, usize) {
    let mut lines = 0;
    let mut line_colours = std::collections::BTreeSet::new();
    let mut floor_colours = std::collections::BTreeSet::new();
    for l in svg.lines().filter(|l| l.starts_with("<polyline")) {
        let attr = |name: &str| {
            let start = l.find(&format!("{name}=\"")).map(|i| i + name.len() + 2)?;
            l[start..].split('"').next()
        };
        let points: Vec<(f64, f64)> = attr("points")
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|p| {
                let (x, y) = p.split_once(',')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect();
        if points.len() > 2 {
            lines += 1;
            line_colours.insert(attr("stroke").unwrap_or("").to_string());
        } else if points.len() == 2 && points[0].0 == points[1].0 && points[0].1 != points[1].1 {
            floor_colours.insert(attr("stroke").unwrap_or("").to_string());
        }
    }
    (lines, floor_colours.intersection(&line_colours).count())
}
