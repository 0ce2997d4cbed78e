//! The parts of a compact JWS and the claims this node reads from its payload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::base64;
use serde_json::{Map, Value};

use super::{AuthError, Principal, DEFAULT_ROLE};

/// Decodes unpadded base64url (RFC 7515 §2); `None` for any other alphabet or padding.
pub(super) fn decode_base64url(part: &str) -> Option<Vec<u8>> {
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if part.len() % 4 == 1 || !part.bytes().all(alphabet) {
        return None;
    }
    let mut standard: String = part
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while standard.len() % 4 != 0 {
        standard.push('=');
    }
    base64::decode_block(&standard).ok()
}

pub(super) fn decode_object(part: &str) -> Option<Map<String, Value>> {
    serde_json::from_slice(&decode_base64url(part)?).ok()
}

/// `nbf` then `exp`, compared as upstream does against whole seconds of `now`.
pub(super) fn check_times(
    claims: &Map<String, Value>,
    now: SystemTime,
    leeway: Duration,
) -> Result<(), AuthError> {
    // A clock before 1970 counts as 1970: tokens with `exp` then look valid only
    // if they are, and the node's clock is someone else's problem.
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs()) as f64;
    let leeway = leeway.as_secs_f64();

    if let Some(nbf) = numeric_claim(claims, "nbf")? {
        if nbf > now + leeway {
            return Err(AuthError::NotYetValid);
        }
    }
    if let Some(exp) = numeric_claim(claims, "exp")? {
        if now >= exp + leeway {
            return Err(AuthError::Expired);
        }
    }
    Ok(())
}

fn numeric_claim(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<f64>, AuthError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(number)) => number
            .as_f64()
            .map(Some)
            .ok_or(AuthError::InvalidClaim { claim }),
        Some(_) => Err(AuthError::InvalidClaim { claim }),
    }
}

pub(super) fn principal(claims: Map<String, Value>) -> Result<Principal, AuthError> {
    let user_id = match text_claim(&claims, "userId")? {
        Some(user_id) => Some(user_id),
        None => text_claim(&claims, "sub")?,
    };

    let invalid_roles = AuthError::InvalidClaim { claim: "roles" };
    let roles = match claims.get("roles") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => vec![DEFAULT_ROLE.to_owned()],
        Some(Value::String(role)) if role.is_empty() => vec![DEFAULT_ROLE.to_owned()],
        Some(Value::String(role)) => vec![role.clone()],
        Some(Value::Array(roles)) => roles
            .iter()
            .map(|role| role.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(invalid_roles)?,
        Some(_) => return Err(invalid_roles),
    };

    Ok(Principal {
        user_id,
        roles,
        claims,
    })
}

/// A claim naming someone: text, or a number written as text; null and "" are absent.
fn text_claim(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, AuthError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(AuthError::InvalidClaim { claim }),
    }
}
