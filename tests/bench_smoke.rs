//! The benchmark harness (`topgun-bench`, issue 7) runs every part briefly with
//! `--smoke`, so that it cannot rot between the runs that produce figures.

use std::process::Command;
use std::time::Instant;

#[test]
fn the_smoke_benchmark_runs_every_part_and_writes_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_topgun-bench"))
        .arg("--smoke")
        .arg("--server")
        .arg(env!("CARGO_BIN_EXE_topgun-server"))
        .arg("--json")
        .arg(&json)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "topgun-bench --smoke failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    println!("{stdout}");
    println!(
        "smoke benchmark took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["smoke"], true);
    let rows = report["rows"].as_array().unwrap();
    for section in [
        "bound",
        "handshake",
        "resumed",
        "writes",
        "fanout",
        "idle",
        "bulk",
        "replicate",
    ] {
        let node_or_openssl = rows.iter().any(|row| {
            row["section"] == section && (row["server"] == "node" || row["server"] == "openssl")
        });
        assert!(node_or_openssl, "no {section} row in {json:?}:\n{stdout}");
    }
    // The first handshakes of concurrent workers may start before any ticket came back.
    let mostly_resumed = rows
        .iter()
        .filter(|row| row["section"] == "resumed" && row["server"] == "node")
        .all(|row| {
            let note = row["note"].as_str().unwrap_or("");
            let share: f64 = note.split('%').next().unwrap_or("0").parse().unwrap_or(0.0);
            share >= 50.0
        });
    assert!(
        mostly_resumed,
        "the node resumed too few sessions:\n{stdout}"
    );
    assert!(!report["targets"].as_array().unwrap().is_empty());
}
