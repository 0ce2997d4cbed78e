//! Human-readable facts about certificates and keys, for `check-config` and start-up logs.

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKeyRef, Private};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509NameRef, X509Ref, X509StoreContext, X509VerifyResult, X509};

use crate::tls::identity::Identity;

/// What an operator wants to know about a served certificate.
#[derive(Debug, Clone)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses, as `DNS:name` and `IP:addr`.
    pub sans: Vec<String>,
    pub not_after: String,
    /// Days until `not_after`, fractional; negative once expired.
    pub days_left: f64,
    /// Algorithm and size, e.g. `EC P-256` or `RSA 2048`.
    pub key: String,
}

/// Summarises the leaf certificate and key of `identity`.
pub fn summarize(identity: &Identity) -> CertificateSummary {
    let cert = &identity.leaf;
    CertificateSummary {
        subject: name(cert.subject_name()),
        issuer: name(cert.issuer_name()),
        sans: sans(cert),
        not_after: cert.not_after().to_string(),
        days_left: days_until(cert.not_after()),
        key: key_description(&identity.key),
    }
}

/// Days from now until `time`, with the fraction of the day.
pub fn days_until(time: &Asn1TimeRef) -> f64 {
    let Ok(now) = Asn1Time::days_from_now(0) else {
        return f64::NAN;
    };
    match now.diff(time) {
        Ok(diff) => f64::from(diff.days) + f64::from(diff.secs) / 86_400.0,
        Err(_) => f64::NAN,
    }
}

/// Verifies the leaf and the chain the node sends against `ca`, as a client holding
/// that CA would. Returns the verified path, leaf first, or OpenSSL's reason.
pub fn verify_chain(identity: &Identity, ca: &[X509]) -> Result<Vec<X509>, String> {
    let run = || -> Result<Result<Vec<X509>, String>, openssl::error::ErrorStack> {
        let mut store = X509StoreBuilder::new()?;
        for cert in ca {
            store.add_cert(cert.clone())?;
        }
        let store = store.build();

        let mut untrusted = Stack::new()?;
        for cert in &identity.chain {
            untrusted.push(cert.clone())?;
        }

        let mut context = X509StoreContext::new()?;
        context.init(&store, &identity.leaf, &untrusted, |ctx| {
            if !ctx.verify_cert()? {
                return Ok(Err(ctx.error().error_string().to_owned()));
            }
            let path = ctx
                .chain()
                .map(|chain| chain.iter().map(|cert| cert.to_owned()).collect())
                .unwrap_or_default();
            Ok(Ok(path))
        })
    };
    run().unwrap_or_else(|stack| Err(stack.to_string()))
}

/// True for a certificate that signed itself (a root).
pub fn is_self_signed(cert: &X509Ref) -> bool {
    cert.issued(cert) == X509VerifyResult::OK
}

fn name(name: &X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let field = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_default();
            format!("{field}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sans(cert: &X509Ref) -> Vec<String> {
    let Some(names) = cert.subject_alt_names() else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|general| {
            if let Some(dns) = general.dnsname() {
                Some(format!("DNS:{dns}"))
            } else if let Some(ip) = general.ipaddress() {
                ip_text(ip).map(|ip| format!("IP:{ip}"))
            } else {
                general.uri().map(|uri| format!("URI:{uri}"))
            }
        })
        .collect()
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// Algorithm and size of a key, e.g. `EC P-256` or `RSA 2048`.
pub fn key_description(key: &PKeyRef<Private>) -> String {
    match key.id() {
        Id::RSA => format!("RSA {}", key.bits()),
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|ec| ec.group().curve_name())
                .map(curve_name)
                .unwrap_or("unknown curve");
            format!("EC {curve}")
        }
        Id::ED25519 => "Ed25519".to_owned(),
        Id::ED448 => "Ed448".to_owned(),
        other => format!("key type {} ({} bits)", other.as_raw(), key.bits()),
    }
}

fn curve_name(nid: Nid) -> &'static str {
    match nid {
        Nid::X9_62_PRIME256V1 => "P-256",
        Nid::SECP384R1 => "P-384",
        Nid::SECP521R1 => "P-521",
        other => other.short_name().unwrap_or("unknown curve"),
    }
}
