//! Loading and checking the certificate chain and private key a listener presents.
//!
//! Everything an operator can get wrong about key material is caught here, before any
//! socket is bound, with an error that names the file and the variable it came from.
//! OpenSSL's terminal passphrase prompt is never reachable: every key is decoded with
//! an explicit passphrase callback.

use std::cell::Cell;
use std::fs;

use openssl::asn1::Asn1Time;
use openssl::error::ErrorStack;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Ref, X509VerifyResult, X509};

use crate::config::{IdentitySource, PassphraseSource, TlsConfig, VarPath};
use crate::tls::TlsError;

/// A certificate chain with its private key, checked to belong together.
pub struct Identity {
    /// The end-entity certificate.
    pub leaf: X509,
    /// Intermediates sent after the leaf, in order.
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
    /// Where the leaf came from, for messages and reports.
    pub source: VarPath,
}

/// Loads the identity of a listener and checks it: key matches, leaf first, chain in
/// order, not expired.
pub fn load(tls: &TlsConfig) -> Result<Identity, TlsError> {
    let passphrase = read_passphrase(tls.passphrase.as_ref())?;

    let mut identity = match &tls.identity {
        IdentitySource::Pem { cert, key } => load_pem(cert, key, passphrase.as_deref(), tls)?,
        IdentitySource::Pkcs12 { bundle } => load_pkcs12(bundle, passphrase.as_deref(), tls)?,
    };

    check_validity(&identity)?;
    // A root in the file would travel with every handshake for nothing: a client
    // that trusts it has it already, and one that does not will not start to.
    identity.chain.retain(|cert| !is_self_signed(cert));
    Ok(identity)
}

/// Whether `cert` names itself as issuer and carries a signature its own key verifies.
fn is_self_signed(cert: &X509) -> bool {
    cert.issued(cert) == X509VerifyResult::OK
        && cert
            .public_key()
            .and_then(|key| cert.verify(&key))
            .unwrap_or(false)
}

/// Reads every certificate of a PEM bundle, such as a CA file.
pub fn read_certificates(file: &VarPath) -> Result<Vec<X509>, TlsError> {
    let pem = read(file)?;
    let certs = X509::stack_from_pem(&pem).map_err(|source| TlsError::ParseCertificate {
        file: file.clone(),
        source,
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { file: file.clone() });
    }
    Ok(certs)
}

fn read(file: &VarPath) -> Result<Vec<u8>, TlsError> {
    fs::read(&file.path).map_err(|io| TlsError::Read {
        file: file.clone(),
        io,
    })
}

fn read_passphrase(source: Option<&PassphraseSource>) -> Result<Option<String>, TlsError> {
    let (var, text) = match source {
        None => return Ok(None),
        Some(PassphraseSource::Value { var, value }) => (*var, value.expose().to_owned()),
        Some(PassphraseSource::File(file)) => {
            let bytes = fs::read(&file.path)
                .map_err(|io| TlsError::ReadPassphraseFile { var: file.var, io })?;
            let mut text = String::from_utf8(bytes)
                .map_err(|_| TlsError::PassphraseNotText { var: file.var })?;
            // `echo secret > file` and most secret stores leave one line ending behind.
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            if text.is_empty() {
                return Err(TlsError::PassphraseFileEmpty { var: file.var });
            }
            (file.var, text)
        }
    };
    // OpenSSL takes passphrases as C strings (the PKCS#12 parser would panic).
    if text.contains('\0') {
        return Err(TlsError::PassphraseHasNul { var });
    }
    Ok(Some(text))
}

fn load_pem(
    cert_file: &VarPath,
    key_file: &VarPath,
    passphrase: Option<&str>,
    tls: &TlsConfig,
) -> Result<Identity, TlsError> {
    let mut certs = read_certificates(cert_file)?;
    let key = decode_key(key_file, passphrase, tls.passphrase.as_ref())?;

    // The key must belong to the first certificate. If it belongs to a later one, the
    // file is out of order and OpenSSL would serve an intermediate as our leaf.
    if !certs[0]
        .public_key()
        .is_ok_and(|public| key.public_eq(&public))
    {
        let matching = certs
            .iter()
            .position(|cert| cert.public_key().is_ok_and(|public| key.public_eq(&public)));
        return Err(match matching {
            Some(index) => TlsError::LeafNotFirst {
                file: cert_file.clone(),
                position: index + 1,
            },
            None => TlsError::KeyMismatch {
                cert: cert_file.clone(),
                key: key_file.clone(),
            },
        });
    }

    for (index, pair) in certs.windows(2).enumerate() {
        if pair[1].issued(&pair[0]) != X509VerifyResult::OK {
            return Err(TlsError::ChainOrder {
                file: cert_file.clone(),
                position: index + 2,
            });
        }
    }

    let leaf = certs.remove(0);
    Ok(Identity {
        leaf,
        chain: certs,
        key,
        source: cert_file.clone(),
    })
}

fn decode_key(
    file: &VarPath,
    passphrase: Option<&str>,
    passphrase_source: Option<&PassphraseSource>,
) -> Result<PKey<Private>, TlsError> {
    let pem = read(file)?;
    let asked = Cell::new(false);

    // With no callback OpenSSL would prompt on the terminal and block a pod for ever;
    // this callback answers from configuration or declines.
    let decoded = PKey::private_key_from_pem_callback(&pem, |buf| {
        asked.set(true);
        let Some(passphrase) = passphrase else {
            return Ok(0);
        };
        let bytes = passphrase.as_bytes();
        if bytes.len() > buf.len() {
            return Ok(0);
        }
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(bytes.len())
    });

    decoded.map_err(|source| {
        let encrypted = asked.get() || looks_encrypted(&pem);
        match (encrypted, passphrase_source) {
            (true, None) => TlsError::KeyNeedsPassphrase { file: file.clone() },
            (true, Some(pass)) => TlsError::WrongPassphrase {
                file: file.clone(),
                passphrase_var: pass.var(),
            },
            (false, _) => TlsError::ParseKey {
                file: file.clone(),
                source,
            },
        }
    })
}

fn looks_encrypted(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED")
}

fn load_pkcs12(
    file: &VarPath,
    passphrase: Option<&str>,
    tls: &TlsConfig,
) -> Result<Identity, TlsError> {
    let der = read(file)?;
    let bundle = Pkcs12::from_der(&der).map_err(|source| TlsError::Pkcs12 {
        file: file.clone(),
        source,
    })?;

    let parsed = bundle
        .parse2(passphrase.unwrap_or(""))
        .map_err(|source| pkcs12_error(file, tls.passphrase.as_ref(), source))?;

    let key = parsed
        .pkey
        .ok_or_else(|| TlsError::Pkcs12WithoutKey { file: file.clone() })?;
    let leaf = parsed
        .cert
        .ok_or_else(|| TlsError::Pkcs12WithoutCertificate { file: file.clone() })?;
    if !leaf.public_key().is_ok_and(|public| key.public_eq(&public)) {
        return Err(TlsError::KeyMismatch {
            cert: file.clone(),
            key: file.clone(),
        });
    }

    Ok(Identity {
        leaf,
        chain: parsed
            .ca
            .map(|stack| stack.into_iter().collect())
            .unwrap_or_default(),
        key,
        source: file.clone(),
    })
}

/// Tells a wrong passphrase from a bundle encrypted with an algorithm OpenSSL 3 no longer
/// loads by default (RC2 and friends from older OpenSSL and Windows exports).
fn pkcs12_error(
    file: &VarPath,
    passphrase: Option<&PassphraseSource>,
    source: ErrorStack,
) -> TlsError {
    for error in source.errors() {
        if error.reason() == Some("mac verify failure") {
            return match passphrase {
                Some(pass) => TlsError::WrongPassphrase {
                    file: file.clone(),
                    passphrase_var: pass.var(),
                },
                None => TlsError::KeyNeedsPassphrase { file: file.clone() },
            };
        }
        if let Some(algorithm) = error.data().and_then(unsupported_algorithm) {
            return TlsError::Pkcs12LegacyAlgorithm {
                file: file.clone(),
                algorithm,
            };
        }
    }
    TlsError::Pkcs12 {
        file: file.clone(),
        source,
    }
}

/// Picks the algorithm out of OpenSSL 3's fetch error data, which reads
/// `Global default library context, Algorithm (RC2-40-CBC : 0), Properties (<null>)`.
fn unsupported_algorithm(data: &str) -> Option<String> {
    let start = data.find("Algorithm (")? + "Algorithm (".len();
    let rest = &data[start..];
    let end = rest.find(" :").or_else(|| rest.find(')'))?;
    Some(rest[..end].trim().to_owned())
}

fn check_validity(identity: &Identity) -> Result<(), TlsError> {
    let now = Asn1Time::days_from_now(0).map_err(TlsError::Profile)?;
    if identity.leaf.not_after() < now {
        return Err(TlsError::Expired {
            file: identity.source.clone(),
            not_after: identity.leaf.not_after().to_string(),
        });
    }
    Ok(())
}

/// True when `cert` is not valid yet by this machine's clock.
pub fn not_yet_valid(cert: &X509Ref) -> bool {
    Asn1Time::days_from_now(0).is_ok_and(|now| cert.not_before() > now)
}

#[cfg(test)]
mod tests {
    use super::unsupported_algorithm;

    #[test]
    fn the_algorithm_is_read_out_of_openssl_fetch_errors() {
        let data =
            "Global default library context, Algorithm (RC2-40-CBC : 0), Properties (<null>)";

        assert_eq!(unsupported_algorithm(data).as_deref(), Some("RC2-40-CBC"));
        assert_eq!(unsupported_algorithm("something else"), None);
    }
}
