//! Certificate rotation without a restart (issue 8): files swapped the way Kubernetes
//! updates a mounted Secret (a `..data` symlink replaced at once), picked up by the
//! reload interval or SIGHUP; open connections keep working, new ones get the new
//! certificate, a broken replacement leaves the old one in service and is counted.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use openssl::x509::X509;
use serde_json::json;
use tokio::net::TcpStream;

use common::cluster::{formed, key_owned_by, Member};
use common::{
    authenticate, connector, http_get, next_reply, packed, path, put_op, start_node, tls_connect,
    NodeProcess, Pki,
};
use topgun_server::pki::{Issued, LeafSpec, Usage};

/// A directory laid out as kubelet mounts a Secret: `tls.crt` and `tls.key` are links
/// into `..data`, itself a link to the current generation's directory.
struct Mounted {
    dir: PathBuf,
    generation: u32,
}

impl Mounted {
    fn new(dir: &Path, first: &Issued) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        let mut mounted = Mounted {
            dir: dir.to_owned(),
            generation: 0,
        };
        mounted.publish(first);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        mounted
    }

    /// Writes `issued` as a new generation and switches `..data` to it in one rename.
    fn publish(&mut self, issued: &Issued) {
        self.publish_pair(&issued.cert, issued);
    }

    /// Like [`Mounted::publish`] with the certificate of one and the key of another.
    fn publish_pair(&mut self, cert: &X509, key_of: &Issued) {
        self.generation += 1;
        let name = format!("..gen{}", self.generation);
        let generation = self.dir.join(&name);
        std::fs::create_dir(&generation).unwrap();
        std::fs::write(generation.join("tls.crt"), cert.to_pem().unwrap()).unwrap();
        let key = key_of.key.private_key_to_pem_pkcs8().unwrap();
        std::fs::write(generation.join("tls.key"), key).unwrap();
        let staged = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &staged).unwrap();
        std::fs::rename(&staged, self.dir.join("..data")).unwrap();
    }

    fn cert(&self) -> String {
        path(&self.dir.join("tls.crt"))
    }

    fn key(&self) -> String {
        path(&self.dir.join("tls.key"))
    }
}

fn server_spec(name: &str, days: i64) -> LeafSpec {
    let mut spec = LeafSpec::new(name);
    spec.dns_names = vec!["localhost".into()];
    spec.ips = vec!["127.0.0.1".parse().unwrap()];
    spec.valid_days = 0..days;
    spec
}

/// The common name of the certificate a new TLS connection to `addr` is served.
async fn served_name(client: &SslConnector, addr: std::net::SocketAddr) -> String {
    let stream = tls_connect(client, addr, "localhost").await.unwrap();
    let cert = stream.ssl().peer_certificate().unwrap();
    let name = cert.subject_name().entries().last().unwrap();
    name.data().to_string().unwrap()
}

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

/// Polls `check` every 50 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const RELOADS_OK: &str = "topgun_tls_reloads_total{listener=\"client\",result=\"success\"}";
const RELOADS_FAILED: &str = "topgun_tls_reloads_total{listener=\"client\",result=\"failure\"}";
const SERVER_EXPIRY: &str = "topgun_certificate_expiry_days{cert_type=\"server\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_certificate_serves_new_connections_while_open_ones_keep_working() {
    let pki = Pki::new("rotation");
    let first = pki.ca.issue(&server_spec("first", 30)).unwrap();
    let mut mounted = Mounted::new(&pki.path("secret"), &first);
    let node = start_node(vec![
        ("TOPGUN_TLS_ENABLED".into(), "true".into()),
        ("TOPGUN_TLS_CERT_PATH".into(), mounted.cert()),
        ("TOPGUN_TLS_KEY_PATH".into(), mounted.key()),
        ("TOPGUN_TLS_RELOAD_INTERVAL_MS".into(), "100".into()),
    ])
    .await;
    let client = connector(&pki.ca_path, None);
    assert_eq!(served_name(&client, node.client_addr()).await, "first");
    let before = scrape(node.metrics_addr()).await;
    let first_days = sample(&before, SERVER_EXPIRY).unwrap();

    // A session opened before the rotation.
    let stream = tls_connect(&client, node.client_addr(), "localhost")
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/", node.client_addr().port());
    let (mut open, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    open.next().await.unwrap().unwrap();
    authenticate(&mut open, &json!({"sub": "kept"})).await;

    // A new key and certificate, swapped in as kubelet does.
    let second = pki.ca.issue(&server_spec("second", 300)).unwrap();
    mounted.publish(&second);
    eventually("the new certificate is served", || async {
        served_name(&client, node.client_addr()).await == "second"
    })
    .await;

    // The open session still works on the old certificate's connection.
    let op = put_op("m", "1", "k", json!("after rotation"), 1);
    open.send(packed(
        &json!({"type": "OP_BATCH", "payload": {"ops": [op]}}),
    ))
    .await
    .unwrap();
    assert_eq!(next_reply(&mut open).await["type"], "OP_ACK");

    let after = scrape(node.metrics_addr()).await;
    let second_days = sample(&after, SERVER_EXPIRY).unwrap();
    assert!(
        second_days > first_days + 200.0,
        "{first_days} → {second_days}"
    );
    assert_eq!(sample(&after, RELOADS_OK), Some(1.0));
    assert_eq!(sample(&after, RELOADS_FAILED), Some(0.0));

    // A broken replacement: a certificate with a key that is not its own.
    let third = pki.ca.issue(&server_spec("third", 3)).unwrap();
    mounted.publish_pair(&third.cert, &first);
    eventually("the failed reload is counted", || async {
        sample(&scrape(node.metrics_addr()).await, RELOADS_FAILED) == Some(1.0)
    })
    .await;
    assert_eq!(served_name(&client, node.client_addr()).await, "second");
    let kept = scrape(node.metrics_addr()).await;
    assert_eq!(
        sample(&kept, SERVER_EXPIRY).map(f64::round),
        Some(second_days.round())
    );
    // Not retried while the files stay the same.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = scrape(node.metrics_addr()).await;
    assert_eq!(sample(&later, RELOADS_FAILED), Some(1.0));
}

/// Mutual TLS on the cluster port with node-1's certificate mounted as a Secret.
fn cluster_vars(pki: &Pki, mounted: &Mounted) -> Vec<(String, String)> {
    vec![
        ("TOPGUN_CLUSTER_TLS_ENABLED".into(), "true".into()),
        ("TOPGUN_CLUSTER_TLS_CERT_PATH".into(), mounted.cert()),
        ("TOPGUN_CLUSTER_TLS_KEY_PATH".into(), mounted.key()),
        ("TOPGUN_CLUSTER_TLS_CA_PATH".into(), path(&pki.ca_path)),
        ("TOPGUN_CLUSTER_MTLS".into(), "true".into()),
        ("TOPGUN_TLS_RELOAD_INTERVAL_MS".into(), "100".into()),
    ]
}

fn node_spec(name: &str) -> LeafSpec {
    let mut spec = server_spec(name, 365);
    spec.usages = vec![Usage::ServerAuth, Usage::ClientAuth];
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_cluster_certificate_keeps_the_live_peer_link_and_serves_new_handshakes() {
    let pki = Pki::new("cluster");
    let one = pki.ca.issue(&node_spec("node-1")).unwrap();
    let two = pki.ca.issue(&node_spec("node-2")).unwrap();
    let mut mount_one = Mounted::new(&pki.path("one"), &one);
    let mount_two = Mounted::new(&pki.path("two"), &two);
    let first = Member::start("node-1", &[], &cluster_vars(&pki, &mount_one)).await;
    let second = Member::start(
        "node-2",
        &[first.address()],
        &cluster_vars(&pki, &mount_two),
    )
    .await;
    let ids = ["node-1", "node-2"];
    formed(&[&first, &second], &ids).await;

    // A peer's view of node-1's cluster port: a client certificate of the same CA.
    let (_, peer_files) = pki.write("peer", &node_spec("peer"));
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_ca_file(&pki.ca_path).unwrap();
    builder
        .set_certificate_chain_file(&peer_files.cert)
        .unwrap();
    builder
        .set_private_key_file(&peer_files.key, openssl::ssl::SslFiletype::PEM)
        .unwrap();
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_3))
        .unwrap();
    let peer = builder.build();
    let cluster_port: std::net::SocketAddr = first.address().parse().unwrap();
    assert_eq!(served_name(&peer, cluster_port).await, "node-1");

    let rotated = pki.ca.issue(&node_spec("node-1-rotated")).unwrap();
    mount_one.publish(&rotated);
    eventually("the rotated cluster certificate is served", || async {
        served_name(&peer, cluster_port).await == "node-1-rotated"
    })
    .await;

    // The link that was up before the rotation still carries writes.
    assert_eq!(first.members(), ids);
    let mut client = common::authenticated(first.client, &json!({"sub": "w"})).await;
    let key = key_owned_by("node-2", &ids);
    let op = put_op("m", "1", &key, json!(1), 1);
    common::send(
        &mut client,
        json!({"type": "OP_BATCH", "payload": {"ops": [op]}}),
    )
    .await;
    assert_eq!(next_reply(&mut client).await["type"], "OP_ACK");

    // A broken replacement leaves the rotated certificate in service.
    let stranger = Pki::new("other").ca.issue(&node_spec("stranger")).unwrap();
    mount_one.publish_pair(&stranger.cert, &rotated);
    let failed = "topgun_tls_reloads_total{listener=\"cluster\",result=\"failure\"}";
    eventually("the failed cluster reload is counted", || async {
        sample(&scrape(first.metrics()).await, failed) == Some(1.0)
    })
    .await;
    assert_eq!(served_name(&peer, cluster_port).await, "node-1-rotated");
    assert_eq!(first.members(), ids);
}

#[test]
fn sighup_reloads_the_certificate_when_polling_is_off() {
    let pki = Pki::new("sighup");
    let first = pki.ca.issue(&server_spec("before-hup", 30)).unwrap();
    let mut mounted = Mounted::new(&pki.path("secret"), &first);
    let node = NodeProcess::start(&[
        ("TOPGUN_TLS_ENABLED".into(), "true".into()),
        ("TOPGUN_TLS_CERT_PATH".into(), mounted.cert()),
        ("TOPGUN_TLS_KEY_PATH".into(), mounted.key()),
        ("TOPGUN_TLS_RELOAD_INTERVAL_MS".into(), "0".into()),
    ]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = connector(&pki.ca_path, None);
    let addr = node.addr;
    let served = || runtime.block_on(served_name(&client, addr));
    assert_eq!(served(), "before-hup");

    mounted.publish(&pki.ca.issue(&server_spec("after-hup", 30)).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(served(), "before-hup", "no reload without the signal");

    node.hangup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served() != "after-hup" {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    node.terminate();
}

/// One exchange on a fresh connection (so that TLS 1.3 tickets arrive), then a second
/// connection offering that session; true when the server resumed it.
async fn resumes(client: &SslConnector, addr: std::net::SocketAddr) -> bool {
    let mut first = tls_connect(client, addr, "localhost").await.unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let _ = tokio::io::AsyncWriteExt::write_all(&mut first, request).await;
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut first, &mut Vec::new()).await;
    let session = first.ssl().session().expect("a session").to_owned();

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut ssl = client.configure().unwrap().into_ssl("localhost").unwrap();
    // SAFETY: the session comes from a handshake of this same connector's context.
    unsafe { ssl.set_session(&session).unwrap() };
    let mut second = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut second).connect().await.unwrap();
    second.ssl().session_reused()
}

fn client_of(pki: &Pki, version: SslVersion, identity: Option<&common::Files>) -> SslConnector {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_ca_file(&pki.ca_path).unwrap();
    builder.set_min_proto_version(Some(version)).unwrap();
    builder.set_max_proto_version(Some(version)).unwrap();
    if let Some(files) = identity {
        builder.set_certificate_chain_file(&files.cert).unwrap();
        builder
            .set_private_key_file(&files.key, openssl::ssl::SslFiletype::PEM)
            .unwrap();
    }
    builder.build()
}

/// Resumption with TLS 1.3 tickets and the TLS 1.2 session cache, on the client port
/// (no client certificate) and on the cluster port under mutual TLS, counted by
/// `topgun_tls_sessions_resumed_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_with_and_without_client_certificates_and_are_counted() {
    let pki = Pki::new("resume");
    let node = start_node(common::tls_vars(&pki.server())).await;
    let one = pki.ca.issue(&node_spec("node-1")).unwrap();
    let mounted = Mounted::new(&pki.path("one"), &one);
    let member = Member::start("node-1", &[], &cluster_vars(&pki, &mounted)).await;
    let cluster_port: std::net::SocketAddr = member.address().parse().unwrap();
    let (_, peer) = pki.write("peer", &node_spec("peer"));

    for version in [SslVersion::TLS1_3, SslVersion::TLS1_2] {
        let anonymous = client_of(&pki, version, None);
        assert!(resumes(&anonymous, node.client_addr()).await, "{version:?}");
        let with_certificate = client_of(&pki, version, Some(&peer));
        assert!(
            resumes(&with_certificate, cluster_port).await,
            "{version:?} with a client certificate"
        );
    }

    let resumed =
        |listener: &str| format!("topgun_tls_sessions_resumed_total{{listener=\"{listener}\"}}");
    let client_side = scrape(node.metrics_addr()).await;
    assert_eq!(
        sample(&client_side, &resumed("client")),
        Some(2.0),
        "{client_side}"
    );
    let cluster_side = scrape(member.metrics()).await;
    assert_eq!(sample(&cluster_side, &resumed("cluster")), Some(2.0));
}

#[tokio::test]
async fn with_tickets_off_tls13_sessions_still_resume_from_the_server_cache() {
    let pki = Pki::new("no-tickets");
    let mut vars = common::tls_vars(&pki.server());
    vars.push(("TOPGUN_TLS_SESSION_TICKETS".into(), "false".into()));
    let node = start_node(vars).await;
    let client = client_of(&pki, SslVersion::TLS1_3, None);
    assert!(resumes(&client, node.client_addr()).await);
}
