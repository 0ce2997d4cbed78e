//! Dialling a peer, and dialling it again when the link drops.
//!
//! One loop per address. Failures back off exponentially with jitter, capped; a link
//! that was up is re-dialled after a short pause. An address that turns out to be this
//! node is never dialled again, and while the peer is linked through another link (it
//! dialled us, and that link won the tie-break) the loop only watches.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, warn};

use super::link::{self, LinkEnd};
use super::Cluster;
use crate::tls::dialer::host_of;

/// First retry delay after a failed dial; doubles with each failure.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest delay between dials of an unreachable peer.
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Pause before re-dialling a link that was up.
const REDIAL_PAUSE: Duration = Duration::from_millis(200);
/// How often a loop whose peer is linked through another link looks again.
const LINKED_RECHECK: Duration = Duration::from_millis(500);

/// Why a dial did not produce a link.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake failed ({kind})")]
    Tls {
        kind: &'static str,
        #[source]
        source: crate::tls::handshake::HandshakeError,
    },
    #[error("WebSocket upgrade refused: {0}")]
    Upgrade(#[source] tokio_tungstenite::tungstenite::Error),
}

impl DialError {
    /// The `error_type` label of the dial-error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            DialError::Connect(_) => "connect",
            DialError::Timeout(_) => "timeout",
            DialError::Tls { kind, .. } => kind,
            DialError::Upgrade(_) => "other",
        }
    }
}

/// Keeps a link to `address` up until shutdown.
pub async fn dial_loop(cluster: Arc<Cluster>, address: String) {
    let mut failures: u32 = 0;
    let mut peer_id: Option<String> = None;
    loop {
        if let Some(id) = &peer_id {
            if cluster.peers.is_linked(id) {
                if !cluster.pause(LINKED_RECHECK).await {
                    return;
                }
                continue;
            }
        }
        let pause = match dial_once(&cluster, &address).await {
            Ok(LinkEnd::ToSelf) => {
                debug!(peer.address = %address, "address is this node; not dialling it");
                cluster.forget_self_address(&address);
                return;
            }
            Ok(LinkEnd::Closed { peer } | LinkEnd::Duplicate { peer }) => {
                peer_id = Some(peer);
                failures = 0;
                REDIAL_PAUSE
            }
            Ok(LinkEnd::NoHello) => {
                failures += 1;
                cluster.dataplane.metrics.dial_failed("other");
                // Under TLS 1.3 a listener refusing our certificate shows only here.
                let error = "the peer closed the link before its Hello; check its log for a refused certificate";
                report(&address, &error, failures)
            }
            Err(error) => {
                failures += 1;
                cluster.dataplane.metrics.dial_failed(error.kind());
                report(&address, &error, failures)
            }
        };
        if !cluster.pause(pause).await {
            return;
        }
    }
}

/// Logs a failed dial (at warn the first time and every tenth) and returns the pause
/// before the next one.
fn report(address: &str, error: &dyn std::fmt::Display, failures: u32) -> Duration {
    let pause = backoff(failures);
    let retry_in_ms = pause.as_millis() as u64;
    if failures == 1 || failures % 10 == 0 {
        warn!(peer.address = %address, %error, failures, retry_in_ms, "cannot link to peer");
    } else {
        debug!(peer.address = %address, %error, failures, retry_in_ms, "cannot link to peer");
    }
    pause
}

/// One connection to `address`, run until the link ends.
async fn dial_once(cluster: &Arc<Cluster>, address: &str) -> Result<LinkEnd, DialError> {
    let timeout = cluster.settings.handshake_timeout;
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) => return Err(DialError::Connect(error)),
        Err(_) => return Err(DialError::Timeout(timeout)),
    };
    let _ = tcp.set_nodelay(true);
    match cluster.dialer.as_ref().map(|swap| swap.current()) {
        None => upgrade(cluster, format!("ws://{address}/"), tcp).await,
        Some(dialer) => {
            let established = dialer
                .connect(host_of(address), tcp)
                .await
                .map_err(|source| DialError::Tls {
                    kind: source.kind(),
                    source,
                })?;
            let url = format!("wss://{address}/");
            upgrade(cluster, url, established.stream).await
        }
    }
}

/// The WebSocket upgrade on a connected stream, then the link.
async fn upgrade<S>(cluster: &Arc<Cluster>, url: String, stream: S) -> Result<LinkEnd, DialError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = cluster.settings.handshake_timeout;
    let size = cluster.settings.max_message_size;
    let config = WebSocketConfig::default()
        .max_message_size(Some(size))
        .max_frame_size(Some(size));
    let upgrade = tokio_tungstenite::client_async_with_config(url, stream, Some(config));
    let ws = match tokio::time::timeout(timeout, upgrade).await {
        Ok(Ok((ws, _response))) => ws,
        Ok(Err(error)) => return Err(DialError::Upgrade(error)),
        Err(_) => return Err(DialError::Timeout(timeout)),
    };
    Ok(link::run(cluster.clone(), ws, true).await)
}

/// Delay after `failures` failed dials: exponential from [`BACKOFF_BASE`] up to
/// [`BACKOFF_CAP`], with "equal jitter" (half fixed, half random) so that nodes
/// restarted together do not dial in lock step.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let full = BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_CAP);
    let half = full / 2;
    let mut random = [0u8; 4];
    // Jitter only spreads retries; if the random source fails, no jitter is fine.
    let _ = openssl::rand::rand_bytes(&mut random);
    let fraction = f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX);
    half + half.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stays_under_the_cap() {
        for failures in 1..40 {
            let delay = backoff(failures);
            let full = BACKOFF_BASE
                .saturating_mul(1 << failures.saturating_sub(1).min(16))
                .min(BACKOFF_CAP);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
        }
        assert!(backoff(30) <= BACKOFF_CAP);
        assert!(backoff(30) >= BACKOFF_CAP / 2);
    }
}
