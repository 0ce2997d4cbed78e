//! The client's own encoding of what it sends and decoding of what the node sends
//! (PROTOCOL.md §1.1, §3): one MessagePack map per WebSocket message, with names.
//!
//! Deliberately independent of the server's `protocol` module, so a change there
//! cannot silently change what this client puts on the wire.

use rmpv::Value;

use crate::crdt::Timestamp;

/// A message the node sent, reduced to what the client acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// `AUTH_REQUIRED`, the greeting.
    AuthRequired,
    /// `AUTH_ACK`: the token was accepted.
    AuthAck,
    /// `AUTH_FAIL`, with the node's `error` text.
    AuthFail(String),
    /// `OP_ACK`: every op up to and including `last_id` was applied.
    OpAck { last_id: String },
    /// `ERROR {code, message}`.
    Error { code: u64, message: String },
    /// `QUERY_RESP`: the initial results of a query.
    QueryResp {
        query_id: String,
        results: Vec<(String, Value)>,
    },
    /// `QUERY_UPDATE`: one key entered, changed in or left (`value` nil) a query.
    QueryUpdate {
        query_id: String,
        key: String,
        value: Value,
        removed: bool,
    },
    /// `TOPIC_MESSAGE`.
    TopicMessage {
        topic: String,
        data: Value,
        publisher_id: Option<String>,
        timestamp: Option<u64>,
    },
    /// `SERVER_EVENT`; only its top-level HLC timestamp matters to this client.
    ServerEvent { timestamp: Option<Timestamp> },
    /// Any other type (`SYNC_*`, `GC_PRUNE`, `SHUTDOWN_PENDING`, ...), by name.
    Other(String),
}

/// A map with string keys, in the given order.
fn map(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(
        fields
            .into_iter()
            .map(|(name, value)| (Value::from(name), value))
            .collect(),
    )
}

fn typed(kind: &str, payload: Value) -> Value {
    map(vec![("type", kind.into()), ("payload", payload)])
}

fn timestamp(ts: &Timestamp) -> Value {
    map(vec![
        ("millis", ts.millis.into()),
        ("counter", ts.counter.into()),
        ("nodeId", ts.node_id.as_str().into()),
    ])
}

/// Serialises a message; writing into a `Vec` cannot fail.
pub fn encode(message: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, message).expect("writing to a Vec never fails");
    bytes
}

/// `AUTH {token}`.
pub fn auth(token: &str) -> Value {
    map(vec![("type", "AUTH".into()), ("token", token.into())])
}

/// `OP_BATCH` with one LWW op shaped as the stock client writes it: `PUT` with a
/// value, `REMOVE` with a nil value (`value: None`).
pub fn lww_op(id: &str, map_name: &str, key: &str, value: Option<Value>, ts: &Timestamp) -> Value {
    let op_type = if value.is_some() { "PUT" } else { "REMOVE" };
    let record = map(vec![
        ("value", value.unwrap_or(Value::Nil)),
        ("timestamp", timestamp(ts)),
    ]);
    let op = map(vec![
        ("mapName", map_name.into()),
        ("opType", op_type.into()),
        ("key", key.into()),
        ("record", record),
        ("orRecord", Value::Nil),
        ("orTag", Value::Nil),
        ("timestamp", timestamp(ts)),
        ("synced", false.into()),
        ("id", id.into()),
    ]);
    typed("OP_BATCH", map(vec![("ops", Value::Array(vec![op]))]))
}

/// `QUERY_SUB {queryId, mapName, query}`; `where_clause` nil means every record.
pub fn query_sub(query_id: &str, map_name: &str, where_clause: Value) -> Value {
    let query = match where_clause {
        Value::Nil => map(Vec::new()),
        clause => map(vec![("where", clause)]),
    };
    typed(
        "QUERY_SUB",
        map(vec![
            ("queryId", query_id.into()),
            ("mapName", map_name.into()),
            ("query", query),
        ]),
    )
}

/// `QUERY_UNSUB {queryId}`.
pub fn query_unsub(query_id: &str) -> Value {
    typed("QUERY_UNSUB", map(vec![("queryId", query_id.into())]))
}

/// `TOPIC_SUB {topic}`.
pub fn topic_sub(topic: &str) -> Value {
    typed("TOPIC_SUB", map(vec![("topic", topic.into())]))
}

/// `TOPIC_UNSUB {topic}`.
pub fn topic_unsub(topic: &str) -> Value {
    typed("TOPIC_UNSUB", map(vec![("topic", topic.into())]))
}

/// `TOPIC_PUB {topic, data}`.
pub fn topic_pub(topic: &str, data: Value) -> Value {
    typed(
        "TOPIC_PUB",
        map(vec![("topic", topic.into()), ("data", data)]),
    )
}

/// Whether the node accepts `topic` as a name: 1–256 of `A-Za-z0-9_-.:/` (§12).
pub fn valid_topic(topic: &str) -> bool {
    (1..=256).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
}

/// The field `name` of a map, when present and not nil.
fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value
        .as_map()?
        .iter()
        .find(|(key, _)| key.as_str() == Some(name))
        .map(|(_, value)| value)
        .filter(|value| !value.is_nil())
}

fn text(value: &Value, name: &str) -> Option<String> {
    field(value, name)?.as_str().map(str::to_owned)
}

/// A JS number in any MessagePack encoding, as a non-negative integer.
fn number(value: &Value, name: &str) -> Option<u64> {
    let value = field(value, name)?;
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Reads one message; `None` when it is not a map with a string `type`.
pub fn decode(bytes: &[u8]) -> Option<ServerMessage> {
    let mut rest = bytes;
    let message = rmpv::decode::read_value(&mut rest).ok()?;
    let kind = text(&message, "type")?;
    let payload = field(&message, "payload").cloned().unwrap_or(Value::Nil);
    let decoded = match kind.as_str() {
        "AUTH_REQUIRED" => ServerMessage::AuthRequired,
        "AUTH_ACK" => ServerMessage::AuthAck,
        "AUTH_FAIL" => ServerMessage::AuthFail(text(&message, "error").unwrap_or_default()),
        "OP_ACK" => ServerMessage::OpAck {
            last_id: text(&payload, "lastId")
                .or_else(|| number(&payload, "lastId").map(|n| n.to_string()))?,
        },
        "ERROR" => ServerMessage::Error {
            code: number(&payload, "code").unwrap_or(0),
            message: text(&payload, "message").unwrap_or_default(),
        },
        "QUERY_RESP" => ServerMessage::QueryResp {
            query_id: text(&payload, "queryId")?,
            results: field(&payload, "results")
                .and_then(Value::as_array)
                .map(|rows| rows.iter().filter_map(result_row).collect())
                .unwrap_or_default(),
        },
        "QUERY_UPDATE" => ServerMessage::QueryUpdate {
            query_id: text(&payload, "queryId")?,
            key: text(&payload, "key")?,
            value: field(&payload, "value").cloned().unwrap_or(Value::Nil),
            removed: text(&payload, "type").as_deref() == Some("REMOVE"),
        },
        "TOPIC_MESSAGE" => ServerMessage::TopicMessage {
            topic: text(&payload, "topic")?,
            data: field(&payload, "data").cloned().unwrap_or(Value::Nil),
            publisher_id: text(&payload, "publisherId"),
            timestamp: number(&payload, "timestamp"),
        },
        "SERVER_EVENT" => ServerMessage::ServerEvent {
            timestamp: field(&message, "timestamp")
                .and_then(|ts| rmpv::ext::from_value(ts.clone()).ok()),
        },
        _ => ServerMessage::Other(kind),
    };
    Some(decoded)
}

fn result_row(row: &Value) -> Option<(String, Value)> {
    let value = field(row, "value").cloned().unwrap_or(Value::Nil);
    Some((text(row, "key")?, value))
}

/// A random (version 4) UUID from OpenSSL's generator, for op and query ids.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        // Ids need uniqueness within one connection, not secrecy.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests;
