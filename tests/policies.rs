//! Permission policies on the wire (PROTOCOL.md §8): writes, reads and field-level
//! filtering of broadcasts, from a policy file named by `TOPGUN_POLICIES_PATH`.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::{authenticated, next_json, put_op, send, start_node, WsClient};

/// USERs own `notes/{userId}` and read only `title` of `public`; ADMIN does anything.
const POLICIES: &str = r#"[
  {"role": "USER", "mapNamePattern": "notes/{userId}", "actions": ["ALL"]},
  {"role": "USER", "mapNamePattern": "public", "actions": ["READ"], "allowedFields": ["title"]}
]"#;

async fn node_with_policies() -> (common::TestNode, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), POLICIES).unwrap();
    let node = start_node(vec![(
        "TOPGUN_POLICIES_PATH".into(),
        common::path(file.path()),
    )])
    .await;
    (node, file)
}

async fn batch(ws: &mut WsClient, ops: Vec<Value>) {
    send(ws, json!({"type": "OP_BATCH", "payload": {"ops": ops}})).await;
}

#[tokio::test]
async fn a_user_writes_its_own_notes_and_is_refused_everyone_elses() {
    let (node, _file) = node_with_policies().await;
    let mut alice = authenticated(node.client_addr(), &json!({"sub": "alice"})).await;

    batch(
        &mut alice,
        vec![put_op("notes/alice", "1", "k", json!("mine"), 1)],
    )
    .await;
    let own = next_json(&mut alice).await;
    batch(
        &mut alice,
        vec![put_op("notes/bob", "2", "k", json!("his"), 2)],
    )
    .await;
    let other = next_json(&mut alice).await;

    assert_eq!(own, json!({"type": "OP_ACK", "payload": {"lastId": "1"}}));
    assert_eq!(
        other["payload"],
        json!({"code": 403, "message": "Partial batch failure: 1 ops denied", "details": null})
    );
}

#[tokio::test]
async fn a_denied_client_op_is_rejected_and_a_denied_sync_gets_error_403() {
    let (node, _file) = node_with_policies().await;
    let mut alice = authenticated(node.client_addr(), &json!({"sub": "alice"})).await;

    send(
        &mut alice,
        json!({"type": "CLIENT_OP", "payload": put_op("public", "7", "k", json!(1), 1)}),
    )
    .await;
    let rejected = next_json(&mut alice).await;
    send(
        &mut alice,
        json!({"type": "SYNC_INIT", "mapName": "notes/bob"}),
    )
    .await;
    let denied = next_json(&mut alice).await;

    assert_eq!(
        rejected["payload"],
        json!({"opId": "7", "reason": "Access Denied"})
    );
    assert_eq!(denied["payload"]["code"], 403);
    assert_eq!(
        denied["payload"]["message"],
        "Access Denied for map notes/bob"
    );
}

/// Each recipient sees what it may read: ADMIN the whole value, a USER only `title`,
/// and a write to a map a USER may not read does not reach it at all.
#[tokio::test]
async fn broadcasts_are_filtered_for_each_recipient() {
    let (node, _file) = node_with_policies().await;
    let mut admin = authenticated(
        node.client_addr(),
        &json!({"sub": "root", "roles": ["ADMIN"]}),
    )
    .await;
    let mut watcher = authenticated(
        node.client_addr(),
        &json!({"sub": "root2", "roles": ["ADMIN"]}),
    )
    .await;
    let mut bob = authenticated(node.client_addr(), &json!({"sub": "bob"})).await;

    let value = json!({"title": "hello", "secret": "s3cret"});
    batch(
        &mut admin,
        vec![put_op("notes/alice", "1", "k", json!("private"), 1)],
    )
    .await;
    batch(
        &mut admin,
        vec![put_op("public", "2", "k", value.clone(), 2)],
    )
    .await;
    let to_watcher = [next_json(&mut watcher).await, next_json(&mut watcher).await];
    let to_bob = next_json(&mut bob).await;

    assert_eq!(to_watcher[1]["payload"]["record"]["value"], value);
    assert_eq!(to_bob["payload"]["mapName"], "public");
    assert_eq!(
        to_bob["payload"]["record"]["value"],
        json!({"title": "hello"})
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), next_json(&mut bob))
            .await
            .is_err(),
        "bob received a write to a map he may not read"
    );
}

/// One batch touching several maps: each recipient's view is worked out per map, so
/// the same session gets the filtered value of one map, the whole value of its own,
/// and nothing of a map it may not read, in the batch's order.
#[tokio::test]
async fn a_batch_across_maps_is_filtered_per_map_for_each_recipient() {
    let (node, _file) = node_with_policies().await;
    let mut admin = authenticated(
        node.client_addr(),
        &json!({"sub": "root", "roles": ["ADMIN"]}),
    )
    .await;
    let mut bob = authenticated(node.client_addr(), &json!({"sub": "bob"})).await;

    let value = json!({"title": "hello", "secret": "s3cret"});
    batch(
        &mut admin,
        vec![
            put_op("public", "1", "a", value.clone(), 1),
            put_op("notes/alice", "2", "k", value.clone(), 2),
            put_op("notes/bob", "3", "k", value.clone(), 3),
            put_op("public", "4", "b", value.clone(), 4),
        ],
    )
    .await;
    let to_bob = [
        next_json(&mut bob).await,
        next_json(&mut bob).await,
        next_json(&mut bob).await,
    ];

    let seen: Vec<(&Value, &Value, &Value)> = to_bob
        .iter()
        .map(|event| {
            let payload = &event["payload"];
            (
                &payload["mapName"],
                &payload["key"],
                &payload["record"]["value"],
            )
        })
        .collect();
    let (public, own) = (json!("public"), json!("notes/bob"));
    let title = json!({"title": "hello"});
    assert_eq!(
        seen,
        vec![
            (&public, &json!("a"), &title),
            (&own, &json!("k"), &value),
            (&public, &json!("b"), &title),
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), next_json(&mut bob))
            .await
            .is_err(),
        "bob received a write to a map he may not read"
    );
}
