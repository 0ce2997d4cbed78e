//! Certificate revocation lists for cluster peers (`TOPGUN_CLUSTER_CRL_PATH`).
//!
//! The file is read and checked before the node binds: every CRL in it must be signed
//! by a CA of the cluster CA file. The same file is then loaded into the verify store
//! of the cluster acceptor and dialer, with leaf checking (`X509_V_FLAG_CRL_CHECK`).

use std::fs;

use openssl::asn1::Asn1Time;
use openssl::ssl::{SslContextBuilder, SslFiletype};
use openssl::x509::store::X509Lookup;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509};

use crate::config::VarPath;
use crate::tls::TlsError;

const BEGIN: &str = "-----BEGIN X509 CRL-----";
const END: &str = "-----END X509 CRL-----";

/// The revocation lists of one file, checked against the cluster CA.
pub struct Crls {
    pub file: VarPath,
    pub lists: Vec<X509Crl>,
}

/// A CRL whose nextUpdate has passed: its revocations still apply, but newer ones
/// may be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// 1-based position in the file.
    pub position: usize,
    pub next_update: String,
}

/// Reads every CRL of `file` and checks that a certificate of `ca` signed each.
pub fn load(file: &VarPath, ca: &[X509], ca_file: Option<&VarPath>) -> Result<Crls, TlsError> {
    let bytes = fs::read(&file.path).map_err(|io| TlsError::Read {
        file: file.clone(),
        io,
    })?;
    let text = String::from_utf8_lossy(&bytes);

    let mut lists = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let position = lists.len() + 1;
        let Some(length) = rest[start..].find(END) else {
            return Err(TlsError::ParseCrl {
                file: file.clone(),
                position,
                source: None,
            });
        };
        let end = start + length + END.len();
        let crl = X509Crl::from_pem(&rest.as_bytes()[start..end]).map_err(|source| {
            TlsError::ParseCrl {
                file: file.clone(),
                position,
                source: Some(source),
            }
        })?;
        let signed_by_ca = ca.iter().any(|cert| {
            cert.public_key()
                .and_then(|key| crl.verify(&key))
                .unwrap_or(false)
        });
        if !signed_by_ca {
            return Err(TlsError::CrlNotFromCa {
                file: file.clone(),
                position,
                ca: ca_file
                    .map(|ca| ca.path.display().to_string())
                    .unwrap_or_default(),
            });
        }
        lists.push(crl);
        rest = &rest[end..];
    }
    if lists.is_empty() {
        return Err(TlsError::NoCrl { file: file.clone() });
    }
    Ok(Crls {
        file: file.clone(),
        lists,
    })
}

impl Crls {
    /// The lists whose nextUpdate is in the past by this machine's clock.
    pub fn stale(&self) -> Vec<Stale> {
        let Ok(now) = Asn1Time::days_from_now(0) else {
            return Vec::new();
        };
        self.lists
            .iter()
            .enumerate()
            .filter_map(|(index, crl)| {
                let next = crl.next_update()?;
                (next < now).then(|| Stale {
                    position: index + 1,
                    next_update: next.to_string(),
                })
            })
            .collect()
    }

    /// How many certificates the lists revoke, all lists together.
    pub fn revoked(&self) -> usize {
        self.lists
            .iter()
            .map(|crl| crl.get_revoked().map_or(0, |revoked| revoked.len()))
            .sum()
    }

    /// Adds the lists to the verify store of `builder` and turns on revocation checking
    /// of the peer's certificate.
    pub(crate) fn install(&self, builder: &mut SslContextBuilder) -> Result<(), TlsError> {
        let path = self.file.path.to_str().ok_or_else(|| TlsError::ParseCrl {
            file: self.file.clone(),
            position: 1,
            source: None,
        })?;
        builder
            .cert_store_mut()
            .add_lookup(X509Lookup::file())
            .and_then(|lookup| lookup.load_crl_file(path, SslFiletype::PEM))
            .map_err(|source| TlsError::ParseCrl {
                file: self.file.clone(),
                position: 1,
                source: Some(source),
            })?;
        builder
            .verify_param_mut()
            .set_flags(X509VerifyFlags::CRL_CHECK)
            .map_err(TlsError::Profile)
    }
}
