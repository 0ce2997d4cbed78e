//! Everything the node does with OpenSSL: key material, SSL contexts, handshakes.
//!
//! Nothing outside this module calls OpenSSL for TLS. Errors name the file and the
//! variable involved and keep OpenSSL's own error stack as their source.

pub mod acceptor;
pub mod ciphers;
pub mod crl;
pub mod dialer;
pub mod fips;
pub mod handshake;
pub mod identity;
pub mod inspect;
pub mod peer;
pub mod pinning;
pub mod selftest;
pub mod swap;

use std::sync::Arc;
use std::time::Duration;

use openssl::error::ErrorStack;
use openssl::ssl::{SslAcceptor, SslVersion};
use openssl::x509::X509;

use crate::config::{ClusterConfig, MinVersion, TlsConfig, VarPath};

pub use acceptor::PeerCertificates;
pub use dialer::PeerConnector;
pub use identity::Identity;
pub use peer::{PeerPolicy, Refusal};

/// Everything one TLS listener needs, loaded and checked.
pub struct ListenerTls {
    pub acceptor: SslAcceptor,
    /// The identity as served: `chain` holds exactly the intermediates sent.
    pub identity: Identity,
    /// Certificates of the CA file, if one is configured.
    pub ca: Vec<X509>,
    /// Whether the served chain verifies against the CA file (`None` without one).
    pub chain_verified: Option<Result<(), String>>,
    /// True when the certificate file held only the leaf and the intermediates sent
    /// were taken from the CA file.
    pub chain_from_ca: bool,
}

/// Loads key material and builds the acceptor for one listener, failing on anything an
/// operator must fix before the node may bind.
pub fn prepare(
    tls: &TlsConfig,
    peers: PeerCertificates,
    session_context: &[u8],
) -> Result<ListenerTls, TlsError> {
    let loaded = load(tls)?;
    finish(loaded, tls, peers, session_context, None)
}

/// Loads the cluster's key material, revocation lists and peer checks, and builds both
/// ends of cluster links: the listener's acceptor (which, with `TOPGUN_CLUSTER_MTLS`,
/// verifies inbound peers against the CA with the clientAuth usage, CRLs, pins and
/// allow-list) and the dialer, which presents the same identity.
pub fn prepare_cluster(
    tls: &TlsConfig,
    cluster: &ClusterConfig,
    handshake_timeout: Duration,
) -> Result<(ListenerTls, PeerConnector), TlsError> {
    let loaded = load(tls)?;
    let policy = Arc::new(PeerPolicy::new(cluster, &loaded.ca, tls.ca.as_ref())?);
    let peers = if cluster.mtls {
        PeerCertificates::Required
    } else {
        PeerCertificates::NotRequested
    };
    let listener = finish(loaded, tls, peers, b"topgun-cluster", Some(&policy))?;
    let dialer = PeerConnector::new(
        &tls.profile,
        &listener.identity,
        &listener.ca,
        policy,
        cluster.reject_unauthorized,
        handshake_timeout,
    )?;
    Ok((listener, dialer))
}

/// Key material read and checked, before any SSL context is built.
struct Loaded {
    identity: Identity,
    ca: Vec<X509>,
    verified: Option<Result<Vec<X509>, String>>,
}

fn load(tls: &TlsConfig) -> Result<Loaded, TlsError> {
    let identity = identity::load(tls)?;
    let ca = match &tls.ca {
        Some(file) => identity::read_certificates(file)?,
        None => Vec::new(),
    };
    let verified = tls
        .ca
        .as_ref()
        .map(|_| inspect::verify_chain(&identity, &ca));
    Ok(Loaded {
        identity,
        ca,
        verified,
    })
}

fn finish(
    loaded: Loaded,
    tls: &TlsConfig,
    peers: PeerCertificates,
    session_context: &[u8],
    policy: Option<&Arc<PeerPolicy>>,
) -> Result<ListenerTls, TlsError> {
    let Loaded {
        mut identity,
        ca,
        verified,
    } = loaded;

    // A certificate file with only the leaf gets its intermediates from the CA file,
    // never the root. OpenSSL's own chain building is off, so what `check-config`
    // reports is exactly what is sent.
    let mut chain_from_ca = false;
    if let (true, Some(Ok(path))) = (identity.chain.is_empty(), &verified) {
        identity.chain = path
            .iter()
            .skip(1)
            .filter(|cert| !inspect::is_self_signed(cert))
            .cloned()
            .collect();
        chain_from_ca = !identity.chain.is_empty();
    }

    let acceptor = acceptor::build(&tls.profile, &identity, &ca, peers, session_context, policy)?;
    self_test(&acceptor, tls, &identity, peers)?;

    Ok(ListenerTls {
        acceptor,
        identity,
        ca,
        chain_verified: verified.map(|result| result.map(|_| ())),
        chain_from_ca,
    })
}

/// Proves that clients of each enabled version can complete a handshake. Skipped when
/// peers must present a certificate, as the in-memory client has none.
fn self_test(
    acceptor: &SslAcceptor,
    tls: &TlsConfig,
    identity: &Identity,
    peers: PeerCertificates,
) -> Result<(), TlsError> {
    if peers == PeerCertificates::Required {
        return Ok(());
    }
    let key = inspect::key_description(&identity.key);
    if tls.profile.min_version == MinVersion::Tls12 {
        selftest::handshake(acceptor, SslVersion::TLS1_2).map_err(|reason| TlsError::Unusable {
            var: "TOPGUN_TLS_CIPHERS",
            version: "TLS 1.2",
            key: key.clone(),
            hint: "include ciphers for this key type (ECDHE-ECDSA-* for EC keys, \
                       ECDHE-RSA-* for RSA keys), or set TOPGUN_TLS_MIN_VERSION=TLSv1.3",
            reason,
        })?;
    }
    selftest::handshake(acceptor, SslVersion::TLS1_3).map_err(|reason| TlsError::Unusable {
        var: "TOPGUN_TLS_GROUPS",
        version: "TLS 1.3",
        key,
        hint: "check the groups and ciphersuites",
        reason,
    })
}

/// Why key material or an SSL context could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read {}: {io}; check the path and that the node may read it", file.var, file.path.display())]
    Read {
        file: VarPath,
        // Shown in the message itself rather than chained as a source.
        io: std::io::Error,
    },
    #[error("{}: {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); convert a DER file with `openssl x509 -inform der -in FILE -out FILE.pem`", file.var, file.path.display())]
    NoCertificate { file: VarPath },
    #[error("{}: {} is not a valid PEM certificate file", file.var, file.path.display())]
    ParseCertificate {
        file: VarPath,
        #[source]
        source: ErrorStack,
    },
    #[error("{}: {} is not a PEM private key OpenSSL can read", file.var, file.path.display())]
    ParseKey {
        file: VarPath,
        #[source]
        source: ErrorStack,
    },
    #[error("{}: {} is encrypted and no passphrase is set; set {}", file.var, file.path.display(), passphrase_vars(file.var))]
    KeyNeedsPassphrase { file: VarPath },
    #[error("{}: cannot decrypt {} with the passphrase from {passphrase_var}: wrong passphrase", file.var, file.path.display())]
    WrongPassphrase {
        file: VarPath,
        passphrase_var: &'static str,
    },
    // The passphrase-file errors never show the path: a passphrase set by mistake in a
    // `_FILE` variable would otherwise be printed.
    #[error("{var}: cannot read the passphrase file it names: {io}; set it to the path of a mounted file holding the passphrase (the value is not shown, in case it is the passphrase itself)")]
    ReadPassphraseFile {
        var: &'static str,
        // Shown in the message itself rather than chained as a source.
        io: std::io::Error,
    },
    #[error("{var}: the passphrase file is not UTF-8 text")]
    PassphraseNotText { var: &'static str },
    #[error("{var}: the passphrase file is empty; write the passphrase into it")]
    PassphraseFileEmpty { var: &'static str },
    #[error("{var}: the passphrase contains a NUL byte, which OpenSSL cannot take; remove it")]
    PassphraseHasNul { var: &'static str },
    #[error("{}: private key {} does not match certificate {}; pair the key with the certificate it was issued for", key.var, key.path.display(), cert.path.display())]
    KeyMismatch { cert: VarPath, key: VarPath },
    #[error("{}: {}: the leaf certificate must come first, but the private key belongs to certificate #{position}; order the file leaf first, then intermediates", file.var, file.path.display())]
    LeafNotFirst { file: VarPath, position: usize },
    #[error("{}: {}: certificate #{position} did not issue the certificate before it; order the file leaf first, then each issuer", file.var, file.path.display())]
    ChainOrder { file: VarPath, position: usize },
    #[error("{}: certificate {} expired on {not_after}; renew it", file.var, file.path.display())]
    Expired { file: VarPath, not_after: String },
    #[error("{}: {} is not a PKCS#12 bundle OpenSSL can read", file.var, file.path.display())]
    Pkcs12 {
        file: VarPath,
        #[source]
        source: ErrorStack,
    },
    #[error("{}: {} is encrypted with {algorithm}, a legacy algorithm OpenSSL 3 does not load; re-export it with `openssl pkcs12 -legacy -in OLD.p12 -nodes -out tmp.pem` then `openssl pkcs12 -export -in tmp.pem -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 -out NEW.p12` (and delete tmp.pem), or use PEM files", file.var, file.path.display())]
    Pkcs12LegacyAlgorithm { file: VarPath, algorithm: String },
    #[error("{}: PKCS#12 bundle {} contains no private key; export it with its key, or use PEM files", file.var, file.path.display())]
    Pkcs12WithoutKey { file: VarPath },
    #[error("{}: PKCS#12 bundle {} contains no certificate; export it with its certificate, or use PEM files", file.var, file.path.display())]
    Pkcs12WithoutCertificate { file: VarPath },
    #[error("{}: {} does not verify against the CA {}; {reason}", cert.var, cert.path.display(), ca.path.display())]
    Untrusted {
        cert: VarPath,
        ca: VarPath,
        reason: String,
    },
    #[error(
        "{var}: OpenSSL accepts none of these {what}; list names that `openssl ciphers -v` shows"
    )]
    CipherList {
        var: &'static str,
        what: &'static str,
        #[source]
        source: ErrorStack,
    },
    #[error("TOPGUN_TLS_GROUPS: OpenSSL does not know one of these groups; use names such as X25519, P-256, P-384")]
    Groups(#[source] ErrorStack),
    #[error("{var}: no {version} client can complete a handshake with these settings and the {key} key; {hint} (OpenSSL: {reason})")]
    Unusable {
        var: &'static str,
        version: &'static str,
        key: String,
        hint: &'static str,
        reason: String,
    },
    #[error("{}: {} holds no PEM CRL (`-----BEGIN X509 CRL-----`); convert a DER file with `openssl crl -inform der -in FILE -out FILE.pem`", file.var, file.path.display())]
    NoCrl { file: VarPath },
    #[error("{}: CRL #{position} in {} is not a valid PEM CRL", file.var, file.path.display())]
    ParseCrl {
        file: VarPath,
        position: usize,
        #[source]
        source: Option<ErrorStack>,
    },
    #[error("{}: CRL #{position} in {} is not signed by a CA of the cluster CA file {ca}; use the CRLs of the CAs that issue peer certificates", file.var, file.path.display())]
    CrlNotFromCa {
        file: VarPath,
        position: usize,
        ca: String,
    },
    #[error("OpenSSL could not build the TLS context")]
    Profile(#[source] ErrorStack),
}

/// The variables that give the passphrase for a key named by `key_var`.
fn passphrase_vars(key_var: &str) -> &'static str {
    if key_var.starts_with("TOPGUN_CLUSTER_") {
        "TOPGUN_CLUSTER_TLS_PASSPHRASE or TOPGUN_CLUSTER_TLS_PASSPHRASE_FILE"
    } else {
        "TOPGUN_TLS_PASSPHRASE or TOPGUN_TLS_PASSPHRASE_FILE"
    }
}

/// OpenSSL's reasons in a stack, without codes and C source locations: what an
/// operator needs on one line.
pub fn describe(stack: &ErrorStack) -> String {
    let reasons: Vec<String> = stack
        .errors()
        .iter()
        .map(|error| {
            let reason = error.reason().unwrap_or("unknown error");
            match error.data() {
                Some(data) if !data.is_empty() => format!("{reason} ({data})"),
                _ => reason.to_owned(),
            }
        })
        .collect();
    if reasons.is_empty() {
        "no detail from OpenSSL".to_owned()
    } else {
        reasons.join("; ")
    }
}
