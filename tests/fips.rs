//! FIPS mode (`TOPGUN_FIPS=true`) against OpenSSL's FIPS provider as `fips/build.sh`
//! builds it.
//!
//! Provider loading is process-wide, so every node here is the built binary, started
//! with `OPENSSL_CONF` and `OPENSSL_MODULES` pointing at the provider directory named by
//! `TOPGUN_TEST_FIPS_DIR` (`.ci/run` sets it). Without that directory the tests that
//! need the provider print that they are skipped; under CI (`CI=true`) they fail
//! instead. The refusals that happen before any provider is loaded run everywhere.
//! The test process itself stays outside FIPS mode, so its clients can offer what a
//! FIPS node must refuse.

mod common;

use std::path::{Path, PathBuf};

use openssl::pkey::{Id, PKey};
use openssl::pkey_ctx::PkeyCtx;
use openssl::ssl::{SslConnector, SslVersion};
use serde_json::{json, Value};
use topgun_server::pki::Usage;

use common::{
    connector_builder, http_get, packed, path, run_binary, tls_connect, tls_vars, NodeProcess, Pki,
};

fn var(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// The directory `fips/build.sh` wrote, or `None` after printing that `test` is skipped.
fn provider_or_skip(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TOPGUN_TEST_FIPS_DIR").map(PathBuf::from);
    let built = dir.as_ref().filter(|dir| {
        dir.join("openssl.cnf").is_file() && dir.join("ossl-modules/fips.so").is_file()
    });
    if built.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: no FIPS provider in TOPGUN_TEST_FIPS_DIR; .ci/run builds it with fips/build.sh"
        );
        println!(
            "{test}: skipped, no FIPS provider (run fips/build.sh DIR and set TOPGUN_TEST_FIPS_DIR=DIR)"
        );
    }
    built.cloned()
}

/// The variables that put a node into FIPS mode with the provider in `dir`.
fn fips_vars(dir: &Path) -> Vec<(String, String)> {
    vec![
        var("TOPGUN_FIPS", "true"),
        var("OPENSSL_CONF", &path(&dir.join("openssl.cnf"))),
        var("OPENSSL_MODULES", &path(&dir.join("ossl-modules"))),
    ]
}

/// A FIPS node serving TLS with a P-256 certificate from `pki`.
fn fips_tls_node(dir: &Path, pki: &Pki) -> NodeProcess {
    let mut vars = fips_vars(dir);
    vars.extend(tls_vars(&pki.server()));
    NodeProcess::start(&vars)
}

/// A client trusting `pki` that offers exactly `version`, `suite` and `group`.
fn client(pki: &Pki, version: SslVersion, suite: &str, group: &str) -> SslConnector {
    let mut builder = connector_builder(&pki.ca_path, Some(version));
    builder.set_min_proto_version(Some(version)).unwrap();
    if version == SslVersion::TLS1_3 {
        builder.set_ciphersuites(suite).unwrap();
    } else {
        builder.set_cipher_list(suite).unwrap();
    }
    builder.set_groups_list(group).unwrap();
    builder.build()
}

#[tokio::test]
async fn tls_1_3_and_1_2_with_aes_gcm_and_p256_succeed_and_health_names_the_provider() {
    let Some(dir) = provider_or_skip("fips tls") else {
        return;
    };
    let pki = Pki::new("fips");
    let node = fips_tls_node(&dir, &pki);

    let cases = [
        (SslVersion::TLS1_3, "TLS_AES_128_GCM_SHA256", "P-256"),
        (SslVersion::TLS1_3, "TLS_AES_256_GCM_SHA384", "P-384"),
        (SslVersion::TLS1_2, "ECDHE-ECDSA-AES128-GCM-SHA256", "P-256"),
        (SslVersion::TLS1_2, "ECDHE-ECDSA-AES256-GCM-SHA384", "P-256"),
    ];
    for (version, suite, group) in cases {
        let connector = client(&pki, version, suite, group);

        let stream = tls_connect(&connector, node.addr, "localhost")
            .await
            .unwrap_or_else(|e| panic!("{suite} with {group}: {e}"));

        let negotiated = stream.ssl().current_cipher().unwrap().name();
        assert_eq!(negotiated, suite);
        let (status, body) = http_get(stream, "/health").await;
        assert_eq!(status, 200);
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["fips"]["enabled"], true, "{health}");
        assert!(
            health["fips"]["provider"]
                .as_str()
                .is_some_and(|name| name.contains("FIPS")),
            "{health}"
        );
        assert_eq!(health["fips"]["version"], "3.1.2", "{health}");
    }
    let started: Vec<_> = node.startup_messages("INFO");
    assert!(
        started.iter().any(|m| m.starts_with("FIPS mode on")),
        "{started:?}"
    );
}

#[tokio::test]
async fn a_chacha20_only_client_is_refused_in_both_tls_versions() {
    let Some(dir) = provider_or_skip("fips chacha20") else {
        return;
    };
    let pki = Pki::new("fips");
    let node = fips_tls_node(&dir, &pki);

    let cases = [
        (SslVersion::TLS1_3, "TLS_CHACHA20_POLY1305_SHA256"),
        (SslVersion::TLS1_2, "ECDHE-ECDSA-CHACHA20-POLY1305"),
    ];
    for (version, suite) in cases {
        let connector = client(&pki, version, suite, "P-256");

        let result = tls_connect(&connector, node.addr, "localhost").await;

        assert!(result.is_err(), "{suite} was accepted");
    }
}

#[tokio::test]
async fn an_x25519_only_client_is_refused_in_both_tls_versions() {
    let Some(dir) = provider_or_skip("fips x25519") else {
        return;
    };
    let pki = Pki::new("fips");
    let node = fips_tls_node(&dir, &pki);

    let cases = [
        (SslVersion::TLS1_3, "TLS_AES_128_GCM_SHA256"),
        (SslVersion::TLS1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ];
    for (version, suite) in cases {
        let connector = client(&pki, version, suite, "X25519");

        let result = tls_connect(&connector, node.addr, "localhost").await;

        assert!(result.is_err(), "X25519 with {suite} was accepted");
    }
}

/// Sends `AUTH` with `token` on a fresh plain WebSocket session and returns the reply.
async fn auth_reply(node: &NodeProcess, token: &str) -> Value {
    let mut ws = common::ws_session(node.addr).await;
    futures_util::SinkExt::send(&mut ws, packed(&json!({"type": "AUTH", "token": token})))
        .await
        .unwrap();
    common::next_json(&mut ws).await
}

#[tokio::test]
async fn hs256_and_rs256_tokens_still_verify_inside_the_provider() {
    let Some(dir) = provider_or_skip("fips jwt") else {
        return;
    };
    let claims = json!({"userId": "alice", "roles": ["USER"]});

    let secret = "a-fips-mode-hmac-secret-of-32-bytes!";
    let mut vars = fips_vars(&dir);
    vars.push(var("JWT_SECRET", secret));
    let node = NodeProcess::start(&vars);
    let token = common::hs256_token(secret, &claims);
    assert_eq!(auth_reply(&node, &token).await["type"], "AUTH_ACK");
    let forged = common::hs256_token("another-secret-of-the-same-size!!!!", &claims);
    assert_eq!(auth_reply(&node, &forged).await["type"], "AUTH_FAIL");
    drop(node);

    let mut keygen = PkeyCtx::new_id(Id::RSA).unwrap();
    keygen.keygen_init().unwrap();
    keygen.set_rsa_keygen_bits(2048).unwrap();
    let key = keygen.keygen().unwrap();
    let public_pem = String::from_utf8(key.public_key_to_pem().unwrap()).unwrap();
    let mut vars = fips_vars(&dir);
    vars.push(var("JWT_SECRET", &public_pem));
    let node = NodeProcess::start(&vars);
    let token = rs256_token(&key, &claims);
    assert_eq!(auth_reply(&node, &token).await["type"], "AUTH_ACK");
}

fn rs256_token(key: &PKey<openssl::pkey::Private>, claims: &Value) -> String {
    use josekit::jws::{JwsHeader, RS256};
    use josekit::jwt::{self, JwtPayload};

    let signer = RS256
        .signer_from_pem(key.private_key_to_pem_pkcs8().unwrap())
        .unwrap();
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    jwt::encode_with_signer(&payload, &header, &signer).unwrap()
}

#[test]
fn two_fips_nodes_form_a_cluster_over_mutual_tls() {
    let Some(dir) = provider_or_skip("fips cluster") else {
        return;
    };
    let pki = Pki::new("fips cluster");
    let node = |id: &str, peers: Option<&str>| {
        let mut spec = Pki::server_spec();
        spec.usages = vec![Usage::ServerAuth, Usage::ClientAuth];
        let (_, files) = pki.write(id, &spec);
        let mut vars = fips_vars(&dir);
        vars.extend([
            var("NODE_ID", id),
            var("TOPGUN_CLUSTER_PORT", "0"),
            var("TOPGUN_CLUSTER_ENABLED", "true"),
            var("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
            var("TOPGUN_CLUSTER_MTLS", "true"),
            var("TOPGUN_CLUSTER_TLS_CERT_PATH", &path(&files.cert)),
            var("TOPGUN_CLUSTER_TLS_KEY_PATH", &path(&files.key)),
            var("TOPGUN_CLUSTER_TLS_CA_PATH", &path(&pki.ca_path)),
        ]);
        if let Some(peers) = peers {
            vars.push(var("TOPGUN_PEERS", peers));
        }
        NodeProcess::start(&vars)
    };

    let first = node("fips-1", None);
    let listening = first.wait_for_event("cluster listener ready");
    let second = node("fips-2", listening["addr"].as_str());

    for (node, peer) in [(&second, "fips-1"), (&first, "fips-2")] {
        let joined = node.wait_for_event("cluster membership changed");
        assert_eq!(joined["peer.id"], peer, "{joined}");
        assert_eq!(joined["members"], 2, "{joined}");
    }
}

#[test]
fn check_config_and_metrics_report_the_fips_provider() {
    let Some(dir) = provider_or_skip("fips report") else {
        return;
    };

    let output = run_binary(&["check-config"], &fips_vars(&dir));

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("FIPS mode: on (OpenSSL FIPS Provider 3.1.2"),
        "{stdout}"
    );

    let node = NodeProcess::start(&fips_vars(&dir));
    let metrics = node.metrics_addr.expect("the metrics endpoint is logged");
    let body = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let tcp = tokio::net::TcpStream::connect(metrics).await.unwrap();
        http_get(tcp, "/metrics").await.1
    });
    assert!(body.contains("\ntopgun_fips_mode 1\n"), "{body}");
    assert!(
        body.contains(
            "\ntopgun_fips_provider_info{provider=\"OpenSSL FIPS Provider\",version=\"3.1.2\"} 1\n"
        ),
        "{body}"
    );
}

#[test]
fn a_pkcs12_bundle_is_refused_in_fips_mode_with_a_request_for_pem() {
    // Refused from the configuration, before any provider is loaded: runs everywhere.
    let vars = [
        var("TOPGUN_FIPS", "true"),
        var("TOPGUN_TLS_ENABLED", "true"),
        var("TOPGUN_TLS_PKCS12_PATH", "/etc/topgun/tls/node.p12"),
    ];

    let output = run_binary(&["check-config"], &vars);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TOPGUN_TLS_PKCS12_PATH"), "{stderr}");
    assert!(stderr.contains("PKCS#12"), "{stderr}");
    assert!(stderr.contains("PEM"), "{stderr}");
}

#[test]
fn start_up_fails_with_one_line_when_the_fips_provider_cannot_be_loaded() {
    // An empty module directory: runs everywhere, provider built or not.
    let empty = tempfile::tempdir().unwrap();
    let vars = [
        var("TOPGUN_FIPS", "true"),
        var("OPENSSL_MODULES", &path(empty.path())),
    ];

    for command in ["serve", "check-config"] {
        let output = run_binary(&[command], &vars);

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("topgun-server: TOPGUN_FIPS: cannot load OpenSSL's fips provider"),
            "{command}: {stderr}"
        );
        assert!(!stderr.contains("listener ready"), "{command}: {stderr}");
    }
}

#[test]
fn start_up_fails_when_openssl_cnf_names_the_provider_but_fipsmodule_cnf_is_missing() {
    let Some(dir) = provider_or_skip("fips without fipsmodule.cnf") else {
        return;
    };
    // The configuration as fips/build.sh writes it, pointing at a file that is not
    // there: OpenSSL then ignores the whole file and would run without FIPS.
    let conf = tempfile::tempdir().unwrap();
    let missing = conf.path().join("fipsmodule.cnf");
    let text = std::fs::read_to_string(dir.join("openssl.cnf"))
        .unwrap()
        .replace(&path(&dir.join("fipsmodule.cnf")), &path(&missing));
    std::fs::write(conf.path().join("openssl.cnf"), text).unwrap();
    let vars = [
        var("TOPGUN_FIPS", "true"),
        var("OPENSSL_CONF", &path(&conf.path().join("openssl.cnf"))),
        var("OPENSSL_MODULES", &path(&dir.join("ossl-modules"))),
    ];

    let output = run_binary(&["check-config"], &vars);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("topgun-server: TOPGUN_FIPS:"),
        "{stderr}"
    );
}

#[test]
fn without_topgun_fips_the_node_reports_fips_mode_off() {
    let output = run_binary(&["check-config"], &[]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("FIPS mode: off"), "{stdout}");
}
