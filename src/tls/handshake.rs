//! Both sides of a TLS handshake over tokio, bounded in time.
//!
//! tokio-openssl has no timeout of its own; a peer that connects and never finishes
//! (case C1) must cost itself the connection, not a slot in the accept loop.
//!
//! A handshake that fails because this side refused the peer's certificate says why,
//! as a [`Refusal`] recorded by the cluster's verify callback (see [`crate::tls::peer`]).

use std::io;
use std::pin::Pin;
use std::time::Duration;

use openssl::ssl::{ErrorCode, Ssl, SslAcceptor, SslRef};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use openssl::x509::X509VerifyResult;

use crate::tls::peer::{self, Direction, Refusal};

/// First byte of every TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Sent to a plain-HTTP client that reached a TLS port, so that a person with curl
/// sees the mistake instead of an opaque reset.
const PLAIN_HTTP_REPLY: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain\r\n\
Content-Length: 51\r\n\
Connection: close\r\n\r\n\
This port expects TLS: use https:// or wss:// here.";

/// A completed handshake.
pub struct Established {
    pub stream: SslStream<TcpStream>,
    /// Negotiated protocol version, e.g. `TLSv1.3`.
    pub version: &'static str,
    /// Negotiated cipher in its IANA name, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    pub resumed: bool,
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no TLS handshake within {0:?}")]
    Timeout(Duration),
    #[error("the peer sent something other than TLS")]
    NotTls,
    #[error("the peer closed the connection during the handshake")]
    UnexpectedEof,
    #[error("TLS handshake failed")]
    Tls(#[source] openssl::ssl::Error),
    /// This side refused the peer's certificate.
    #[error("refused the peer certificate: {refusal}")]
    Refused {
        refusal: Refusal,
        #[source]
        source: openssl::ssl::Error,
    },
    #[error("setting up the TLS session")]
    Setup(#[source] openssl::error::ErrorStack),
    #[error("socket error during the handshake")]
    Io(#[source] io::Error),
}

impl HandshakeError {
    /// A short, fixed label for logs and metrics: `timeout`, `not_tls`,
    /// `unexpected_eof`, `unsupported_protocol`, `no_shared_cipher`, `no_client_cert`,
    /// `other`, or a certificate refusal (ours, or the peer's alert about ours):
    /// `unknown_ca`, `cert_expired`, `cert_not_yet_valid`, `cert_revoked`,
    /// `wrong_usage`, `name_mismatch`, `pin_mismatch`, `identity_rejected`,
    /// `bad_certificate`.
    pub fn kind(&self) -> &'static str {
        match self {
            HandshakeError::Timeout(_) => "timeout",
            HandshakeError::NotTls => "not_tls",
            HandshakeError::UnexpectedEof => "unexpected_eof",
            HandshakeError::Tls(error) => classify(error),
            HandshakeError::Refused { refusal, .. } => refusal.kind(),
            HandshakeError::Setup(_) | HandshakeError::Io(_) => "other",
        }
    }
}

/// Accepts a TLS session on `tcp`, giving up after `timeout`.
pub async fn accept(
    acceptor: &SslAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    match tokio::time::timeout(timeout, accept_inner(acceptor, tcp)).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout(timeout)),
    }
}

async fn accept_inner(
    acceptor: &SslAcceptor,
    mut tcp: TcpStream,
) -> Result<Established, HandshakeError> {
    let mut first = [0u8; 1];
    let peeked = tcp.peek(&mut first).await.map_err(HandshakeError::Io)?;
    if peeked == 0 {
        return Err(HandshakeError::UnexpectedEof);
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        if first[0].is_ascii_uppercase() {
            // Best effort: the peer may already be gone.
            let _ = tcp.write_all(PLAIN_HTTP_REPLY).await;
            let _ = tcp.shutdown().await;
        }
        return Err(HandshakeError::NotTls);
    }

    let ssl = peer::new_ssl(acceptor.context()).map_err(HandshakeError::Setup)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(HandshakeError::Setup)?;
    if let Err(error) = Pin::new(&mut stream).accept().await {
        return Err(failure(stream.ssl(), error));
    }
    Ok(established(stream))
}

/// Runs the client side of a handshake for `ssl` (made with [`peer::new_ssl`]) on
/// `tcp`, giving up after `timeout`.
///
/// With TLS 1.3 the client finishes before the server has checked the client
/// certificate: a listener that refuses ours is seen on the first read, not here.
pub async fn connect(
    ssl: Ssl,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    let mut stream = SslStream::new(ssl, tcp).map_err(HandshakeError::Setup)?;
    match tokio::time::timeout(timeout, Pin::new(&mut stream).connect()).await {
        Err(_) => Err(HandshakeError::Timeout(timeout)),
        Ok(Err(error)) => Err(failure(stream.ssl(), error)),
        Ok(Ok(())) => Ok(established(stream)),
    }
}

/// Why a handshake on `ssl` failed with `error`.
fn failure(ssl: &SslRef, error: openssl::ssl::Error) -> HandshakeError {
    // The verify callback of cluster links records why it refused; elsewhere (the
    // metrics port's scraper certificates) the verify result says it.
    let refusal = peer::refusal(ssl).or_else(|| {
        let result = ssl.verify_result();
        (result != X509VerifyResult::OK)
            .then(|| Refusal::from_verify_error(result, Direction::Inbound))
            .flatten()
    });
    if let Some(refusal) = refusal {
        return HandshakeError::Refused {
            refusal,
            source: error,
        };
    }
    if error.code() == ErrorCode::SYSCALL && error.ssl_error().is_none() {
        HandshakeError::UnexpectedEof
    } else {
        HandshakeError::Tls(error)
    }
}

fn established(stream: SslStream<TcpStream>) -> Established {
    let ssl = stream.ssl();
    Established {
        version: ssl.version_str(),
        cipher: ssl
            .current_cipher()
            .and_then(|cipher| cipher.standard_name())
            .unwrap_or("unknown"),
        resumed: ssl.session_reused(),
        stream,
    }
}

/// Maps OpenSSL's reason strings onto the fixed set of handshake failure kinds.
fn classify(error: &openssl::ssl::Error) -> &'static str {
    let Some(stack) = error.ssl_error() else {
        return "other";
    };
    for reason in stack.errors().iter().filter_map(|e| e.reason()) {
        let kind = match reason {
            "unsupported protocol" | "tlsv1 alert protocol version" => "unsupported_protocol",
            "no shared cipher" | "no suitable signature algorithm" => "no_shared_cipher",
            "wrong version number" | "http request" | "record layer failure" => "not_tls",
            "unexpected eof while reading" => "unexpected_eof",
            "tlsv1 alert unknown ca" => "unknown_ca",
            "sslv3 alert certificate expired" => "cert_expired",
            "sslv3 alert certificate revoked" => "cert_revoked",
            "sslv3 alert unsupported certificate" => "wrong_usage",
            "tlsv13 alert certificate required" => "no_client_cert",
            "sslv3 alert bad certificate"
            | "sslv3 alert certificate unknown"
            | "tlsv1 alert bad certificate status response" => "bad_certificate",
            "peer did not return a certificate" => "no_client_cert",
            "certificate verify failed" => "bad_certificate",
            _ => continue,
        };
        return kind;
    }
    "other"
}
