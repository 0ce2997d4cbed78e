//! `topgun-server check-config`: the node's `nginx -t`.
//!
//! The report is built from a [`PreparedNode`], so it reflects exactly what start-up
//! loaded and checked. It prints paths and facts, never a secret.

use std::fmt::{self, Write};
use std::net::SocketAddr;

use crate::config::{IdentitySource, MinVersion, Pin, TlsConfig};
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
    match crate::tls::fips::active() {
        Some(provider) => writeln!(
            out,
            "FIPS mode: on ({} {}, default properties fips=yes)",
            provider.name, provider.version
        )?,
        None => writeln!(out, "FIPS mode: off (TOPGUN_FIPS=true turns it on)")?,
    }

    let client = Listener {
        title: "client listener",
        bind: config.client.bind,
        tls: config.client.tls.as_ref().zip(node.client_tls.as_ref()),
        production: config.production,
    };
    client.write(out)?;

    if !config.cluster.enabled {
        writeln!(
            out,
            "cluster: off (TOPGUN_CLUSTER_ENABLED, TOPGUN_PEERS, TOPGUN_DISCOVERY_SERVICE or TOPGUN_CLUSTER_TLS_ENABLED turns it on)"
        )?;
    }
    let cluster = Listener {
        title: "cluster listener",
        bind: config.cluster.bind,
        tls: config.cluster.tls.as_ref().zip(node.cluster_tls.as_ref()),
        production: config.production,
    };
    if config.cluster.enabled {
        cluster.write(out)?;
        write_membership(out, &config.cluster)?;
    }
    if config.cluster.enabled && cluster.tls.is_some() {
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
        write_peer_checks(out, node)?;
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

/// How the node finds and watches its peers.
fn write_membership(out: &mut String, cluster: &crate::config::ClusterConfig) -> fmt::Result {
    let advertised = cluster
        .advertise_host
        .as_deref()
        .unwrap_or("this machine's host name");
    writeln!(out, "  advertised to peers as: {advertised} (cluster port)")?;
    if cluster.peers.is_empty() {
        writeln!(out, "  peers dialled: none (this node waits to be dialled)")?;
    } else {
        writeln!(out, "  peers dialled: {}", cluster.peers.join(", "))?;
    }
    if let crate::config::Discovery::Kubernetes { service, interval } = &cluster.discovery {
        writeln!(
            out,
            "  discovery: DNS {service} every {} ms",
            interval.as_millis()
        )?;
    }
    writeln!(
        out,
        "  liveness: ping every {} ms, peer dropped after {} ms of silence; anti-entropy every {} ms",
        cluster.ping_interval.as_millis(),
        cluster.peer_timeout.as_millis(),
        cluster.anti_entropy_interval.as_millis()
    )
}

/// Pins, allow-list and CRLs, which apply when dialling and, with mTLS, to inbound peers.
fn write_peer_checks(out: &mut String, node: &PreparedNode) -> fmt::Result {
    let cluster = &node.config.cluster;
    let certificate_pins = cluster
        .pins
        .iter()
        .filter(|pin| matches!(pin, Pin::Certificate(_)))
        .count();
    if cluster.pins.is_empty() {
        writeln!(out, "  peer pins: none")?;
    } else {
        writeln!(
            out,
            "  peer pins: {} ({} certificate, {} public key)",
            cluster.pins.len(),
            certificate_pins,
            cluster.pins.len() - certificate_pins
        )?;
    }
    if cluster.allowed_identities.is_empty() {
        writeln!(out, "  allowed peer identities: any")?;
    } else {
        writeln!(
            out,
            "  allowed peer identities: {}",
            cluster.allowed_identities.join(", ")
        )?;
    }
    let crls = node
        .cluster_dialer
        .as_ref()
        .and_then(|dialer| dialer.policy().crls());
    match crls {
        None => writeln!(out, "  peer CRLs: none")?,
        Some(crls) => {
            writeln!(
                out,
                "  peer CRLs: {}; lists: {}, revoked certificates: {}",
                crls.file,
                crls.lists.len(),
                crls.revoked()
            )?;
            for stale in crls.stale() {
                writeln!(
                    out,
                    "  warning: CRL #{} is past its nextUpdate ({}); its revocations still apply, but publish a fresh one",
                    stale.position, stale.next_update
                )?;
            }
        }
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
