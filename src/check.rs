//! `topgun-server check-config`: the node's `nginx -t`.
//!
//! The report is built from a [`PreparedNode`], so it reflects exactly what start-up
//! loaded and checked. It prints paths and facts, never a secret.

use std::fmt::Write;

use crate::config::{Config, IdentitySource, MinVersion, TlsConfig};
use crate::node::PreparedNode;
use crate::tls::{ciphers, inspect, ListenerTls};

/// Renders the per-listener report of a configuration that would start.
pub fn report(node: &PreparedNode) -> String {
    let config = &node.config;
    let mut out = String::new();

    let _ = writeln!(out, "configuration OK: the node would start");
    let _ = writeln!(out, "node id: {}", config.node_id);
    listener(
        &mut out,
        "client listener",
        config,
        &config.client.bind.to_string(),
        config.client.tls.as_ref(),
        node.client_tls.as_ref(),
    );
    listener(
        &mut out,
        "cluster listener",
        config,
        &config.cluster.bind.to_string(),
        config.cluster.tls.as_ref(),
        node.cluster_tls.as_ref(),
    );
    if config.cluster.tls.is_some() {
        let _ = writeln!(
            out,
            "  peer certificates required (mTLS): {}",
            yes_no(config.cluster.mtls)
        );
        let _ = writeln!(
            out,
            "  verify peers when dialling: {}",
            yes_no(config.cluster.reject_unauthorized)
        );
    }
    let _ = writeln!(out, "metrics endpoint: {} (http)", config.metrics.bind);
    let limits = &config.limits;
    let _ = writeln!(
        out,
        "limits: handshake timeout {} ms, {} connections per listener, messages up to {} bytes, shutdown drain {} ms",
        limits.handshake_timeout.as_millis(),
        limits.max_connections,
        limits.max_message_size,
        limits.shutdown_timeout.as_millis()
    );
    for var in &config.unknown_vars {
        let _ = writeln!(
            out,
            "warning: unknown variable {var} is ignored; check its spelling"
        );
    }
    out
}

fn listener(
    out: &mut String,
    title: &str,
    config: &Config,
    bind: &str,
    settings: Option<&TlsConfig>,
    loaded: Option<&ListenerTls>,
) {
    let (Some(settings), Some(loaded)) = (settings, loaded) else {
        let _ = writeln!(out, "{title}: {bind}");
        let _ = writeln!(
            out,
            "  tls: off{}",
            if config.production {
                " (warning: NODE_ENV=production)"
            } else {
                ""
            }
        );
        return;
    };

    let summary = inspect::summarize(&loaded.identity);
    let _ = writeln!(out, "{title}: {bind}");
    let _ = writeln!(out, "  tls: on");
    let source = match &settings.identity {
        IdentitySource::Pem { cert, key } => format!("{cert}, key {key}"),
        IdentitySource::Pkcs12 { bundle } => format!("PKCS#12 {bundle}"),
    };
    let _ = writeln!(out, "  certificate: {source}");
    let _ = writeln!(out, "  subject: {}", summary.subject);
    let _ = writeln!(
        out,
        "  SANs: {}",
        if summary.sans.is_empty() {
            "none".to_owned()
        } else {
            summary.sans.join(", ")
        }
    );
    let _ = writeln!(out, "  issuer: {}", summary.issuer);
    let _ = writeln!(
        out,
        "  expires: {} ({:.1} days left)",
        summary.not_after, summary.days_left
    );
    let _ = writeln!(out, "  key: {}", summary.key);
    let _ = writeln!(out, "  intermediates sent: {}", loaded.identity.chain.len());
    let chain = match (&settings.ca, &loaded.chain_verified) {
        (Some(ca), Some(Ok(()))) => format!("verified against {ca}"),
        (Some(ca), Some(Err(reason))) => format!("NOT verified against {ca}: {reason}"),
        _ => "not checked (no CA file configured)".to_owned(),
    };
    let _ = writeln!(out, "  chain: {chain}");
    let profile = &settings.profile;
    let _ = writeln!(out, "  min version: {}", profile.min_version.as_str());
    let (suites, ciphers): (Vec<_>, Vec<_>) = ciphers::offered(loaded.acceptor.context())
        .into_iter()
        .partition(|cipher| cipher.version == "TLSv1.3");
    let names =
        |list: Vec<ciphers::Offered>| list.iter().map(|c| c.name).collect::<Vec<_>>().join(":");
    let _ = writeln!(out, "  TLS 1.3 ciphersuites: {}", names(suites));
    if profile.min_version == MinVersion::Tls12 {
        let _ = writeln!(out, "  TLS 1.2 ciphers: {}", names(ciphers));
    }
    let _ = writeln!(out, "  groups: {}", profile.groups);
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
