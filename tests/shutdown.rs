//! Graceful shutdown: clients are told to go, with `SHUTDOWN_PENDING` and close 1001.

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::{expect_close, start_node, ws_session, NodeProcess, WsClient};

/// Reads until the close frame and checks the shutdown sequence of PROTOCOL.md §14.
async fn expect_shutdown_sequence(ws: &mut WsClient) {
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

    let frame = expect_close(ws).await;
    assert_eq!(frame.code, CloseCode::Away);
    assert_eq!(frame.reason.as_str(), "Server Shutdown");
}

#[tokio::test]
async fn shutdown_tells_each_client_to_go_and_drains_in_time() {
    let node = start_node(Vec::new()).await;
    let addr = node.client_addr();
    let mut first = ws_session(addr).await;
    let mut second = ws_session(addr).await;

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
    let node = NodeProcess::start(&[]);
    let mut ws = ws_session(node.addr).await;

    node.terminate();
    expect_shutdown_sequence(&mut ws).await;
    drop(ws);
    let status = tokio::task::spawn_blocking(move || node.wait())
        .await
        .unwrap();

    assert!(status.success(), "exit status {status:?}");
}
