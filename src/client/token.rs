//! Development HS256 tokens, signed with OpenSSL's HMAC so FIPS builds cover them.
//!
//! Only for development and tests: production tokens come from an identity
//! provider, and a shared HMAC secret should never leave the node's operators.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde::Serialize;

use super::ClientError;

/// The claims the node reads from a token (PROTOCOL.md §2.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TokenClaims {
    /// Subject; the node uses it as `userId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Roles; the node assumes `["USER"]` when this is empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Expiry in seconds since the Unix epoch; none means the token never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

impl TokenClaims {
    /// Claims for `sub` with `roles`, expiring `ttl_secs` seconds from now.
    pub fn expiring_in(sub: Option<String>, roles: Vec<String>, ttl_secs: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        Self {
            sub,
            roles,
            exp: Some(now.saturating_add(ttl_secs)),
        }
    }
}

/// A compact JWS (`header.claims.signature`) over `claims` (usually [`TokenClaims`],
/// any serializable claim set in tests), HS256 with `secret`.
pub fn mint_hs256<C: Serialize>(secret: &[u8], claims: &C) -> Result<String, ClientError> {
    let claims = serde_json::to_vec(claims).map_err(ClientError::TokenClaims)?;
    let signing_input = format!(
        "{}.{}",
        base64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        base64url(&claims)
    );

    let key = PKey::hmac(secret).map_err(ClientError::TokenSigning)?;
    let mut signer =
        Signer::new(MessageDigest::sha256(), &key).map_err(ClientError::TokenSigning)?;
    signer
        .update(signing_input.as_bytes())
        .map_err(ClientError::TokenSigning)?;
    let signature = signer.sign_to_vec().map_err(ClientError::TokenSigning)?;

    Ok(format!("{signing_input}.{}", base64url(&signature)))
}

/// Unpadded base64url (RFC 7515 §2) through OpenSSL's base64.
fn base64url(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_equals_one_made_with_the_openssl_command_line() {
        // Made with `openssl base64` and `openssl dgst -sha256 -hmac secret -binary`.
        let expected = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJzdWIiOiJhbGljZSIsInJvbGVzIjpbIkFETUlOIl0sImV4cCI6MjAwMDAwMDAwMH0.\
            lUT_BzYcoSTnkxSYdbjWVc52Z3uEe1oCZVicQPz70nE";
        let claims = TokenClaims {
            sub: Some("alice".into()),
            roles: vec!["ADMIN".into()],
            exp: Some(2_000_000_000),
        };

        let token = mint_hs256(b"secret", &claims).unwrap();

        assert_eq!(token, expected);
    }

    #[test]
    fn a_minted_token_verifies_with_the_same_secret_only() {
        let claims = TokenClaims::expiring_in(Some("bob".into()), Vec::new(), 60);
        let token = mint_hs256(b"one-secret", &claims).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();

        let sign = |secret: &[u8]| {
            let key = PKey::hmac(secret).unwrap();
            let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
            signer.update(input.as_bytes()).unwrap();
            base64url(&signer.sign_to_vec().unwrap())
        };

        assert_eq!(sign(b"one-secret"), signature);
        assert_ne!(sign(b"another-secret"), signature);
    }

    #[test]
    fn empty_claims_are_left_out() {
        let token = mint_hs256(b"s", &TokenClaims::default()).unwrap();

        let claims = token.split('.').nth(1).unwrap();

        assert_eq!(claims, base64url(b"{}"));
    }
}
