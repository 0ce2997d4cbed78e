//! Messages a client sends, as the data plane reads them (PROTOCOL.md §3.1).
//!
//! Every struct reads the wire shape: field names as the TypeScript client writes them,
//! nil equal to absent, unknown fields ignored, numbers in any MessagePack encoding.

use serde::{Deserialize, Deserializer, Serialize};

use crate::crdt::{LwwRecord, OrRecord};

/// The `payload` of messages that carry one.
#[derive(Debug, Deserialize)]
pub struct WithPayload<T> {
    pub payload: T,
}

/// One write (`CLIENT_OP.payload`, an element of `OP_BATCH.payload.ops`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientOp {
    /// The client's op id; the stock client writes decimal strings, numbers are read too.
    #[serde(default, deserialize_with = "op_id")]
    pub id: Option<String>,
    pub map_name: String,
    pub key: String,
    /// `PUT`, `REMOVE`, `OR_ADD` or `OR_REMOVE`; anything else or nothing is an LWW write.
    #[serde(default)]
    pub op_type: Option<String>,
    #[serde(default)]
    pub record: Option<LwwRecord>,
    #[serde(default)]
    pub or_record: Option<OrRecord>,
    #[serde(default)]
    pub or_tag: Option<String>,
}

impl ClientOp {
    /// Whether permissions treat this op as a removal (PROTOCOL.md §3.3 step 1).
    pub fn is_removal(&self) -> bool {
        self.op_type.as_deref() == Some("REMOVE")
            || self
                .record
                .as_ref()
                .is_some_and(|record| record.value.is_nil())
    }
}

/// `OP_BATCH.payload`.
#[derive(Debug, Deserialize)]
pub struct OpBatch {
    pub ops: Vec<ClientOp>,
}

/// `SYNC_INIT` (fields at the top level).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncInit {
    pub map_name: String,
    /// Milliseconds; 0 or absent means "never synced".
    #[serde(default)]
    pub last_sync_timestamp: Option<f64>,
}

/// `MERKLE_REQ_BUCKET.payload`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MerkleReqBucket {
    pub map_name: String,
    pub path: String,
}

/// `QUERY_SUB.payload`; the query itself is decoded by [`crate::query::Query::decode`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuerySub {
    pub query_id: String,
    pub map_name: String,
    #[serde(default = "nil")]
    pub query: rmpv::Value,
}

/// `QUERY_UNSUB.payload`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryUnsub {
    pub query_id: String,
}

/// `LOCK_REQUEST.payload`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRequest {
    pub request_id: String,
    pub name: String,
    /// Milliseconds; clamped by [`crate::locks::clamp_ttl`].
    #[serde(default)]
    pub ttl: Option<f64>,
}

/// `LOCK_RELEASE.payload`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRelease {
    #[serde(default)]
    pub request_id: Option<String>,
    pub name: String,
    pub fencing_token: f64,
}

/// `TOPIC_SUB.payload` and `TOPIC_UNSUB.payload`.
#[derive(Debug, Deserialize)]
pub struct TopicName {
    pub topic: String,
}

/// `TOPIC_PUB.payload`; `data` is any value and travels untouched.
#[derive(Debug, Deserialize)]
pub struct TopicPub {
    pub topic: String,
    #[serde(default = "nil")]
    pub data: rmpv::Value,
}

fn nil() -> rmpv::Value {
    rmpv::Value::Nil
}

fn op_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Integer(i64),
        Float(f64),
    }
    Ok(match Option::<Id>::deserialize(deserializer)? {
        None => None,
        Some(Id::Text(text)) => Some(text),
        Some(Id::Integer(number)) => Some(number.to_string()),
        Some(Id::Float(number)) => Some(number.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;
    use crate::protocol::decode;

    fn packed(value: Value) -> Vec<u8> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &value).unwrap();
        bytes
    }

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    #[test]
    fn an_op_batch_as_the_stock_client_sends_it_is_read_with_its_values_untouched() {
        let user_value = map(vec![
            ("bin", Value::Binary(vec![1, 2, 3])),
            ("date", Value::Ext(-1, vec![0, 0, 0, 1])),
        ]);
        let timestamp = map(vec![
            ("millis", Value::from(1_796_311_503_565_u64)),
            ("counter", Value::from(0)),
            ("nodeId", "client-a".into()),
        ]);
        let op = map(vec![
            ("mapName", "demo".into()),
            ("opType", "PUT".into()),
            ("key", "k1".into()),
            (
                "record",
                map(vec![
                    ("value", user_value.clone()),
                    ("timestamp", timestamp.clone()),
                ]),
            ),
            ("orRecord", Value::Nil),
            ("orTag", Value::Nil),
            ("timestamp", timestamp),
            ("synced", false.into()),
            ("id", "1".into()),
        ]);
        let message = map(vec![
            ("type", "OP_BATCH".into()),
            ("payload", map(vec![("ops", Value::Array(vec![op]))])),
        ]);

        let incoming = decode(&packed(message)).unwrap();
        let batch: WithPayload<OpBatch> = incoming.parse().unwrap();

        let op = &batch.payload.ops[0];
        assert_eq!(op.id.as_deref(), Some("1"));
        assert_eq!(op.record.as_ref().unwrap().value, user_value);
        assert_eq!(
            op.record.as_ref().unwrap().timestamp.millis,
            1_796_311_503_565
        );
        assert_eq!(op.or_record, None);
        assert!(!op.is_removal());
    }

    #[test]
    fn numeric_op_ids_and_nil_values_are_read() {
        let op = map(vec![
            ("mapName", "m".into()),
            ("key", "k".into()),
            ("id", Value::from(7)),
            (
                "record",
                map(vec![
                    ("value", Value::Nil),
                    (
                        "timestamp",
                        map(vec![
                            ("millis", Value::from(1.0)),
                            ("counter", Value::from(0)),
                            ("nodeId", "n".into()),
                        ]),
                    ),
                ]),
            ),
        ]);
        let message = map(vec![("type", "CLIENT_OP".into()), ("payload", op)]);

        let op: WithPayload<ClientOp> = decode(&packed(message)).unwrap().parse().unwrap();

        assert_eq!(op.payload.id.as_deref(), Some("7"));
        assert!(op.payload.is_removal());
    }
}
