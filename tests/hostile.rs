//! Hostile input costs only the offender's connection (issue #3 item 8).

mod common;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::{
    authenticated, expect_close, next_json, next_reply, packed, put_op, send, start_node,
};

/// Ten thousand messages that fail the schema check (each answered with ERROR 400,
/// none read by the sender) leave another client's writes acknowledged promptly.
#[tokio::test]
async fn ten_thousand_malformed_messages_from_one_client_leave_the_others_served() {
    let node = start_node(Vec::new()).await;
    let mut hostile = authenticated(node.client_addr(), &json!({"sub": "h"})).await;
    let mut honest = authenticated(node.client_addr(), &json!({"sub": "o"})).await;

    let flood = tokio::spawn(async move {
        for i in 0..10_000 {
            let junk = packed(&json!({"type": "NOT_A_TYPE", "n": i}));
            if hostile.send(junk).await.is_err() {
                break;
            }
        }
        hostile
    });
    send(
        &mut honest,
        json!({"type": "OP_BATCH", "payload": {"ops": [put_op("m", "1", "k", json!(1), 1)]}}),
    )
    .await;
    let ack = tokio::time::timeout(Duration::from_secs(10), next_reply(&mut honest)).await;
    let _hostile = flood.await.unwrap();

    assert_eq!(ack.expect("the honest client is served")["type"], "OP_ACK");
}

/// A message nested deeper than the decoder allows is undecodable: close 1002.
#[tokio::test]
async fn a_message_nested_thousands_deep_closes_that_connection_with_1002() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr(), &json!({"sub": "h"})).await;
    let mut bomb = vec![0x91_u8; 100_000]; // fixarray(1), 100 000 levels deep
    bomb.push(0xc0);

    ws.send(Message::Binary(bomb.into())).await.unwrap();
    let frame = expect_close(&mut ws).await;

    assert_eq!(frame.code, CloseCode::Protocol);
    authenticated(node.client_addr(), &json!({"sub": "next"})).await;
}

#[tokio::test]
async fn a_predicate_nested_too_deeply_is_refused_with_error_400() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr(), &json!({"sub": "h"})).await;
    let mut predicate = json!({"op": "eq", "attribute": "a", "value": 1});
    // Deeper than the 32 levels a query may use, within the message nesting limit.
    for _ in 0..40 {
        predicate = json!({"op": "not", "children": [predicate]});
    }

    send(
        &mut ws,
        json!({"type": "QUERY_SUB", "payload": {"queryId": "q", "mapName": "m", "query": {"predicate": predicate}}}),
    )
    .await;

    assert_eq!(next_json(&mut ws).await["payload"]["code"], 400);
}
