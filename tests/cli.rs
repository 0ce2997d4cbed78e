//! The `topgun` command-line client against a real `wss://` node with a throwaway
//! PKI: writes, reads, removals, live queries, topics, tokens and TLS failures.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::TestNode;
use common::{hs256_token, path, start_node, tls_vars, Pki};

const SECRET: &str = "a-long-random-cli-test-secret-0123456789";

/// How long one run of the client may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(20);

/// A TLS node with [`SECRET`], and its PKI.
async fn tls_node() -> (Pki, TestNode) {
    let pki = Pki::new("cli");
    let mut vars = tls_vars(&pki.server());
    vars.push(("JWT_SECRET".into(), SECRET.into()));
    let node = start_node(vars).await;
    (pki, node)
}

fn url(addr: SocketAddr) -> String {
    format!("wss://localhost:{}", addr.port())
}

fn token() -> String {
    hs256_token(SECRET, &json!({"sub": "cli-test"}))
}

/// `topgun --url .. --ca .. --token .. ARGS`.
fn command(node: &TestNode, pki: &Pki, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_topgun"));
    command
        .args([
            "--url",
            &url(node.client_addr()),
            "--ca",
            &path(&pki.ca_path),
        ])
        .args(["--token", token])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` off the async runtime, killing it after [`DEADLINE`].
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("topgun starts");
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("topgun still running after {DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("stdout is JSON lines"))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn put_then_get_over_wss_returns_the_value() {
    let (pki, node) = tls_node().await;
    let value = r#"{"title":"hello","n":42}"#;

    let put = run(command(
        &node,
        &pki,
        &token(),
        &["put", "notes", "k1", value],
    ))
    .await;
    let get = run(command(&node, &pki, &token(), &["get", "notes", "k1"])).await;

    assert!(put.status.success(), "{}", stderr(&put));
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(
        stdout_lines(&get),
        vec![json!({"key": "k1", "value": {"title": "hello", "n": 42}})]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rm_then_get_reports_not_found_with_exit_status_2() {
    let (pki, node) = tls_node().await;
    run(command(
        &node,
        &pki,
        &token(),
        &["put", "notes", "k1", "\"x\""],
    ))
    .await;

    let rm = run(command(&node, &pki, &token(), &["rm", "notes", "k1"])).await;
    let get = run(command(&node, &pki, &token(), &["get", "notes", "k1"])).await;

    assert!(rm.status.success(), "{}", stderr(&rm));
    assert_eq!(
        stdout_lines(&rm),
        vec![json!({"map": "notes", "key": "k1", "removed": true})]
    );
    assert_eq!(get.status.code(), Some(2));
    assert!(get.stdout.is_empty());
    assert!(stderr(&get).contains("not found"), "{}", stderr(&get));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_with_count_2_prints_the_results_and_a_concurrent_put() {
    let (pki, node) = tls_node().await;
    run(command(
        &node,
        &pki,
        &token(),
        &["put", "tasks", "t1", r#"{"n":1}"#],
    ))
    .await;
    let mut watch = command(&node, &pki, &token(), &["watch", "tasks", "--count", "2"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();

    let first = tokio::task::spawn_blocking(move || {
        let line = lines.next().unwrap().unwrap();
        (line, lines)
    });
    let (first, mut lines) = tokio::time::timeout(DEADLINE, first)
        .await
        .unwrap()
        .unwrap();
    let put = run(command(
        &node,
        &pki,
        &token(),
        &["put", "tasks", "t2", r#"{"n":2}"#],
    ))
    .await;
    let rest = tokio::task::spawn_blocking(move || {
        let second = lines.next().unwrap().unwrap();
        let status = watch.wait().unwrap();
        (second, status)
    });
    let (second, status) = tokio::time::timeout(DEADLINE, rest).await.unwrap().unwrap();

    assert!(put.status.success(), "{}", stderr(&put));
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap(),
        json!({"event": "results", "results": [{"key": "t1", "value": {"n": 1}}]})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&second).unwrap(),
        json!({"event": "update", "key": "t2", "value": {"n": 2}})
    );
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minted_token_is_accepted_and_one_from_another_secret_is_refused() {
    let (pki, node) = tls_node().await;
    let mint = |secret: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_topgun"));
        command.args([
            "token", "--secret", secret, "--sub", "ann", "--role", "USER",
        ]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    };
    let good = stdout_lines(&run(mint(SECRET)).await)[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad = stdout_lines(&run(mint("some-other-secret-of-decent-length")).await)[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let accepted = run(command(&node, &pki, &good, &["put", "m", "k", "1"])).await;
    let refused = run(command(&node, &pki, &bad, &["put", "m", "k", "1"])).await;

    assert!(accepted.status.success(), "{}", stderr(&accepted));
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty());
    let message = stderr(&refused);
    assert!(message.contains("authentication failed"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_that_did_not_sign_the_node_certificate_fails_tls_verification() {
    let (_pki, node) = tls_node().await;
    let other = Pki::new("other");

    let output = run(command(&node, &other, &token(), &["get", "m", "k"])).await;

    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("TLS certificate verification failed"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_prints_a_message_that_another_client_publishes() {
    let (pki, node) = tls_node().await;
    let sub = command(&node, &pki, &token(), &["sub", "news", "--count", "1"]);
    let subscriber = tokio::spawn(run(sub));

    // The node does not confirm TOPIC_SUB, so publish until the subscriber has one.
    let started = Instant::now();
    while !subscriber.is_finished() && started.elapsed() < DEADLINE {
        let publish = run(command(
            &node,
            &pki,
            &token(),
            &["pub", "news", r#"{"n":1}"#],
        ))
        .await;
        assert!(publish.status.success(), "{}", stderr(&publish));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = subscriber.await.unwrap();

    assert!(output.status.success(), "{}", stderr(&output));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["topic"], "news");
    assert_eq!(lines[0]["data"], json!({"n": 1}));
}
