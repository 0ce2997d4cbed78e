//! Limits on what one WebSocket client can make the node hold.

mod common;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::{expect_close, start_node, ws_session};

/// Case C6 (c): a message over `TOPGUN_MAX_MESSAGE_SIZE` closes that connection with
/// 1009; the node goes on serving others.
#[tokio::test]
async fn c6_a_message_over_the_limit_closes_with_1009_and_the_node_stays_healthy() {
    let node = start_node(vec![("TOPGUN_MAX_MESSAGE_SIZE".into(), "1024".into())]).await;
    let addr = node.client_addr();
    let mut ws = ws_session(addr).await;

    ws.send(Message::Binary(vec![0x80; 4096].into()))
        .await
        .unwrap();
    let frame = expect_close(&mut ws).await;

    assert_eq!(frame.code, CloseCode::Size);
    ws_session(addr).await;
}

/// Case C6 (c) as a real client meets it: it is still writing a message far larger
/// than the socket buffers when the node refuses it. The node reads on and discards
/// the rest, so the client's write completes and it reads 1009, instead of a reset
/// ("broken pipe") that loses the close frame.
#[tokio::test]
async fn a_client_still_writing_an_oversized_message_reads_1009_not_a_reset() {
    let node = start_node(vec![("TOPGUN_MAX_MESSAGE_SIZE".into(), "65536".into())]).await;
    let mut ws = ws_session(node.client_addr()).await;

    let sent = ws.send(Message::Binary(vec![0x80; 4 << 20].into())).await;
    assert!(sent.is_ok(), "the write was cut off: {sent:?}");
    let frame = expect_close(&mut ws).await;

    assert_eq!(frame.code, CloseCode::Size);
}

#[tokio::test]
async fn an_undecodable_message_closes_with_1002() {
    let node = start_node(Vec::new()).await;
    let addr = node.client_addr();
    let mut ws = ws_session(addr).await;

    ws.send(Message::Binary(
        b"\xc1 not msgpack, not json".to_vec().into(),
    ))
    .await
    .unwrap();
    let frame = expect_close(&mut ws).await;

    assert_eq!(frame.code, CloseCode::Protocol);
    assert_eq!(frame.reason.as_str(), "Protocol Error");
}
