//! `meridian chaos run`: the checked workload under each fault scenario,
//! short (the test command's budget); `--duration 10m` runs long ones.
//! Each run starts its own cluster, so they go one after another.

use std::process::Command;

#[test]
fn every_scenario_keeps_every_promise() {
    for scenario in ["partition", "kill", "latency", "move"] {
        let out = tempfile::tempdir().unwrap();
        let run = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["chaos", "run", "--scenario", scenario, "--duration", "20s"])
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{scenario}:\n{stderr}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap())
                .unwrap();
        let count = |k: &str| report[k].as_u64().unwrap_or(0);
        // The run must have checked something real, not passed vacuously.
        assert!(count("operations") > 100, "{scenario}: {report}");
        assert!(count("linearizable_checked") > 20, "{scenario}: {report}");
        assert!(count("session_reads_checked") > 20, "{scenario}: {report}");
        assert!(
            !report["faults"].as_array().unwrap().is_empty(),
            "{scenario}: {report}"
        );
        assert!(
            count("residency_writes_checked") > 10,
            "{scenario}: {report}"
        );
        assert!(
            count("residency_bytes_searched") > 10_000,
            "{scenario}: {report}"
        );
        if scenario == "move" {
            let moved = report["faults"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f.as_str().unwrap().contains("unavailable"))
                .count();
            assert!(moved >= 2, "{scenario}: {report}");
        }
        if scenario == "kill" {
            assert!(count("global_acks_checked") > 0, "{scenario}: {report}");
        }
        assert_eq!(report["converged"], true, "{scenario}: {report}");
        assert_eq!(
            report["anomalies"].as_array().unwrap().len(),
            0,
            "{scenario}: {report}"
        );
        // The history is kept for anyone who wants to look.
        assert!(out.path().join("history.json").exists());
    }
}
