//! PROTOCOL.md §15.3 replayed over `wss://`: client A writes, client B's query returns
//! it, B receives QUERY_UPDATE and SERVER_EVENT for A's next write, and a client that
//! was offline catches up through Merkle sync until its root equals the server's.

mod common;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use common::{authenticate, next_json, next_reply, put_op, send, tls_vars, wss_session, Pki};
use topgun_server::crdt::{LwwMap, LwwRecord};

#[tokio::test]
async fn the_observed_stock_client_exchange_works_over_wss() {
    let pki = Pki::new("ours");
    let node = common::start_node(tls_vars(&pki.server())).await;
    let addr = node.client_addr();

    // A: AUTH, then the stock client's AUTH again (ignored), OP_BATCH, SYNC_INIT.
    let mut a = wss_session(addr, &pki.ca_path).await;
    authenticate(&mut a, &json!({"sub": "client-a"})).await;
    let token = common::hs256_token("topgun-secret-dev", &json!({"sub": "client-a"}));
    send(&mut a, json!({"type": "AUTH", "token": token})).await;
    let first = put_op(
        "demo",
        "1",
        "k1",
        json!({"n": 42, "title": "first"}),
        1_796_311_503_565,
    );
    send(
        &mut a,
        json!({"type": "OP_BATCH", "payload": {"ops": [first]}}),
    )
    .await;
    send(
        &mut a,
        json!({"type": "SYNC_INIT", "mapName": "demo", "lastSyncTimestamp": 0}),
    )
    .await;
    assert_eq!(
        next_json(&mut a).await,
        json!({"type": "OP_ACK", "payload": {"lastId": "1"}})
    );
    let root = next_json(&mut a).await;
    assert_eq!(root["type"], "SYNC_RESP_ROOT");
    assert_eq!(root["payload"]["rootHash"], 54_204_058);

    // B: a query with `where` returns A's record.
    let mut b = wss_session(addr, &pki.ca_path).await;
    authenticate(&mut b, &json!({"sub": "client-b"})).await;
    send(
        &mut b,
        json!({"type": "QUERY_SUB", "payload": {"queryId": "q-1", "mapName": "demo", "query": {"where": {"n": 42}}}}),
    )
    .await;
    let response = next_reply(&mut b).await;
    assert_eq!(
        response["payload"]["results"],
        json!([{"key": "k1", "value": {"n": 42, "title": "first"}}])
    );

    // A writes again; B gets QUERY_UPDATE and SERVER_EVENT.
    let second = put_op(
        "demo",
        "2",
        "k1",
        json!({"n": 42, "title": "second"}),
        1_796_311_504_000,
    );
    send(
        &mut a,
        json!({"type": "OP_BATCH", "payload": {"ops": [second]}}),
    )
    .await;
    assert_eq!(next_json(&mut a).await["payload"]["lastId"], "2");
    let for_b = [next_json(&mut b).await, next_json(&mut b).await];
    let update = for_b
        .iter()
        .find(|m| m["type"] == "QUERY_UPDATE")
        .expect("QUERY_UPDATE");
    let event = for_b
        .iter()
        .find(|m| m["type"] == "SERVER_EVENT")
        .expect("SERVER_EVENT");
    assert_eq!(update["payload"]["value"]["title"], "second");
    assert_eq!(update["payload"]["type"], "UPDATE");
    assert_eq!(event["payload"]["record"]["value"]["title"], "second");

    // C was offline: it holds nothing and catches up through Merkle sync.
    let mut c = wss_session(addr, &pki.ca_path).await;
    authenticate(&mut c, &json!({"sub": "client-c"})).await;
    let mut local = LwwMap::new();
    send(
        &mut c,
        json!({"type": "SYNC_INIT", "mapName": "demo", "lastSyncTimestamp": 0}),
    )
    .await;
    let server_root = next_reply(&mut c).await["payload"]["rootHash"]
        .as_u64()
        .unwrap();
    let mut pending = vec![String::new()];
    while let Some(path) = pending.pop() {
        send(
            &mut c,
            json!({"type": "MERKLE_REQ_BUCKET", "payload": {"mapName": "demo", "path": path}}),
        )
        .await;
        let reply = next_reply(&mut c).await;
        match reply["type"].as_str() {
            Some("SYNC_RESP_LEAF") => merge_leaf(&mut local, &reply["payload"]["records"]),
            Some("SYNC_RESP_BUCKETS") => {
                let buckets: BTreeMap<String, u64> =
                    serde_json::from_value(reply["payload"]["buckets"].clone()).unwrap();
                for (child, hash) in buckets {
                    let child_path = format!("{path}{child}");
                    // A bucket the client lacks counts as hash 0 (§6.3 step 6).
                    let mine = u64::from(local.merkle().hash_at(&child_path).unwrap_or(0));
                    if hash != mine {
                        pending.push(child_path);
                    }
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(u64::from(local.root_hash()), server_root);
    assert_eq!(
        local.record("k1").unwrap().value,
        json_to_msgpack(&json!({"n": 42, "title": "second"}))
    );
}

fn merge_leaf(local: &mut LwwMap, records: &Value) {
    for entry in records.as_array().unwrap() {
        let key = entry["key"].as_str().unwrap();
        let packed = rmp_serde::to_vec_named(&entry["record"]).unwrap();
        let record: LwwRecord = rmp_serde::from_slice(&packed).unwrap();
        local.merge(key, record);
    }
}

fn json_to_msgpack(value: &Value) -> rmpv::Value {
    let packed = rmp_serde::to_vec_named(value).unwrap();
    rmpv::decode::read_value(&mut &packed[..]).unwrap()
}
