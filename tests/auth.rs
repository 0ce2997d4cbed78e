//! Authentication on the WebSocket (PROTOCOL.md §2): AUTH, AUTH_ACK, AUTH_FAIL, the
//! schema check before authentication, and the authentication timeout.

mod common;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::{expect_close, hs256_token, next_json, packed, start_node, ws_session, WsClient};

const SECRET: &str = "a-long-random-test-secret-0123456789abcdef";

fn var(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

fn valid_token() -> String {
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    hs256_token(SECRET, &json!({"sub": "alice", "exp": in_an_hour}))
}

/// A ping answered by the very next message shows that nothing else was sent before it.
async fn assert_nothing_pending(ws: &mut WsClient) {
    ws.send(Message::Ping(b"probe".to_vec().into()))
        .await
        .unwrap();
    let next = ws.next().await.unwrap().unwrap();
    assert_eq!(next, Message::Pong(b"probe".to_vec().into()));
}

#[tokio::test]
async fn a_valid_token_is_acknowledged_and_a_repeated_auth_is_ignored() {
    let node = start_node(vec![var("JWT_SECRET", SECRET)]).await;
    let mut ws = ws_session(node.client_addr()).await;

    ws.send(packed(&json!({"type": "AUTH", "token": valid_token()})))
        .await
        .unwrap();
    let ack = next_json(&mut ws).await;
    ws.send(packed(&json!({"type": "AUTH", "token": valid_token()})))
        .await
        .unwrap();

    assert_eq!(ack, json!({"type": "AUTH_ACK"}));
    assert_nothing_pending(&mut ws).await;
}

#[tokio::test]
async fn a_token_signed_with_another_secret_gets_auth_fail_and_close_4001() {
    let node = start_node(vec![var("JWT_SECRET", SECRET)]).await;
    let mut ws = ws_session(node.client_addr()).await;
    let forged = hs256_token(
        "not-the-node-secret-but-just-as-long!!",
        &json!({"sub": "eve"}),
    );

    ws.send(packed(&json!({"type": "AUTH", "token": forged})))
        .await
        .unwrap();
    let fail = next_json(&mut ws).await;
    let frame = expect_close(&mut ws).await;

    assert_eq!(fail, json!({"type": "AUTH_FAIL", "error": "Invalid token"}));
    assert_eq!(frame.code, CloseCode::from(4001));
    assert_eq!(frame.reason.as_str(), "Unauthorized");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let node = start_node(vec![var("JWT_SECRET", SECRET)]).await;
    let mut ws = ws_session(node.client_addr()).await;
    let expired = hs256_token(SECRET, &json!({"sub": "alice", "exp": 1_000_000_000}));

    ws.send(packed(&json!({"type": "AUTH", "token": expired})))
        .await
        .unwrap();

    assert_eq!(next_json(&mut ws).await["type"], "AUTH_FAIL");
    assert_eq!(expect_close(&mut ws).await.code, CloseCode::from(4001));
}

/// Upstream answers a message of unknown type with ERROR 400 even before
/// authentication, and keeps the connection.
#[tokio::test]
async fn an_unknown_message_type_gets_error_400_and_the_connection_stays_open() {
    let node = start_node(Vec::new()).await;
    let mut ws = ws_session(node.client_addr()).await;

    ws.send(packed(&json!({"type": "HELLO_THERE"})))
        .await
        .unwrap();
    let error = next_json(&mut ws).await;

    assert_eq!(
        error,
        json!({"type": "ERROR", "payload": {"code": 400, "message": "Invalid message format", "details": null}})
    );
    assert_nothing_pending(&mut ws).await;
}

#[tokio::test]
async fn a_client_that_never_authenticates_is_closed_at_the_auth_timeout() {
    let node = start_node(vec![var("TOPGUN_AUTH_TIMEOUT_MS", "200")]).await;
    let mut ws = ws_session(node.client_addr()).await;

    let frame = expect_close(&mut ws).await;

    assert_eq!(frame.code, CloseCode::from(4001));
    assert_eq!(frame.reason.as_str(), "Auth timeout");
}

#[tokio::test]
async fn the_development_secret_works_when_jwt_secret_is_unset() {
    let node = start_node(Vec::new()).await;
    let mut ws = ws_session(node.client_addr()).await;
    let token = hs256_token("topgun-secret-dev", &json!({"userId": "dev"}));

    ws.send(packed(&json!({"type": "AUTH", "token": token})))
        .await
        .unwrap();

    assert_eq!(next_json(&mut ws).await, json!({"type": "AUTH_ACK"}));
}
