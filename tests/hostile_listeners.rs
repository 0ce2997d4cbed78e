//! Hostile peers on the cluster and metrics ports, and connection floods on any port
//! (cases C1 and C5 of `cases/README.md` beyond the client port, and issue 8's
//! timeouts and rate limit).

mod common;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use common::cluster::{eventually, formed, Member};
use common::{authenticated, client_frame, http_get, path, start_node, Pki};
use topgun_server::cluster::wire::{Hello, PeerMessage, PROTOCOL_VERSION};
use topgun_server::pki::{LeafSpec, Usage};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let (status, body) = http_get(TcpStream::connect(addr).await.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    body
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// Whether the node closes `socket` (EOF or reset) within `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, socket.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

fn mtls_vars(pki: &Pki, id: &str) -> Vec<(String, String)> {
    let mut spec = LeafSpec::new(id);
    spec.dns_names = vec!["localhost".into()];
    spec.ips = vec!["127.0.0.1".parse().unwrap()];
    spec.usages = vec![Usage::ServerAuth, Usage::ClientAuth];
    let (_, files) = pki.write(id, &spec);
    vec![
        ("TOPGUN_CLUSTER_TLS_ENABLED".into(), "true".into()),
        ("TOPGUN_CLUSTER_TLS_CERT_PATH".into(), path(&files.cert)),
        ("TOPGUN_CLUSTER_TLS_KEY_PATH".into(), path(&files.key)),
        ("TOPGUN_CLUSTER_TLS_CA_PATH".into(), path(&pki.ca_path)),
        ("TOPGUN_CLUSTER_MTLS".into(), "true".into()),
        ("TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS".into(), "700".into()),
    ]
}

/// C1 on the cluster port: sockets that never send a ClientHello do not keep a real
/// peer out; they are closed at the handshake timeout and counted as `timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_sockets_on_the_cluster_port_do_not_keep_a_peer_out() {
    let pki = Pki::new("c1");
    let first = Member::start("node-1", &[], &mtls_vars(&pki, "node-1")).await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(TcpStream::connect(first.address()).await.unwrap());
    }
    let started = Instant::now();
    let second = Member::start("node-2", &[first.address()], &mtls_vars(&pki, "node-2")).await;
    formed(&[&first, &second], &["node-1", "node-2"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the peer joined promptly"
    );

    for socket in &mut stalled {
        assert!(closed_within(socket, Duration::from_secs(3)).await);
    }
    let timeouts = "topgun_tls_handshake_errors_total{error_type=\"timeout\",listener=\"cluster\"}";
    assert_eq!(sample(&scrape(first.metrics()).await, timeouts), Some(20.0));
}

/// Issue 8: a peer that connects to a plain cluster port and never upgrades to
/// WebSocket, or upgrades and never says Hello, is closed by a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_connection_that_never_upgrades_or_never_says_hello_is_closed() {
    let vars = [
        (
            "TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS".to_owned(),
            "500".to_owned(),
        ),
        (
            "TOPGUN_CLUSTER_PEER_TIMEOUT_MS".to_owned(),
            "800".to_owned(),
        ),
    ];
    let node = Member::start("node-1", &[], &vars).await;

    let mut silent = TcpStream::connect(node.address()).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);

    let tcp = TcpStream::connect(node.address()).await.unwrap();
    let (mut mute, _) = tokio_tungstenite::client_async(format!("ws://{}/", node.address()), tcp)
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = mute.next().await {}
    })
    .await;
    assert!(closed.is_ok(), "a WebSocket without Hello is closed");
    assert_eq!(node.members(), ["node-1"]);
}

/// C5 on the cluster port: a peer's TCP connection cut in the middle of a WebSocket
/// frame ends its membership at once (not at the liveness timeout), the half frame is
/// never applied, and the other links are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cut_off_mid_frame_leaves_at_once_and_others_stay() {
    let slow_timeout = [(
        "TOPGUN_CLUSTER_PEER_TIMEOUT_MS".to_owned(),
        "30000".to_owned(),
    )];
    let first = Member::start("node-1", &[], &slow_timeout).await;
    let second = Member::start("node-2", &[first.address()], &slow_timeout).await;
    formed(&[&first, &second], &["node-1", "node-2"]).await;

    let tcp = TcpStream::connect(first.address()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/", first.address()), tcp)
        .await
        .unwrap();
    let hello = PeerMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        node_id: "doomed".into(),
        address: "127.0.0.1:9".into(),
        members: Vec::new(),
    });
    ws.send(Message::Binary(hello.encode())).await.unwrap();
    eventually(Duration::from_secs(5), "doomed joined", || {
        first.members().len() == 3
    })
    .await;

    // Half of a binary frame announcing 100 bytes, then the socket is dropped.
    let mut tcp = ws.into_inner();
    let frame = client_frame(0x2, true, &[0xAA; 100]);
    tcp.write_all(&frame[..frame.len() / 2]).await.unwrap();
    drop(tcp);
    let cut = Instant::now();
    eventually(Duration::from_secs(5), "doomed left", || {
        first.members() == ["node-1", "node-2"]
    })
    .await;
    assert!(cut.elapsed() < Duration::from_secs(5));

    // node-2's link still carries writes.
    let mut client = authenticated(second.client, &json!({"sub": "w"})).await;
    let key = common::cluster::key_owned_by("node-1", &["node-1", "node-2"]);
    let op = common::put_op("m", "1", &key, json!(1), 1);
    common::send(
        &mut client,
        json!({"type": "OP_BATCH", "payload": {"ops": [op]}}),
    )
    .await;
    assert_eq!(common::next_reply(&mut client).await["type"], "OP_ACK");
}

/// Opens `count` connections to `addr` in a burst; returns them and how many the node
/// closed within 300 ms.
async fn open_at_once(addr: std::net::SocketAddr, count: usize) -> (Vec<TcpStream>, usize) {
    let mut sockets = Vec::new();
    for _ in 0..count {
        sockets.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut closed = 0;
    for socket in &mut sockets {
        if closed_within(socket, Duration::from_millis(300)).await {
            closed += 1;
        }
    }
    (sockets, closed)
}

/// Issue 8: `TOPGUN_MAX_CONNECTION_RATE_PER_IP` closes, before any handshake, the
/// connections an address opens beyond its rate, counts them, and lets it back in a
/// second later.
#[tokio::test]
async fn connections_over_the_per_address_rate_are_closed_and_counted() {
    let node = start_node(vec![(
        "TOPGUN_MAX_CONNECTION_RATE_PER_IP".into(),
        "5".into(),
    )])
    .await;
    let (sockets, closed) = open_at_once(node.client_addr(), 20).await;
    assert_eq!(closed, 15, "five were within the rate");
    let refused = "topgun_connections_refused_total{listener=\"client\",reason=\"rate\"}";
    assert_eq!(
        sample(&scrape(node.metrics_addr()).await, refused),
        Some(15.0)
    );

    drop(sockets);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mut client = authenticated(node.client_addr(), &json!({"sub": "back"})).await;
    client.close(None).await.unwrap();
}

/// The metrics port takes the same per-address rate as the others: a scraper connects
/// a few times a minute, a flood from one address is closed before any handshake.
#[tokio::test]
async fn the_metrics_port_closes_connections_over_the_per_address_rate() {
    let node = start_node(vec![(
        "TOPGUN_MAX_CONNECTION_RATE_PER_IP".into(),
        "5".into(),
    )])
    .await;
    let (sockets, closed) = open_at_once(node.metrics_addr(), 20).await;
    drop(sockets);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let text = scrape(node.metrics_addr()).await;

    assert_eq!(closed, 15, "five were within the rate");
    let refused = "topgun_connections_refused_total{listener=\"metrics\",reason=\"rate\"}";
    assert_eq!(sample(&text, refused), Some(15.0));
}
