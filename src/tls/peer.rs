//! What a cluster peer's certificate must satisfy, checked inside OpenSSL's verify
//! callback on both the accepting and the dialling side.
//!
//! On top of chain verification against the cluster CA (with the revocation lists of
//! `TOPGUN_CLUSTER_CRL_PATH`, and the extended key usage the role needs: clientAuth
//! for an inbound peer, serverAuth for the node dialled), the leaf must match one of
//! `TOPGUN_CLUSTER_PINS` and carry an identity listed in
//! `TOPGUN_CLUSTER_ALLOWED_IDENTITIES`, when those are set. With chain verification
//! off (`TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED=false`, dialling only), pins and the
//! allow-list still decide, and a revoked certificate is still refused.
//!
//! Each refusal is logged at warn and recorded on the connection, so that
//! [`crate::tls::handshake`] can report it as a fixed [`Refusal`] kind.

use std::fmt;
use std::sync::{Arc, OnceLock};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::nid::Nid;
use openssl::ssl::{Ssl, SslContextBuilder, SslContextRef, SslRef, SslVerifyMode};
use openssl::x509::{
    X509PurposeId, X509Ref, X509StoreContext, X509StoreContextRef, X509VerifyResult, X509,
};
use openssl_sys as ffi;
use tracing::warn;

use crate::config::{ClusterConfig, Pin, VarPath};
use crate::tls::crl::{self, Crls};
use crate::tls::pinning::{self, Digests};
use crate::tls::TlsError;

/// Which way a link goes, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A peer dialled us; its certificate is a TLS client certificate.
    Inbound,
    /// We dialled a peer; its certificate is a TLS server certificate.
    Outbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Why this node refused a peer's certificate. [`Refusal::kind`] is a fixed label for
/// logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The chain does not lead to a CA of the cluster CA file (or is self-signed).
    UnknownCa,
    Expired,
    NotYetValid,
    /// Listed in a CRL of `TOPGUN_CLUSTER_CRL_PATH`.
    Revoked,
    /// The extended key usage does not allow the role: clientAuth for an inbound
    /// peer, serverAuth for a node dialled.
    WrongUsage(Direction),
    /// No SAN matches the host dialled.
    NameMismatch,
    /// The leaf matches none of `TOPGUN_CLUSTER_PINS`.
    PinMismatch,
    /// No identity of the leaf is in `TOPGUN_CLUSTER_ALLOWED_IDENTITIES`.
    IdentityRejected,
    /// Any other verification error, with OpenSSL's description.
    Other(&'static str),
}

impl Refusal {
    /// A short, fixed label: `unknown_ca`, `cert_expired`, `cert_not_yet_valid`,
    /// `cert_revoked`, `wrong_usage`, `name_mismatch`, `pin_mismatch`,
    /// `identity_rejected` or `bad_certificate`.
    pub fn kind(self) -> &'static str {
        match self {
            Refusal::UnknownCa => "unknown_ca",
            Refusal::Expired => "cert_expired",
            Refusal::NotYetValid => "cert_not_yet_valid",
            Refusal::Revoked => "cert_revoked",
            Refusal::WrongUsage(_) => "wrong_usage",
            Refusal::NameMismatch => "name_mismatch",
            Refusal::PinMismatch => "pin_mismatch",
            Refusal::IdentityRejected => "identity_rejected",
            Refusal::Other(_) => "bad_certificate",
        }
    }

    /// The refusal an OpenSSL verification error stands for; `None` for the errors
    /// that are tolerated (a CRL past its nextUpdate).
    pub(crate) fn from_verify_error(
        error: X509VerifyResult,
        direction: Direction,
    ) -> Option<Refusal> {
        Some(match error.as_raw() {
            ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
            | ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | ffi::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
            | ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
            | ffi::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
            | ffi::X509_V_ERR_CERT_UNTRUSTED => Refusal::UnknownCa,
            ffi::X509_V_ERR_CERT_HAS_EXPIRED => Refusal::Expired,
            ffi::X509_V_ERR_CERT_NOT_YET_VALID => Refusal::NotYetValid,
            ffi::X509_V_ERR_CERT_REVOKED => Refusal::Revoked,
            ffi::X509_V_ERR_INVALID_PURPOSE => Refusal::WrongUsage(direction),
            ffi::X509_V_ERR_HOSTNAME_MISMATCH | ffi::X509_V_ERR_IP_ADDRESS_MISMATCH => {
                Refusal::NameMismatch
            }
            ffi::X509_V_ERR_CRL_HAS_EXPIRED | ffi::X509_V_ERR_CRL_NOT_YET_VALID => return None,
            _ => Refusal::Other(error.error_string()),
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::UnknownCa => "the certificate does not chain to the cluster CA",
            Refusal::Expired => "the certificate has expired",
            Refusal::NotYetValid => "the certificate is not valid yet",
            Refusal::Revoked => "the certificate is revoked",
            Refusal::WrongUsage(Direction::Inbound) => {
                "certificate not valid for client authentication"
            }
            Refusal::WrongUsage(Direction::Outbound) => {
                "certificate not valid for server authentication"
            }
            Refusal::NameMismatch => "the certificate is not for the address dialled",
            Refusal::PinMismatch => "the certificate matches none of TOPGUN_CLUSTER_PINS",
            Refusal::IdentityRejected => {
                "no identity of the certificate is in TOPGUN_CLUSTER_ALLOWED_IDENTITIES"
            }
            Refusal::Other(reason) => reason,
        })
    }
}

/// Pins, allow-list and revocation lists of the cluster, loaded and checked.
pub struct PeerPolicy {
    pins: Vec<Pin>,
    allowed_identities: Vec<String>,
    crls: Option<Crls>,
}

impl PeerPolicy {
    /// Reads the revocation lists of `cluster` and checks them against `ca`, the
    /// certificates of `ca_file`.
    pub fn new(
        cluster: &ClusterConfig,
        ca: &[X509],
        ca_file: Option<&VarPath>,
    ) -> Result<PeerPolicy, TlsError> {
        let crls = match &cluster.crl {
            Some(file) => Some(crl::load(file, ca, ca_file)?),
            None => None,
        };
        Ok(PeerPolicy {
            pins: cluster.pins.clone(),
            allowed_identities: cluster.allowed_identities.clone(),
            crls,
        })
    }

    pub fn pins(&self) -> &[Pin] {
        &self.pins
    }

    pub fn allowed_identities(&self) -> &[String] {
        &self.allowed_identities
    }

    pub fn crls(&self) -> Option<&Crls> {
        self.crls.as_ref()
    }

    /// Makes `builder` verify peers with this policy. `verify_chain` false keeps only
    /// the pins, the allow-list and revocation.
    pub(crate) fn install(
        self: &Arc<Self>,
        builder: &mut SslContextBuilder,
        direction: Direction,
        verify_chain: bool,
    ) -> Result<(), TlsError> {
        let purpose = match direction {
            Direction::Inbound => X509PurposeId::SSL_CLIENT,
            Direction::Outbound => X509PurposeId::SSL_SERVER,
        };
        builder
            .verify_param_mut()
            .set_purpose(purpose)
            .map_err(TlsError::Profile)?;
        if let Some(crls) = &self.crls {
            crls.install(builder)?;
        }

        let mode = match direction {
            Direction::Inbound => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            Direction::Outbound => SslVerifyMode::PEER,
        };
        let policy = Arc::clone(self);
        builder.set_verify_callback(mode, move |preverified, ctx| {
            policy.verify(preverified, ctx, direction, verify_chain)
        });
        Ok(())
    }

    fn verify(
        &self,
        preverified: bool,
        ctx: &mut X509StoreContextRef,
        direction: Direction,
        verify_chain: bool,
    ) -> bool {
        if !preverified {
            let refusal = Refusal::from_verify_error(ctx.error(), direction);
            match refusal {
                // A stale CRL still says what it revokes; start-up warned about it.
                None => {}
                Some(refusal) if verify_chain || refusal == Refusal::Revoked => {
                    refuse(ctx, refusal, direction);
                    return false;
                }
                Some(_) => {}
            }
        }
        if ctx.error_depth() != 0 {
            return true;
        }
        let Some(leaf) = ctx.current_cert().map(X509Ref::to_owned) else {
            return true;
        };

        if !pinning::accepted(&self.pins, &leaf) {
            ctx.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
            refuse(ctx, Refusal::PinMismatch, direction);
            return false;
        }
        if !self.allowed_identities.is_empty() {
            let presented = identities(&leaf);
            if !presented
                .iter()
                .any(|identity| self.allowed_identities.contains(identity))
            {
                ctx.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
                refuse(ctx, Refusal::IdentityRejected, direction);
                return false;
            }
        }
        true
    }
}

/// The identities an allow-list entry can name: DNS SANs, URI SANs (SPIFFE IDs), and
/// the subject CN.
pub fn identities(cert: &X509Ref) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(names) = cert.subject_alt_names() {
        for name in &names {
            if let Some(dns) = name.dnsname() {
                found.push(dns.to_owned());
            } else if let Some(uri) = name.uri() {
                found.push(uri.to_owned());
            }
        }
    }
    for entry in cert.subject_name().entries_by_nid(Nid::COMMONNAME) {
        if let Ok(cn) = entry.data().to_string() {
            found.push(cn);
        }
    }
    found
}

/// Records `refusal` on the connection and logs it with what the operator needs to
/// compare against the configuration.
fn refuse(ctx: &X509StoreContextRef, refusal: Refusal, direction: Direction) {
    record(ctx, refusal);
    let direction = direction.as_str();
    let kind = refusal.kind();
    let Some(cert) = ctx.current_cert() else {
        warn!(direction, kind, reason = %refusal, "cluster peer certificate refused");
        return;
    };
    let subject = subject(cert);
    match refusal {
        Refusal::PinMismatch => {
            let digests = Digests::of(cert).ok();
            warn!(
                direction,
                kind,
                %subject,
                peer.fingerprint = %digests.map(|d| d.certificate_pin().to_string()).unwrap_or_default(),
                peer.spki_pin = %digests.map(|d| d.public_key_pin().to_string()).unwrap_or_default(),
                "cluster peer certificate matches no configured pin"
            );
        }
        Refusal::IdentityRejected => {
            let presented = identities(cert).join(", ");
            warn!(
                direction,
                kind,
                %subject,
                peer.identities = %presented,
                "cluster peer identity is not in TOPGUN_CLUSTER_ALLOWED_IDENTITIES"
            );
        }
        Refusal::WrongUsage(Direction::Inbound) => {
            warn!(
                direction,
                kind,
                %subject,
                "certificate not valid for client authentication; cluster certificates need the clientAuth and serverAuth extended key usages"
            );
        }
        Refusal::WrongUsage(Direction::Outbound) => {
            warn!(
                direction,
                kind,
                %subject,
                "certificate not valid for server authentication; cluster certificates need the clientAuth and serverAuth extended key usages"
            );
        }
        _ => {
            warn!(
                direction,
                kind,
                %subject,
                depth = ctx.error_depth(),
                reason = %refusal,
                "cluster peer certificate refused"
            );
        }
    }
}

fn subject(cert: &X509Ref) -> String {
    let parts: Vec<String> = cert
        .subject_name()
        .entries()
        .filter_map(|entry| {
            let key = entry.object().nid().short_name().ok()?;
            let value = entry.data().to_string().ok()?;
            Some(format!("{key}={value}"))
        })
        .collect();
    parts.join(", ")
}

/// Where a connection keeps the refusal its verify callback decided, if any.
type Slot = OnceLock<Refusal>;

fn slot_index() -> Option<Index<Ssl, Slot>> {
    static INDEX: OnceLock<Option<Index<Ssl, Slot>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().ok())
}

/// A new connection of `context`, ready to record why its peer was refused.
pub fn new_ssl(context: &SslContextRef) -> Result<Ssl, ErrorStack> {
    let mut ssl = Ssl::new(context)?;
    if let Some(index) = slot_index() {
        ssl.set_ex_data(index, Slot::new());
    }
    Ok(ssl)
}

fn record(ctx: &X509StoreContextRef, refusal: Refusal) {
    let Ok(ssl_index) = X509StoreContext::ssl_idx() else {
        return;
    };
    let slot = slot_index()
        .zip(ctx.ex_data(ssl_index))
        .and_then(|(index, ssl)| ssl.ex_data(index));
    if let Some(slot) = slot {
        // The first refusal is the one that failed the handshake.
        let _ = slot.set(refusal);
    }
}

/// Why this side refused the peer's certificate during a failed handshake, if it did.
///
/// Connections made with [`new_ssl`] report what the verify callback decided; others
/// fall back to OpenSSL's verification result.
pub fn refusal(ssl: &SslRef) -> Option<Refusal> {
    match slot_index().and_then(|index| ssl.ex_data(index)) {
        Some(slot) => slot.get().copied(),
        None => {
            let result = ssl.verify_result();
            if result == X509VerifyResult::OK {
                None
            } else {
                // The direction only shapes the message; the label is the same.
                Refusal::from_verify_error(result, Direction::Inbound)
            }
        }
    }
}
