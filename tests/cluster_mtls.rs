//! Whole nodes forming a cluster over `wss://` with mutual TLS: the cluster forms and
//! keeps data, and a node whose certificate the others must refuse never becomes a
//! member, whichever side dials. (The TLS refusals one by one, from both directions,
//! are in `cluster_tls.rs`.)

mod common;

use std::time::Duration;

use serde_json::json;

use common::cluster::{formed, key_owned_by, Member};
use common::{authenticated, next_json, next_reply, path, put_op, send, Pki};
use topgun_server::pki::{LeafSpec, Usage};

const IDS: [&str; 3] = ["node-1", "node-2", "node-3"];

/// Mutual TLS with a certificate of `pki` for node `id` (both usages, 127.0.0.1).
fn mtls_vars(pki: &Pki, id: &str) -> Vec<(String, String)> {
    let mut spec = LeafSpec::new(id);
    spec.dns_names = vec![id.to_owned(), "localhost".to_owned()];
    spec.ips = vec!["127.0.0.1".parse().unwrap()];
    spec.usages = vec![Usage::ServerAuth, Usage::ClientAuth];
    let (_, files) = pki.write(id, &spec);
    vec![
        ("TOPGUN_CLUSTER_TLS_ENABLED".into(), "true".into()),
        ("TOPGUN_CLUSTER_TLS_CERT_PATH".into(), path(&files.cert)),
        ("TOPGUN_CLUSTER_TLS_KEY_PATH".into(), path(&files.key)),
        ("TOPGUN_CLUSTER_TLS_CA_PATH".into(), path(&pki.ca_path)),
        ("TOPGUN_CLUSTER_MTLS".into(), "true".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_mutual_tls_cluster_routes_a_write_and_answers_queries_everywhere() {
    let pki = Pki::new("cluster");
    let first = Member::start(IDS[0], &[], &mtls_vars(&pki, IDS[0])).await;
    let seed = [first.address()];
    let second = Member::start(IDS[1], &seed, &mtls_vars(&pki, IDS[1])).await;
    let third = Member::start(IDS[2], &seed, &mtls_vars(&pki, IDS[2])).await;
    formed(&[&first, &second, &third], &IDS).await;

    let claims = json!({"userId": "u1", "roles": ["USER"]});
    let mut writer = authenticated(first.client, &claims).await;
    let mut watcher = authenticated(third.client, &claims).await;
    let key = key_owned_by("node-2", &IDS);
    let op = put_op(
        "m",
        "op-1",
        &key,
        json!({"over": "mtls"}),
        1_700_000_000_000,
    );
    send(
        &mut writer,
        json!({"type": "OP_BATCH", "payload": {"ops": [op]}}),
    )
    .await;
    assert_eq!(
        next_reply(&mut writer).await,
        json!({"type": "OP_ACK", "payload": {"lastId": "op-1"}})
    );

    let event = tokio::time::timeout(Duration::from_secs(10), next_json(&mut watcher))
        .await
        .unwrap();
    assert_eq!(event["type"], "SERVER_EVENT");
    assert_eq!(event["payload"]["key"], key.as_str());

    send(
        &mut watcher,
        json!({"type": "QUERY_SUB", "payload": {"queryId": "q", "mapName": "m", "query": {}}}),
    )
    .await;
    let results = next_reply(&mut watcher).await;
    assert_eq!(results["payload"]["results"][0]["value"]["over"], "mtls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_ca_never_joins_whichever_side_dials() {
    let ours = Pki::new("ours");
    let theirs = Pki::new("theirs");
    // An outsider that the member dials, and one that dials the member.
    let dialled = Member::start("outsider-a", &[], &mtls_vars(&theirs, "outsider-a")).await;
    let member = Member::start("node-1", &[dialled.address()], &mtls_vars(&ours, "node-1")).await;
    let dialling = Member::start(
        "outsider-b",
        &[member.address()],
        &mtls_vars(&theirs, "outsider-b"),
    )
    .await;

    // Several dial attempts on each side have been refused by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(member.members(), ["node-1"]);
    assert_eq!(dialled.members(), ["outsider-a"]);
    assert_eq!(dialling.members(), ["outsider-b"]);

    // The control: a node of the right CA joins at once.
    let friend = Member::start("node-2", &[member.address()], &mtls_vars(&ours, "node-2")).await;
    formed(&[&member, &friend], &["node-1", "node-2"]).await;
}

/// Clusters without a shared CA: chain verification off when dialling, and the pins of
/// the members' certificates decide who may link. Inbound links always verify chains
/// under mutual TLS, so every node's issuer is in the CA bundle; the pins then keep
/// node-3 out although its chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_a_common_ca_link_on_pins_alone_and_an_unpinned_node_is_refused() {
    let (one, two, three) = (Pki::new("one"), Pki::new("two"), Pki::new("three"));
    let fingerprint = |pki: &Pki, id: &str| {
        let pem = std::fs::read(pki.path(&format!("{id}.crt"))).unwrap();
        let cert = openssl::x509::X509::from_pem(&pem).unwrap();
        let digest = cert.digest(openssl::hash::MessageDigest::sha256()).unwrap();
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let bundle = one.path("issuers.pem");
    let issuers: Vec<u8> = [&one, &two, &three]
        .iter()
        .flat_map(|pki| std::fs::read(&pki.ca_path).unwrap())
        .collect();
    std::fs::write(&bundle, issuers).unwrap();
    let mut vars: Vec<Vec<(String, String)>> =
        [(&one, "node-1"), (&two, "node-2"), (&three, "node-3")]
            .into_iter()
            .map(|(pki, id)| {
                let mut vars = mtls_vars(pki, id);
                vars.retain(|(k, _)| k != "TOPGUN_CLUSTER_TLS_CA_PATH");
                vars.push(("TOPGUN_CLUSTER_TLS_CA_PATH".into(), path(&bundle)));
                vars.push((
                    "TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED".into(),
                    "false".into(),
                ));
                vars
            })
            .collect();
    // node-3's certificate is not pinned.
    let pins = format!(
        "{},{}",
        fingerprint(&one, "node-1"),
        fingerprint(&two, "node-2")
    );
    for node_vars in &mut vars {
        node_vars.push(("TOPGUN_CLUSTER_PINS".into(), pins.clone()));
    }

    let first = Member::start("node-1", &[], &vars[0]).await;
    let second = Member::start("node-2", &[first.address()], &vars[1]).await;
    formed(&[&first, &second], &["node-1", "node-2"]).await;

    // node-3 dials node-1, which refuses its unpinned certificate.
    let third = Member::start("node-3", &[first.address()], &vars[2]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(third.members(), ["node-3"]);
    assert_eq!(first.members(), ["node-1", "node-2"]);
}

/// `GET /metrics` over plain HTTP.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, body) = common::http_get(tcp, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the first sample whose name and labels start with `prefix` and contain
/// every one of `labels`.
fn sample(text: &str, prefix: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_metrics_show_members_peers_forwarded_writes_and_cluster_handshakes() {
    let pki = Pki::new("cluster");
    let ids = ["node-1", "node-2"];
    let first = Member::start(ids[0], &[], &mtls_vars(&pki, ids[0])).await;
    let second = Member::start(ids[1], &[first.address()], &mtls_vars(&pki, ids[1])).await;
    formed(&[&first, &second], &ids).await;

    let claims = json!({"userId": "u1", "roles": ["USER"]});
    let mut writer = authenticated(first.client, &claims).await;
    let key = key_owned_by("node-2", &ids);
    let op = put_op("m", "1", &key, json!(1), 1_700_000_000_000);
    send(
        &mut writer,
        json!({"type": "OP_BATCH", "payload": {"ops": [op]}}),
    )
    .await;
    assert_eq!(next_reply(&mut writer).await["type"], "OP_ACK");

    let text = scrape(first.metrics()).await;
    assert_eq!(
        sample(&text, "topgun_cluster_members", &[]),
        Some(2.0),
        "{text}"
    );
    let peer_up = "topgun_cluster_peer_up{";
    assert_eq!(sample(&text, peer_up, &["peer=\"node-2\""]), Some(1.0));
    assert!(sample(&text, "topgun_cluster_forwarded_ops_total", &[]) >= Some(1.0));
    // node-2 dialled node-1: node-1's cluster listener counted the mTLS handshake.
    let handshakes = sample(
        &text,
        "topgun_tls_connections_total{",
        &["listener=\"cluster\"", "protocol_version=\"TLSv1.3\""],
    );
    assert!(handshakes >= Some(1.0), "{text}");

    drop(writer);
    second.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(first.metrics()).await;
        let down = sample(&text, peer_up, &["peer=\"node-2\""]) == Some(0.0);
        if down && sample(&text, "topgun_cluster_members", &[]) == Some(1.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "peer not reported down: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
