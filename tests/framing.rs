//! WebSocket framing over TLS on the data path: cases C5 and C6 (a), (b).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::Message;

use common::{
    authenticate, client_frame, connector, next_json, next_reply, put_op, send, tls_connect,
    tls_vars, wss_session, Pki, TestNode,
};

const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const PING: u8 = 0x9;

async fn tls_node() -> (Pki, TestNode) {
    let pki = Pki::new("ours");
    let node = common::start_node(tls_vars(&pki.server())).await;
    (pki, node)
}

fn batch_bytes(key: &str, value: Value) -> Vec<u8> {
    let message =
        json!({"type": "OP_BATCH", "payload": {"ops": [put_op("m", "1", key, value, 1)]}});
    rmp_serde::to_vec_named(&message).unwrap()
}

/// The keys a fresh session finds in map `m`.
async fn keys_in_map(pki: &Pki, node: &TestNode) -> Vec<String> {
    let mut ws = wss_session(node.client_addr(), &pki.ca_path).await;
    authenticate(&mut ws, &json!({"sub": "reader"})).await;
    send(
        &mut ws,
        json!({"type": "QUERY_SUB", "payload": {"queryId": "q", "mapName": "m", "query": {}}}),
    )
    .await;
    let response = next_reply(&mut ws).await;
    response["payload"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["key"].as_str().unwrap().to_owned())
        .collect()
}

/// Case C6 (a): a 64 KiB message sent as many fragments, each flushed as its own TLS
/// records, with pings between the fragments, arrives whole.
#[tokio::test]
async fn c6_a_fragmented_64k_message_with_pings_between_fragments_arrives_intact() {
    let (pki, node) = tls_node().await;
    let mut ws = wss_session(node.client_addr(), &pki.ca_path).await;
    authenticate(&mut ws, &json!({"sub": "w"})).await;
    let big = "x".repeat(64 * 1024);
    let message = batch_bytes("big", json!(big));

    let chunks: Vec<&[u8]> = message.chunks(1000).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { BINARY } else { CONTINUATION };
        let frame = client_frame(opcode, i + 1 == chunks.len(), chunk);
        let stream = ws.get_mut();
        stream.write_all(&frame).await.unwrap();
        if i % 10 == 0 {
            stream
                .write_all(&client_frame(PING, true, b"p"))
                .await
                .unwrap();
        }
        stream.flush().await.unwrap();
    }
    let mut pongs = 0;
    let ack = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Pong(_) => pongs += 1,
            Message::Binary(bytes) => break rmp_serde::from_slice::<Value>(&bytes).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    };

    assert_eq!(ack["type"], "OP_ACK");
    assert!(pongs > 0, "pings between fragments were answered");
    let mut reader = wss_session(node.client_addr(), &pki.ca_path).await;
    authenticate(&mut reader, &json!({"sub": "r"})).await;
    send(
        &mut reader,
        json!({"type": "QUERY_SUB", "payload": {"queryId": "q", "mapName": "m", "query": {}}}),
    )
    .await;
    let response = next_reply(&mut reader).await;
    assert_eq!(response["payload"]["results"][0]["value"], json!(big));
}

/// A reader that takes at most 16 KiB per millisecond from its stream.
struct Trickle<S> {
    inner: S,
    next: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Trickle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(sleep) = self.next.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let limit = buf.remaining().min(16 * 1024);
        let mut small = ReadBuf::new(buf.initialize_unfilled_to(limit));
        let result = Pin::new(&mut self.inner).poll_read(cx, &mut small);
        let filled = small.filled().len();
        buf.advance(filled);
        self.next = Some(Box::pin(tokio::time::sleep(Duration::from_millis(1))));
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Trickle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Case C6 (b): a 4 MiB message to a client that reads 16 KiB every millisecond is
/// delivered in full, written once by its sender.
#[tokio::test]
async fn c6_b_a_4mib_event_reaches_a_slow_reader_whole() {
    let (pki, node) = tls_node().await;
    let stream = tls_connect(
        &connector(&pki.ca_path, None),
        node.client_addr(),
        "localhost",
    )
    .await
    .unwrap();
    let slow = Trickle {
        inner: stream,
        next: None,
    };
    let url = format!("wss://localhost:{}/", node.client_addr().port());
    let (mut reader, _) = tokio_tungstenite::client_async(url, slow).await.unwrap();
    next_json(&mut reader).await;
    authenticate(&mut reader, &json!({"sub": "slow"})).await;
    let mut writer = wss_session(node.client_addr(), &pki.ca_path).await;
    authenticate(&mut writer, &json!({"sub": "w"})).await;
    let huge = "y".repeat(4 * 1024 * 1024);

    send(
        &mut writer,
        json!({"type": "OP_BATCH", "payload": {"ops": [put_op("m", "1", "huge", json!(huge), 1)]}}),
    )
    .await;
    assert_eq!(next_json(&mut writer).await["type"], "OP_ACK");
    let event = tokio::time::timeout(Duration::from_secs(60), next_json(&mut reader))
        .await
        .expect("the event arrives");

    assert_eq!(
        event["payload"]["record"]["value"].as_str().unwrap().len(),
        huge.len()
    );
}

/// Case C5: a peer that drops TCP without close_notify in the middle of a frame gets
/// nothing applied from that frame; one that drops between frames keeps the complete
/// ones. The node serves others either way.
#[tokio::test]
async fn c5_a_connection_cut_mid_frame_applies_nothing_of_that_frame() {
    let (pki, node) = tls_node().await;

    let mut cut_between = wss_session(node.client_addr(), &pki.ca_path).await;
    authenticate(&mut cut_between, &json!({"sub": "a"})).await;
    send(
        &mut cut_between,
        json!({"type": "OP_BATCH", "payload": {"ops": [put_op("m", "1", "whole", json!(1), 1)]}}),
    )
    .await;
    assert_eq!(next_json(&mut cut_between).await["type"], "OP_ACK");
    drop(cut_between);

    let mut cut_mid = wss_session(node.client_addr(), &pki.ca_path).await;
    authenticate(&mut cut_mid, &json!({"sub": "b"})).await;
    let frame = client_frame(BINARY, true, &batch_bytes("half", json!("never")));
    let stream = cut_mid.get_mut();
    stream.write_all(&frame[..frame.len() / 2]).await.unwrap();
    stream.flush().await.unwrap();
    // Dropping the stream closes TCP without a TLS close_notify.
    drop(cut_mid);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let keys = keys_in_map(&pki, &node).await;
    assert_eq!(keys, ["whole"]);
}
