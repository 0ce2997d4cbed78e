//! A throwaway PKI for development and tests, made with OpenSSL.
//!
//! `topgun-server certs --out DIR` writes a CA, a server certificate for `localhost` and
//! `127.0.0.1`, and three node certificates valid for both server and client
//! authentication, as cluster mTLS needs (case C8). Never use these in production.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    CrlNumber, X509Builder, X509Crl, X509CrlBuilder, X509NameBuilder, X509RevokedBuilder, X509,
};

/// Why the development PKI could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating certificates with OpenSSL")]
    OpenSsl(#[from] ErrorStack),
    #[error("writing {}: {io}", path.display())]
    Write {
        path: PathBuf,
        // Shown in the message itself rather than chained as a source.
        io: std::io::Error,
    },
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists { path: PathBuf },
}

/// The key algorithm of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcP256,
    Rsa2048,
}

/// An extended key usage to put in a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

/// What a leaf certificate should say.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// URI SANs, such as SPIFFE IDs (`spiffe://cluster.local/ns/db/sa/node`).
    pub uris: Vec<String>,
    /// Empty means no extended key usage extension at all.
    pub usages: Vec<Usage>,
    pub key: KeyKind,
    /// Validity in days relative to now; `-10..-1` makes an expired certificate.
    pub valid_days: std::ops::Range<i64>,
}

impl LeafSpec {
    /// A one-year P-256 certificate for server and client authentication.
    pub fn new(common_name: &str) -> Self {
        LeafSpec {
            common_name: common_name.to_owned(),
            dns_names: Vec::new(),
            ips: Vec::new(),
            uris: Vec::new(),
            usages: vec![Usage::ServerAuth, Usage::ClientAuth],
            key: KeyKind::EcP256,
            valid_days: 0..365,
        }
    }
}

/// A certificate with its private key.
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Issued {
    /// Writes the certificate and the unencrypted PKCS#8 key (mode 0600) as PEM.
    pub fn write(&self, cert_path: &Path, key_path: &Path) -> Result<(), PkiError> {
        write_file(cert_path, &self.cert.to_pem()?, 0o644)?;
        write_file(key_path, &self.key.private_key_to_pem_pkcs8()?, 0o600)
    }
}

/// A certificate authority that can sign leaves and intermediates.
pub struct CertificateAuthority {
    pub issued: Issued,
}

impl CertificateAuthority {
    /// A self-signed root, valid for ten years.
    pub fn root(common_name: &str) -> Result<Self, ErrorStack> {
        let key = generate_key(KeyKind::EcP256)?;
        let mut builder = builder(common_name, &key, 0..3650)?;
        let issuer = name(common_name)?;
        builder.set_issuer_name(&issuer)?;
        add_ca_extensions(&mut builder, None)?;
        builder.sign(&key, MessageDigest::sha256())?;
        Ok(CertificateAuthority {
            issued: Issued {
                cert: builder.build(),
                key,
            },
        })
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, common_name: &str) -> Result<Self, ErrorStack> {
        let key = generate_key(KeyKind::EcP256)?;
        let mut builder = builder(common_name, &key, 0..1825)?;
        builder.set_issuer_name(self.issued.cert.subject_name())?;
        add_ca_extensions(&mut builder, Some(&self.issued.cert))?;
        builder.sign(&self.issued.key, MessageDigest::sha256())?;
        Ok(CertificateAuthority {
            issued: Issued {
                cert: builder.build(),
                key,
            },
        })
    }

    /// The CA certificate.
    pub fn cert(&self) -> &X509 {
        &self.issued.cert
    }

    /// Signs a leaf certificate as `spec` describes, for a new key.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Issued, ErrorStack> {
        self.issue_for_key(spec, generate_key(spec.key)?)
    }

    /// Signs a leaf certificate as `spec` describes for an existing key, as a renewal
    /// that keeps the key does.
    pub fn issue_for_key(&self, spec: &LeafSpec, key: PKey<Private>) -> Result<Issued, ErrorStack> {
        let mut builder = builder(&spec.common_name, &key, spec.valid_days.clone())?;
        builder.set_issuer_name(self.issued.cert.subject_name())?;

        builder.append_extension(BasicConstraints::new().critical().build()?)?;
        let mut usage = KeyUsage::new();
        usage.critical().digital_signature();
        if spec.key == KeyKind::Rsa2048 {
            usage.key_encipherment();
        }
        builder.append_extension(usage.build()?)?;
        if !spec.usages.is_empty() {
            let mut extended = ExtendedKeyUsage::new();
            for purpose in &spec.usages {
                match purpose {
                    Usage::ServerAuth => extended.server_auth(),
                    Usage::ClientAuth => extended.client_auth(),
                };
            }
            builder.append_extension(extended.build()?)?;
        }
        if !spec.dns_names.is_empty() || !spec.ips.is_empty() || !spec.uris.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for dns in &spec.dns_names {
                san.dns(dns);
            }
            for ip in &spec.ips {
                san.ip(&ip.to_string());
            }
            for uri in &spec.uris {
                san.uri(uri);
            }
            let extension = san.build(&builder.x509v3_context(Some(&self.issued.cert), None))?;
            builder.append_extension(extension)?;
        }
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(Some(&self.issued.cert), None))?;
        builder.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(Some(&self.issued.cert), None))?;
        builder.append_extension(aki)?;

        builder.sign(&self.issued.key, MessageDigest::sha256())?;
        Ok(Issued {
            cert: builder.build(),
            key,
        })
    }
}

impl CertificateAuthority {
    /// A CRL signed by this CA revoking `revoked`, issued an hour ago and due for
    /// renewal in `next_update_days` (negative: a stale list).
    pub fn crl(&self, revoked: &[&X509], next_update_days: i64) -> Result<X509Crl, ErrorStack> {
        let mut builder = X509CrlBuilder::new()?;
        builder.set_issuer_name(self.issued.cert.subject_name())?;
        let this_update = unix_days_from_now(next_update_days.min(0)) - 3_600;
        let issued_at = Asn1Time::from_unix(this_update)?;
        builder.set_last_update(&issued_at)?;
        let next_update = Asn1Time::from_unix(unix_days_from_now(next_update_days))?;
        builder.set_next_update(&next_update)?;
        let context = X509Builder::new()?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&context.x509v3_context(Some(&self.issued.cert), None))?;
        builder.append_extension(aki)?;
        builder.append_extension(CrlNumber::new(BigNum::from_u32(1)?)?.build()?)?;
        for cert in revoked {
            let mut entry = X509RevokedBuilder::new()?;
            entry.set_serial_number(cert.serial_number())?;
            entry.set_revocation_date(&issued_at)?;
            builder.add_revoked(entry.build())?;
        }
        builder.sign(&self.issued.key, MessageDigest::sha256())?;
        builder.build()
    }
}

/// A self-signed leaf as `spec` describes, as a peer without a CA would present.
pub fn self_signed(spec: &LeafSpec) -> Result<Issued, ErrorStack> {
    let key = generate_key(spec.key)?;
    let issuer = CertificateAuthority {
        issued: Issued {
            cert: {
                let mut builder = builder(&spec.common_name, &key, spec.valid_days.clone())?;
                let own_name = name(&spec.common_name)?;
                builder.set_issuer_name(&own_name)?;
                let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
                builder.append_extension(ski)?;
                builder.sign(&key, MessageDigest::sha256())?;
                builder.build()
            },
            key: key.clone(),
        },
    };
    // Signed by its own key under its own name: the leaf is its own issuer.
    issuer.issue_for_key(spec, key)
}

/// Writes the development PKI into `dir`; returns the files written.
pub fn write_dev_pki(dir: &Path, force: bool) -> Result<Vec<PathBuf>, PkiError> {
    fs::create_dir_all(dir).map_err(|io| PkiError::Write {
        path: dir.to_owned(),
        io,
    })?;
    let mut names = vec!["ca".to_owned(), "server".to_owned()];
    names.extend((1..=3).map(|i| format!("node-{i}")));
    if !force {
        for name in &names {
            let path = dir.join(format!("{name}.key"));
            if path.exists() {
                return Err(PkiError::Exists { path });
            }
        }
    }

    let ca = CertificateAuthority::root("TopGun Development CA")?;
    let mut written = Vec::new();
    let mut save = |name: &str, issued: &Issued| -> Result<(), PkiError> {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        issued.write(&cert, &key)?;
        written.extend([cert, key]);
        Ok(())
    };
    save("ca", &ca.issued)?;

    let loopback: Vec<IpAddr> = vec![
        "127.0.0.1".parse().expect("literal"),
        "::1".parse().expect("literal"),
    ];
    let mut server = LeafSpec::new("localhost");
    server.dns_names = vec!["localhost".to_owned()];
    server.ips = loopback.clone();
    server.usages = vec![Usage::ServerAuth];
    save("server", &ca.issue(&server)?)?;

    for i in 1..=3 {
        let mut node = LeafSpec::new(&format!("node-{i}"));
        node.dns_names = vec![format!("node-{i}"), "localhost".to_owned()];
        node.ips = loopback.clone();
        save(&format!("node-{i}"), &ca.issue(&node)?)?;
    }
    Ok(written)
}

fn generate_key(kind: KeyKind) -> Result<PKey<Private>, ErrorStack> {
    match kind {
        KeyKind::EcP256 => PKey::ec_gen("prime256v1"),
        // Through EVP, not `Rsa::generate`: the low-level call bypasses the FIPS
        // provider's checks.
        KeyKind::Rsa2048 => {
            let mut context = PkeyCtx::new_id(Id::RSA)?;
            context.keygen_init()?;
            context.set_rsa_keygen_bits(2048)?;
            context.keygen()
        }
    }
}

fn name(common_name: &str) -> Result<openssl::x509::X509Name, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", "TopGun Development")?;
    name.append_entry_by_text("CN", common_name)?;
    Ok(name.build())
}

fn builder(
    common_name: &str,
    key: &PKey<Private>,
    valid_days: std::ops::Range<i64>,
) -> Result<X509Builder, ErrorStack> {
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    let subject = name(common_name)?;
    builder.set_subject_name(&subject)?;
    builder.set_pubkey(key)?;
    // An hour of slack, so that a client whose clock is a little behind does not see a
    // fresh certificate as not yet valid.
    let not_before = Asn1Time::from_unix(unix_days_from_now(valid_days.start) - 3_600)?;
    builder.set_not_before(&not_before)?;
    let not_after = Asn1Time::from_unix(unix_days_from_now(valid_days.end))?;
    builder.set_not_after(&not_after)?;
    Ok(builder)
}

fn add_ca_extensions(builder: &mut X509Builder, issuer: Option<&X509>) -> Result<(), ErrorStack> {
    builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski =
        SubjectKeyIdentifier::new().build(&builder.x509v3_context(issuer.map(|c| &**c), None))?;
    builder.append_extension(ski)?;
    if let Some(issuer) = issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(Some(issuer), None))?;
        builder.append_extension(aki)?;
    }
    Ok(())
}

fn unix_days_from_now(days: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    now + days * 86_400
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let error = |io| PkiError::Write {
        path: path.to_owned(),
        io,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(contents).map_err(error)
}
