//! The accept loop shared by the node's inbound ports.
//!
//! It owns the connection cap, the per-connection span and task, and stopping on
//! shutdown. Handshakes never run here: each accepted socket gets its own task at once,
//! so a peer that stalls its handshake (case C1) holds only its own slot.

pub mod client;
pub mod rate;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::SslAcceptor;
use rate::RateLimit;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, debug_span, warn, Instrument};

use crate::metrics::Metrics;
use crate::tls::handshake::{self, Established, HandshakeError};

/// Holds one connection slot; the slot frees when the last clone is dropped, so a
/// WebSocket that outlives its HTTP exchange keeps the slot it came in on.
#[derive(Clone)]
pub struct Slot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// A bound port with a cap on the connections it holds at once.
pub struct Listener {
    name: &'static str,
    tcp: TcpListener,
    slots: Arc<Semaphore>,
    rate: Option<RateLimit>,
    metrics: Option<Arc<Metrics>>,
}

impl Listener {
    /// Wraps a bound socket; at most `max_connections` are served at once, further
    /// ones wait in the kernel's backlog.
    pub fn new(name: &'static str, tcp: TcpListener, max_connections: usize) -> Self {
        Listener {
            name,
            tcp,
            slots: Arc::new(Semaphore::new(max_connections)),
            rate: None,
            metrics: None,
        }
    }

    /// Closes at once, before any handshake, new connections from an address that
    /// opens more than `per_second` a second (`TOPGUN_MAX_CONNECTION_RATE_PER_IP`).
    pub fn limit_rate(mut self, per_second: Option<u32>) -> Self {
        self.rate = per_second.map(RateLimit::new);
        self
    }

    /// Counts refused connections in `metrics`.
    pub fn counted_by(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Accepts until `shutdown` fires, running `handle` for each connection on `tasks`.
    pub async fn run<F, Fut>(mut self, shutdown: CancellationToken, tasks: TaskTracker, handle: F)
    where
        F: Fn(TcpStream, Slot) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut next_id: u64 = 0;
        let mut backoff = Duration::ZERO;

        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return,
                permit = self.slots.clone().acquire_owned() => {
                    permit.expect("the semaphore is never closed")
                }
            };

            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = self.tcp.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => {
                    backoff = Duration::ZERO;
                    accepted
                }
                Err(error) => {
                    // Out of file descriptors or memory: wait a little instead of
                    // spinning; the error may clear as other connections close.
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    warn!(listener = self.name, %error, "accept failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            if let Some(rate) = &mut self.rate {
                if !rate.allow(peer.ip(), std::time::Instant::now()) {
                    debug!(listener = self.name, %peer, "connection rate over the limit; closed");
                    if let Some(metrics) = &self.metrics {
                        metrics.connection_refused(self.name, "rate");
                    }
                    // Dropping the socket and the permit frees the slot at once.
                    continue;
                }
            }
            let _ = tcp.set_nodelay(true);

            next_id += 1;
            let span = debug_span!("conn", listener = self.name, conn.id = next_id, %peer);
            tasks.spawn(handle(tcp, Slot(Arc::new(permit))).instrument(span));
        }
    }
}

/// Headers every plain HTTP answer of the node carries (not WebSocket upgrades): no
/// sniffing, framing, scripts or caching, and on a TLS port a one-year HSTS. The
/// answers are status text and metrics, so nothing legitimate needs more.
pub fn harden_headers(headers: &mut hyper::HeaderMap, tls: bool) {
    use hyper::header::{self, HeaderValue};
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// Runs the TLS handshake of a connection accepted on `listener` (a value of
/// [`crate::metrics::LISTENERS`]) and counts its outcome: version, cipher, duration and
/// resumption when it completes, the error type when it fails. Callers log a failure
/// at the level their port deserves: debug for clients and scrapers, warn for peers.
pub async fn tls_accept(
    listener: &'static str,
    acceptor: &SslAcceptor,
    tcp: TcpStream,
    timeout: Duration,
    metrics: &Metrics,
) -> Result<Established, HandshakeError> {
    let started = Instant::now();
    let result = handshake::accept(acceptor, tcp, timeout).await;
    match &result {
        Ok(established) => metrics.handshake_completed(listener, established, started.elapsed()),
        Err(error) => metrics.handshake_failed(listener, error.kind()),
    }
    result
}
