//! Client authentication: JWT verification through OpenSSL (PROTOCOL.md §2.3).
//!
//! A [`Verifier`] is built once from `JWT_SECRET` and checks the token of each
//! `AUTH` message. Answering `AUTH_FAIL` and closing with 4001 is left to the
//! session; every [`AuthError`] means "Invalid token" on the wire.

use std::fmt;
use std::time::{Duration, SystemTime};

use josekit::jws::{JwsVerifier, ES256, RS256};
use josekit::JoseError;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::memcmp;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::X509;
use serde_json::{Map, Value};

use crate::config::Secret;

mod claims;
use claims::{check_times, decode_base64url, decode_object, principal};

/// Clock skew tolerated on `exp` and `nbf`, unless changed with [`Verifier::with_leeway`].
///
/// Upstream tolerates none; a minute absorbs drift between the token issuer and
/// this node at the cost of accepting a token up to a minute after it expired.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Shortest HS256 secret RFC 7518 §3.2 allows, in bytes; see [`Verifier::secret_is_short`].
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// Longest token accepted, in bytes; real tokens are a few hundred.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Roles of a principal whose token names none (PROTOCOL.md §2.3).
pub const DEFAULT_ROLE: &str = "USER";

/// The one signature algorithm a [`Verifier`] accepts, implied by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA256 with the `JWT_SECRET` bytes as the key.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and an RSA public key.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Algorithm {
    /// The `alg` header value, e.g. `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `JWT_SECRET` cannot be used; a start-up error. Never contains the value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT_SECRET: the value is empty")]
    Empty,
    #[error(
        "JWT_SECRET: contains `-----BEGIN` but is not a readable PEM public key or certificate"
    )]
    Pem(#[source] ErrorStack),
    #[error("JWT_SECRET: holds a private key; give the public key instead")]
    PrivateKey,
    #[error("JWT_SECRET: {kind} keys are not supported; use RSA (RS256) or EC P-256 (ES256)")]
    UnsupportedKey { kind: String },
    #[error("JWT_SECRET: the RSA key has {bits} bits; RS256 needs at least 2048")]
    RsaTooSmall { bits: u32 },
    #[error("JWT_SECRET: the EC key is on curve {curve}; ES256 needs P-256 (prime256v1)")]
    WrongCurve { curve: String },
    #[error("JWT_SECRET: josekit refused the public key")]
    PublicKey(#[source] JoseError),
    #[error("JWT_SECRET: OpenSSL refused the HMAC key")]
    Hmac(#[source] ErrorStack),
}

/// Why a token was refused. Never contains the token or any of its parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token is not signed with {expected}, the only algorithm this node accepts")]
    WrongAlgorithm { expected: Algorithm },
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token claim `{claim}` has a type that is not allowed")]
    InvalidClaim { claim: &'static str },
}

/// The authenticated identity of a connection (PROTOCOL.md §2.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `userId`, or `sub` when `userId` is missing, null or empty; numbers become text.
    pub user_id: Option<String>,
    /// `roles`; `["USER"]` when missing, null, `false` or empty text. A single
    /// string becomes one role; an empty array stays empty, as upstream.
    pub roles: Vec<String>,
    /// The payload exactly as signed, for policies that need other claims.
    pub claims: Map<String, Value>,
}

/// Checks tokens against the key of `JWT_SECRET`; build once, share across connections.
pub struct Verifier {
    key: Key,
    leeway: Duration,
}

enum Key {
    // Verified here rather than by josekit, whose HS256 verifier compares MACs in
    // variable time and refuses secrets shorter than 32 bytes (such as the default).
    Hmac {
        key: PKey<Private>,
        short: bool,
    },
    Public {
        algorithm: Algorithm,
        verifier: Box<dyn JwsVerifier>,
    },
}

impl Verifier {
    /// Builds the verifier for a `JWT_SECRET` value.
    ///
    /// As upstream, literal `\n` pairs become newlines first, in PEM keys and HMAC
    /// secrets alike. A value containing `-----BEGIN` must then be a PEM public
    /// key (SPKI or PKCS#1) or certificate: an RSA key of at least 2048 bits means
    /// RS256, an EC P-256 key ES256. Anything else is an HS256 secret. The key
    /// fixes the algorithm: a node with a PEM key never accepts HS256 (which would
    /// let anyone holding the public key forge tokens), and no node accepts `none`.
    pub fn from_secret(secret: &Secret) -> Result<Self, KeyError> {
        let value = secret.expose().replace("\\n", "\n");
        if value.is_empty() {
            return Err(KeyError::Empty);
        }

        let key = if value.contains("-----BEGIN") {
            public_key(&value)?
        } else {
            let key = PKey::hmac(value.as_bytes()).map_err(KeyError::Hmac)?;
            // Surfaces a provider that refuses this key now rather than per token.
            hmac_sha256(&key, b"").map_err(KeyError::Hmac)?;
            Key::Hmac {
                key,
                short: value.len() < MIN_HS256_SECRET_LEN,
            }
        };

        Ok(Verifier {
            key,
            leeway: LEEWAY,
        })
    }

    /// Replaces the clock skew tolerated on `exp` and `nbf` (default [`LEEWAY`]).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The algorithm every accepted token must name in its `alg` header.
    pub fn algorithm(&self) -> Algorithm {
        match &self.key {
            Key::Hmac { .. } => Algorithm::Hs256,
            Key::Public { algorithm, .. } => *algorithm,
        }
    }

    /// True for an HS256 secret shorter than [`MIN_HS256_SECRET_LEN`] bytes, such as
    /// the development default; it works, but should be reported to the operator.
    pub fn secret_is_short(&self) -> bool {
        matches!(self.key, Key::Hmac { short: true, .. })
    }

    /// Checks a compact JWS token at time `now` and returns its principal.
    ///
    /// Checked: the `alg` header, the signature, then `nbf` and `exp` when present,
    /// each with the leeway. As upstream, a token without `exp` never expires, and
    /// `iss`, `aud` and `iat` are not checked. A `crit` header is refused, as no
    /// extension is understood.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("longer than 64 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("not three dot-separated parts"));
        };

        let header = decode_object(header_b64).ok_or(AuthError::Malformed(
            "header is not a base64url JSON object",
        ))?;
        self.check_header(&header)?;

        let signature = decode_base64url(signature_b64)
            .ok_or(AuthError::Malformed("signature is not base64url"))?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        self.check_signature(signing_input.as_bytes(), &signature)?;

        let claims = decode_object(payload_b64).ok_or(AuthError::Malformed(
            "payload is not a base64url JSON object",
        ))?;
        check_times(&claims, now, self.leeway)?;
        principal(claims)
    }

    fn check_header(&self, header: &Map<String, Value>) -> Result<(), AuthError> {
        let expected = self.algorithm();
        match header.get("alg") {
            Some(Value::String(alg)) if alg == expected.as_str() => {}
            _ => return Err(AuthError::WrongAlgorithm { expected }),
        }
        if header.contains_key("crit") {
            return Err(AuthError::Malformed("header has a crit parameter"));
        }
        Ok(())
    }

    fn check_signature(&self, signing_input: &[u8], signature: &[u8]) -> Result<(), AuthError> {
        let valid = match &self.key {
            Key::Hmac { key, .. } => hmac_sha256(key, signing_input)
                .map(|mac| mac.len() == signature.len() && memcmp::eq(&mac, signature))
                .unwrap_or(false),
            Key::Public { verifier, .. } => verifier.verify(signing_input, signature).is_ok(),
        };
        if valid {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm())
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// Reads a PEM public key or certificate and picks the algorithm its type implies.
fn public_key(pem: &str) -> Result<Key, KeyError> {
    if pem.contains("PRIVATE KEY-----") {
        return Err(KeyError::PrivateKey);
    }
    let key: PKey<Public> = if pem.contains("-----BEGIN CERTIFICATE-----") {
        X509::from_pem(pem.as_bytes()).and_then(|cert| cert.public_key())
    } else if pem.contains("-----BEGIN RSA PUBLIC KEY-----") {
        Rsa::public_key_from_pem_pkcs1(pem.as_bytes()).and_then(PKey::from_rsa)
    } else {
        PKey::public_key_from_pem(pem.as_bytes())
    }
    .map_err(KeyError::Pem)?;

    let algorithm = match key.id() {
        Id::RSA if key.bits() < 2048 => return Err(KeyError::RsaTooSmall { bits: key.bits() }),
        Id::RSA => Algorithm::Rs256,
        Id::EC => {
            let curve = key.ec_key().map_err(KeyError::Pem)?.group().curve_name();
            if curve != Some(Nid::X9_62_PRIME256V1) {
                let curve = curve
                    .and_then(|nid| nid.short_name().ok())
                    .unwrap_or("unnamed");
                return Err(KeyError::WrongCurve {
                    curve: curve.to_owned(),
                });
            }
            Algorithm::Es256
        }
        other => {
            let kind = Nid::from_raw(other.as_raw())
                .short_name()
                .unwrap_or("unknown");
            return Err(KeyError::UnsupportedKey {
                kind: kind.to_owned(),
            });
        }
    };

    let der = key.public_key_to_der().map_err(KeyError::Pem)?;
    let verifier: Box<dyn JwsVerifier> = match algorithm {
        Algorithm::Es256 => Box::new(ES256.verifier_from_der(&der).map_err(KeyError::PublicKey)?),
        _ => Box::new(RS256.verifier_from_der(&der).map_err(KeyError::PublicKey)?),
    };
    Ok(Key::Public {
        algorithm,
        verifier,
    })
}

fn hmac_sha256(key: &PKey<Private>, data: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    signer.update(data)?;
    signer.sign_to_vec()
}

#[cfg(test)]
mod tests;
