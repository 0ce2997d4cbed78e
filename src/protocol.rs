//! The few TopGun wire messages the connection layer sends or inspects itself.
//!
//! Each WebSocket message is one MessagePack map with a string `type` (PROTOCOL.md §1.1).
//! The data plane (issue #3) owns the rest of the catalogue.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Close code sent with `SHUTDOWN_PENDING` (PROTOCOL.md §2.4).
pub const CLOSE_SHUTDOWN: u16 = 1001;
/// Close code for undecodable messages.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a message over `TOPGUN_MAX_MESSAGE_SIZE`.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for any message other than `AUTH` before authentication.
pub const CLOSE_AUTH: u16 = 4001;

/// The message type the client must send first.
pub const AUTH: &str = "AUTH";

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

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

/// `AUTH_REQUIRED`, sent as soon as a WebSocket opens.
pub fn auth_required() -> Vec<u8> {
    encode(&TypeOnly {
        kind: "AUTH_REQUIRED",
    })
}

/// `SHUTDOWN_PENDING {retryAfter}`, sent before closing with 1001.
pub fn shutdown_pending(retry_after: Duration) -> Vec<u8> {
    encode(&ShutdownPending {
        kind: "SHUTDOWN_PENDING",
        retry_after: u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
    })
}

/// Reads the `type` of a message: MessagePack first, then JSON, as the reference
/// server accepts both.
pub fn message_type(bytes: &[u8]) -> Result<String, DecodeError> {
    rmp_serde::from_slice::<Envelope>(bytes)
        .map(|envelope| envelope.kind)
        .or_else(|_| serde_json::from_slice::<Envelope>(bytes).map(|envelope| envelope.kind))
        .map_err(|_| DecodeError)
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
    fn message_type_reads_msgpack_and_json_and_ignores_other_fields() {
        let packed = rmp_serde::to_vec_named(&serde_json::json!({"type": "AUTH", "token": "t"}));

        assert_eq!(message_type(&packed.unwrap()).unwrap(), "AUTH");
        assert_eq!(message_type(br#"{"type":"PING","x":1}"#).unwrap(), "PING");
        assert!(message_type(b"\xc1garbage").is_err());
        assert!(message_type(b"[1,2]").is_err());
    }
}
