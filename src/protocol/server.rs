//! Messages the server sends (PROTOCOL.md §3.2), encoded once as MessagePack maps with
//! field names. Each returns `Bytes`, so one encoding can go to many connections.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::crdt::{LwwRecord, SyncReply, Timestamp};
use crate::query::QueryUpdate;
use crate::store::Event;

#[derive(Serialize)]
struct Typed<P> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<P>,
}

#[derive(Serialize)]
struct ErrorPayload<'a> {
    code: u16,
    message: &'a str,
    details: Option<()>,
}

/// `{type}` or `{type, payload}`.
fn typed<P: Serialize>(kind: &'static str, payload: Option<P>) -> Bytes {
    encode(&Typed { kind, payload })
}

fn encode<T: Serialize>(message: &T) -> Bytes {
    rmp_serde::to_vec_named(message)
        .expect("server messages always serialize")
        .into()
}

/// `AUTH_REQUIRED`, sent as soon as a WebSocket opens.
pub fn auth_required() -> Bytes {
    typed::<()>("AUTH_REQUIRED", None)
}

/// `AUTH_ACK`, for a valid token.
pub fn auth_ack() -> Bytes {
    typed::<()>("AUTH_ACK", None)
}

/// `AUTH_FAIL {error: "Invalid token"}`, before closing with 4001 `Unauthorized`.
/// Why a token failed is logged, never sent.
pub fn auth_fail() -> Bytes {
    #[derive(Serialize)]
    struct AuthFail {
        #[serde(rename = "type")]
        kind: &'static str,
        error: &'static str,
    }
    encode(&AuthFail {
        kind: "AUTH_FAIL",
        error: "Invalid token",
    })
}

/// `ERROR {code, message, details: nil}`.
pub fn error(code: u16, message: &str) -> Bytes {
    typed(
        "ERROR",
        Some(ErrorPayload {
            code,
            message,
            details: None,
        }),
    )
}

/// `ERROR 400 Invalid message format`, for a message that fails the schema check.
pub fn invalid_message() -> Bytes {
    error(400, "Invalid message format")
}

/// `SHUTDOWN_PENDING {retryAfter}` (top level), sent before closing with 1001.
pub fn shutdown_pending(retry_after: Duration) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ShutdownPending {
        #[serde(rename = "type")]
        kind: &'static str,
        retry_after: u64,
    }
    encode(&ShutdownPending {
        kind: "SHUTDOWN_PENDING",
        retry_after: u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
    })
}

/// `OP_ACK {lastId}`: every op up to `last_id` of a batch is applied.
pub fn op_ack(last_id: &str) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OpAck<'a> {
        last_id: &'a str,
    }
    typed("OP_ACK", Some(OpAck { last_id }))
}

/// `OP_REJECTED {opId, reason}` for a refused `CLIENT_OP`.
pub fn op_rejected(op_id: Option<&str>, reason: &str) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OpRejected<'a> {
        op_id: Option<&'a str>,
        reason: &'a str,
    }
    typed("OP_REJECTED", Some(OpRejected { op_id, reason }))
}

/// `SERVER_EVENT {payload, timestamp}`: a write others should merge.
pub fn server_event(event: &Event, timestamp: &Timestamp) -> Bytes {
    #[derive(Serialize)]
    struct ServerEvent<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        payload: &'a Event,
        timestamp: &'a Timestamp,
    }
    encode(&ServerEvent {
        kind: "SERVER_EVENT",
        payload: event,
        timestamp,
    })
}

/// `SYNC_RESP_ROOT {mapName, rootHash, timestamp}`.
pub fn sync_resp_root(map_name: &str, root_hash: u32, timestamp: &Timestamp) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Root<'a> {
        map_name: &'a str,
        root_hash: u32,
        timestamp: &'a Timestamp,
    }
    typed(
        "SYNC_RESP_ROOT",
        Some(Root {
            map_name,
            root_hash,
            timestamp,
        }),
    )
}

/// `SYNC_RESP_BUCKETS` or `SYNC_RESP_LEAF`, whichever `reply` is.
pub fn sync_bucket(map_name: &str, path: &str, reply: &SyncReply<'_>) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Buckets<'a> {
        map_name: &'a str,
        path: &'a str,
        buckets: &'a BTreeMap<String, u32>,
    }
    #[derive(Serialize)]
    struct Entry<'a> {
        key: &'a str,
        record: &'a LwwRecord,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Leaf<'a> {
        map_name: &'a str,
        path: &'a str,
        records: Vec<Entry<'a>>,
    }
    match reply {
        SyncReply::Buckets(buckets) => typed(
            "SYNC_RESP_BUCKETS",
            Some(Buckets {
                map_name,
                path,
                buckets,
            }),
        ),
        SyncReply::Leaf(records) => typed(
            "SYNC_RESP_LEAF",
            Some(Leaf {
                map_name,
                path,
                records: records
                    .iter()
                    .map(|(key, record)| Entry { key, record })
                    .collect(),
            }),
        ),
    }
}

/// `SYNC_RESET_REQUIRED {mapName}`: the client's last sync is older than tombstones live.
pub fn sync_reset_required(map_name: &str) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Reset<'a> {
        map_name: &'a str,
    }
    typed("SYNC_RESET_REQUIRED", Some(Reset { map_name }))
}

/// `QUERY_RESP {queryId, results: [{key, value}]}`.
pub fn query_resp(query_id: &str, results: &[(String, rmpv::Value)]) -> Bytes {
    #[derive(Serialize)]
    struct Row<'a> {
        key: &'a str,
        value: &'a rmpv::Value,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct QueryResp<'a> {
        query_id: &'a str,
        results: Vec<Row<'a>>,
    }
    let results = results
        .iter()
        .map(|(key, value)| Row { key, value })
        .collect();
    typed("QUERY_RESP", Some(QueryResp { query_id, results }))
}

/// `QUERY_UPDATE {queryId, key, value, type}`; `value` is nil for `REMOVE`.
pub fn query_update(query_id: &str, update: &QueryUpdate) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Payload<'a> {
        query_id: &'a str,
        #[serde(flatten)]
        update: &'a QueryUpdate,
    }
    typed("QUERY_UPDATE", Some(Payload { query_id, update }))
}

/// `GC_PRUNE {olderThan}`: clients may forget tombstones older than this.
pub fn gc_prune(older_than: &Timestamp) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct GcPrune<'a> {
        older_than: &'a Timestamp,
    }
    typed("GC_PRUNE", Some(GcPrune { older_than }))
}

/// `LOCK_GRANTED {requestId, name, fencingToken}`.
pub fn lock_granted(request_id: &str, name: &str, fencing_token: u64) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Granted<'a> {
        request_id: &'a str,
        name: &'a str,
        fencing_token: u64,
    }
    typed(
        "LOCK_GRANTED",
        Some(Granted {
            request_id,
            name,
            fencing_token,
        }),
    )
}

/// `LOCK_RELEASED {requestId, name, success}`.
pub fn lock_released(request_id: Option<&str>, name: &str, success: bool) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Released<'a> {
        request_id: Option<&'a str>,
        name: &'a str,
        success: bool,
    }
    typed(
        "LOCK_RELEASED",
        Some(Released {
            request_id,
            name,
            success,
        }),
    )
}

/// `TOPIC_MESSAGE {topic, data, publisherId, timestamp}` for a topic's subscribers.
pub fn topic_message(
    topic: &str,
    data: &rmpv::Value,
    publisher_id: &str,
    timestamp_ms: u64,
) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct TopicMessage<'a> {
        topic: &'a str,
        data: &'a rmpv::Value,
        publisher_id: &'a str,
        timestamp: u64,
    }
    typed(
        "TOPIC_MESSAGE",
        Some(TopicMessage {
            topic,
            data,
            publisher_id,
            timestamp: timestamp_ms,
        }),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn as_json(bytes: &Bytes) -> serde_json::Value {
        rmp_serde::from_slice(bytes).unwrap()
    }

    #[test]
    fn messages_have_the_reference_shapes() {
        let timestamp = Timestamp::new(1000, 2, "node-a");

        assert_eq!(as_json(&auth_required()), json!({"type": "AUTH_REQUIRED"}));
        assert_eq!(
            as_json(&auth_fail()),
            json!({"type": "AUTH_FAIL", "error": "Invalid token"})
        );
        assert_eq!(
            as_json(&invalid_message()),
            json!({"type": "ERROR", "payload": {"code": 400, "message": "Invalid message format", "details": null}})
        );
        assert_eq!(
            as_json(&shutdown_pending(Duration::from_secs(5))),
            json!({"type": "SHUTDOWN_PENDING", "retryAfter": 5000})
        );
        assert_eq!(
            as_json(&op_ack("7")),
            json!({"type": "OP_ACK", "payload": {"lastId": "7"}})
        );
        assert_eq!(
            as_json(&sync_resp_root("demo", 54204058, &timestamp)),
            json!({"type": "SYNC_RESP_ROOT", "payload": {"mapName": "demo", "rootHash": 54204058,
                "timestamp": {"millis": 1000, "counter": 2, "nodeId": "node-a"}}})
        );
        assert_eq!(
            as_json(&sync_reset_required("demo")),
            json!({"type": "SYNC_RESET_REQUIRED", "payload": {"mapName": "demo"}})
        );
    }
}
