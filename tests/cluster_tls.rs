//! TLS security of cluster peer links: the mTLS cluster acceptor and the
//! `PeerConnector` dialer, with real handshakes on 127.0.0.1 between them, and
//! certificates made at test time.
//!
//! Each refusal is asserted from the side that refuses, with its classified kind.
//! With TLS 1.3 a dialer finishes its handshake before the listener has checked the
//! client certificate, so a listener's refusal shows on the dialer's first read.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::{NameType, SslAcceptor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::{path, Files, Pki};
use topgun_server::config::{self, TlsProfile, VarPath};
use topgun_server::node::{self, PreparedNode, StartError};
use topgun_server::pki::{self, Issued, LeafSpec, Usage};
use topgun_server::tls::handshake::{self, HandshakeError};
use topgun_server::tls::pinning::Digests;
use topgun_server::tls::{
    acceptor, Identity, PeerCertificates, PeerConnector, PeerPolicy, TlsError,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A cluster node certificate: both usages, its name, `localhost` and 127.0.0.1.
fn node_spec(name: &str) -> LeafSpec {
    let mut spec = LeafSpec::new(name);
    spec.dns_names = vec![name.to_owned(), "localhost".to_owned()];
    spec.ips = vec!["127.0.0.1".parse().unwrap()];
    spec.usages = vec![Usage::ServerAuth, Usage::ClientAuth];
    spec
}

/// Variables enabling cluster TLS with `files`, the CA of `pki`, and `extra`.
fn cluster_vars(pki: &Pki, files: &Files, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = vec![
        ("TOPGUN_CLUSTER_TLS_ENABLED".to_owned(), "true".to_owned()),
        ("TOPGUN_CLUSTER_TLS_CERT_PATH".to_owned(), path(&files.cert)),
        ("TOPGUN_CLUSTER_TLS_KEY_PATH".to_owned(), path(&files.key)),
        ("TOPGUN_CLUSTER_TLS_CA_PATH".to_owned(), path(&pki.ca_path)),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(var, value)| (var.to_string(), value.to_string())),
    );
    vars
}

fn prepare(vars: Vec<(String, String)>) -> Result<PreparedNode, StartError> {
    node::prepare(config::from_vars(vars).expect("the test configuration is valid"))
}

/// The cluster acceptor the node builds from `vars`.
fn listener(vars: Vec<(String, String)>) -> SslAcceptor {
    let node = prepare(vars).expect("the listener's key material loads");
    node.cluster_tls.expect("cluster TLS is on").acceptor
}

/// The dialer the node builds from `vars`.
fn dialer(vars: Vec<(String, String)>) -> PeerConnector {
    let node = prepare(vars).expect("the dialer's key material loads");
    node.cluster_dialer.expect("cluster TLS is on")
}

fn profile() -> TlsProfile {
    let vars = [
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_TLS_CERT_PATH", "/unused.crt"),
        ("TOPGUN_TLS_KEY_PATH", "/unused.key"),
    ];
    config::from_vars(vars)
        .unwrap()
        .cluster
        .tls
        .unwrap()
        .profile
}

fn identity(issued: &Issued) -> Identity {
    Identity {
        leaf: issued.cert.clone(),
        chain: Vec::new(),
        key: issued.key.clone(),
        source: VarPath {
            var: "TOPGUN_CLUSTER_TLS_CERT_PATH",
            path: PathBuf::from("test"),
        },
    }
}

/// A cluster acceptor built by hand, for certificates start-up would refuse
/// (expired) — no client certificate requested.
fn listener_presenting(issued: &Issued) -> SslAcceptor {
    acceptor::build(
        &profile(),
        &identity(issued),
        &[],
        PeerCertificates::NotRequested,
        b"test",
        None,
    )
    .unwrap()
}

/// A dialer built by hand, for certificates start-up would refuse (expired).
fn dialer_presenting(pki: &Pki, issued: &Issued) -> PeerConnector {
    let vars = [
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_TLS_CERT_PATH", "/unused.crt"),
        ("TOPGUN_TLS_KEY_PATH", "/unused.key"),
    ];
    let cluster = config::from_vars(vars).unwrap().cluster;
    let ca = vec![pki.ca.cert().clone()];
    let policy = Arc::new(PeerPolicy::new(&cluster, &ca, None).unwrap());
    PeerConnector::new(&profile(), &identity(issued), &ca, policy, true, TIMEOUT).unwrap()
}

/// Log output captured from a `tracing` subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// What each side saw of one connection.
struct Outcome {
    /// The listener's handshake, with the SNI the dialer sent.
    server: Result<Option<String>, HandshakeError>,
    /// The dialer's handshake and first read.
    client: Result<(), ClientFailure>,
}

#[derive(Debug)]
enum ClientFailure {
    Handshake(HandshakeError),
    /// The listener closed or alerted after our handshake finished (TLS 1.3).
    Read,
}

impl Outcome {
    fn server_kind(&self) -> &'static str {
        match &self.server {
            Ok(_) => panic!("the listener accepted the peer"),
            Err(error) => error.kind(),
        }
    }

    fn client_kind(&self) -> &'static str {
        match &self.client {
            Ok(()) => panic!("the dialer accepted the listener"),
            Err(ClientFailure::Handshake(error)) => error.kind(),
            Err(ClientFailure::Read) => panic!("the dialer's handshake completed"),
        }
    }

    fn assert_connected(&self) {
        assert!(
            self.server.is_ok(),
            "listener: {:?}",
            self.server.as_ref().err()
        );
        assert!(
            self.client.is_ok(),
            "dialer: {:?}",
            self.client.as_ref().err()
        );
    }
}

/// Serves one connection with `acceptor` and dials it with `dialer` as `host`; the
/// listener sends two bytes once its handshake is done.
async fn link(acceptor: &SslAcceptor, dialer: &PeerConnector, host: &str) -> Outcome {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();

    let server = async {
        let (stream, _) = tcp.accept().await.unwrap();
        let mut established = handshake::accept(acceptor, stream, TIMEOUT).await?;
        let sni = established
            .stream
            .ssl()
            .servername(NameType::HOST_NAME)
            .map(str::to_owned);
        let _ = established.stream.write_all(b"ok").await;
        let _ = established.stream.shutdown().await;
        Ok(sni)
    };
    let client = async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut established = dialer
            .connect(host, stream)
            .await
            .map_err(ClientFailure::Handshake)?;
        let mut reply = [0u8; 2];
        match established.stream.read_exact(&mut reply).await {
            Ok(_) if &reply == b"ok" => Ok(()),
            _ => Err(ClientFailure::Read),
        }
    };

    let (server, client) = tokio::join!(server, client);
    Outcome { server, client }
}

/// A listener with mTLS and a dialer, each with its own node certificate from `pki`.
struct Pair {
    listener: SslAcceptor,
    dialer: PeerConnector,
}

fn mtls_pair(pki: &Pki, listener_extra: &[(&str, &str)], dialer_extra: &[(&str, &str)]) -> Pair {
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let mut listener_vars = vec![("TOPGUN_CLUSTER_MTLS", "true")];
    listener_vars.extend_from_slice(listener_extra);
    Pair {
        listener: listener(cluster_vars(pki, &a, &listener_vars)),
        dialer: dialer(cluster_vars(pki, &b, dialer_extra)),
    }
}

fn write_crl(pki: &Pki, revoked: &[&Issued], next_update_days: i64) -> String {
    let certs: Vec<_> = revoked.iter().map(|issued| &issued.cert).collect();
    let crl = pki.ca.crl(&certs, next_update_days).unwrap();
    let file = pki.path("peers.crl");
    std::fs::write(&file, crl.to_pem().unwrap()).unwrap();
    path(&file)
}

// Accepted links.

#[tokio::test]
async fn two_nodes_of_one_ca_link_with_mutual_tls() {
    let pki = Pki::new("cluster");
    let pair = mtls_pair(&pki, &[], &[]);

    let outcome = link(&pair.listener, &pair.dialer, "127.0.0.1").await;

    outcome.assert_connected();
}

/// Case C7a: a peer dialled by IP sends no SNI, and the listener serves its one
/// certificate all the same.
#[tokio::test]
async fn dialling_by_ip_sends_no_sni_and_dialling_by_name_sends_the_name() {
    let pki = Pki::new("cluster");
    let pair = mtls_pair(&pki, &[], &[]);

    let by_ip = link(&pair.listener, &pair.dialer, "127.0.0.1").await;
    let by_name = link(&pair.listener, &pair.dialer, "localhost").await;

    assert_eq!(by_ip.server.unwrap(), None);
    assert_eq!(by_name.server.unwrap().as_deref(), Some("localhost"));
    assert!(by_ip.client.is_ok() && by_name.client.is_ok());
}

/// Case C8: both usages, and no extended key usage at all, are accepted.
#[tokio::test]
async fn dialer_certificates_with_both_usages_or_no_usage_are_accepted_by_the_listener() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let listener = listener(cluster_vars(&pki, &a, &[("TOPGUN_CLUSTER_MTLS", "true")]));
    let mut no_eku = node_spec("node-b");
    no_eku.usages = Vec::new();
    let (_, both) = pki.write("both", &node_spec("node-b"));
    let (_, none) = pki.write("none", &no_eku);

    for files in [both, none] {
        let dialer = dialer(cluster_vars(&pki, &files, &[]));

        let outcome = link(&listener, &dialer, "127.0.0.1").await;

        outcome.assert_connected();
    }
}

#[tokio::test]
async fn a_reissued_certificate_with_the_same_key_passes_a_public_key_pin_but_not_the_old_fingerprint(
) {
    let pki = Pki::new("cluster");
    let (first, a) = pki.write("node-a", &node_spec("node-a"));
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let renewed = pki
        .ca
        .issue_for_key(&node_spec("node-a"), first.key.clone())
        .unwrap();
    renewed.write(&a.cert, &a.key).unwrap();
    let listener = listener(cluster_vars(&pki, &a, &[]));
    let digests = Digests::of(&first.cert).unwrap();
    let key_pin = digests.public_key_pin().to_string();
    let old_fingerprint = digests.certificate_pin().to_string();

    let by_key = dialer(cluster_vars(&pki, &b, &[("TOPGUN_CLUSTER_PINS", &key_pin)]));
    let by_fingerprint = dialer(cluster_vars(
        &pki,
        &b,
        &[("TOPGUN_CLUSTER_PINS", &old_fingerprint)],
    ));

    link(&listener, &by_key, "127.0.0.1")
        .await
        .assert_connected();
    let refused = link(&listener, &by_fingerprint, "127.0.0.1").await;
    assert_eq!(refused.client_kind(), "pin_mismatch");
}

#[tokio::test]
async fn a_self_signed_peer_is_accepted_by_its_pin_when_chain_verification_is_off() {
    let pki = Pki::new("cluster");
    let mut spec = node_spec("node-a");
    spec.usages = vec![Usage::ServerAuth];
    let own = pki::self_signed(&spec).unwrap();
    let listener = listener_presenting(&own);
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let pin = Digests::of(&own.cert).unwrap().public_key_pin().to_string();
    let other_pin = Digests::of(pki.ca.cert())
        .unwrap()
        .public_key_pin()
        .to_string();
    let off = ("TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED", "false");

    let pinned = dialer(cluster_vars(
        &pki,
        &b,
        &[off, ("TOPGUN_CLUSTER_PINS", &pin)],
    ));
    let wrong = dialer(cluster_vars(
        &pki,
        &b,
        &[off, ("TOPGUN_CLUSTER_PINS", &other_pin)],
    ));
    let verifying = dialer(cluster_vars(&pki, &b, &[("TOPGUN_CLUSTER_PINS", &pin)]));

    link(&listener, &pinned, "127.0.0.1")
        .await
        .assert_connected();
    let mismatch = link(&listener, &wrong, "127.0.0.1").await;
    assert_eq!(mismatch.client_kind(), "pin_mismatch");
    let untrusted = link(&listener, &verifying, "127.0.0.1").await;
    assert_eq!(untrusted.client_kind(), "unknown_ca");
}

#[tokio::test]
async fn a_peer_is_accepted_when_a_uri_san_dns_san_or_cn_is_on_the_allow_list() {
    let pki = Pki::new("cluster");
    let mut spiffe = node_spec("node-a");
    spiffe.uris = vec!["spiffe://cluster.local/ns/db/sa/node-a".to_owned()];
    let (_, a) = pki.write("node-a", &spiffe);
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let listener = listener(cluster_vars(&pki, &a, &[]));

    for allowed in [
        "spiffe://cluster.local/ns/db/sa/node-a",
        "someone-else,node-a",
        "localhost",
    ] {
        let dialer = dialer(cluster_vars(
            &pki,
            &b,
            &[("TOPGUN_CLUSTER_ALLOWED_IDENTITIES", allowed)],
        ));

        link(&listener, &dialer, "127.0.0.1")
            .await
            .assert_connected();
    }
}

// The dialer refusing the node it reaches.

#[tokio::test]
async fn the_dialer_refuses_a_listener_certificate_from_another_ca() {
    let pki = Pki::new("cluster");
    let rogue = Pki::new("rogue");
    let (_, a) = rogue.write("node-x", &node_spec("node-x"));
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let listener = listener(cluster_vars(&rogue, &a, &[]));
    let dialer = dialer(cluster_vars(&pki, &b, &[]));

    let outcome = link(&listener, &dialer, "127.0.0.1").await;

    assert_eq!(outcome.client_kind(), "unknown_ca");
}

#[tokio::test]
async fn the_dialer_refuses_an_expired_listener_certificate() {
    let pki = Pki::new("cluster");
    let mut spec = node_spec("node-a");
    spec.valid_days = -30..-1;
    let expired = pki.ca.issue(&spec).unwrap();
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let dialer = dialer(cluster_vars(&pki, &b, &[]));

    let outcome = link(&listener_presenting(&expired), &dialer, "127.0.0.1").await;

    assert_eq!(outcome.client_kind(), "cert_expired");
}

#[tokio::test]
async fn the_dialer_refuses_a_listener_certificate_that_is_not_valid_yet() {
    let pki = Pki::new("cluster");
    let mut spec = node_spec("node-a");
    spec.valid_days = 2..30;
    let early = pki.ca.issue(&spec).unwrap();
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let dialer = dialer(cluster_vars(&pki, &b, &[]));

    let outcome = link(&listener_presenting(&early), &dialer, "127.0.0.1").await;

    assert_eq!(outcome.client_kind(), "cert_not_yet_valid");
}

#[tokio::test]
async fn the_dialer_refuses_a_listener_certificate_for_another_name_than_the_one_dialled() {
    let pki = Pki::new("cluster");
    let mut spec = node_spec("node-a");
    spec.dns_names = vec!["node-a.example".to_owned()];
    spec.ips = Vec::new();
    let (_, a) = pki.write("node-a", &spec);
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let listener = listener(cluster_vars(&pki, &a, &[]));
    let dialer = dialer(cluster_vars(&pki, &b, &[]));

    let by_ip = link(&listener, &dialer, "127.0.0.1").await;
    let by_name = link(&listener, &dialer, "localhost").await;

    assert_eq!(by_ip.client_kind(), "name_mismatch");
    assert_eq!(by_name.client_kind(), "name_mismatch");
}

#[tokio::test]
async fn the_dialer_refuses_a_listener_certificate_without_server_auth() {
    let pki = Pki::new("cluster");
    let mut spec = node_spec("node-a");
    spec.usages = vec![Usage::ClientAuth];
    let (_, a) = pki.write("node-a", &spec);
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let listener = listener(cluster_vars(&pki, &a, &[]));
    let dialer = dialer(cluster_vars(&pki, &b, &[]));

    let outcome = link(&listener, &dialer, "127.0.0.1").await;

    assert_eq!(outcome.client_kind(), "wrong_usage");
}

#[tokio::test]
async fn the_dialer_refuses_a_listener_matching_neither_form_of_pin() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let (other, b) = pki.write("node-b", &node_spec("node-b"));
    let listener = listener(cluster_vars(&pki, &a, &[]));
    let digests = Digests::of(&other.cert).unwrap();

    for pin in [digests.certificate_pin(), digests.public_key_pin()] {
        let pin = pin.to_string();
        let dialer = dialer(cluster_vars(&pki, &b, &[("TOPGUN_CLUSTER_PINS", &pin)]));

        let outcome = link(&listener, &dialer, "127.0.0.1").await;

        assert_eq!(outcome.client_kind(), "pin_mismatch", "{pin}");
    }
}

#[tokio::test]
async fn the_dialer_refuses_a_listener_whose_identity_is_not_on_the_allow_list() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let listener = listener(cluster_vars(&pki, &a, &[]));
    // Matching is exact: neither another name nor another case is accepted.
    let dialer = dialer(cluster_vars(
        &pki,
        &b,
        &[("TOPGUN_CLUSTER_ALLOWED_IDENTITIES", "node-c,NODE-A")],
    ));

    let outcome = link(&listener, &dialer, "127.0.0.1").await;

    assert_eq!(outcome.client_kind(), "identity_rejected");
}

#[tokio::test]
async fn the_dialer_refuses_a_revoked_listener_certificate() {
    let pki = Pki::new("cluster");
    let (revoked, a) = pki.write("node-a", &node_spec("node-a"));
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let crl = write_crl(&pki, &[&revoked], 30);
    let listener = listener(cluster_vars(&pki, &a, &[]));
    let dialer = dialer(cluster_vars(&pki, &b, &[("TOPGUN_CLUSTER_CRL_PATH", &crl)]));

    let outcome = link(&listener, &dialer, "127.0.0.1").await;

    assert_eq!(outcome.client_kind(), "cert_revoked");
}

// The mTLS listener refusing the node that dials it.

#[tokio::test]
async fn the_listener_refuses_a_dialer_certificate_from_another_ca() {
    let pki = Pki::new("cluster");
    let rogue = Pki::new("rogue");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let (_, x) = rogue.write("node-x", &node_spec("node-x"));
    let listener = listener(cluster_vars(&pki, &a, &[("TOPGUN_CLUSTER_MTLS", "true")]));
    // The rogue trusts our CA, so only the listener can refuse.
    let mut vars = cluster_vars(&rogue, &x, &[]);
    vars.retain(|(var, _)| var != "TOPGUN_CLUSTER_TLS_CA_PATH");
    vars.push(("TOPGUN_CLUSTER_TLS_CA_PATH".into(), path(&pki.ca_path)));
    let dialer = dialer(vars);

    let outcome = link(&listener, &dialer, "127.0.0.1").await;

    assert_eq!(outcome.server_kind(), "unknown_ca");
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn the_listener_refuses_an_expired_dialer_certificate() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let listener = listener(cluster_vars(&pki, &a, &[("TOPGUN_CLUSTER_MTLS", "true")]));
    let mut spec = node_spec("node-b");
    spec.valid_days = -30..-1;
    let expired = pki.ca.issue(&spec).unwrap();

    let outcome = link(&listener, &dialer_presenting(&pki, &expired), "127.0.0.1").await;

    assert_eq!(outcome.server_kind(), "cert_expired");
}

/// Case C8: a node certificate with extended key usage serverAuth only (a common
/// cert-manager mistake) cannot dial into an mTLS listener; the listener logs
/// "certificate not valid for client authentication".
#[tokio::test]
async fn a_peer_with_a_serverauth_only_certificate_is_refused_by_the_listener() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let listener = listener(cluster_vars(&pki, &a, &[("TOPGUN_CLUSTER_MTLS", "true")]));
    let mut spec = node_spec("node-b");
    spec.usages = vec![Usage::ServerAuth];
    let (_, b) = pki.write("node-b", &spec);
    let dialer = dialer(cluster_vars(&pki, &b, &[]));
    let logs = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();

    let outcome = {
        let _guard = tracing::subscriber::set_default(subscriber);
        link(&listener, &dialer, "127.0.0.1").await
    };

    let logs = logs.text();
    assert!(
        logs.contains("WARN") && logs.contains("certificate not valid for client authentication"),
        "{logs}"
    );
    assert_eq!(outcome.server_kind(), "wrong_usage");
    let message = outcome.server.unwrap_err().to_string();
    assert!(
        message.contains("certificate not valid for client authentication"),
        "{message}"
    );
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn the_listener_refuses_a_dialer_matching_neither_form_of_pin() {
    let pki = Pki::new("cluster");
    let other = pki.ca.issue(&node_spec("node-c")).unwrap();
    let digests = Digests::of(&other.cert).unwrap();

    for pin in [digests.certificate_pin(), digests.public_key_pin()] {
        let pin = pin.to_string();
        let pair = mtls_pair(&pki, &[("TOPGUN_CLUSTER_PINS", &pin)], &[]);

        let outcome = link(&pair.listener, &pair.dialer, "127.0.0.1").await;

        assert_eq!(outcome.server_kind(), "pin_mismatch", "{pin}");
    }
}

#[tokio::test]
async fn the_listener_refuses_a_dialer_whose_identity_is_not_on_the_allow_list() {
    let pki = Pki::new("cluster");
    let allowed = [("TOPGUN_CLUSTER_ALLOWED_IDENTITIES", "node-a,node-c")];
    let pair = mtls_pair(&pki, &allowed, &[]);

    let outcome = link(&pair.listener, &pair.dialer, "127.0.0.1").await;

    assert_eq!(outcome.server_kind(), "identity_rejected");
}

#[tokio::test]
async fn the_listener_refuses_a_revoked_dialer_certificate_and_accepts_the_others() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let (revoked, b) = pki.write("node-b", &node_spec("node-b"));
    let (_, c) = pki.write("node-c", &node_spec("node-c"));
    let crl = write_crl(&pki, &[&revoked], 30);
    let listener = listener(cluster_vars(
        &pki,
        &a,
        &[
            ("TOPGUN_CLUSTER_MTLS", "true"),
            ("TOPGUN_CLUSTER_CRL_PATH", &crl),
        ],
    ));

    let refused = link(&listener, &dialer(cluster_vars(&pki, &b, &[])), "127.0.0.1").await;
    let accepted = link(&listener, &dialer(cluster_vars(&pki, &c, &[])), "127.0.0.1").await;

    assert_eq!(refused.server_kind(), "cert_revoked");
    accepted.assert_connected();
}

#[tokio::test]
async fn a_dialer_without_a_client_certificate_is_refused_with_mtls() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let listener = listener(cluster_vars(&pki, &a, &[("TOPGUN_CLUSTER_MTLS", "true")]));
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let anonymous = common::connector(&pki.ca_path, None);

    let server = async {
        let (stream, _) = tcp.accept().await.unwrap();
        handshake::accept(&listener, stream, TIMEOUT)
            .await
            .map(|_| ())
    };
    let client = async {
        if let Ok(mut stream) = common::tls_connect(&anonymous, addr, "localhost").await {
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte).await;
        }
    };
    let (server, ()) = tokio::join!(server, client);

    assert_eq!(server.unwrap_err().kind(), "no_client_cert");
}

// CRL checks at start-up.

#[test]
fn a_crl_signed_by_another_ca_stops_start_up_naming_the_variable_and_file() {
    let pki = Pki::new("cluster");
    let rogue = Pki::new("rogue");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let crl = write_crl(&rogue, &[], 30);

    let error = prepare(cluster_vars(&pki, &a, &[("TOPGUN_CLUSTER_CRL_PATH", &crl)]))
        .err()
        .expect("start-up is refused");

    assert!(matches!(
        error,
        StartError::Tls(TlsError::CrlNotFromCa { position: 1, .. })
    ));
    let message = error.to_string();
    assert!(
        message.starts_with("TOPGUN_CLUSTER_CRL_PATH: CRL #1 in "),
        "{message}"
    );
    assert!(message.contains(&crl), "{message}");
}

#[test]
fn an_unparsable_crl_file_stops_start_up_naming_the_variable_and_file() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let not_crl = path(&pki.ca_path);
    let missing = path(&pki.path("missing.crl"));

    for file in [not_crl, missing] {
        let error = prepare(cluster_vars(
            &pki,
            &a,
            &[("TOPGUN_CLUSTER_CRL_PATH", &file)],
        ))
        .err()
        .expect("start-up is refused")
        .to_string();

        assert!(error.starts_with("TOPGUN_CLUSTER_CRL_PATH: "), "{error}");
        assert!(error.contains(&file), "{error}");
    }
}

#[tokio::test]
async fn a_crl_past_its_next_update_is_reported_and_still_applied() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let (revoked, b) = pki.write("node-b", &node_spec("node-b"));
    let (_, c) = pki.write("node-c", &node_spec("node-c"));
    let crl = write_crl(&pki, &[&revoked], -2);
    let vars = cluster_vars(
        &pki,
        &a,
        &[
            ("TOPGUN_CLUSTER_MTLS", "true"),
            ("TOPGUN_CLUSTER_CRL_PATH", &crl),
        ],
    );

    let report = topgun_server::check::report(&prepare(vars.clone()).unwrap());
    let listener = listener(vars);
    let refused = link(&listener, &dialer(cluster_vars(&pki, &b, &[])), "127.0.0.1").await;
    let accepted = link(&listener, &dialer(cluster_vars(&pki, &c, &[])), "127.0.0.1").await;

    assert!(report.contains("revoked certificates: 1"), "{report}");
    assert!(
        report.contains("warning: CRL #1 is past its nextUpdate"),
        "{report}"
    );
    assert_eq!(refused.server_kind(), "cert_revoked");
    accepted.assert_connected();
}

/// The two command lines the README gives operators produce pins that match.
#[tokio::test]
async fn pins_computed_with_the_documented_openssl_commands_are_accepted() {
    let pki = Pki::new("cluster");
    let (_, a) = pki.write("node-a", &node_spec("node-a"));
    let (_, b) = pki.write("node-b", &node_spec("node-b"));
    let cert = path(&a.cert);
    let shell = |script: String| {
        let output = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        assert!(output.status.success(), "{script}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let fingerprint = shell(format!(
        "openssl x509 -in '{cert}' -noout -fingerprint -sha256"
    ));
    let key_pin = shell(format!(
        "echo \"sha256//$(openssl x509 -in '{cert}' -noout -pubkey | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | openssl base64 -A)\""
    ));
    let listener = listener(cluster_vars(&pki, &a, &[]));

    for pin in [fingerprint, key_pin] {
        let dialer = dialer(cluster_vars(&pki, &b, &[("TOPGUN_CLUSTER_PINS", &pin)]));

        link(&listener, &dialer, "127.0.0.1")
            .await
            .assert_connected();
    }
}

#[test]
fn check_config_reports_the_pins_the_allow_list_and_the_crl() {
    let pki = Pki::new("cluster");
    let (issued, a) = pki.write("node-a", &node_spec("node-a"));
    let digests = Digests::of(&issued.cert).unwrap();
    let pins = format!("{},{}", digests.certificate_pin(), digests.public_key_pin());
    let crl = write_crl(&pki, &[], 30);
    let vars = cluster_vars(
        &pki,
        &a,
        &[
            ("TOPGUN_CLUSTER_PINS", &pins),
            ("TOPGUN_CLUSTER_ALLOWED_IDENTITIES", "node-a,node-b"),
            ("TOPGUN_CLUSTER_CRL_PATH", &crl),
        ],
    );

    let report = topgun_server::check::report(&prepare(vars).unwrap());

    assert!(
        report.contains("peer pins: 2 (1 certificate, 1 public key)"),
        "{report}"
    );
    assert!(
        report.contains("allowed peer identities: node-a, node-b"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "peer CRLs: {crl} (TOPGUN_CLUSTER_CRL_PATH); lists: 1, revoked certificates: 0"
        )),
        "{report}"
    );
    assert!(!report.contains("nextUpdate"), "{report}");
}
