//! What the node says and refuses as it starts serving.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{tls_vars, NodeProcess, Pki};

fn var(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

#[test]
fn production_without_tls_warns_that_connections_are_not_encrypted() {
    let node = NodeProcess::start(&[var("NODE_ENV", "production")]);

    let warnings = node.startup_messages("WARN");

    assert!(
        warnings
            .iter()
            .any(|m| m == "TLS is disabled! Client connections are NOT encrypted."),
        "{warnings:?}"
    );
}

#[test]
fn development_without_tls_and_production_with_tls_do_not_warn_about_encryption() {
    let pki = Pki::new("ours");
    let mut production_tls = tls_vars(&pki.server());
    production_tls.push(var("NODE_ENV", "production"));
    production_tls.push(var(
        "JWT_SECRET",
        "a-long-random-production-secret-0123456789",
    ));
    production_tls.push(var("TOPGUN_CLUSTER_TLS_ENABLED", "true"));

    for vars in [Vec::new(), production_tls] {
        let node = NodeProcess::start(&vars);

        let warnings = node.startup_messages("WARN");

        assert!(warnings.is_empty(), "{vars:?}: {warnings:?}");
    }
}

#[test]
fn a_misspelt_topgun_variable_is_reported_by_name() {
    let node = NodeProcess::start(&[var("TOPGUN_TLS_ENABLE", "true")]);

    let unknown: Vec<_> = node
        .startup_log
        .iter()
        .filter(|event| event["var"] == "TOPGUN_TLS_ENABLE")
        .collect();

    assert_eq!(unknown.len(), 1, "{:?}", node.startup_log);
    assert_eq!(unknown[0]["level"], "WARN");
}

/// Client-initiated renegotiation is refused (SslOptions::NO_RENEGOTIATION); the
/// `openssl s_client` command `R` asks for one on a TLS 1.2 session.
#[test]
fn client_initiated_renegotiation_is_refused() {
    let pki = Pki::new("ours");
    let node = NodeProcess::start(&tls_vars(&pki.server()));

    let mut client = Command::new("openssl")
        .args(["s_client", "-tls1_2", "-connect", &node.addr.to_string()])
        .arg("-CAfile")
        .arg(&pki.ca_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI is installed");
    // Stdin stays open: s_client must leave because the node refused, not because
    // its input ended.
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"R\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while client.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = client.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    let output = client.wait_with_output().unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);

    assert!(
        transcript.contains("Verify return code: 0 (ok)"),
        "{transcript}"
    );
    assert!(transcript.contains("RENEGOTIATING"), "{transcript}");
    assert!(transcript.contains("no renegotiation"), "{transcript}");
}
