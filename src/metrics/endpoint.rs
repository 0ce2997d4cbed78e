//! The scrape endpoint: `GET /metrics` on the metrics port, in Prometheus text format
//! 0.0.4, over plain HTTP or TLS, optionally requiring a scraper certificate.
//!
//! It runs on the shared accept loop, so handshakes never run in the accept loop (case
//! C1) and the handshake timeout bounds both the TLS handshake and the wait for the
//! request head. Every other path gets 404, as the reference server answers.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use openssl::ssl::SslAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::Metrics;
use crate::config::{Limits, MetricsConfig};
use crate::listener::{self, Listener, Slot};
use crate::tls::swap::Swap;
use crate::tls::{self, ListenerTls, PeerCertificates, TlsError};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Scrapers are few; a flood on this port holds at most this many sockets.
pub const MAX_CONNECTIONS: usize = 64;

/// Loads and checks the endpoint's key material, when it serves TLS.
pub fn prepare_tls(config: &MetricsConfig) -> Result<Option<ListenerTls>, TlsError> {
    let Some(settings) = &config.tls else {
        return Ok(None);
    };
    let peers = if config.require_client_cert {
        PeerCertificates::Required
    } else {
        PeerCertificates::NotRequested
    };
    tls::prepare(settings, peers, b"topgun-metrics").map(Some)
}

/// What every scrape connection shares.
struct Endpoint {
    /// `None` serves plain HTTP.
    acceptor: Option<Arc<Swap<SslAcceptor>>>,
    metrics: Arc<Metrics>,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
}

/// Binds the metrics port and serves it on `tasks` until `shutdown`. Returns the bound
/// address; a bind failure is returned before anything is served.
pub async fn start(
    config: &MetricsConfig,
    acceptor: Option<Arc<Swap<SslAcceptor>>>,
    metrics: Arc<Metrics>,
    limits: &Limits,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> io::Result<SocketAddr> {
    let tcp = TcpListener::bind(config.bind).await?;
    let listener = Listener::new("metrics", tcp, MAX_CONNECTIONS)
        .limit_rate(limits.connection_rate_per_ip)
        .counted_by(metrics.clone());
    let addr = listener.local_addr()?;

    let endpoint = Arc::new(Endpoint {
        acceptor,
        metrics,
        handshake_timeout: limits.handshake_timeout,
        shutdown: shutdown.clone(),
    });
    info!(
        %addr,
        tls = endpoint.acceptor.is_some(),
        client_cert_required = config.require_client_cert,
        "metrics endpoint ready"
    );
    tasks.spawn(
        listener.run(shutdown.clone(), tasks.clone(), move |tcp, slot| {
            serve(endpoint.clone(), tcp, slot)
        }),
    );
    Ok(addr)
}

/// Serves one scrape connection to its end.
async fn serve(endpoint: Arc<Endpoint>, tcp: TcpStream, _slot: Slot) {
    let Some(acceptor) = endpoint.acceptor.as_ref().map(|swap| swap.current()) else {
        serve_http(&endpoint, tcp).await;
        return;
    };
    let timeout = endpoint.handshake_timeout;
    match listener::tls_accept("metrics", &acceptor, tcp, timeout, &endpoint.metrics).await {
        Ok(established) => serve_http(&endpoint, established.stream).await,
        // Counted in topgun_tls_handshake_errors_total{listener="metrics"}.
        Err(error) => debug!(error_type = error.kind(), %error, "tls handshake failed"),
    }
}

async fn serve_http<S>(endpoint: &Arc<Endpoint>, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = endpoint.metrics.clone();
    let tls = endpoint.acceptor.is_some();
    let service = hyper::service::service_fn(move |request| {
        let mut response = respond(&metrics, &request);
        listener::harden_headers(response.headers_mut(), tls);
        async move { Ok::<_, Infallible>(response) }
    });

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(endpoint.handshake_timeout);
    let connection = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);

    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = endpoint.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        debug!(%error, "http connection ended with an error");
    }
}

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    // The exact URL, as the reference server matches it: a query string is a 404 too.
    let is_metrics = request.uri().path() == "/metrics" && request.uri().query().is_none();
    if !is_metrics {
        return text(StatusCode::NOT_FOUND, "Not Found".into());
    }
    if request.method() != Method::GET {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Use GET".into());
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return response;
    }

    let mut response = text(StatusCode::OK, metrics.render());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
