//! The development PKI: `topgun-server certs` and `scripts/generate-test-certs.sh` both
//! make a CA, a localhost server certificate and node certificates for both usages.

mod common;

use std::path::Path;
use std::process::Command;

use common::run_binary;

/// Asks the openssl CLI whether `cert` verifies against `ca` for `purpose`.
fn verifies(dir: &Path, cert: &str, purpose: &str) -> bool {
    Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(dir.join("ca.crt"))
        .arg(dir.join(cert))
        .output()
        .expect("the openssl CLI is installed")
        .status
        .success()
}

fn assert_usable_pki(dir: &Path) {
    assert!(verifies(dir, "server.crt", "sslserver"));
    for node in ["node-1.crt", "node-2.crt", "node-3.crt"] {
        assert!(verifies(dir, node, "sslserver"), "{node} serverAuth");
        assert!(
            verifies(dir, node, "sslclient"),
            "{node} clientAuth (case C8)"
        );
    }

    let vars = vec![
        ("TOPGUN_TLS_ENABLED".to_owned(), "true".to_owned()),
        (
            "TOPGUN_TLS_CERT_PATH".to_owned(),
            common::path(&dir.join("server.crt")),
        ),
        (
            "TOPGUN_TLS_KEY_PATH".to_owned(),
            common::path(&dir.join("server.key")),
        ),
        (
            "TOPGUN_TLS_CA_PATH".to_owned(),
            common::path(&dir.join("ca.crt")),
        ),
    ];
    let check = run_binary(&["check-config"], &vars);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        report.contains("SANs: DNS:localhost, IP:127.0.0.1"),
        "{report}"
    );
    assert!(report.contains("chain: verified against"), "{report}");
}

#[test]
fn certs_subcommand_writes_a_pki_the_node_and_openssl_accept() {
    let dir = tempfile::tempdir().unwrap();

    let output = run_binary(&["certs", "--out", &common::path(dir.path())], &[]);

    assert!(output.status.success());
    assert_usable_pki(dir.path());
}

#[test]
fn certs_subcommand_does_not_overwrite_keys_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::path(dir.path());
    assert!(run_binary(&["certs", "--out", &out], &[]).status.success());
    let ca_before = std::fs::read(dir.path().join("ca.key")).unwrap();

    let again = run_binary(&["certs", "--out", &out], &[]);
    let forced = run_binary(&["certs", "--out", &out, "--force"], &[]);

    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(forced.status.success());
    assert_ne!(std::fs::read(dir.path().join("ca.key")).unwrap(), ca_before);
}

/// Runs `scripts/generate-test-certs.sh` with `args`; returns whether it succeeded.
fn run_script(args: &[&str]) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/generate-test-certs.sh");
    Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn the_openssl_cli_script_does_not_overwrite_keys_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::path(dir.path());
    assert!(run_script(&[&out]));

    assert!(!run_script(&[&out]));
    assert!(run_script(&["--force", &out]));
}

#[test]
fn the_openssl_cli_script_writes_a_pki_with_sans_and_both_usages() {
    let dir = tempfile::tempdir().unwrap();

    assert!(run_script(&[&common::path(dir.path())]));
    assert!(
        !verifies(dir.path(), "server.crt", "sslclient"),
        "server is serverAuth only"
    );
    assert_usable_pki(dir.path());
}
