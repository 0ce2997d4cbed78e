//! The client port over TLS: HTTPS, WSS, versions, SNI, and peers that misbehave.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openssl::ssl::{Ssl, SslVersion};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::{connector, http_get, start_node, tls_connect, tls_vars, Pki};

#[tokio::test]
async fn https_over_tls13_and_tls12_verifies_against_the_ca_and_says_secure() {
    let pki = Pki::new("ours");
    let node = start_node(tls_vars(&pki.server())).await;
    let cases = [
        (None, "localhost", "/", "TLSv1.3"),
        (
            Some(SslVersion::TLS1_2),
            "127.0.0.1",
            "/any/path",
            "TLSv1.2",
        ),
    ];

    for (max_version, host, path, negotiated) in cases {
        let client = connector(&pki.ca_path, max_version);
        let stream = tls_connect(&client, node.client_addr(), host)
            .await
            .unwrap();
        assert_eq!(stream.ssl().version_str(), negotiated);
        let (status, body) = http_get(stream, path).await;

        assert_eq!(status, 200, "{negotiated}");
        assert_eq!(body, "TopGun Server Running (Secure)", "{negotiated}");
    }
}

#[tokio::test]
async fn min_version_tls13_refuses_a_tls12_only_client() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.push(("TOPGUN_TLS_MIN_VERSION".into(), "TLSv1.3".into()));
    let node = start_node(vars).await;

    let old_client = connector(&pki.ca_path, Some(SslVersion::TLS1_2));
    let refused = tls_connect(&old_client, node.client_addr(), "localhost").await;
    let modern_client = connector(&pki.ca_path, None);
    let accepted = tls_connect(&modern_client, node.client_addr(), "localhost").await;

    assert!(refused.is_err(), "a TLS 1.2-only client must be refused");
    assert!(accepted.is_ok(), "a TLS 1.3 client must still get in");
}

#[tokio::test]
async fn a_client_trusting_another_ca_refuses_the_node() {
    let pki = Pki::new("ours");
    let other = Pki::new("other");
    let node = start_node(tls_vars(&pki.server())).await;

    let client = connector(&other.ca_path, None);
    let result = tls_connect(&client, node.client_addr(), "localhost").await;

    assert!(result.is_err());
}

#[tokio::test]
async fn wss_upgrades_on_any_path_and_exchanges_binary_frames() {
    let pki = Pki::new("ours");
    let node = start_node(tls_vars(&pki.server())).await;
    let client = connector(&pki.ca_path, None);
    let stream = tls_connect(&client, node.client_addr(), "localhost")
        .await
        .unwrap();

    let url = format!(
        "wss://localhost:{}/some/deep/path?x=1",
        node.client_addr().port()
    );
    let (mut ws, response) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(response.status(), 101);

    // The node speaks first: AUTH_REQUIRED as one binary MessagePack map.
    let greeting = ws.next().await.unwrap().unwrap();
    let Message::Binary(bytes) = greeting else {
        panic!("expected a binary frame, got {greeting:?}");
    };
    let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(value, serde_json::json!({"type": "AUTH_REQUIRED"}));

    // Pings are answered while the session waits for AUTH.
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = ws.next().await.unwrap().unwrap();
    assert_eq!(pong, Message::Pong(b"are you there".to_vec().into()));

    // A binary message other than AUTH before authentication closes with 4001.
    let sync = rmp_serde::to_vec_named(&serde_json::json!({"type": "SYNC_INIT", "mapName": "m"}));
    ws.send(Message::Binary(sync.unwrap().into()))
        .await
        .unwrap();
    let frame = common::expect_close(&mut ws).await;
    assert_eq!(frame.code, CloseCode::from(4001));
    assert_eq!(frame.reason.as_str(), "Auth required");
}

#[tokio::test]
async fn a_plain_text_client_on_the_tls_port_gets_a_clear_400_and_the_node_keeps_serving() {
    let pki = Pki::new("ours");
    let node = start_node(tls_vars(&pki.server())).await;

    let plain = TcpStream::connect(node.client_addr()).await.unwrap();
    let (status, body) = http_get(plain, "/").await;
    let client = connector(&pki.ca_path, None);
    let stream = tls_connect(&client, node.client_addr(), "localhost")
        .await
        .unwrap();
    let (secure_status, _) = http_get(stream, "/").await;

    assert_eq!(status, 400);
    assert!(body.contains("expects TLS"), "body was {body:?}");
    assert_eq!(secure_status, 200);
}

#[tokio::test]
async fn a_plain_websocket_client_on_the_tls_port_fails_cleanly() {
    let pki = Pki::new("ours");
    let node = start_node(tls_vars(&pki.server())).await;

    let url = format!("ws://127.0.0.1:{}/", node.client_addr().port());
    let tcp = TcpStream::connect(node.client_addr()).await.unwrap();
    let result = tokio_tungstenite::client_async(url, tcp).await;

    assert!(
        result.is_err(),
        "a ws:// client must not get a WebSocket on the TLS port"
    );
}

/// Case C7: (a) no SNI, as a peer dialling by IP sends; (b) an IP literal in SNI;
/// (c) an unknown host name. All complete with the one configured certificate.
#[tokio::test]
async fn c7_hellos_without_sni_with_an_ip_or_with_an_unknown_name_all_get_the_certificate() {
    let pki = Pki::new("ours");
    let node = start_node(tls_vars(&pki.server())).await;
    let client = connector(&pki.ca_path, None);

    for sni in [None, Some("127.0.0.1"), Some("unknown.example.net")] {
        let tcp = TcpStream::connect(node.client_addr()).await.unwrap();
        let mut ssl = Ssl::new(client.context()).unwrap();
        if let Some(name) = sni {
            ssl.set_hostname(name).unwrap();
        }
        // The chain is still verified against the CA; only the name check is left out,
        // since the point is what the server does with the name it was sent.
        let mut stream = SslStream::new(ssl, tcp).unwrap();
        std::pin::Pin::new(&mut stream)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("SNI {sni:?}: {e}"));
        let subject = stream.ssl().peer_certificate().unwrap();
        let (status, _) = http_get(stream, "/").await;

        assert_eq!(status, 200, "SNI {sni:?}");
        assert!(format!("{:?}", subject.subject_name()).contains("localhost"));
    }
}

/// Case C1: sockets that never send a ClientHello, or send it a byte at a time, do not
/// hold up a normal client. The handshake timeout is long here, so the normal client
/// can only get through if handshakes run beside the accept loop, not in it.
#[tokio::test]
async fn c1_stalled_handshakes_do_not_hold_up_a_normal_client() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.push(("TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS".into(), "60000".into()));
    let node = start_node(vars).await;
    let addr = node.client_addr();
    let (_stalled, mut dribbler) = stall(addr, 50).await;
    dribbler.write_all(&[0x16, 0x03]).await.unwrap();

    let client = connector(&pki.ca_path, None);
    let served = tokio::time::timeout(Duration::from_secs(30), async {
        let stream = tls_connect(&client, addr, "localhost").await.unwrap();
        http_get(stream, "/").await
    })
    .await;

    assert_eq!(served.expect("a normal client is served promptly").0, 200);
}

/// Case C1: stalled peers are closed at the handshake timeout, whether they stall
/// before TLS, in the middle of the ClientHello, or after TLS without an HTTP request,
/// and the connection cap they held is free again afterwards.
#[tokio::test]
async fn c1_stalled_peers_are_closed_at_the_timeout_and_free_the_connection_cap() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.push(("TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS".into(), "300".into()));
    vars.push(("TOPGUN_MAX_CONNECTIONS".into(), "10".into()));
    let node = start_node(vars).await;
    let addr = node.client_addr();
    let client = connector(&pki.ca_path, None);

    let (silent, mut dribbler) = stall(addr, 8).await;
    dribbler.write_all(&[0x16]).await.unwrap();
    let mut idle_tls = tls_connect(&client, addr, "localhost").await.unwrap();

    for mut stalled in silent.into_iter().chain([dribbler]) {
        assert_closed_by_node(&mut stalled).await;
    }
    assert_closed_by_node(&mut idle_tls).await;

    for _ in 0..10 {
        let stream = tls_connect(&client, addr, "localhost").await.unwrap();
        assert_eq!(http_get(stream, "/").await.0, 200);
    }
}

/// Opens `count` silent connections and one more for the caller to dribble bytes on.
async fn stall(addr: std::net::SocketAddr, count: usize) -> (Vec<TcpStream>, TcpStream) {
    let mut silent = Vec::new();
    for _ in 0..count {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    (silent, TcpStream::connect(addr).await.unwrap())
}

/// Waits (generously) for the node to close `stream`: a read returns end of file or
/// an error instead of hanging.
async fn assert_closed_by_node<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read(stream, &mut buf),
    )
    .await
    .expect("the node closes a stalled connection at its timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "got {read:?}");
}

#[tokio::test]
async fn health_and_ready_answer_json_probes() {
    let pki = Pki::new("ours");
    let node = start_node(tls_vars(&pki.server())).await;
    let client = connector(&pki.ca_path, None);

    let stream = tls_connect(&client, node.client_addr(), "localhost")
        .await
        .unwrap();
    let (health_status, health) = http_get(stream, "/health").await;
    let stream = tls_connect(&client, node.client_addr(), "localhost")
        .await
        .unwrap();
    let (ready_status, ready) = http_get(stream, "/ready").await;

    assert_eq!(health_status, 200);
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    assert!(health.contains("\"tls\":true"), "{health}");
    assert_eq!(ready_status, 200);
    assert!(ready.contains("ready"), "{ready}");
}

#[tokio::test]
async fn alpn_selects_http11_and_never_h2() {
    let pki = Pki::new("ours");
    let node = start_node(tls_vars(&pki.server())).await;

    let mut builder = common::connector_builder(&pki.ca_path, None);
    builder.set_alpn_protos(b"\x02h2\x08http/1.1").unwrap();
    let both = builder.build();
    let mut builder = common::connector_builder(&pki.ca_path, None);
    builder.set_alpn_protos(b"\x02h2").unwrap();
    let h2_only = builder.build();

    let negotiated = tls_connect(&both, node.client_addr(), "localhost")
        .await
        .unwrap();
    let without = tls_connect(&h2_only, node.client_addr(), "localhost")
        .await
        .unwrap();

    assert_eq!(
        negotiated.ssl().selected_alpn_protocol(),
        Some(&b"http/1.1"[..])
    );
    assert_eq!(without.ssl().selected_alpn_protocol(), None);
}

#[tokio::test]
async fn a_leaf_only_certificate_file_is_completed_from_the_ca_file_without_the_root() {
    let pki = Pki::new("ours");
    let intermediate = pki.ca.intermediate("issuing CA").unwrap();
    let leaf = intermediate.issue(&Pki::server_spec()).unwrap();
    let files = common::Files {
        cert: pki.path("leaf.crt"),
        key: pki.path("leaf.key"),
    };
    leaf.write(&files.cert, &files.key).unwrap();
    let bundle = pki.path("bundle.crt");
    let pem = [
        intermediate.cert().to_pem().unwrap(),
        pki.ca.cert().to_pem().unwrap(),
    ]
    .concat();
    std::fs::write(&bundle, pem).unwrap();
    let mut vars = tls_vars(&files);
    vars.push(("TOPGUN_TLS_CA_PATH".into(), common::path(&bundle)));
    let node = start_node(vars).await;

    let client = connector(&pki.ca_path, None);
    let stream = tls_connect(&client, node.client_addr(), "localhost")
        .await
        .unwrap();
    let sent = stream.ssl().peer_cert_chain().unwrap();

    assert_eq!(sent.len(), 2, "the leaf and the intermediate");
    assert!(sent
        .iter()
        .all(|cert| cert.issued(cert) != openssl::x509::X509VerifyResult::OK));
}

#[tokio::test]
async fn a_root_in_the_certificate_file_is_not_sent() {
    let pki = Pki::new("ours");
    let intermediate = pki.ca.intermediate("issuing CA").unwrap();
    let leaf = intermediate.issue(&Pki::server_spec()).unwrap();
    let files = common::Files {
        cert: pki.path("full-chain.crt"),
        key: pki.path("leaf.key"),
    };
    leaf.write(&files.cert, &files.key).unwrap();
    let full_chain = [
        leaf.cert.to_pem().unwrap(),
        intermediate.cert().to_pem().unwrap(),
        pki.ca.cert().to_pem().unwrap(),
    ]
    .concat();
    std::fs::write(&files.cert, full_chain).unwrap();
    let node = start_node(tls_vars(&files)).await;

    let client = connector(&pki.ca_path, None);
    let stream = tls_connect(&client, node.client_addr(), "localhost")
        .await
        .unwrap();
    let sent = stream.ssl().peer_cert_chain().unwrap();

    assert_eq!(sent.len(), 2, "the leaf and the intermediate, not the root");
    assert!(sent
        .iter()
        .all(|cert| cert.issued(cert) != openssl::x509::X509VerifyResult::OK));
}

/// C6 (c) over TLS: a client still writing an oversized message reads 1009.
#[tokio::test]
async fn a_wss_client_still_writing_an_oversized_message_reads_1009() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.push(("TOPGUN_MAX_MESSAGE_SIZE".into(), "65536".into()));
    let node = start_node(vars).await;
    let client = connector(&pki.ca_path, None);
    let stream = tls_connect(&client, node.client_addr(), "localhost")
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/", node.client_addr().port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws.next().await.unwrap().unwrap();

    let sent = ws.send(Message::Binary(vec![0x80; 4 << 20].into())).await;
    assert!(sent.is_ok(), "the write was cut off: {sent:?}");
    let frame = common::expect_close(&mut ws).await;

    assert_eq!(frame.code, CloseCode::Size);
}

/// The whole HTTP response to `GET path`, head included, in lower case.
async fn raw_response<S>(mut stream: S, path: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response).await;
    String::from_utf8_lossy(&response).to_lowercase()
}

#[tokio::test]
async fn https_answers_carry_hsts_and_hardening_headers_and_plain_ones_no_hsts() {
    let pki = Pki::new("headers");
    let secure = start_node(tls_vars(&pki.server())).await;
    let stream = tls_connect(
        &connector(&pki.ca_path, None),
        secure.client_addr(),
        "localhost",
    )
    .await
    .unwrap();
    let head = raw_response(stream, "/health").await;
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );

    let plain = start_node(Vec::new()).await;
    let tcp = TcpStream::connect(plain.client_addr()).await.unwrap();
    let head = raw_response(tcp, "/").await;
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(!head.contains("strict-transport-security"), "{head}");
    let metrics = TcpStream::connect(plain.metrics_addr()).await.unwrap();
    let head = raw_response(metrics, "/metrics").await;
    assert!(head.contains("cache-control: no-store"), "{head}");
}
