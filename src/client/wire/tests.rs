use serde_json::json;

use super::*;

fn as_json(message: &Value) -> serde_json::Value {
    rmp_serde::from_slice(&encode(message)).unwrap()
}

#[test]
fn a_put_is_an_op_batch_shaped_like_the_stock_clients() {
    let ts = Timestamp::new(1_700_000_000_000, 3, "client-a");

    let message = lww_op("op-1", "demo", "k1", Some(Value::from(42)), &ts);

    let ts_json = json!({"millis": 1_700_000_000_000u64, "counter": 3, "nodeId": "client-a"});
    assert_eq!(
        as_json(&message),
        json!({"type": "OP_BATCH", "payload": {"ops": [{
            "mapName": "demo", "opType": "PUT", "key": "k1",
            "record": {"value": 42, "timestamp": ts_json},
            "orRecord": null, "orTag": null, "timestamp": ts_json,
            "synced": false, "id": "op-1"}]}})
    );
}

#[test]
fn a_remove_carries_a_record_with_a_nil_value() {
    let ts = Timestamp::new(5, 0, "c");

    let message = as_json(&lww_op("2", "m", "k", None, &ts));

    let op = &message["payload"]["ops"][0];
    assert_eq!(op["opType"], "REMOVE");
    assert_eq!(op["record"]["value"], serde_json::Value::Null);
    assert!(op["record"].as_object().unwrap().contains_key("value"));
}

#[test]
fn queries_and_topics_have_the_reference_shapes() {
    let all = query_sub("q1", "m", Value::Nil);
    let filtered = query_sub("q2", "m", Value::Map(vec![("n".into(), 1.into())]));

    assert_eq!(
        as_json(&all),
        json!({"type": "QUERY_SUB", "payload": {"queryId": "q1", "mapName": "m", "query": {}}})
    );
    assert_eq!(
        as_json(&filtered)["payload"]["query"],
        json!({"where": {"n": 1}})
    );
    assert_eq!(
        as_json(&query_unsub("q1")),
        json!({"type": "QUERY_UNSUB", "payload": {"queryId": "q1"}})
    );
    assert_eq!(
        as_json(&topic_pub("chat", "hi".into())),
        json!({"type": "TOPIC_PUB", "payload": {"topic": "chat", "data": "hi"}})
    );
    assert_eq!(as_json(&auth("t")), json!({"type": "AUTH", "token": "t"}));
}

#[test]
fn server_messages_decode_with_any_number_encoding_and_nil_as_absent() {
    let bytes = |value: serde_json::Value| rmp_serde::to_vec_named(&value).unwrap();

    let ack = decode(&bytes(
        json!({"type": "OP_ACK", "payload": {"lastId": "7"}}),
    ));
    let numeric_ack = decode(&bytes(json!({"type": "OP_ACK", "payload": {"lastId": 7}})));
    let error = decode(&bytes(
        json!({"type": "ERROR", "payload": {"code": 403.0, "message": "no", "details": null}}),
    ));
    let update = decode(&bytes(json!({"type": "QUERY_UPDATE",
        "payload": {"queryId": "q", "key": "k", "value": null, "type": "REMOVE"}})));

    let seven = Some(ServerMessage::OpAck {
        last_id: "7".into(),
    });
    assert_eq!(ack, seven);
    assert_eq!(numeric_ack, seven);
    assert_eq!(
        error,
        Some(ServerMessage::Error {
            code: 403,
            message: "no".into()
        })
    );
    assert_eq!(
        update,
        Some(ServerMessage::QueryUpdate {
            query_id: "q".into(),
            key: "k".into(),
            value: Value::Nil,
            removed: true
        })
    );
    assert_eq!(decode(b"\xc1"), None);
}

#[test]
fn topic_names_follow_the_nodes_rules() {
    assert!(valid_topic("chat/room-1:a.b_c"));
    assert!(!valid_topic(""));
    assert!(!valid_topic("white space"));
    assert!(!valid_topic(&"x".repeat(257)));
}

#[test]
fn ids_are_distinct_version_4_uuids() {
    let first = new_id();
    let second = new_id();

    assert_ne!(first, second);
    assert_eq!(first.len(), 36);
    assert_eq!(first.as_bytes()[14], b'4');
    assert!(matches!(first.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
}
