//! The cluster over plain `ws://` (cluster TLS off): membership, writes routed to the
//! owner, replication to every node's clients, queries across nodes, topics, and
//! convergence after a node is killed and restarted.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use common::cluster::{eventually, formed, key_owned_by, unsynced_partitions, Member};
use common::{authenticated, next_json, next_reply, put_op, send};
use topgun_server::cluster::partition::{partition_of, PartitionTable};
use topgun_server::cluster::wire::{Hello, PeerMessage, PROTOCOL_VERSION};

const IDS: [&str; 3] = ["node-1", "node-2", "node-3"];

async fn three_nodes() -> (Member, Member, Member) {
    let first = Member::start(IDS[0], &[], &[]).await;
    let seed = [first.address()];
    let second = Member::start(IDS[1], &seed, &[]).await;
    let third = Member::start(IDS[2], &seed, &[]).await;
    formed(&[&first, &second, &third], &IDS).await;
    (first, second, third)
}

/// The next message of `kind`, skipping others.
async fn next_of<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, kind: &str) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let wait = async {
        loop {
            let message = next_json(ws).await;
            if message["type"] == kind {
                return message;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind} within 10 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_know_only_a_seed_form_a_full_mesh() {
    let (first, second, third) = three_nodes().await;
    // node-2 and node-3 only knew node-1; they met through its Hello.
    assert!(second.cluster().peers.is_linked("node-3"));
    assert!(third.cluster().peers.is_linked("node-2"));
    drop((first, second, third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_node_is_acknowledged_by_the_owner_and_seen_everywhere() {
    let (first, second, third) = three_nodes().await;
    let claims = json!({"userId": "u1", "roles": ["USER"]});
    let mut writer = authenticated(first.client, &claims).await;
    let mut watcher_1 = authenticated(first.client, &claims).await;
    let mut watcher_2 = authenticated(second.client, &claims).await;
    let mut watcher_3 = authenticated(third.client, &claims).await;
    for (ws, id) in [(&mut watcher_2, "q2"), (&mut watcher_3, "q3")] {
        send(
            ws,
            json!({"type": "QUERY_SUB", "payload": {"queryId": id, "mapName": "m", "query": {}}}),
        )
        .await;
        assert_eq!(next_reply(ws).await["type"], "QUERY_RESP");
    }

    let key = key_owned_by("node-2", &IDS);
    let op = put_op(
        "m",
        "op-1",
        &key,
        json!({"title": "routed"}),
        1_700_000_000_000,
    );
    send(
        &mut writer,
        json!({"type": "OP_BATCH", "payload": {"ops": [op]}}),
    )
    .await;
    let ack = next_reply(&mut writer).await;
    assert_eq!(
        ack,
        json!({"type": "OP_ACK", "payload": {"lastId": "op-1"}})
    );

    // Acknowledged means the owner and its backup both have it, durably: losing one
    // node's disk loses no acknowledged write.
    let table = PartitionTable::new(IDS.iter().map(|id| id.to_string()).collect());
    let partition = partition_of(&key);
    let only = BTreeSet::from([partition]);
    let backup = table.backup(partition).unwrap();
    let backup = [&first, &second, &third]
        .into_iter()
        .find(|m| m.id == backup)
        .unwrap();
    for holder in [&second, backup] {
        let records = holder.records(&only);
        assert!(
            records.lww.get("m").is_some_and(|m| m.contains_key(&key)),
            "{} has the record when the write is acknowledged",
            holder.id
        );
    }

    // Every node's clients hear of it, and live queries everywhere are updated.
    for ws in [&mut watcher_1, &mut watcher_2, &mut watcher_3] {
        let event = next_of(ws, "SERVER_EVENT").await;
        assert_eq!(event["payload"]["key"], key.as_str());
        assert_eq!(event["payload"]["record"]["value"]["title"], "routed");
    }
    for (ws, id) in [(&mut watcher_2, "q2"), (&mut watcher_3, "q3")] {
        let update = next_of(ws, "QUERY_UPDATE").await;
        assert_eq!(update["payload"]["queryId"], id);
        assert_eq!(update["payload"]["key"], key.as_str());
    }

    // A query on node-3, which does not own the key, finds it.
    let mut reader = authenticated(third.client, &claims).await;
    send(
        &mut reader,
        json!({"type": "QUERY_SUB", "payload": {"queryId": "q", "mapName": "m", "query": {}}}),
    )
    .await;
    let results = next_reply(&mut reader).await;
    assert_eq!(results["type"], "QUERY_RESP");
    let rows = results["payload"]["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{results}");
    assert_eq!(rows[0]["key"], key.as_str());
    assert_eq!(rows[0]["value"]["title"], "routed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_gathers_the_keys_of_every_owner_once() {
    let (first, second, third) = three_nodes().await;
    let claims = json!({"userId": "u1", "roles": ["USER"]});
    let mut writer = authenticated(second.client, &claims).await;
    let ops: Vec<_> = (0..30)
        .map(|i| {
            put_op(
                "items",
                &format!("{i}"),
                &format!("item-{i}"),
                json!({"n": i}),
                1_700_000_000_000 + i,
            )
        })
        .collect();
    send(
        &mut writer,
        json!({"type": "OP_BATCH", "payload": {"ops": ops}}),
    )
    .await;
    assert_eq!(next_reply(&mut writer).await["payload"]["lastId"], "29");

    let query = json!({"where": {"n": {"$gte": 10}}, "sort": {"n": "desc"}, "limit": 5});
    for member in [&first, &second, &third] {
        let mut reader = authenticated(member.client, &claims).await;
        send(&mut reader, json!({"type": "QUERY_SUB", "payload": {"queryId": "q", "mapName": "items", "query": query}})).await;
        let results = next_reply(&mut reader).await;
        let values: Vec<_> = results["payload"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["value"]["n"].as_i64().unwrap())
            .collect();
        assert_eq!(values, [29, 28, 27, 26, 25], "on {}", member.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_message_reaches_subscribers_on_other_nodes() {
    let (first, second, third) = three_nodes().await;
    let claims = json!({"userId": "u1", "roles": ["USER"]});
    let mut publisher = authenticated(first.client, &claims).await;
    let mut listener = authenticated(third.client, &claims).await;
    send(
        &mut listener,
        json!({"type": "TOPIC_SUB", "payload": {"topic": "chat"}}),
    )
    .await;
    // The subscription has no reply; a query round trip shows it was processed.
    send(
        &mut listener,
        json!({"type": "QUERY_SUB", "payload": {"queryId": "x", "mapName": "m", "query": {}}}),
    )
    .await;
    next_reply(&mut listener).await;

    send(
        &mut publisher,
        json!({"type": "TOPIC_PUB", "payload": {"topic": "chat", "data": {"text": "hi"}}}),
    )
    .await;
    let message = next_of(&mut listener, "TOPIC_MESSAGE").await;
    assert_eq!(message["payload"]["data"]["text"], "hi");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_when_a_node_is_killed_and_restarted() {
    let (first, second, third) = three_nodes().await;
    let claims = json!({"userId": "u1", "roles": ["USER"]});
    let mut writer = authenticated(first.client, &claims).await;
    let mut acked: Vec<String> = Vec::new();
    let write = |i: u64| {
        put_op(
            "durable",
            &format!("{i}"),
            &format!("k{i}"),
            json!({"i": i}),
            1_700_000_000_000 + i,
        )
    };

    async fn write_all(
        writer: &mut common::WsClient,
        ops: impl Iterator<Item = (u64, serde_json::Value)>,
        acked: &mut Vec<String>,
    ) {
        for (i, op) in ops {
            send(
                writer,
                json!({"type": "OP_BATCH", "payload": {"ops": [op]}}),
            )
            .await;
            if next_reply(writer).await["type"] == "OP_ACK" {
                acked.push(format!("k{i}"));
            }
        }
    }

    write_all(&mut writer, (0..40).map(|i| (i, write(i))), &mut acked).await;
    let port = third.cluster_port;
    let remains = third.kill();

    // Writes go on while node-3 is gone; some wait for the membership to notice.
    write_all(&mut writer, (40..80).map(|i| (i, write(i))), &mut acked).await;
    assert!(
        acked.len() >= 60,
        "most writes are acknowledged: {}",
        acked.len()
    );

    let restarted = std::time::Instant::now();
    let third = Member::start_in("node-3", &remains.data, port, &[first.address()], &[]).await;
    let all = [&first, &second, &third];
    formed(&all, &IDS).await;
    eventually(
        Duration::from_secs(15),
        "owner and backup digests agree",
        || unsynced_partitions(&all).is_empty(),
    )
    .await;
    println!(
        "{} of 80 writes acknowledged; owner and backup digests agreed {} ms after the restart",
        acked.len(),
        restarted.elapsed().as_millis()
    );

    // node-3 missed the writes made while it was down, and fetched them.
    let fetched = third.cluster().stats.merged_records.load(Ordering::Relaxed);
    assert!(fetched > 0, "the restarted node fetched what it missed");

    let table = third.cluster().peers.table();
    for key in &acked {
        let partition = partition_of(key);
        let only = BTreeSet::from([partition]);
        for holder in [table.owner(partition), table.backup(partition).unwrap()] {
            let member = all.iter().find(|m| m.id == holder).unwrap();
            let records = member.records(&only);
            assert!(
                records
                    .lww
                    .get("durable")
                    .is_some_and(|m| m.contains_key(key)),
                "{key} missing on {holder}"
            );
        }
    }
    drop(writer);
}

/// A peer that says `Hello` and then goes silent (no pongs, nothing) is dropped from
/// the membership within the peer timeout; one that sends garbage loses its link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_garbled_peer_costs_only_its_own_link() {
    let node = Member::start("node-1", &[], &[]).await;
    let hello = PeerMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        node_id: "impostor".into(),
        address: "127.0.0.1:1".into(),
        members: Vec::new(),
    });

    let tcp = TcpStream::connect(node.address()).await.unwrap();
    let (mut silent, _) = tokio_tungstenite::client_async(format!("ws://{}/", node.address()), tcp)
        .await
        .unwrap();
    silent.send(Message::Binary(hello.encode())).await.unwrap();
    eventually(Duration::from_secs(5), "impostor joined", || {
        node.members().len() == 2
    })
    .await;
    // Not reading means not answering pings: the node must notice on its own.
    let joined = std::time::Instant::now();
    eventually(Duration::from_secs(5), "silent peer dropped", || {
        node.members().len() == 1
    })
    .await;
    assert!(
        joined.elapsed() >= Duration::from_millis(1000),
        "dropped after the timeout, not before"
    );

    let tcp = TcpStream::connect(node.address()).await.unwrap();
    let (mut garbled, _) =
        tokio_tungstenite::client_async(format!("ws://{}/", node.address()), tcp)
            .await
            .unwrap();
    garbled.send(Message::Binary(hello.encode())).await.unwrap();
    eventually(Duration::from_secs(5), "second impostor joined", || {
        node.members().len() == 2
    })
    .await;
    garbled
        .send(Message::Binary(vec![0xc1, 0x00].into()))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = garbled.next().await {}
    })
    .await;
    assert!(closed.is_ok(), "the node closed the garbled link");
    eventually(Duration::from_secs(5), "garbled peer removed", || {
        node.members().len() == 1
    })
    .await;

    // The node still serves clients.
    let mut client = authenticated(node.client, &json!({"userId": "u", "roles": ["USER"]})).await;
    send(
        &mut client,
        json!({"type": "OP_BATCH", "payload": {"ops": [put_op("m", "1", "k", json!(1), 1)]}}),
    )
    .await;
    assert_eq!(next_reply(&mut client).await["type"], "OP_ACK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_dialling_each_other_keep_one_link() {
    // Reserve two ports, then start both nodes pointing at each other.
    let reserve = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (reserve(), reserve());
    let (port_a, port_b) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    drop((a, b));
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let to_b = [format!("127.0.0.1:{port_b}")];
    let to_a = [format!("127.0.0.1:{port_a}")];
    let (node_a, node_b) = tokio::join!(
        Member::start_in("node-a", dir_a.path(), port_a, &to_b, &[]),
        Member::start_in("node-b", dir_b.path(), port_b, &to_a, &[]),
    );
    formed(&[&node_a, &node_b], &["node-a", "node-b"]).await;
    // Membership stays put: no flapping from the duplicate being closed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(node_a.members(), ["node-a", "node-b"]);
    assert_eq!(node_b.members(), ["node-a", "node-b"]);
}

#[tokio::test]
async fn a_standalone_node_opens_no_cluster_port() {
    let node = common::start_node(Vec::new()).await;
    assert_eq!(node.cluster_addr(), None);
    node.shutdown(Duration::from_secs(1)).await;

    let seed = common::start_node(vec![
        ("TOPGUN_CLUSTER_ENABLED".into(), "true".into()),
        ("TOPGUN_CLUSTER_PORT".into(), "0".into()),
    ])
    .await;
    assert!(seed.cluster_addr().is_some());
    seed.shutdown(Duration::from_secs(1)).await;
}

/// PROTOCOL.md §11 across nodes: sessions on two nodes contend for a lock a third
/// node owns; tokens, queueing and release work as on one node, and a holder's
/// disconnect on its own node frees the lock at the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_owned_by_another_node_is_granted_queued_and_handed_over() {
    let (first, second, third) = three_nodes().await;
    let name = key_owned_by("node-2", &IDS);
    let request = |id: &str| json!({"type": "LOCK_REQUEST", "payload": {"requestId": id, "name": name, "ttl": 60000}});
    let release = |token: u64| json!({"type": "LOCK_RELEASE", "payload": {"requestId": "rel", "name": name, "fencingToken": token}});
    let mut a = authenticated(first.client, &json!({"sub": "a"})).await;
    let mut b = authenticated(third.client, &json!({"sub": "b"})).await;
    let mut c = authenticated(third.client, &json!({"sub": "c"})).await;

    send(&mut a, request("ra")).await;
    let granted_a = next_of(&mut a, "LOCK_GRANTED").await;
    assert_eq!(
        granted_a["payload"],
        json!({"requestId": "ra", "name": name, "fencingToken": 1})
    );
    // b queues first, then c: sessions are independent, so each request is given time
    // to reach the owner before the next step.
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    send(&mut b, request("rb")).await;
    settle().await;
    send(&mut c, request("rc")).await;
    settle().await;

    send(&mut a, release(7)).await;
    assert_eq!(
        next_of(&mut a, "LOCK_RELEASED").await["payload"]["success"],
        false
    );
    send(&mut a, release(1)).await;
    assert_eq!(
        next_of(&mut a, "LOCK_RELEASED").await["payload"]["success"],
        true
    );
    let granted_b = next_of(&mut b, "LOCK_GRANTED").await;
    assert_eq!(granted_b["payload"]["fencingToken"], 2);

    // b disconnects from node-3 while holding the lock: the owner hands it to c.
    drop(b);
    let granted_c = next_of(&mut c, "LOCK_GRANTED").await;
    assert_eq!(
        granted_c["payload"],
        json!({"requestId": "rc", "name": name, "fencingToken": 3})
    );
    drop(second);
}

/// Kubernetes discovery with `localhost` standing in for a headless service: it
/// resolves to 127.0.0.1 (and ::1), where node-1 listens; node-2 listens on
/// 127.0.0.2 with the same cluster port, as pods of one StatefulSet do. node-1 finds
/// only itself and dials nothing; node-2 finds node-1 and joins it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_dials_the_addresses_a_service_name_resolves_to_except_its_own() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let discovery = |host: &str| {
        vec![
            ("TOPGUN_HOST".to_owned(), host.to_owned()),
            (
                "TOPGUN_DISCOVERY_SERVICE".to_owned(),
                "localhost".to_owned(),
            ),
            ("TOPGUN_DISCOVERY_INTERVAL".to_owned(), "200".to_owned()),
        ]
    };
    let (dir_1, dir_2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Member::start_in("node-1", dir_1.path(), port, &[], &discovery("127.0.0.1")).await;
    let second = Member::start_in("node-2", dir_2.path(), port, &[], &discovery("127.0.0.2")).await;
    formed(&[&first, &second], &["node-1", "node-2"]).await;
    assert_eq!(second.address(), format!("127.0.0.2:{port}"));
    // Several discovery rounds later, still one link and no link to itself.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(first.members(), ["node-1", "node-2"]);
}
