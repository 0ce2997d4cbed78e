//! What `TOPGUN_FIPS=true` changes in the configuration: the TLS defaults become the
//! FIPS ones, settings that would use cryptography outside the FIPS provider are
//! refused, and so are PKCS#12 bundles.
//!
//! OpenSSL's FIPS provider also implements X25519, and ChaCha20-Poly1305 merely goes
//! missing from the offer, so the groups and ciphers are restricted here rather than
//! left to the provider.

use super::{ConfigError, IdentitySource, TlsConfig, TlsProfile};

/// TLS 1.2 ciphers in FIPS mode: ECDHE with AES-GCM.
pub const FIPS_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
/// TLS 1.3 suites in FIPS mode: the two AES-GCM suites.
pub const FIPS_CIPHERSUITES: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";
/// Key-exchange groups in FIPS mode: the NIST curves.
pub const FIPS_GROUPS: &str = "P-256:P-384:P-521";

/// Group names OpenSSL knows for the NIST curves.
const NIST_GROUPS: &[&str] = &[
    "P-256",
    "P-384",
    "P-521",
    "secp256r1",
    "secp384r1",
    "secp521r1",
    "prime256v1",
];

/// Refuses any part of `profile` that reaches outside AES-GCM and the NIST curves.
pub(super) fn check_profile(profile: &TlsProfile) -> Result<(), ConfigError> {
    // The messages name the variable, not the offending entry, as every configuration
    // error does.
    if !profile
        .groups
        .split(':')
        .all(|group| NIST_GROUPS.iter().any(|g| g.eq_ignore_ascii_case(group)))
    {
        return Err(ConfigError::invalid(
            "TOPGUN_TLS_GROUPS",
            format!(
                "TOPGUN_FIPS=true allows only the NIST curves P-256, P-384 and P-521 (not \
                 X25519 or X448); unset it for {FIPS_GROUPS}"
            ),
        ));
    }
    if !profile
        .ciphersuites
        .split(':')
        .all(|suite| FIPS_CIPHERSUITES.split(':').any(|s| s == suite))
    {
        return Err(ConfigError::invalid(
            "TOPGUN_TLS_CIPHERSUITES",
            "TOPGUN_FIPS=true allows only TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384; \
             unset it for both",
        ));
    }
    // Exclusions (`!X`, `-X`) and sorting directives (`@STRENGTH`) add nothing.
    if !profile
        .ciphers
        .split([':', ',', ' '])
        .filter(|entry| !entry.is_empty() && !entry.starts_with(['!', '-', '@']))
        .all(|entry| entry.contains("GCM") && entry.contains("AES"))
    {
        return Err(ConfigError::invalid(
            "TOPGUN_TLS_CIPHERS",
            format!(
                "TOPGUN_FIPS=true allows only AES-GCM ciphers (no ChaCha20, no CBC); unset it \
                 for {FIPS_CIPHERS}"
            ),
        ));
    }
    Ok(())
}

/// Refuses a PKCS#12 bundle: reading one needs the PKCS#12 key derivation, which the
/// FIPS provider does not have.
pub(super) fn check_identity(tls: &TlsConfig) -> Result<(), ConfigError> {
    match &tls.identity {
        IdentitySource::Pkcs12 { bundle } => Err(ConfigError::invalid(
            bundle.var,
            "PKCS#12 bundles cannot be read with TOPGUN_FIPS=true (their key derivation is \
             not in the FIPS provider); convert the bundle to PEM with `openssl pkcs12 -in \
             BUNDLE.p12 -nodes -out tmp.pem`, split the certificates and the key into two \
             files, and set the _CERT_PATH and _KEY_PATH variables instead",
        )),
        IdentitySource::Pem { .. } => Ok(()),
    }
}
