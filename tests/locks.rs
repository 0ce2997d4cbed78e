//! Locks between live sessions (PROTOCOL.md §11).

mod common;

use serde_json::json;

use common::{authenticated, next_reply, send, start_node};

/// The observed sequence: A gets token 1; B queues; A's release with a wrong token
/// fails; A's release with 1 succeeds and B gets token 2.
#[tokio::test]
async fn a_released_lock_goes_to_the_waiting_session_with_the_next_token() {
    let node = start_node(Vec::new()).await;
    let mut a = authenticated(node.client_addr(), &json!({"sub": "a"})).await;
    let mut b = authenticated(node.client_addr(), &json!({"sub": "b"})).await;
    let request =
        |id: &str| json!({"type": "LOCK_REQUEST", "payload": {"requestId": id, "name": "job"}});
    let release = |token: u64| json!({"type": "LOCK_RELEASE", "payload": {"requestId": "rel", "name": "job", "fencingToken": token}});

    send(&mut a, request("ra")).await;
    let granted_a = next_reply(&mut a).await;
    send(&mut b, request("rb")).await;
    send(&mut a, release(7)).await;
    let refused = next_reply(&mut a).await;
    send(&mut a, release(1)).await;
    let released = next_reply(&mut a).await;
    let granted_b = next_reply(&mut b).await;

    assert_eq!(
        granted_a,
        json!({"type": "LOCK_GRANTED", "payload": {"requestId": "ra", "name": "job", "fencingToken": 1}})
    );
    assert_eq!(refused["payload"]["success"], false);
    assert_eq!(released["payload"]["success"], true);
    assert_eq!(
        granted_b["payload"],
        json!({"requestId": "rb", "name": "job", "fencingToken": 2})
    );
}

#[tokio::test]
async fn a_disconnected_holder_hands_its_lock_to_the_next_session() {
    let node = start_node(Vec::new()).await;
    let mut a = authenticated(node.client_addr(), &json!({"sub": "a"})).await;
    let mut b = authenticated(node.client_addr(), &json!({"sub": "b"})).await;

    send(&mut a, json!({"type": "LOCK_REQUEST", "payload": {"requestId": "ra", "name": "job", "ttl": 60000}})).await;
    next_reply(&mut a).await;
    send(
        &mut b,
        json!({"type": "LOCK_REQUEST", "payload": {"requestId": "rb", "name": "job"}}),
    )
    .await;
    drop(a);
    let granted = next_reply(&mut b).await;

    assert_eq!(granted["type"], "LOCK_GRANTED");
    assert_eq!(granted["payload"]["fencingToken"], 2);
}
