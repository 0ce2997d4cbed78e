//! Limits on what one WebSocket client can make the node hold.

mod common;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::start_node;

/// Case C6 (c): a message over `TOPGUN_MAX_MESSAGE_SIZE` closes that connection with
/// 1009; the node goes on serving others.
#[tokio::test]
async fn c6_a_message_over_the_limit_closes_with_1009_and_the_node_stays_healthy() {
    let node = start_node(vec![("TOPGUN_MAX_MESSAGE_SIZE".into(), "1024".into())]).await;
    let addr = node.client_addr();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    let _greeting = ws.next().await.unwrap().unwrap();

    ws.send(Message::Binary(vec![0x80; 4096].into()))
        .await
        .unwrap();
    let closing = ws.next().await.unwrap().unwrap();

    let Message::Close(Some(frame)) = closing else {
        panic!("expected a close frame, got {closing:?}");
    };
    assert_eq!(frame.code, CloseCode::Size);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut other, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    assert!(matches!(other.next().await, Some(Ok(Message::Binary(_)))));
}

#[tokio::test]
async fn an_undecodable_message_closes_with_1002() {
    let node = start_node(Vec::new()).await;
    let addr = node.client_addr();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    let _greeting = ws.next().await.unwrap().unwrap();

    ws.send(Message::Binary(
        b"\xc1 not msgpack, not json".to_vec().into(),
    ))
    .await
    .unwrap();
    let closing = ws.next().await.unwrap().unwrap();

    let Message::Close(Some(frame)) = closing else {
        panic!("expected a close frame, got {closing:?}");
    };
    assert_eq!(frame.code, CloseCode::Protocol);
    assert_eq!(frame.reason.as_str(), "Protocol Error");
}
