//! The write and sync paths a stock client uses (PROTOCOL.md §3.3, §3.4, §6.3, §15.3),
//! over real WebSockets.

mod common;

use serde_json::{json, Value};

use common::{next_json, send, start_node, WsClient};

/// An LWW op as the stock client sends it.
fn put(id: &str, key: &str, value: Value, millis: u64) -> Value {
    common::put_op("demo", id, key, value, millis)
}

async fn authenticated(addr: std::net::SocketAddr) -> WsClient {
    common::authenticated(addr, &json!({"sub": "tester"})).await
}

#[tokio::test]
async fn a_batch_is_acknowledged_and_broadcast_to_other_sessions() {
    let node = start_node(Vec::new()).await;
    let mut writer = authenticated(node.client_addr()).await;
    let mut reader = authenticated(node.client_addr()).await;

    let ops = vec![
        put("1", "k1", json!({"n": 42}), 1000),
        put("2", "k2", json!("x"), 1001),
    ];
    send(
        &mut writer,
        json!({"type": "OP_BATCH", "payload": {"ops": ops}}),
    )
    .await;
    let ack = next_json(&mut writer).await;
    let first = next_json(&mut reader).await;
    let second = next_json(&mut reader).await;

    assert_eq!(ack, json!({"type": "OP_ACK", "payload": {"lastId": "2"}}));
    assert_eq!(first["type"], "SERVER_EVENT");
    assert_eq!(first["payload"]["eventType"], "UPDATED");
    assert_eq!(first["payload"]["key"], "k1");
    assert_eq!(first["payload"]["record"]["value"], json!({"n": 42}));
    assert_eq!(first["timestamp"]["nodeId"], node_id(&first));
    assert_eq!(second["payload"]["key"], "k2");
}

fn node_id(event: &Value) -> Value {
    event["timestamp"]["nodeId"].clone()
}

/// The observed exchange of §15.3: after writing `k1` at 1796311503565 as `client-a`,
/// the root is 54204058, and walking the buckets reaches the record in leaf "983".
#[tokio::test]
async fn merkle_sync_walks_from_the_root_to_the_leaf_holding_the_record() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr()).await;
    send(
        &mut ws,
        json!({"type": "OP_BATCH", "payload": {"ops": [put("1", "k1", json!("v"), 1_796_311_503_565)]}}),
    )
    .await;
    next_json(&mut ws).await;

    send(
        &mut ws,
        json!({"type": "SYNC_INIT", "mapName": "demo", "lastSyncTimestamp": 0}),
    )
    .await;
    let root = next_json(&mut ws).await;
    let mut path = String::new();
    let leaf = loop {
        send(
            &mut ws,
            json!({"type": "MERKLE_REQ_BUCKET", "payload": {"mapName": "demo", "path": path}}),
        )
        .await;
        let reply = next_json(&mut ws).await;
        if reply["type"] == "SYNC_RESP_LEAF" {
            break reply;
        }
        assert_eq!(reply["type"], "SYNC_RESP_BUCKETS");
        let buckets = reply["payload"]["buckets"].as_object().unwrap();
        path.push_str(buckets.keys().next().expect("one non-empty bucket"));
    };

    assert_eq!(root["type"], "SYNC_RESP_ROOT");
    assert_eq!(root["payload"]["rootHash"], 54_204_058);
    assert_eq!(leaf["payload"]["path"], "983");
    assert_eq!(leaf["payload"]["records"][0]["key"], "k1");
    assert_eq!(leaf["payload"]["records"][0]["record"]["value"], "v");
}

#[tokio::test]
async fn a_sync_older_than_thirty_days_must_start_over() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr()).await;

    send(
        &mut ws,
        json!({"type": "SYNC_INIT", "mapName": "demo", "lastSyncTimestamp": 1_000_000_000_000_u64}),
    )
    .await;

    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "SYNC_RESET_REQUIRED", "payload": {"mapName": "demo"}})
    );
}

#[tokio::test]
async fn a_failed_op_in_a_batch_is_reported_after_the_ack_of_the_others() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr()).await;
    let mut broken = put("2", "k2", json!("x"), 1001);
    broken["record"] = Value::Null;

    send(
        &mut ws,
        json!({"type": "OP_BATCH", "payload": {"ops": [put("1", "k1", json!(1), 1000), broken]}}),
    )
    .await;

    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "OP_ACK", "payload": {"lastId": "1"}})
    );
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "ERROR", "payload": {"code": 403, "message": "Partial batch failure: 1 ops denied", "details": null}})
    );
}

#[tokio::test]
async fn a_client_op_on_a_map_of_the_other_type_is_rejected_with_the_reason() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr()).await;
    let or_add = json!({
        "mapName": "demo", "opType": "OR_ADD", "key": "k", "id": "9",
        "orRecord": {"value": 1, "timestamp": {"millis": 5, "counter": 0, "nodeId": "c"}, "tag": "5:0:c"},
    });
    send(
        &mut ws,
        json!({"type": "OP_BATCH", "payload": {"ops": [put("1", "k1", json!(1), 1000)]}}),
    )
    .await;
    next_json(&mut ws).await;

    send(&mut ws, json!({"type": "CLIENT_OP", "payload": or_add})).await;

    let rejected = next_json(&mut ws).await;
    assert_eq!(rejected["type"], "OP_REJECTED");
    assert_eq!(rejected["payload"]["opId"], "9");
    assert!(rejected["payload"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("Map type mismatch"));
}

#[tokio::test]
async fn a_batch_without_ops_fails_the_schema_check_and_the_session_goes_on() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr()).await;

    send(
        &mut ws,
        json!({"type": "OP_BATCH", "payload": {"nothing": true}}),
    )
    .await;
    let error = next_json(&mut ws).await;
    send(&mut ws, json!({"type": "SYNC_INIT", "mapName": "empty"})).await;
    let root = next_json(&mut ws).await;

    assert_eq!(error["payload"]["code"], 400);
    assert_eq!(root["payload"]["rootHash"], 0);
}

#[tokio::test]
async fn or_adds_and_removes_are_broadcast_with_their_tags() {
    let node = start_node(Vec::new()).await;
    let mut writer = authenticated(node.client_addr()).await;
    let mut reader = authenticated(node.client_addr()).await;
    let timestamp = json!({"millis": 5, "counter": 0, "nodeId": "c"});
    let add = json!({"mapName": "tags", "opType": "OR_ADD", "key": "k", "id": "1",
        "orRecord": {"value": "red", "timestamp": timestamp, "tag": "5:0:c"}});
    let remove =
        json!({"mapName": "tags", "opType": "OR_REMOVE", "key": "k", "id": "2", "orTag": "5:0:c"});

    send(
        &mut writer,
        json!({"type": "OP_BATCH", "payload": {"ops": [add, remove]}}),
    )
    .await;
    let added = next_json(&mut reader).await;
    let removed = next_json(&mut reader).await;

    assert_eq!(next_json(&mut writer).await["payload"]["lastId"], "2");
    assert_eq!(added["payload"]["eventType"], "OR_ADD");
    assert_eq!(added["payload"]["orRecord"]["value"], "red");
    assert_eq!(removed["payload"]["eventType"], "OR_REMOVE");
    assert_eq!(removed["payload"]["orTag"], "5:0:c");
}

/// `SYNC_RESP_*` from a client are accepted and ignored; `TOPIC_UNSUB` gets no reply.
#[tokio::test]
async fn messages_upstream_ignores_get_no_reply_and_keep_the_session() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr()).await;

    for kind in ["SYNC_RESP_ROOT", "SYNC_RESP_BUCKETS", "SYNC_RESP_LEAF"] {
        send(&mut ws, json!({"type": kind, "payload": {}})).await;
    }
    send(
        &mut ws,
        json!({"type": "TOPIC_UNSUB", "payload": {"topic": "t"}}),
    )
    .await;
    send(&mut ws, json!({"type": "SYNC_INIT", "mapName": "probe"})).await;

    assert_eq!(next_json(&mut ws).await["type"], "SYNC_RESP_ROOT");
}
