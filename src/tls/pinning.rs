//! Comparing a peer certificate against the configured pins (`TOPGUN_CLUSTER_PINS`).
//!
//! A certificate pin is the SHA-256 of the certificate's DER, as
//! `openssl x509 -noout -fingerprint -sha256` prints it; a public-key pin is the
//! SHA-256 of its DER SubjectPublicKeyInfo, as curl's `--pinnedpubkey` takes it.

use openssl::error::ErrorStack;
use openssl::hash::{hash, MessageDigest};
use openssl::x509::X509Ref;

use crate::config::Pin;

/// The two SHA-256 digests of a certificate that pins are compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// SHA-256 of the certificate (DER).
    pub certificate: [u8; 32],
    /// SHA-256 of the SubjectPublicKeyInfo (DER).
    pub public_key: [u8; 32],
}

impl Digests {
    /// Computes both digests of `cert`.
    pub fn of(cert: &X509Ref) -> Result<Digests, ErrorStack> {
        let spki = cert.public_key()?.public_key_to_der()?;
        Ok(Digests {
            certificate: sha256(&cert.digest(MessageDigest::sha256())?),
            public_key: sha256(&hash(MessageDigest::sha256(), &spki)?),
        })
    }

    /// True when `pin` names this certificate or its key.
    pub fn matches(&self, pin: &Pin) -> bool {
        match pin {
            Pin::Certificate(digest) => *digest == self.certificate,
            Pin::PublicKey(digest) => *digest == self.public_key,
        }
    }

    /// The certificate pin in its canonical spelling (`AB:CD:…`).
    pub fn certificate_pin(&self) -> Pin {
        Pin::Certificate(self.certificate)
    }

    /// The public-key pin in its canonical spelling (`sha256//…`).
    pub fn public_key_pin(&self) -> Pin {
        Pin::PublicKey(self.public_key)
    }
}

/// True when no pins are configured or `cert` matches one of them. A certificate whose
/// digests cannot be computed matches nothing.
pub fn accepted(pins: &[Pin], cert: &X509Ref) -> bool {
    if pins.is_empty() {
        return true;
    }
    Digests::of(cert).is_ok_and(|digests| pins.iter().any(|pin| digests.matches(pin)))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(bytes);
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CertificateAuthority, LeafSpec};

    #[test]
    fn a_certificate_matches_its_own_pins_and_not_another_certificates() {
        let ca = CertificateAuthority::root("pinning test CA").unwrap();
        let node = ca.issue(&LeafSpec::new("node-1")).unwrap();
        let other = ca.issue(&LeafSpec::new("node-2")).unwrap();
        let digests = Digests::of(&node.cert).unwrap();

        let own = [digests.certificate_pin(), digests.public_key_pin()];

        for pin in own {
            assert!(accepted(&[pin], &node.cert), "{pin}");
            assert!(!accepted(&[pin], &other.cert), "{pin}");
        }
        assert!(accepted(&[], &other.cert));
    }

    #[test]
    fn a_reissued_certificate_keeps_its_public_key_pin_but_not_its_fingerprint() {
        let ca = CertificateAuthority::root("pinning test CA").unwrap();
        let first = ca.issue(&LeafSpec::new("node-1")).unwrap();
        let again = ca
            .issue_for_key(&LeafSpec::new("node-1"), first.key.clone())
            .unwrap();
        let digests = Digests::of(&first.cert).unwrap();

        assert!(accepted(&[digests.public_key_pin()], &again.cert));
        assert!(!accepted(&[digests.certificate_pin()], &again.cert));
    }
}
