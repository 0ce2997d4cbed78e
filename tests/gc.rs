//! Garbage collection (PROTOCOL.md §10): TTL expiry broadcast as a removal, and
//! `GC_PRUNE` to every session.

mod common;

use serde_json::json;

use common::{authenticated, next_json, next_reply, send, start_node};

#[tokio::test]
async fn an_expired_record_is_broadcast_as_a_tombstone_and_sessions_get_gc_prune() {
    let node = start_node(vec![("TOPGUN_GC_INTERVAL_MS".into(), "300".into())]).await;
    let mut writer = authenticated(node.client_addr(), &json!({"sub": "w"})).await;
    let mut reader = authenticated(node.client_addr(), &json!({"sub": "r"})).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut op = common::put_op("cache", "1", "k", json!("short-lived"), now_ms);
    op["record"]["ttlMs"] = json!(1);

    send(
        &mut writer,
        json!({"type": "OP_BATCH", "payload": {"ops": [op]}}),
    )
    .await;
    assert_eq!(next_json(&mut writer).await["type"], "OP_ACK");
    let written = next_json(&mut reader).await;
    let expired = next_json(&mut reader).await;
    let prune = next_reply(&mut reader).await;

    assert_eq!(written["payload"]["record"]["value"], "short-lived");
    assert_eq!(expired["type"], "SERVER_EVENT");
    assert_eq!(expired["payload"]["key"], "k");
    assert_eq!(expired["payload"]["record"]["value"], json!(null));
    assert_eq!(prune["type"], "GC_PRUNE");
    let older_than = prune["payload"]["olderThan"]["millis"].as_u64().unwrap();
    assert!(older_than < now_ms - 29 * 24 * 3600 * 1000);
}
