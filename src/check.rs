//! `topgun-server check-config`: the node's `nginx -t`.
//!
//! The report is built from a [`PreparedNode`], so it reflects exactly what start-up
//! loaded and checked. It prints paths and facts, never a secret.

use std::fmt::{self, Write};
use std::net::SocketAddr;

use crate::config::{IdentitySource, MinVersion, TlsConfig};
use crate::node::{PreparedNode, EXPIRY_WARNING_DAYS};
use crate::tls::{ciphers, inspect, ListenerTls};

/// Renders the per-listener report of a configuration that would start.
pub fn report(node: &PreparedNode) -> String {
    let mut out = String::new();
    write_report(&mut out, node).expect("writing to a String cannot fail");
    out
}

fn write_report(out: &mut String, node: &PreparedNode) -> fmt::Result {
    let config = &node.config;
    writeln!(out, "configuration OK: the node would start")?;
    writeln!(out, "node id: {}", config.node_id)?;

    let client = Listener {
        title: "client listener",
        bind: config.client.bind,
        tls: config.client.tls.as_ref().zip(node.client_tls.as_ref()),
        production: config.production,
    };
    client.write(out)?;

    let cluster = Listener {
        title: "cluster listener (not served by this version yet)",
        bind: config.cluster.bind,
        tls: config.cluster.tls.as_ref().zip(node.cluster_tls.as_ref()),
        production: config.production,
    };
    cluster.write(out)?;
    if cluster.tls.is_some() {
        writeln!(
            out,
            "  peer certificates required (mTLS): {}",
            yes_no(config.cluster.mtls)
        )?;
        writeln!(
            out,
            "  verify peers when dialling: {}",
            yes_no(config.cluster.reject_unauthorized)
        )?;
    }

    let metrics = Listener {
        title: "metrics endpoint (GET /metrics)",
        bind: config.metrics.bind,
        tls: config.metrics.tls.as_ref().zip(node.metrics_tls.as_ref()),
        production: false,
    };
    metrics.write(out)?;
    if metrics.tls.is_some() {
        writeln!(
            out,
            "  scraper certificates required: {}",
            yes_no(config.metrics.require_client_cert)
        )?;
    }
    let limits = &config.limits;
    writeln!(
        out,
        "limits: handshake timeout {} ms, {} connections per listener, \
         messages up to {} bytes, shutdown drain {} ms",
        limits.handshake_timeout.as_millis(),
        limits.max_connections,
        limits.max_message_size,
        limits.shutdown_timeout.as_millis()
    )?;

    for ignored in &config.ignored {
        writeln!(
            out,
            "warning: {} is set but {} is not true, so it is not used",
            ignored.var, ignored.switch
        )?;
    }
    for var in &config.unknown_vars {
        writeln!(
            out,
            "warning: unknown variable {var} is ignored; check its spelling"
        )?;
    }
    Ok(())
}

/// One listener's section of the report.
struct Listener<'a> {
    title: &'static str,
    bind: SocketAddr,
    tls: Option<(&'a TlsConfig, &'a ListenerTls)>,
    production: bool,
}

impl Listener<'_> {
    fn write(&self, out: &mut String) -> fmt::Result {
        writeln!(out, "{}: {}", self.title, self.bind)?;
        let Some((settings, loaded)) = self.tls else {
            let warning = if self.production {
                " (warning: NODE_ENV=production)"
            } else {
                ""
            };
            return writeln!(out, "  tls: off{warning}");
        };

        writeln!(out, "  tls: on")?;
        match &settings.identity {
            IdentitySource::Pem { cert, key } => writeln!(out, "  certificate: {cert}, key {key}")?,
            IdentitySource::Pkcs12 { bundle } => writeln!(out, "  certificate: PKCS#12 {bundle}")?,
        }

        let summary = inspect::summarize(&loaded.identity);
        writeln!(out, "  subject: {}", summary.subject)?;
        if summary.sans.is_empty() {
            writeln!(out, "  SANs: none")?;
        } else {
            writeln!(out, "  SANs: {}", summary.sans.join(", "))?;
        }
        writeln!(out, "  issuer: {}", summary.issuer)?;
        writeln!(
            out,
            "  expires: {} ({:.1} days left)",
            summary.not_after, summary.days_left
        )?;
        if summary.days_left < EXPIRY_WARNING_DAYS {
            writeln!(
                out,
                "  warning: the certificate expires in less than {EXPIRY_WARNING_DAYS} days; renew it"
            )?;
        }
        writeln!(out, "  key: {}", summary.key)?;
        let from = if loaded.chain_from_ca {
            " (taken from the CA file)"
        } else {
            ""
        };
        writeln!(
            out,
            "  intermediates sent: {}{from}",
            loaded.identity.chain.len()
        )?;
        match (&settings.ca, &loaded.chain_verified) {
            (Some(ca), Some(Ok(()))) => writeln!(out, "  chain: verified against {ca}")?,
            (Some(ca), Some(Err(reason))) => {
                writeln!(out, "  chain: NOT verified against {ca}: {reason}")?
            }
            _ => writeln!(out, "  chain: not checked (no CA file configured)")?,
        }

        let profile = &settings.profile;
        writeln!(out, "  min version: {}", profile.min_version.as_str())?;
        let (suites, ciphers): (Vec<_>, Vec<_>) = ciphers::offered(loaded.acceptor.context())
            .into_iter()
            .partition(|cipher| cipher.version == "TLSv1.3");
        writeln!(out, "  TLS 1.3 ciphersuites: {}", names(&suites))?;
        if profile.min_version == MinVersion::Tls12 {
            writeln!(out, "  TLS 1.2 ciphers: {}", names(&ciphers))?;
        }
        writeln!(out, "  groups: {}", profile.groups)
    }
}

fn names(offered: &[ciphers::Offered]) -> String {
    let names: Vec<_> = offered.iter().map(|cipher| cipher.name).collect();
    names.join(":")
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
