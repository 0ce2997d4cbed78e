//! OpenSSL acceptors for the node's TLS listeners.
//!
//! The profile starts from Mozilla "intermediate" (TLS 1.2 and 1.3), keeps only ECDHE
//! key exchange with AEAD ciphers, refuses renegotiation, and never offers HTTP/2:
//! WebSocket upgrades here are HTTP/1.1.

use std::sync::Arc;

use openssl::ssl::{
    AlpnError, SslAcceptor, SslAcceptorBuilder, SslContextBuilder, SslMethod, SslMode, SslOptions,
    SslVerifyMode, SslVersion,
};
use openssl::x509::X509;

use crate::config::{MinVersion, TlsProfile};
use crate::tls::identity::Identity;
use crate::tls::peer::{Direction, PeerPolicy};
use crate::tls::TlsError;

/// Whether a listener asks its peers for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCertificates {
    /// Clients stay anonymous at the TLS layer (the client port).
    NotRequested,
    /// Peers must present a certificate that verifies against the CA (cluster mTLS).
    Required,
}

/// The one ALPN protocol this node speaks.
const HTTP_1_1: &[u8] = b"http/1.1";

/// Builds an acceptor presenting `identity` with the shared protocol `profile`.
///
/// `ca` completes the chain sent when the identity carries no intermediates, and is
/// the trust anchor for peer certificates when they are required. Required peer
/// certificates are also checked against `policy` (pins, allow-list, CRLs, and the
/// clientAuth usage) when one is given.
pub fn build(
    profile: &TlsProfile,
    identity: &Identity,
    ca: &[X509],
    peers: PeerCertificates,
    session_context: &[u8],
    policy: Option<&Arc<PeerPolicy>>,
) -> Result<SslAcceptor, TlsError> {
    let mut builder = base(profile)?;
    present(&mut builder, identity)?;

    for cert in ca {
        builder
            .cert_store_mut()
            .add_cert(cert.clone())
            .map_err(TlsError::Profile)?;
    }
    match (peers, policy) {
        (PeerCertificates::Required, Some(policy)) => {
            policy.install(&mut builder, Direction::Inbound, true)?
        }
        (PeerCertificates::Required, None) => {
            builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT)
        }
        (PeerCertificates::NotRequested, _) => {}
    }
    builder
        .set_session_id_context(session_context)
        .map_err(TlsError::Profile)?;

    Ok(builder.build())
}

/// Makes `builder` present `identity`: the leaf, exactly the intermediates loaded, and
/// the key, checked against the leaf. Shared by the acceptors and the cluster dialer.
pub(crate) fn present(
    builder: &mut SslContextBuilder,
    identity: &Identity,
) -> Result<(), TlsError> {
    builder
        .set_certificate(&identity.leaf)
        .map_err(TlsError::Profile)?;
    for cert in &identity.chain {
        builder
            .add_extra_chain_cert(cert.clone())
            .map_err(TlsError::Profile)?;
    }
    builder
        .set_private_key(&identity.key)
        .map_err(TlsError::Profile)?;
    builder.check_private_key().map_err(TlsError::Profile)
}

/// The protocol settings, without any key material.
fn base(profile: &TlsProfile) -> Result<SslAcceptorBuilder, TlsError> {
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(TlsError::Profile)?;
    apply_profile(&mut builder, profile)?;

    // Without a match the handshake goes on with no ALPN, and the client falls back to
    // HTTP/1.1; selecting h2 would break the WebSocket upgrade.
    builder.set_alpn_select_callback(|_, offered| {
        openssl::ssl::select_next_proto(b"\x08http/1.1", offered)
            .filter(|chosen| *chosen == HTTP_1_1)
            .ok_or(AlpnError::NOACK)
    });

    Ok(builder)
}

/// Versions, ciphers, groups and options shared by the listeners and the cluster
/// dialer: no renegotiation, no compression, and only the chain loaded is sent.
pub(crate) fn apply_profile(
    builder: &mut SslContextBuilder,
    profile: &TlsProfile,
) -> Result<(), TlsError> {
    let min = match profile.min_version {
        MinVersion::Tls12 => SslVersion::TLS1_2,
        MinVersion::Tls13 => SslVersion::TLS1_3,
    };
    builder
        .set_min_proto_version(Some(min))
        .map_err(TlsError::Profile)?;

    builder
        .set_cipher_list(&profile.ciphers)
        .map_err(|source| TlsError::CipherList {
            var: "TOPGUN_TLS_CIPHERS",
            what: "TLS 1.2 ciphers",
            source,
        })?;
    builder
        .set_ciphersuites(&profile.ciphersuites)
        .map_err(|source| TlsError::CipherList {
            var: "TOPGUN_TLS_CIPHERSUITES",
            what: "TLS 1.3 ciphersuites",
            source,
        })?;
    builder
        .set_groups_list(&profile.groups)
        .map_err(TlsError::Groups)?;

    // The server's order decides among the client's TLS 1.2 ciphers (all AEAD here);
    // scanners rate a client-chosen order as a finding.
    builder.set_options(
        SslOptions::NO_RENEGOTIATION
            | SslOptions::NO_COMPRESSION
            | SslOptions::CIPHER_SERVER_PREFERENCE,
    );
    if !profile.session_tickets {
        // TLS 1.3 then resumes from the server's session cache (stateful tickets).
        builder.set_options(SslOptions::NO_TICKET);
    }
    // The chain sent is the one loaded and checked, never one OpenSSL builds itself.
    builder.set_mode(SslMode::NO_AUTO_CHAIN);
    // Idle connections give their record buffers back (about 34 KiB each), as nginx's do.
    builder.set_mode(SslMode::RELEASE_BUFFERS);
    Ok(())
}
