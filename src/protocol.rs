//! The TopGun wire messages of the connection and authentication phase.
//!
//! Each WebSocket message is one MessagePack map with a string `type` (PROTOCOL.md §1.1).
//! The data plane (issue #3) adds the rest of the catalogue.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Close code sent with `SHUTDOWN_PENDING` (PROTOCOL.md §2.4).
pub const CLOSE_SHUTDOWN: u16 = 1001;
/// Close code for undecodable messages.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a message over `TOPGUN_MAX_MESSAGE_SIZE`.
pub const CLOSE_TOO_BIG: u16 = 1009;
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

/// A decoded incoming message: its type, and the token when it is an `AUTH`.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub kind: String,
    /// `AUTH.token`, when it is a string.
    pub token: Option<String>,
}

impl Incoming {
    /// Whether the type is one of [`CLIENT_TYPES`] and an `AUTH` carries a token: the
    /// part of the upstream schema check that the connection layer can make.
    pub fn is_valid(&self) -> bool {
        CLIENT_TYPES.contains(&self.kind.as_str()) && (self.kind != AUTH || self.token.is_some())
    }
}

/// Why an incoming message could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a MessagePack or JSON map with a string `type`")]
pub struct DecodeError;

#[derive(Serialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShutdownPending {
    #[serde(rename = "type")]
    kind: &'static str,
    retry_after: u64,
}

#[derive(Serialize)]
struct AuthFail {
    #[serde(rename = "type")]
    kind: &'static str,
    error: &'static str,
}

#[derive(Serialize)]
struct ErrorMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: ErrorPayload,
}

#[derive(Serialize)]
struct ErrorPayload {
    code: u16,
    message: &'static str,
    details: Option<()>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    // Any value: a non-string token is a schema error (ERROR 400), not a decode error.
    token: Option<rmpv::Value>,
}

/// `AUTH_REQUIRED`, sent as soon as a WebSocket opens.
pub fn auth_required() -> Vec<u8> {
    encode(&TypeOnly {
        kind: "AUTH_REQUIRED",
    })
}

/// `AUTH_ACK`, for a valid token.
pub fn auth_ack() -> Vec<u8> {
    encode(&TypeOnly { kind: "AUTH_ACK" })
}

/// `AUTH_FAIL {error: "Invalid token"}`, before closing with 4001 `Unauthorized`.
/// The reason a token failed is logged, never sent.
pub fn auth_fail() -> Vec<u8> {
    encode(&AuthFail {
        kind: "AUTH_FAIL",
        error: "Invalid token",
    })
}

/// `ERROR {code: 400, message: "Invalid message format", details: nil}`.
pub fn invalid_message() -> Vec<u8> {
    encode(&ErrorMessage {
        kind: "ERROR",
        payload: ErrorPayload {
            code: 400,
            message: "Invalid message format",
            details: None,
        },
    })
}

/// `SHUTDOWN_PENDING {retryAfter}`, sent before closing with 1001.
pub fn shutdown_pending(retry_after: Duration) -> Vec<u8> {
    encode(&ShutdownPending {
        kind: "SHUTDOWN_PENDING",
        retry_after: u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
    })
}

/// Reads a message's `type` (and `AUTH` token): MessagePack first, then JSON, as the
/// reference server accepts both.
pub fn decode(bytes: &[u8]) -> Result<Incoming, DecodeError> {
    let envelope = rmp_serde::from_slice::<Envelope>(bytes)
        .or_else(|_| serde_json::from_slice::<Envelope>(bytes))
        .map_err(|_| DecodeError)?;
    let token = match envelope.token {
        Some(rmpv::Value::String(text)) => text.into_str(),
        _ => None,
    };
    Ok(Incoming {
        kind: envelope.kind,
        token,
    })
}

fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(message).expect("these messages always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_pending_is_a_named_map_with_retry_after_at_top_level() {
        let bytes = shutdown_pending(Duration::from_secs(5));

        let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "SHUTDOWN_PENDING", "retryAfter": 5000})
        );
    }

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
    fn unknown_types_and_auth_without_a_string_token_fail_the_schema_check() {
        let unknown = decode(br#"{"type":"PING"}"#).unwrap();
        let numeric_token = decode(br#"{"type":"AUTH","token":42}"#).unwrap();

        assert!(!unknown.is_valid());
        assert!(!numeric_token.is_valid());
    }

    #[test]
    fn error_and_auth_fail_have_the_reference_shapes() {
        let error: serde_json::Value = rmp_serde::from_slice(&invalid_message()).unwrap();
        let fail: serde_json::Value = rmp_serde::from_slice(&auth_fail()).unwrap();

        assert_eq!(
            error,
            serde_json::json!({"type": "ERROR", "payload": {"code": 400, "message": "Invalid message format", "details": null}})
        );
        assert_eq!(
            fail,
            serde_json::json!({"type": "AUTH_FAIL", "error": "Invalid token"})
        );
    }
}
