use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

use josekit::jws::{JwsHeader, JwsSigner, HS256};
use josekit::jwt::{self, JwtPayload};
use openssl::base64;
use openssl::ec::{EcGroup, EcKey};
use serde_json::json;

use super::*;

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn at(offset_secs: i64) -> Value {
    json!(1_700_000_000 + offset_secs)
}

struct KeyPair {
    private_pem: Vec<u8>,
    public_pem: String,
}

fn key_pair(key: PKey<Private>) -> KeyPair {
    KeyPair {
        private_pem: key.private_key_to_pem_pkcs8().unwrap(),
        public_pem: String::from_utf8(key.public_key_to_pem().unwrap()).unwrap(),
    }
}

fn rsa() -> &'static KeyPair {
    static RSA: OnceLock<KeyPair> = OnceLock::new();
    RSA.get_or_init(|| key_pair(PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()))
}

fn ec() -> &'static KeyPair {
    static EC: OnceLock<KeyPair> = OnceLock::new();
    EC.get_or_init(|| key_pair(PKey::ec_gen("prime256v1").unwrap()))
}

fn verifier(secret: &str) -> Verifier {
    Verifier::from_secret(&Secret::new(secret)).unwrap()
}

fn key_error(secret: &str) -> KeyError {
    Verifier::from_secret(&Secret::new(secret)).unwrap_err()
}

fn sign(claims: Value, signer: &dyn JwsSigner) -> String {
    let Value::Object(claims) = claims else {
        panic!("claims must be an object");
    };
    let payload = JwtPayload::from_map(claims).unwrap();
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    jwt::encode_with_signer(&payload, &header, signer).unwrap()
}

fn hs256(claims: Value, secret: &[u8]) -> String {
    sign(claims, &HS256.signer_from_bytes(secret).unwrap())
}

fn rs256(claims: Value) -> String {
    sign(claims, &RS256.signer_from_pem(&rsa().private_pem).unwrap())
}

fn es256(claims: Value) -> String {
    sign(claims, &ES256.signer_from_pem(&ec().private_pem).unwrap())
}

/// An HS256 token built without josekit, which refuses odd claims and short keys.
fn hs256_by_hand(header: Value, claims: Value, secret: &str) -> String {
    let header = encode_base64url(header.to_string().as_bytes());
    let payload = encode_base64url(claims.to_string().as_bytes());
    let key = PKey::hmac(secret.as_bytes()).unwrap();
    let mac = hmac_sha256(&key, format!("{header}.{payload}").as_bytes()).unwrap();
    format!("{header}.{payload}.{}", encode_base64url(&mac))
}

fn encode_base64url(bytes: &[u8]) -> String {
    base64::encode_block(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(&format!(" {error} {error:?}"));
        source = error.source();
    }
    text
}

#[test]
fn hs256_token_with_the_right_secret_is_accepted() {
    let token = hs256(
        json!({"userId": "alice", "exp": at(300)}),
        SECRET.as_bytes(),
    );

    let principal = verifier(SECRET).verify(&token, now()).unwrap();

    assert_eq!(principal.user_id.as_deref(), Some("alice"));
    assert_eq!(verifier(SECRET).algorithm(), Algorithm::Hs256);
}

#[test]
fn rs256_token_is_accepted_by_a_node_with_the_rsa_public_key() {
    let token = rs256(json!({"sub": "bob", "exp": at(300)}));
    let verifier = verifier(&rsa().public_pem);

    let principal = verifier.verify(&token, now()).unwrap();

    assert_eq!(verifier.algorithm(), Algorithm::Rs256);
    assert_eq!(principal.user_id.as_deref(), Some("bob"));
}

#[test]
fn es256_token_is_accepted_by_a_node_with_the_p256_public_key() {
    let token = es256(json!({"sub": "carol", "exp": at(300)}));
    let verifier = verifier(&ec().public_pem);

    let principal = verifier.verify(&token, now()).unwrap();

    assert_eq!(verifier.algorithm(), Algorithm::Es256);
    assert_eq!(principal.user_id.as_deref(), Some("carol"));
}

#[test]
fn token_signed_with_another_secret_is_refused() {
    let token = hs256(
        json!({"sub": "mallory"}),
        b"another-secret-that-is-32-bytes-long",
    );

    let result = verifier(SECRET).verify(&token, now());

    assert_eq!(result.unwrap_err(), AuthError::BadSignature);
}

#[test]
fn token_with_a_tampered_payload_is_refused() {
    for (token, node) in [
        (hs256(json!({"roles": ["USER"]}), SECRET.as_bytes()), SECRET),
        (rs256(json!({"roles": ["USER"]})), rsa().public_pem.as_str()),
        (es256(json!({"roles": ["USER"]})), ec().public_pem.as_str()),
    ] {
        let parts: Vec<&str> = token.split('.').collect();
        let forged = encode_base64url(br#"{"roles":["ADMIN"]}"#);
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);

        let result = verifier(node).verify(&tampered, now());

        assert_eq!(result.unwrap_err(), AuthError::BadSignature);
    }
}

#[test]
fn expired_token_is_refused() {
    let token = rs256(json!({"sub": "bob", "exp": at(-120)}));

    let result = verifier(&rsa().public_pem).verify(&token, now());

    assert_eq!(result.unwrap_err(), AuthError::Expired);
}

#[test]
fn token_before_its_nbf_is_refused() {
    let token = hs256(json!({"sub": "bob", "nbf": at(120)}), SECRET.as_bytes());

    let result = verifier(SECRET).verify(&token, now());

    assert_eq!(result.unwrap_err(), AuthError::NotYetValid);
}

#[test]
fn clock_skew_within_the_leeway_is_tolerated() {
    let expired = hs256(json!({"exp": at(-59)}), SECRET.as_bytes());
    let early = hs256(json!({"nbf": at(60)}), SECRET.as_bytes());
    let expired_at_the_edge = hs256(json!({"exp": at(-60)}), SECRET.as_bytes());

    let verifier = verifier(SECRET);

    assert!(verifier.verify(&expired, now()).is_ok());
    assert!(verifier.verify(&early, now()).is_ok());
    assert_eq!(
        verifier.verify(&expired_at_the_edge, now()).unwrap_err(),
        AuthError::Expired
    );
}

#[test]
fn leeway_can_be_turned_off() {
    let token = hs256(json!({"exp": at(-1)}), SECRET.as_bytes());

    let result = verifier(SECRET)
        .with_leeway(Duration::ZERO)
        .verify(&token, now());

    assert_eq!(result.unwrap_err(), AuthError::Expired);
}

#[test]
fn token_without_exp_is_accepted_as_upstream_does() {
    let token = hs256(json!({"sub": "bob"}), SECRET.as_bytes());

    let result = verifier(SECRET).verify(&token, now());

    assert!(result.is_ok());
}

#[test]
fn nbf_that_is_not_a_number_is_refused() {
    let header = json!({"alg": "HS256"});
    let token = hs256_by_hand(header, json!({"sub": "bob", "nbf": "soon"}), SECRET);

    let result = verifier(SECRET).verify(&token, now());

    assert_eq!(
        result.unwrap_err(),
        AuthError::InvalidClaim { claim: "nbf" }
    );
}

#[test]
fn unsecured_token_with_alg_none_is_refused() {
    let Value::Object(claims) = json!({"sub": "mallory"}) else {
        unreachable!()
    };
    let payload = JwtPayload::from_map(claims).unwrap();
    let token = jwt::encode_unsecured(&payload, &JwsHeader::new()).unwrap();

    for node in [SECRET, rsa().public_pem.as_str(), ec().public_pem.as_str()] {
        let verifier = verifier(node);

        let result = verifier.verify(&token, now());

        let expected = verifier.algorithm();
        assert_eq!(result.unwrap_err(), AuthError::WrongAlgorithm { expected });
    }
}

#[test]
fn hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    // The classic algorithm confusion: the public key is no secret, so a node
    // that let an HS256 token use it as the HMAC key would accept forgeries.
    let public_pem = rsa().public_pem.as_str();
    let forged = hs256(json!({"sub": "mallory"}), public_pem.as_bytes());

    let result = verifier(public_pem).verify(&forged, now());

    let expected = Algorithm::Rs256;
    assert_eq!(result.unwrap_err(), AuthError::WrongAlgorithm { expected });
}

#[test]
fn token_signed_with_another_asymmetric_algorithm_is_refused() {
    let token = es256(json!({"sub": "mallory"}));

    let result = verifier(&rsa().public_pem).verify(&token, now());

    let expected = Algorithm::Rs256;
    assert_eq!(result.unwrap_err(), AuthError::WrongAlgorithm { expected });
}

#[test]
fn roles_default_to_user_and_user_id_falls_back_to_sub() {
    let verifier = verifier(SECRET);
    let check = |claims: Value| {
        let token = hs256(claims, SECRET.as_bytes());
        verifier.verify(&token, now()).unwrap()
    };

    let bare = check(json!({"sub": "s-1"}));
    let both = check(json!({"sub": "s-1", "userId": "u-1", "roles": ["ADMIN"]}));
    let null_roles = check(json!({"userId": 42, "roles": null}));
    let one_role = check(json!({"roles": "ADMIN"}));
    let no_roles = check(json!({"roles": []}));

    assert_eq!(
        (bare.user_id.as_deref(), bare.roles),
        (Some("s-1"), vec!["USER".to_owned()])
    );
    assert_eq!(
        (both.user_id.as_deref(), both.roles),
        (Some("u-1"), vec!["ADMIN".to_owned()])
    );
    assert_eq!(both.claims.get("sub"), Some(&json!("s-1")));
    assert_eq!(
        (null_roles.user_id.as_deref(), null_roles.roles),
        (Some("42"), vec!["USER".to_owned()])
    );
    assert_eq!(one_role.user_id, None);
    assert_eq!(one_role.roles, vec!["ADMIN".to_owned()]);
    assert!(no_roles.roles.is_empty());
}

#[test]
fn roles_that_are_not_strings_are_refused() {
    let token = hs256(json!({"roles": ["ADMIN", 1]}), SECRET.as_bytes());

    let result = verifier(SECRET).verify(&token, now());

    assert_eq!(
        result.unwrap_err(),
        AuthError::InvalidClaim { claim: "roles" }
    );
}

#[test]
fn pem_with_literal_backslash_n_escapes_loads() {
    let escaped = rsa().public_pem.trim_end().replace('\n', "\\n");
    let token = rs256(json!({"sub": "bob"}));

    let verifier = verifier(&escaped);

    assert_eq!(verifier.algorithm(), Algorithm::Rs256);
    assert!(verifier.verify(&token, now()).is_ok());
}

#[test]
fn malformed_pem_is_a_start_up_error_naming_jwt_secret_without_its_value() {
    let value = "-----BEGIN PUBLIC KEY-----\\nTOPSECRETMARKER\\n-----END PUBLIC KEY-----";

    let error = key_error(value);

    assert!(matches!(error, KeyError::Pem(_)));
    assert!(error.to_string().starts_with("JWT_SECRET: "));
    assert!(!error_chain(&error).contains("TOPSECRETMARKER"));
}

#[test]
fn private_key_pem_is_refused_at_start_up() {
    let value = String::from_utf8(rsa().private_pem.clone()).unwrap();

    let error = key_error(&value);

    assert!(matches!(error, KeyError::PrivateKey));
    assert!(!error_chain(&error).contains(value.lines().nth(1).unwrap()));
}

#[test]
fn unsupported_public_keys_are_refused_at_start_up() {
    let p384 = EcKey::generate(&EcGroup::from_curve_name(Nid::SECP384R1).unwrap()).unwrap();
    let p384 = key_pair(PKey::from_ec_key(p384).unwrap());
    let rsa1024 = key_pair(PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap());
    let ed25519 = key_pair(PKey::generate_ed25519().unwrap());

    let p384 = key_error(&p384.public_pem);
    let rsa1024 = key_error(&rsa1024.public_pem);
    let ed25519 = key_error(&ed25519.public_pem);

    assert!(matches!(p384, KeyError::WrongCurve { ref curve } if curve == "secp384r1"));
    assert!(matches!(rsa1024, KeyError::RsaTooSmall { bits: 1024 }));
    assert!(matches!(ed25519, KeyError::UnsupportedKey { ref kind } if kind == "ED25519"));
}

#[test]
fn certificate_pem_supplies_its_public_key() {
    let key = PKey::private_key_from_pem(&rsa().private_pem).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "issuer").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    let not_before = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
    let not_after = openssl::asn1::Asn1Time::days_from_now(1).unwrap();
    cert.set_not_before(&not_before).unwrap();
    cert.set_not_after(&not_after).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let pem = String::from_utf8(cert.build().to_pem().unwrap()).unwrap();
    let token = rs256(json!({"sub": "bob"}));

    let result = verifier(&pem).verify(&token, now());

    assert!(result.is_ok());
}

#[test]
fn short_default_secret_works_and_is_reported_as_short() {
    let secret = crate::config::DEFAULT_JWT_SECRET;
    let token = hs256_by_hand(json!({"alg": "HS256"}), json!({"userId": "dev"}), secret);

    let verifier = verifier(secret);

    assert!(verifier.secret_is_short());
    assert!(!self::verifier(SECRET).secret_is_short());
    assert_eq!(
        verifier.verify(&token, now()).unwrap().user_id.as_deref(),
        Some("dev")
    );
}

#[test]
fn errors_do_not_echo_the_token() {
    let verifier = verifier(SECRET);
    let valid = hs256(json!({"sub": "bob"}), SECRET.as_bytes());

    for token in [
        "TOKENMARKER",
        "TOKENMARKER.e30.",
        &format!("{valid}TOKENMARKER"),
    ] {
        let error = verifier.verify(token, now()).unwrap_err();

        assert!(!format!("{error} {error:?}").contains("TOKENMARKER"));
    }
}

#[test]
fn token_with_a_crit_header_is_refused() {
    let header = json!({"alg": "HS256", "crit": ["exp"]});
    let token = hs256_by_hand(header, json!({"sub": "bob"}), SECRET);

    let result = verifier(SECRET).verify(&token, now());

    assert!(matches!(result, Err(AuthError::Malformed(_))));
}

#[test]
fn verifier_can_be_shared_between_connections() {
    fn assert_send_sync<T: Send + Sync>() {}

    assert_send_sync::<Verifier>();
}
