//! The client port: optional TLS, then HTTP/1.1 (hyper), then the WebSocket upgrade
//! (tokio-tungstenite) on any path, handed to [`crate::session`].
//!
//! Plain requests get the reference server's banner, and `/health` and `/ready` answer
//! probes. The handshake timeout also bounds the wait for the HTTP request head, so a
//! slow client costs its own connection only.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use openssl::ssl::SslAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, Instrument, Span};

use crate::listener::{self, Slot};
use crate::metrics::Metrics;
use crate::session::{self, SessionContext};
use crate::tls::swap::Swap;

/// Bytes each WebSocket reads at a time. tungstenite's default (128 KiB) is zeroed
/// and kept for the life of the connection, which made it most of an idle session's
/// memory; a larger message still gets a buffer of its own size while it arrives.
const WS_READ_BUFFER: usize = 4 * 1024;

/// Everything a client connection needs, shared by all of them.
pub struct ClientContext {
    /// `None` serves plain HTTP and `ws://`.
    pub acceptor: Option<Arc<Swap<SslAcceptor>>>,
    pub node_id: String,
    pub handshake_timeout: Duration,
    pub max_message_size: usize,
    pub shutdown: CancellationToken,
    /// Handed to each WebSocket session.
    pub session: Arc<SessionContext>,
    /// Sessions outlive their HTTP connection task, so they are tracked here too.
    pub tasks: TaskTracker,
    pub metrics: Arc<Metrics>,
}

type HttpResponse = Response<Full<Bytes>>;

/// Serves one accepted client connection to its end.
pub async fn serve(context: Arc<ClientContext>, tcp: TcpStream, slot: Slot) {
    let Some(acceptor) = context.acceptor.as_ref().map(|swap| swap.current()) else {
        serve_http(context.clone(), tcp, slot).await;
        return;
    };

    let timeout = context.handshake_timeout;
    match listener::tls_accept("client", &acceptor, tcp, timeout, &context.metrics).await {
        Ok(established) => {
            debug!(
                tls.version = established.version,
                tls.cipher = established.cipher,
                tls.resumed = established.resumed,
                "tls handshake complete"
            );
            serve_http(context.clone(), established.stream, slot).await;
        }
        // Failed client handshakes are routine on an open port: debug, not warn; they
        // are counted in topgun_tls_handshake_errors_total.
        Err(error) => debug!(error_type = error.kind(), %error, "tls handshake failed"),
    }
}

async fn serve_http<S>(context: Arc<ClientContext>, io: S, slot: Slot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_context = context.clone();
    let service = hyper::service::service_fn(move |request| {
        let response = respond(&service_context, request, &slot);
        async move { Ok::<_, Infallible>(response) }
    });

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(context.handshake_timeout);
    let connection = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);

    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = context.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        debug!(%error, "http connection ended with an error");
    }
}

fn respond(
    context: &Arc<ClientContext>,
    mut request: Request<Incoming>,
    slot: &Slot,
) -> HttpResponse {
    if wants_websocket(&request) {
        return upgrade(context, &mut request, slot.clone());
    }

    let secure = context.acceptor.is_some();
    let mut response = match request.uri().path() {
        "/health" => json(
            StatusCode::OK,
            serde_json::json!({
                "status": "ok",
                "nodeId": context.node_id,
                "tls": secure,
                "fips": match crate::tls::fips::active() {
                    Some(provider) => serde_json::json!({
                        "enabled": true,
                        "provider": provider.name,
                        "version": provider.version,
                    }),
                    None => serde_json::json!({"enabled": false}),
                },
            }),
        ),
        // Ready whenever it answers: on SIGTERM the node stops accepting at once, so a
        // draining node fails this probe by refusing the connection.
        "/ready" => json(StatusCode::OK, serde_json::json!({"status": "ready"})),
        // The reference server answers every other request with its banner; the
        // Docker health check of the spec relies on it.
        _ if secure => text(StatusCode::OK, "TopGun Server Running (Secure)"),
        _ => text(StatusCode::OK, "TopGun Server Running"),
    };
    listener::harden_headers(response.headers_mut(), secure);
    response
}

fn wants_websocket(request: &Request<Incoming>) -> bool {
    has_token(request, header::UPGRADE, "websocket")
}

fn has_token(request: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    request.headers().get_all(name).iter().any(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    })
}

/// Answers a WebSocket upgrade (RFC 6455 §4.2) on any path and starts the session
/// once hyper hands over the connection.
fn upgrade(
    context: &Arc<ClientContext>,
    request: &mut Request<Incoming>,
    slot: Slot,
) -> HttpResponse {
    if request.method() != hyper::Method::GET || !has_token(request, header::CONNECTION, "upgrade")
    {
        return text(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrade needs GET with Connection: Upgrade",
        );
    }
    let version = request.headers().get(header::SEC_WEBSOCKET_VERSION);
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            "Only WebSocket version 13 is supported",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "Missing Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());

    let on_upgrade = hyper::upgrade::on(request);
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(context.max_message_size))
        .max_frame_size(Some(context.max_message_size));
    let session = context.session.clone();
    let metrics = context.metrics.clone();
    context.tasks.spawn(
        async move {
            let _slot = slot;
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    debug!("websocket open");
                    let _connected = metrics.client_connected();
                    session::run(ws, session).await;
                }
                Err(error) => debug!(%error, "websocket upgrade failed"),
            }
        }
        .instrument(Span::current()),
    );

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
