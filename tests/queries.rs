//! Live queries over real sessions (PROTOCOL.md §7): QUERY_RESP, QUERY_UPDATE,
//! QUERY_UNSUB, with field filtering of both.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::{authenticated, next_json, next_reply, put_op, send, start_node, WsClient};

async fn batch(ws: &mut WsClient, ops: Vec<Value>) {
    send(ws, json!({"type": "OP_BATCH", "payload": {"ops": ops}})).await;
    assert_eq!(next_json(ws).await["type"], "OP_ACK");
}

async fn subscribe(ws: &mut WsClient, query_id: &str, query: Value) -> Value {
    send(
        ws,
        json!({"type": "QUERY_SUB", "payload": {"queryId": query_id, "mapName": "todos", "query": query}}),
    )
    .await;
    next_reply(ws).await
}

#[tokio::test]
async fn a_query_returns_matching_records_then_follows_them_in_and_out() {
    let node = start_node(Vec::new()).await;
    let mut writer = authenticated(node.client_addr(), &json!({"sub": "w"})).await;
    let mut reader = authenticated(node.client_addr(), &json!({"sub": "r"})).await;
    batch(
        &mut writer,
        vec![
            put_op("todos", "1", "a", json!({"done": false, "title": "A"}), 10),
            put_op("todos", "2", "b", json!({"done": true, "title": "B"}), 11),
        ],
    )
    .await;

    let response = subscribe(&mut reader, "q1", json!({"where": {"done": false}})).await;
    batch(
        &mut writer,
        vec![put_op(
            "todos",
            "3",
            "b",
            json!({"done": false, "title": "B"}),
            12,
        )],
    )
    .await;
    let entered = [next_json(&mut reader).await, next_json(&mut reader).await];
    batch(
        &mut writer,
        vec![put_op(
            "todos",
            "4",
            "a",
            json!({"done": true, "title": "A"}),
            13,
        )],
    )
    .await;
    let left = [next_json(&mut reader).await, next_json(&mut reader).await];

    assert_eq!(
        response,
        json!({"type": "QUERY_RESP", "payload": {"queryId": "q1",
            "results": [{"key": "a", "value": {"done": false, "title": "A"}}]}})
    );
    let update = entered
        .iter()
        .find(|m| m["type"] == "QUERY_UPDATE")
        .unwrap();
    assert_eq!(
        update["payload"],
        json!({"queryId": "q1", "key": "b", "value": {"done": false, "title": "B"}, "type": "UPDATE"})
    );
    assert!(entered.iter().any(|m| m["type"] == "SERVER_EVENT"));
    let removal = left.iter().find(|m| m["type"] == "QUERY_UPDATE").unwrap();
    assert_eq!(
        removal["payload"],
        json!({"queryId": "q1", "key": "a", "value": null, "type": "REMOVE"})
    );
}

#[tokio::test]
async fn the_writer_sees_its_own_query_updates_and_unsubscribing_stops_them() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr(), &json!({"sub": "w"})).await;
    subscribe(&mut ws, "all", json!({})).await;

    send(&mut ws, json!({"type": "OP_BATCH", "payload": {"ops": [put_op("todos", "1", "a", json!({"n": 1}), 10)]}})).await;
    let first = [next_json(&mut ws).await, next_json(&mut ws).await];
    send(
        &mut ws,
        json!({"type": "QUERY_UNSUB", "payload": {"queryId": "all"}}),
    )
    .await;
    send(&mut ws, json!({"type": "OP_BATCH", "payload": {"ops": [put_op("todos", "2", "b", json!({"n": 2}), 11)]}})).await;
    let ack = next_json(&mut ws).await;

    assert!(first
        .iter()
        .any(|m| m["type"] == "QUERY_UPDATE" && m["payload"]["key"] == "a"));
    assert_eq!(ack["type"], "OP_ACK");
    let silence = tokio::time::timeout(Duration::from_millis(200), next_json(&mut ws)).await;
    assert!(silence.is_err(), "an update after QUERY_UNSUB: {silence:?}");
}

#[tokio::test]
async fn an_unknown_predicate_op_is_refused_with_error_400() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr(), &json!({"sub": "r"})).await;

    let reply = subscribe(
        &mut ws,
        "q",
        json!({"predicate": {"op": "sounds_like", "attribute": "x"}}),
    )
    .await;

    assert_eq!(reply["payload"]["code"], 400);
}

/// Unlike upstream, QUERY_UPDATE values are filtered like QUERY_RESP values.
#[tokio::test]
async fn query_results_and_updates_carry_only_the_fields_the_reader_may_read() {
    let policies = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policies.path(),
        r#"[{"role": "USER", "mapNamePattern": "todos", "actions": ["READ"], "allowedFields": ["title"]}]"#,
    )
    .unwrap();
    let node = start_node(vec![(
        "TOPGUN_POLICIES_PATH".into(),
        common::path(policies.path()),
    )])
    .await;
    let mut admin =
        authenticated(node.client_addr(), &json!({"sub": "a", "roles": ["ADMIN"]})).await;
    let mut reader = authenticated(node.client_addr(), &json!({"sub": "r"})).await;
    batch(
        &mut admin,
        vec![put_op(
            "todos",
            "1",
            "a",
            json!({"title": "A", "owner": "x"}),
            10,
        )],
    )
    .await;

    let response = subscribe(&mut reader, "q", json!({})).await;
    batch(
        &mut admin,
        vec![put_op(
            "todos",
            "2",
            "a",
            json!({"title": "A2", "owner": "y"}),
            11,
        )],
    )
    .await;
    let messages = [next_json(&mut reader).await, next_json(&mut reader).await];

    assert_eq!(
        response["payload"]["results"][0]["value"],
        json!({"title": "A"})
    );
    let update = messages
        .iter()
        .find(|m| m["type"] == "QUERY_UPDATE")
        .unwrap();
    assert_eq!(update["payload"]["value"], json!({"title": "A2"}));
}
