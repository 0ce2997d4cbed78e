//! Topics (PROTOCOL.md §12) between live sessions.

mod common;

use std::time::Duration;

use serde_json::json;

use common::{authenticated, next_json, send, start_node};

#[tokio::test]
async fn a_publish_reaches_other_subscribers_but_not_the_publisher_or_non_subscribers() {
    let node = start_node(Vec::new()).await;
    let addr = node.client_addr();
    let mut publisher = authenticated(addr, &json!({"sub": "p"})).await;
    let mut subscriber = authenticated(addr, &json!({"sub": "s"})).await;
    let mut bystander = authenticated(addr, &json!({"sub": "b"})).await;
    for ws in [&mut publisher, &mut subscriber] {
        send(
            ws,
            json!({"type": "TOPIC_SUB", "payload": {"topic": "chat/room-1"}}),
        )
        .await;
    }
    // A probe round trip proves each subscription was processed before publishing.
    for ws in [&mut publisher, &mut subscriber] {
        send(ws, json!({"type": "SYNC_INIT", "mapName": "probe"})).await;
        next_json(ws).await;
    }

    send(
        &mut publisher,
        json!({"type": "TOPIC_PUB", "payload": {"topic": "chat/room-1", "data": {"text": "hi"}}}),
    )
    .await;
    let message = next_json(&mut subscriber).await;

    assert_eq!(message["type"], "TOPIC_MESSAGE");
    assert_eq!(message["payload"]["topic"], "chat/room-1");
    assert_eq!(message["payload"]["data"], json!({"text": "hi"}));
    assert!(message["payload"]["timestamp"].as_u64().unwrap() > 0);
    for ws in [&mut publisher, &mut bystander] {
        let nothing = tokio::time::timeout(Duration::from_millis(200), next_json(ws)).await;
        assert!(nothing.is_err(), "got {nothing:?}");
    }
}

#[tokio::test]
async fn an_invalid_topic_name_and_the_101st_subscription_get_error_400() {
    let node = start_node(Vec::new()).await;
    let mut ws = authenticated(node.client_addr(), &json!({"sub": "s"})).await;

    send(
        &mut ws,
        json!({"type": "TOPIC_SUB", "payload": {"topic": "no spaces"}}),
    )
    .await;
    let invalid = next_json(&mut ws).await;
    for i in 0..100 {
        send(
            &mut ws,
            json!({"type": "TOPIC_SUB", "payload": {"topic": format!("t{i}")}}),
        )
        .await;
    }
    send(
        &mut ws,
        json!({"type": "TOPIC_SUB", "payload": {"topic": "one-too-many"}}),
    )
    .await;
    let limit = next_json(&mut ws).await;

    assert_eq!(invalid["payload"]["message"], "Invalid topic name");
    assert_eq!(limit["payload"]["message"], "Subscription limit reached");
}
