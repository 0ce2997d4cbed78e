//! An acknowledged write survives SIGKILL of the real binary (issue #3, item 6).

mod common;

use serde_json::json;

use common::{authenticated, next_json, next_reply, put_op, send, NodeProcess};

#[tokio::test]
async fn every_acknowledged_write_is_served_again_after_sigkill_and_restart() {
    let data = tempfile::tempdir().unwrap();
    let node = NodeProcess::start_in(data.path(), &[]);
    let mut ws = authenticated(node.addr, &json!({"sub": "w"})).await;
    let mut acknowledged = Vec::new();
    for batch in 0..20 {
        let ops: Vec<_> = (0..10)
            .map(|i| {
                let n = batch * 10 + i;
                let id = (n + 1).to_string();
                put_op("durable", &id, &format!("k{n}"), json!({"n": n}), 1_000 + n)
            })
            .collect();
        send(
            &mut ws,
            json!({"type": "OP_BATCH", "payload": {"ops": ops}}),
        )
        .await;
        let ack = next_json(&mut ws).await;
        assert_eq!(ack["type"], "OP_ACK");
        acknowledged.extend((batch * 10..batch * 10 + 10).map(|n| format!("k{n}")));
    }

    node.kill_hard();
    let status = tokio::task::spawn_blocking(move || node.wait())
        .await
        .unwrap();
    assert!(!status.success(), "the node was killed, not stopped");
    let restarted = NodeProcess::start_in(data.path(), &[]);
    let mut reader = authenticated(restarted.addr, &json!({"sub": "r"})).await;
    send(
        &mut reader,
        json!({"type": "QUERY_SUB", "payload": {"queryId": "q", "mapName": "durable", "query": {}}}),
    )
    .await;
    let response = next_reply(&mut reader).await;

    let mut served: Vec<String> = response["payload"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["key"].as_str().unwrap().to_owned())
        .collect();
    served.sort();
    acknowledged.sort();
    assert_eq!(served, acknowledged);
}
