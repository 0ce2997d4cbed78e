//! Graceful shutdown: clients are told to go, with `SHUTDOWN_PENDING` and close 1001.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use common::start_node;

type Client = WebSocketStream<TcpStream>;

async fn open_session(addr: SocketAddr) -> Client {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    let greeting = ws.next().await.unwrap().unwrap();
    assert!(matches!(greeting, Message::Binary(_)), "{greeting:?}");
    ws
}

/// Reads until the close frame and checks the shutdown sequence of PROTOCOL.md §14.
async fn expect_shutdown_sequence(ws: &mut Client) {
    let pending = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("SHUTDOWN_PENDING arrives")
        .unwrap()
        .unwrap();
    let Message::Binary(bytes) = pending else {
        panic!("expected SHUTDOWN_PENDING as binary, got {pending:?}");
    };
    let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"type": "SHUTDOWN_PENDING", "retryAfter": 5000})
    );

    let closing = ws.next().await.unwrap().unwrap();
    let Message::Close(Some(frame)) = closing else {
        panic!("expected a close frame, got {closing:?}");
    };
    assert_eq!(frame.code, CloseCode::Away);
    assert_eq!(frame.reason.as_str(), "Server Shutdown");
}

#[tokio::test]
async fn shutdown_tells_each_client_to_go_and_drains_in_time() {
    let node = start_node(Vec::new()).await;
    let addr = node.client_addr();
    let mut first = open_session(addr).await;
    let mut second = open_session(addr).await;

    let shutdown = tokio::spawn(node.shutdown(Duration::from_secs(10)));
    expect_shutdown_sequence(&mut first).await;
    expect_shutdown_sequence(&mut second).await;
    drop((first, second));

    assert!(
        shutdown.await.unwrap(),
        "every connection ended within the drain time"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test]
async fn sigterm_drains_clients_and_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_topgun-server"))
        .env_clear()
        .env("TOPGUN_HOST", "127.0.0.1")
        .env("TOPGUN_PORT", "0")
        .env("TOPGUN_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("the node logs its address").unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "client listener ready" {
            break event["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    let mut ws = open_session(addr).await;

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    expect_shutdown_sequence(&mut ws).await;
    drop(ws);

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}
