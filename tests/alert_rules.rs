//! The alert rules in `prometheus/`: valid for Prometheus, and each alert fires and stays
//! silent when its unit tests say (`prometheus/alerts_test.yaml`). Needs `promtool`
//! from Debian's `prometheus` package; skipped with a message where it is absent.

mod common;

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    let promtool = common::tool_or_skip("promtool", "alert_rules")?;
    let output = Command::new(promtool)
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus"))
        .output()
        .expect("promtool runs");
    Some(output)
}

fn assert_success(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let Some(output) = promtool(&["check", "rules", "alerts.yaml"]) else {
        return;
    };

    assert_success(&output);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("SUCCESS: 5 rules found"), "{report}");
}

#[test]
fn every_alert_fires_and_stays_silent_as_its_unit_tests_expect() {
    let Some(output) = promtool(&["test", "rules", "alerts_test.yaml"]) else {
        return;
    };

    assert_success(&output);
}

#[test]
fn each_alert_in_the_rules_has_a_unit_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus");
    let rules = std::fs::read_to_string(dir.join("alerts.yaml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yaml")).unwrap();

    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();

    assert_eq!(alerts.len(), 5, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no test"
        );
    }
}
