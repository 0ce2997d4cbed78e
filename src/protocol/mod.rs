//! The TopGun client wire protocol (PROTOCOL.md §1–§3): decoding what clients send
//! ([`client`]) and encoding what the server sends ([`server`]).
//!
//! Each WebSocket message is one MessagePack map with a string `type`. Structs travel as
//! maps with field names; nil and an absent field mean the same; unknown fields are
//! ignored; user values stay opaque `rmpv::Value`s.

pub mod client;
pub mod server;

use serde::de::DeserializeOwned;

/// Close code sent with `SHUTDOWN_PENDING` (PROTOCOL.md §2.4).
pub const CLOSE_SHUTDOWN: u16 = 1001;
/// Close code for undecodable messages.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a message over `TOPGUN_MAX_MESSAGE_SIZE`.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a client too slow to take what it is sent; it catches up through
/// Merkle sync when it reconnects.
pub const CLOSE_TOO_SLOW: u16 = 1013;
/// Close code for any message other than `AUTH` before authentication, after
/// `AUTH_FAIL`, and when the authentication timeout runs out.
pub const CLOSE_AUTH: u16 = 4001;

/// The message type the client must send first.
pub const AUTH: &str = "AUTH";

/// The 15 message types a client may send (PROTOCOL.md §3.1). Any other type is
/// answered with `ERROR 400` and the connection stays open, even before authentication.
pub const CLIENT_TYPES: [&str; 15] = [
    "AUTH",
    "CLIENT_OP",
    "OP_BATCH",
    "QUERY_SUB",
    "QUERY_UNSUB",
    "SYNC_INIT",
    "MERKLE_REQ_BUCKET",
    "LOCK_REQUEST",
    "LOCK_RELEASE",
    "TOPIC_SUB",
    "TOPIC_UNSUB",
    "TOPIC_PUB",
    "SYNC_RESP_ROOT",
    "SYNC_RESP_BUCKETS",
    "SYNC_RESP_LEAF",
];

/// Why an incoming message could not be read at all (close 1002).
#[derive(Debug, thiserror::Error)]
#[error("not a MessagePack or JSON map with a string `type`")]
pub struct DecodeError;

/// Why a decoded message does not have the shape its type requires (`ERROR 400`).
#[derive(Debug, thiserror::Error)]
#[error("`{kind}` does not have the expected fields")]
pub struct SchemaError {
    pub kind: String,
}

/// A decoded incoming message: its type, the `AUTH` token, and the whole map.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub kind: String,
    /// `AUTH.token`, when it is a string.
    pub token: Option<String>,
    body: rmpv::Value,
}

impl Incoming {
    /// Whether the type is one of [`CLIENT_TYPES`] and an `AUTH` carries a token: the
    /// part of the schema check that does not depend on the message type's fields.
    pub fn is_valid(&self) -> bool {
        CLIENT_TYPES.contains(&self.kind.as_str()) && (self.kind != AUTH || self.token.is_some())
    }

    /// Reads the whole message as `T`, moving its values rather than copying them.
    pub fn parse<T: DeserializeOwned>(self) -> Result<T, SchemaError> {
        rmpv::ext::from_value(self.body).map_err(|_| SchemaError { kind: self.kind })
    }
}

/// Reads a message: MessagePack first, then JSON, as the reference server accepts both.
pub fn decode(bytes: &[u8]) -> Result<Incoming, DecodeError> {
    let body = read_msgpack_map(bytes)
        .or_else(|| serde_json::from_slice(bytes).ok())
        .ok_or(DecodeError)?;
    let field = |name: &str| {
        body.as_map()?
            .iter()
            .find(|(key, _)| key.as_str() == Some(name))
            .and_then(|(_, value)| value.as_str())
            .map(str::to_owned)
    };
    let kind = field("type").ok_or(DecodeError)?;
    let token = field("token");
    Ok(Incoming { kind, token, body })
}

/// Depth budget of the MessagePack decoder for one message: about 128 levels of maps
/// and arrays (rmpv spends two units per level). Decoding, reading and dropping a
/// value all recurse, so a hostile peer could otherwise exhaust a worker thread's
/// stack with a few hundred kilobytes of nested arrays.
pub const MAX_NESTING: usize = 256;

/// One MessagePack map filling the whole message; JSON text starts with bytes that
/// also read as small MessagePack integers, so anything else falls back to JSON
/// (whose parser stops at 128 levels).
///
/// The message is read as borrowed slices first and copied once, at exact size:
/// rmpv's owned reader grows each binary or string from 64 KiB by doubling, which
/// copied a 1 MiB value five times over.
fn read_msgpack_map(bytes: &[u8]) -> Option<rmpv::Value> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value_ref_with_max_depth(&mut rest, MAX_NESTING).ok()?;
    (matches!(value, rmpv::ValueRef::Map(_)) && rest.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_msgpack_and_json_and_ignores_other_fields() {
        let packed = rmp_serde::to_vec_named(&serde_json::json!({"type": "AUTH", "token": "t"}));

        let auth = decode(&packed.unwrap()).unwrap();
        let json = decode(br#"{"type":"OP_BATCH","x":1}"#).unwrap();

        assert_eq!(
            (auth.kind.as_str(), auth.token.as_deref()),
            ("AUTH", Some("t"))
        );
        assert!(auth.is_valid());
        assert_eq!(
            (json.kind.as_str(), json.token.as_deref()),
            ("OP_BATCH", None)
        );
        assert!(json.is_valid());
        assert!(decode(b"\xc1garbage").is_err());
        assert!(decode(b"[1,2]").is_err());
    }

    #[test]
    fn a_large_binary_value_is_decoded_intact_into_a_buffer_of_its_own_size() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let message = rmpv::Value::Map(vec![
            ("type".into(), "TOPIC_PUB".into()),
            ("data".into(), rmpv::Value::Binary(data.clone())),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &message).unwrap();

        let incoming = decode(&bytes).unwrap();

        let rmpv::Value::Map(fields) = &incoming.body else {
            panic!("not a map: {:?}", incoming.kind);
        };
        let rmpv::Value::Binary(decoded) = &fields[1].1 else {
            panic!("data is not binary");
        };
        assert_eq!(decoded, &data);
        assert_eq!(decoded.capacity(), data.len());
    }

    #[test]
    fn unknown_types_and_auth_without_a_string_token_fail_the_schema_check() {
        let unknown = decode(br#"{"type":"PING"}"#).unwrap();
        let numeric_token = decode(br#"{"type":"AUTH","token":42}"#).unwrap();

        assert!(!unknown.is_valid());
        assert!(!numeric_token.is_valid());
    }
}
