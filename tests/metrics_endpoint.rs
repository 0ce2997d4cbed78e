//! The metrics endpoint: what it serves, over HTTP and HTTPS, and the TLS and data-plane
//! events it counts.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslConnector, SslVersion};
use openssl::x509::X509;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use common::{
    connector, connector_builder, http_get, next_reply, path, run_binary, send, start_node,
    tls_connect, tls_vars, Pki,
};
use topgun_server::metrics::HANDSHAKE_ERROR_TYPES;
use topgun_server::pki::LeafSpec;

/// The value of the sample `series` (name and labels, as the text format prints them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a sample value is a number"))
}

fn handshake_errors(listener: &str, error_type: &str) -> String {
    format!(
        "topgun_tls_handshake_errors_total{{error_type=\"{error_type}\",listener=\"{listener}\"}}"
    )
}

fn connections(listener: &str, version: &str, cipher: &str) -> String {
    format!("topgun_tls_connections_total{{cipher=\"{cipher}\",listener=\"{listener}\",protocol_version=\"{version}\"}}")
}

/// `GET /metrics` over plain HTTP.
async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(TcpStream::connect(addr).await.unwrap(), "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Scrapes until `expected` holds: the node counts a failure once it has seen it,
/// which may be a moment after the client has given up.
async fn scrape_until(addr: SocketAddr, expected: &[(String, f64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(addr).await;
        let missing: Vec<_> = expected
            .iter()
            .filter(|(series, value)| sample(&text, series) != Some(*value))
            .collect();
        if missing.is_empty() {
            return text;
        }
        if Instant::now() > deadline {
            panic!("not counted: {missing:?}\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the node to close `stream`, discarding what it sends before.
async fn closed_by_node(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest));
    let _ = read.await.expect("the node closes the connection");
}

/// The negotiated version and cipher of an open stream.
fn negotiated(stream: &SslStream<TcpStream>) -> (String, String) {
    let ssl = stream.ssl();
    let cipher = ssl.current_cipher().unwrap().standard_name().unwrap();
    (ssl.version_str().to_owned(), cipher.to_owned())
}

/// The issue's acceptance test: TLS 1.3 and 1.2 clients, a resumed TLS 1.2 session, a
/// client that does not trust the node's CA, plain text on the TLS port and a stalled
/// handshake, each counted under the right labels.
#[tokio::test]
async fn each_kind_of_client_handshake_is_counted_under_its_labels() {
    let pki = Pki::new("ours");
    let other = Pki::new("other");
    let mut vars = tls_vars(&pki.server());
    vars.push(("TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS".into(), "300".into()));
    let node = start_node(vars).await;
    let addr = node.client_addr();

    let tls13 = tls_connect(&connector(&pki.ca_path, None), addr, "localhost")
        .await
        .unwrap();
    let (v13, c13) = negotiated(&tls13);
    let tls12_client = connector(&pki.ca_path, Some(SslVersion::TLS1_2));
    let tls12 = tls_connect(&tls12_client, addr, "localhost").await.unwrap();
    let (v12, c12) = negotiated(&tls12);
    let session = tls12.ssl().session().unwrap().to_owned();
    // A clean close (close_notify) keeps the session resumable.
    let mut tls12 = tls12;
    tls12.shutdown().await.unwrap();
    let resumed = resume(&tls12_client, addr, &session).await;
    assert!(
        resumed.ssl().session_reused(),
        "the TLS 1.2 session resumes"
    );
    let wrong_ca = tls_connect(&connector(&other.ca_path, None), addr, "localhost").await;
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    closed_by_node(&mut stalled).await;
    closed_by_node(&mut plain).await;

    assert!(wrong_ca.is_err());
    assert_eq!((v13.as_str(), v12.as_str()), ("TLSv1.3", "TLSv1.2"));
    let text = scrape_until(
        node.metrics_addr(),
        &[
            (connections("client", &v13, &c13), 1.0),
            (connections("client", &v12, &c12), 2.0),
            (handshake_errors("client", "unknown_ca"), 1.0),
            (handshake_errors("client", "not_tls"), 1.0),
            (handshake_errors("client", "timeout"), 1.0),
            (
                "topgun_tls_sessions_resumed_total{listener=\"client\"}".into(),
                1.0,
            ),
            (
                "topgun_tls_handshake_duration_seconds_count{listener=\"client\"}".into(),
                3.0,
            ),
        ],
    )
    .await;
    for error_type in HANDSHAKE_ERROR_TYPES {
        if !["unknown_ca", "not_tls", "timeout"].contains(error_type) {
            let series = handshake_errors("client", error_type);
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
    }
    assert!(!text.contains("127.0.0.1"), "no address in any label");
    assert!(!text.contains("localhost"), "no SNI name in any label");
    drop(tls13);
}

/// The two refusals a scanner or an old client causes: a client that offers only TLS 1.1
/// and one whose only cipher suite the node does not enable. Each fails the handshake
/// and is counted under its own type, and a modern client still gets through.
#[tokio::test]
async fn an_old_protocol_and_a_cipher_the_node_lacks_are_counted_under_their_types() {
    let pki = Pki::new("ours");
    let node = start_node(tls_vars(&pki.server())).await;
    let addr = node.client_addr();

    // The client's own OpenSSL would refuse to offer TLS 1.1 at its default security
    // level, so the level is lowered on the client only.
    let mut old = connector_builder(&pki.ca_path, Some(SslVersion::TLS1_1));
    old.set_security_level(0);
    old.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
    old.set_cipher_list("DEFAULT@SECLEVEL=0").unwrap();
    let old_protocol = tls_connect(&old.build(), addr, "localhost").await;
    // A TLS 1.2 suite with RSA key exchange and CBC, outside Mozilla's intermediate list.
    let mut cbc = connector_builder(&pki.ca_path, Some(SslVersion::TLS1_2));
    cbc.set_cipher_list("AES128-SHA").unwrap();
    let no_shared_cipher = tls_connect(&cbc.build(), addr, "localhost").await;
    let modern = tls_connect(&connector(&pki.ca_path, None), addr, "localhost").await;

    assert!(old_protocol.is_err(), "a TLS 1.1 client is refused");
    assert!(
        no_shared_cipher.is_err(),
        "a client with only AES128-SHA is refused"
    );
    assert!(modern.is_ok(), "a TLS 1.3 client still connects");
    scrape_until(
        node.metrics_addr(),
        &[
            (handshake_errors("client", "unsupported_protocol"), 1.0),
            (handshake_errors("client", "no_shared_cipher"), 1.0),
            (handshake_errors("client", "other"), 0.0),
        ],
    )
    .await;
}

/// A TLS 1.2 connection that offers `session` for resumption.
async fn resume(
    client: &SslConnector,
    addr: SocketAddr,
    session: &openssl::ssl::SslSession,
) -> SslStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut ssl: Ssl = client.configure().unwrap().into_ssl("localhost").unwrap();
    // SAFETY: the session comes from a connection made with this same connector.
    unsafe { ssl.set_session(session).unwrap() };
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut stream).connect().await.unwrap();
    stream
}

#[tokio::test]
async fn only_get_metrics_is_served_in_the_text_format() {
    let node = start_node(Vec::new()).await;
    let addr = node.metrics_addr();

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = String::new();
    tcp.read_to_string(&mut head).await.unwrap();
    let other_path = http_get(TcpStream::connect(addr).await.unwrap(), "/").await;
    let query = http_get(TcpStream::connect(addr).await.unwrap(), "/metrics?x=1").await;
    let mut post = TcpStream::connect(addr).await.unwrap();
    post.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut post_reply = String::new();
    post.read_to_string(&mut post_reply).await.unwrap();

    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("# TYPE topgun_connected_clients gauge"));
    assert!(head.contains("topgun_process_resident_memory_bytes"));
    assert!(head.contains("topgun_fips_mode 0"));
    assert_eq!(other_path.0, 404);
    assert_eq!(query.0, 404);
    assert!(post_reply.starts_with("HTTP/1.1 405"), "{post_reply}");
}

#[tokio::test]
async fn writes_from_batches_and_single_ops_syncs_and_subscriptions_are_counted_by_map() {
    let node = start_node(Vec::new()).await;
    let mut ws = common::authenticated(node.client_addr(), &json!({"sub": "tester"})).await;
    let remove = {
        let mut op = common::put_op("todos", "3", "k1", serde_json::Value::Null, 3000);
        op["opType"] = json!("REMOVE");
        op
    };

    let batch = [
        common::put_op("todos", "1", "k1", json!("a"), 1000),
        common::put_op("todos", "2", "k2", json!("b"), 1001),
        remove,
    ];
    send(
        &mut ws,
        json!({"type": "OP_BATCH", "payload": {"ops": batch}}),
    )
    .await;
    next_reply(&mut ws).await;
    let single = common::put_op("notes", "4", "n1", json!("c"), 1002);
    send(&mut ws, json!({"type": "CLIENT_OP", "payload": single})).await;
    send(&mut ws, json!({"type": "SYNC_INIT", "mapName": "todos"})).await;
    next_reply(&mut ws).await;
    let query = json!({"queryId": "q1", "mapName": "notes", "query": {}});
    send(&mut ws, json!({"type": "QUERY_SUB", "payload": query})).await;
    next_reply(&mut ws).await;
    let text = scrape(node.metrics_addr()).await;

    for (series, value) in [
        ("topgun_ops_total{map=\"todos\",type=\"PUT\"}", 2.0),
        ("topgun_ops_total{map=\"todos\",type=\"DELETE\"}", 1.0),
        ("topgun_ops_total{map=\"notes\",type=\"PUT\"}", 1.0),
        ("topgun_ops_total{map=\"todos\",type=\"GET\"}", 1.0),
        ("topgun_ops_total{map=\"notes\",type=\"SUBSCRIBE\"}", 1.0),
        ("topgun_map_size_items{map=\"todos\"}", 2.0),
        ("topgun_map_size_items{map=\"notes\"}", 1.0),
        ("topgun_connected_clients", 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
    drop(ws);
    scrape_until(
        node.metrics_addr(),
        &[("topgun_connected_clients".into(), 0.0)],
    )
    .await;
}

/// A scraper presenting `cert` and `key` (if any), trusting `ca`.
fn scraper(ca: &Path, identity: Option<(&X509, &PKey<openssl::pkey::Private>)>) -> SslConnector {
    let mut builder = connector_builder(ca, None);
    if let Some((cert, key)) = identity {
        builder.set_certificate(cert).unwrap();
        builder.set_private_key(key).unwrap();
    }
    builder.build()
}

/// Connects, sends `GET /metrics` and returns the status, or 0 when TLS fails on
/// either side (in TLS 1.3 a refused client certificate surfaces on the first read).
async fn scrape_tls(client: &SslConnector, addr: SocketAddr) -> (u16, String) {
    match tls_connect(client, addr, "localhost").await {
        Ok(stream) => http_get(stream, "/metrics").await,
        Err(error) => (0, error.to_string()),
    }
}

#[tokio::test]
async fn https_scrapers_need_a_valid_certificate_and_each_refusal_is_counted() {
    let pki = Pki::new("ours");
    let other = Pki::new("other");
    let mut vars = tls_vars(&pki.server());
    vars.extend([
        ("TOPGUN_TLS_CA_PATH".into(), path(&pki.ca_path)),
        ("TOPGUN_METRICS_TLS_ENABLED".into(), "true".into()),
        (
            "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT".into(),
            "true".into(),
        ),
    ]);
    let node = start_node(vars).await;
    let addr = node.metrics_addr();
    let issue = |pki: &Pki, name: &str, days: std::ops::Range<i64>| {
        let mut spec = LeafSpec::new(name);
        spec.valid_days = days;
        pki.ca.issue(&spec).unwrap()
    };
    let good = issue(&pki, "prometheus", 0..30);
    let not_yet = issue(&pki, "early", 2..30);
    let expired = issue(&pki, "late", -30..-1);
    let foreign = issue(&other, "stranger", 0..30);

    let mut refused = Vec::new();
    for identity in [None, Some(&not_yet), Some(&expired), Some(&foreign)] {
        let client = scraper(&pki.ca_path, identity.map(|i| (&i.cert, &i.key)));
        refused.push(scrape_tls(&client, addr).await.0);
    }
    let good_client = scraper(&pki.ca_path, Some((&good.cert, &good.key)));
    let expected = [
        (handshake_errors("metrics", "no_client_cert"), 1.0),
        (handshake_errors("metrics", "cert_not_yet_valid"), 1.0),
        (handshake_errors("metrics", "cert_expired"), 1.0),
        (handshake_errors("metrics", "unknown_ca"), 1.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let (status, text) = scrape_tls(&good_client, addr).await;
        assert_eq!(status, 200, "a scraper with a good certificate is served");
        if expected.iter().all(|(s, v)| sample(&text, s) == Some(*v)) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert!(refused.iter().all(|status| *status != 200), "{refused:?}");
    for (series, value) in &expected {
        assert_eq!(sample(&text, series), Some(*value), "{series}\n{text}");
    }
    let server_days = sample(
        &text,
        "topgun_certificate_expiry_days{cert_type=\"server\"}",
    );
    let ca_days = sample(&text, "topgun_certificate_expiry_days{cert_type=\"ca\"}");
    assert!(
        server_days.is_some_and(|days| days > 300.0 && days < 366.0),
        "{text}"
    );
    assert!(ca_days.is_some_and(|days| days > 300.0), "{text}");
    assert!(text.contains("listener=\"metrics\",protocol_version=\"TLSv1.3\""));
}

#[tokio::test]
async fn an_https_endpoint_with_its_own_certificate_exports_its_expiry_separately() {
    let pki = Pki::new("ours");
    let mut spec = Pki::server_spec();
    spec.valid_days = -1..20;
    let (_, metrics_files) = pki.write("metrics", &spec);
    let vars = vec![
        ("TOPGUN_METRICS_TLS_ENABLED".to_owned(), "true".to_owned()),
        (
            "TOPGUN_METRICS_TLS_CERT_PATH".to_owned(),
            path(&metrics_files.cert),
        ),
        (
            "TOPGUN_METRICS_TLS_KEY_PATH".to_owned(),
            path(&metrics_files.key),
        ),
    ];
    let node = start_node(vars).await;

    let (status, text) = scrape_tls(&connector(&pki.ca_path, None), node.metrics_addr()).await;

    assert_eq!(status, 200, "{text}");
    let days = sample(
        &text,
        "topgun_certificate_expiry_days{cert_type=\"metrics\"}",
    );
    assert!(
        days.is_some_and(|days| days > 18.0 && days <= 20.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "topgun_certificate_expiry_days{cert_type=\"server\"}"
        ),
        None
    );
}

#[test]
fn a_metrics_port_in_use_stops_the_node_naming_the_metrics_variables() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let vars = [
        ("TOPGUN_HOST", "127.0.0.1".to_owned()),
        ("TOPGUN_PORT", "0".to_owned()),
        ("TOPGUN_METRICS_HOST", "127.0.0.1".to_owned()),
        (
            "TOPGUN_METRICS_PORT",
            held.local_addr().unwrap().port().to_string(),
        ),
    ]
    .map(|(name, value)| (name.to_owned(), value));

    let output = run_binary(&[], &vars);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("TOPGUN_METRICS_HOST/TOPGUN_METRICS_PORT: cannot listen"),
        "{stderr}"
    );
}
