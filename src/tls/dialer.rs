//! The TLS side of dialling a cluster peer: [`PeerConnector`].
//!
//! It presents the node's cluster certificate and chain as client certificate, with the
//! same protocol profile as the listeners, and checks the peer it reaches: a chain to
//! the cluster CA, the serverAuth usage, a SAN for the host dialled (a DNS SAN for a
//! name, an IP SAN for an address literal), the CRLs, pins and allow-list. SNI is sent
//! only when the host is a DNS name (case C7a: a peer dialled by IP sends none).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{SslContext, SslContextRef, SslMethod};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::X509;
use tokio::net::TcpStream;

use crate::config::TlsProfile;
use crate::tls::acceptor;
use crate::tls::handshake::{self, Established, HandshakeError};
use crate::tls::identity::Identity;
use crate::tls::peer::{self, Direction, PeerPolicy};
use crate::tls::TlsError;

/// Opens TLS sessions to cluster peers over TCP streams the caller has connected.
///
/// Built once at start-up; cheap to share (`Arc`) between dialling tasks.
pub struct PeerConnector {
    context: SslContext,
    policy: Arc<PeerPolicy>,
    verify_chain: bool,
    handshake_timeout: Duration,
}

impl PeerConnector {
    /// A connector presenting `identity`, trusting `ca` (the system's default CAs when
    /// empty), and checking peers with `policy`. With `verify_chain` false
    /// (`TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED=false`) neither chain nor name is
    /// checked, but revocation, pins and the allow-list still are.
    pub fn new(
        profile: &TlsProfile,
        identity: &Identity,
        ca: &[X509],
        policy: Arc<PeerPolicy>,
        verify_chain: bool,
        handshake_timeout: Duration,
    ) -> Result<PeerConnector, TlsError> {
        let mut builder =
            SslContext::builder(SslMethod::tls_client()).map_err(TlsError::Profile)?;
        acceptor::apply_profile(&mut builder, profile)?;
        builder
            .set_alpn_protos(b"\x08http/1.1")
            .map_err(TlsError::Profile)?;

        acceptor::present(&mut builder, identity)?;

        if ca.is_empty() {
            builder
                .set_default_verify_paths()
                .map_err(TlsError::Profile)?;
        }
        for cert in ca {
            builder
                .cert_store_mut()
                .add_cert(cert.clone())
                .map_err(TlsError::Profile)?;
        }
        policy.install(&mut builder, Direction::Outbound, verify_chain)?;

        Ok(PeerConnector {
            context: builder.build(),
            policy,
            verify_chain,
            handshake_timeout,
        })
    }

    /// Runs the TLS handshake with the peer at `host` over `tcp`, within the handshake
    /// timeout. `host` is what was dialled: a DNS name or an IP literal (IPv6 with or
    /// without brackets); [`host_of`] takes it out of a `host:port` peer address.
    ///
    /// A refused peer certificate fails with [`HandshakeError::Refused`], already
    /// logged at warn. With TLS 1.3 a listener that refuses *our* certificate is only
    /// seen on the first read from the returned stream.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<Established, HandshakeError> {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let mut ssl = peer::new_ssl(&self.context).map_err(HandshakeError::Setup)?;
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                // No SNI: RFC 6066 allows only host names in it.
                if self.verify_chain {
                    ssl.param_mut().set_ip(ip).map_err(HandshakeError::Setup)?;
                }
            }
            Err(_) => {
                ssl.set_hostname(host).map_err(HandshakeError::Setup)?;
                if self.verify_chain {
                    let param = ssl.param_mut();
                    param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                    param.set_host(host).map_err(HandshakeError::Setup)?;
                }
            }
        }
        handshake::connect(ssl, tcp, self.handshake_timeout).await
    }

    /// The pins, allow-list and CRLs this connector checks.
    pub fn policy(&self) -> &PeerPolicy {
        &self.policy
    }

    /// Whether chain and name are verified (`TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED`).
    pub fn verifies_chain(&self) -> bool {
        self.verify_chain
    }

    /// The SSL context, for callers that need OpenSSL details (reports, tests).
    pub fn context(&self) -> &SslContextRef {
        &self.context
    }
}

/// The host part of a `host:port` peer address, as `TOPGUN_PEERS` lists them:
/// `node-2:9080` → `node-2`, `[::1]:9080` → `::1`, `10.0.0.2:9080` → `10.0.0.2`.
pub fn host_of(peer: &str) -> &str {
    let host = peer.rsplit_once(':').map_or(peer, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_is_taken_out_of_a_peer_address() {
        assert_eq!(host_of("node-2:9080"), "node-2");
        assert_eq!(host_of("10.0.0.2:9080"), "10.0.0.2");
        assert_eq!(host_of("[::1]:9080"), "::1");
        assert_eq!(host_of("node-2"), "node-2");
    }
}
