//! A client's WebSocket message, from raw bytes through the schema check of its type,
//! as a session reads it; `QUERY_SUB` queries are also decoded and run.

#![no_main]

use libfuzzer_sys::fuzz_target;
use topgun_server::protocol::client::{
    ClientOp, LockRelease, LockRequest, MerkleReqBucket, OpBatch, QuerySub, QueryUnsub, SyncInit,
    TopicName, TopicPub, WithPayload,
};
use topgun_server::protocol::{self, Incoming};
use topgun_server::query::Query;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::on_worker_stack(|| read(data));
});

fn read(data: &[u8]) {
    let Ok(incoming) = protocol::decode(data) else {
        return;
    };
    if !incoming.is_valid() {
        return;
    }
    match incoming.kind.as_str() {
        "OP_BATCH" => drop(incoming.parse::<WithPayload<OpBatch>>()),
        "CLIENT_OP" => {
            if let Ok(op) = incoming.parse::<WithPayload<ClientOp>>() {
                op.payload.is_removal();
            }
        }
        "QUERY_SUB" => query_sub(incoming),
        "SYNC_INIT" => drop(incoming.parse::<SyncInit>()),
        "MERKLE_REQ_BUCKET" => drop(incoming.parse::<WithPayload<MerkleReqBucket>>()),
        "QUERY_UNSUB" => drop(incoming.parse::<WithPayload<QueryUnsub>>()),
        "TOPIC_SUB" | "TOPIC_UNSUB" => drop(incoming.parse::<WithPayload<TopicName>>()),
        "TOPIC_PUB" => drop(incoming.parse::<WithPayload<TopicPub>>()),
        "LOCK_REQUEST" => drop(incoming.parse::<WithPayload<LockRequest>>()),
        "LOCK_RELEASE" => drop(incoming.parse::<WithPayload<LockRelease>>()),
        _ => {}
    }
}

fn query_sub(incoming: Incoming) {
    let Ok(request) = incoming.parse::<WithPayload<QuerySub>>() else {
        return;
    };
    if let Ok(query) = Query::decode(&request.payload.query) {
        // The query runs over its own text, which holds keys and values it names.
        let records = [("a", &request.payload.query), ("b", &rmpv::Value::Nil)];
        query.execute(records);
    }
}
