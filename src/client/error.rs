//! What can go wrong between a [`super::Client`] and the node, each variant naming
//! the step that failed; library errors stay chained as the source.

use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite;

/// Why connecting, authenticating or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `ws://host[:port][/path]` or `wss://...`.
    #[error("invalid node URL {url:?}: {reason}")]
    Url { url: String, reason: &'static str },
    /// OpenSSL could not set up the TLS context.
    #[error("setting up TLS")]
    Tls(#[source] openssl::error::ErrorStack),
    /// The CA file could not be loaded.
    #[error("loading CA file {}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// The client certificate chain could not be loaded.
    #[error("loading client certificate {}", path.display())]
    ClientCert {
        path: PathBuf,
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// The client key file could not be read.
    #[error("reading client key {}", path.display())]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The client key could not be decrypted, parsed or matched to the certificate.
    #[error("loading client key {} (wrong passphrase, or not the certificate's key?)", path.display())]
    ClientKey {
        path: PathBuf,
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// The TCP connection failed (refused, unreachable, unknown host).
    #[error("connecting to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The node's certificate did not verify against the trusted CAs or the name.
    #[error("TLS certificate verification failed for {name}: {reason}")]
    TlsVerify { name: String, reason: String },
    /// The TLS handshake failed for another reason (protocol version, alert, ...).
    #[error("TLS handshake with {name}")]
    TlsHandshake {
        name: String,
        #[source]
        source: openssl::ssl::Error,
    },
    /// The HTTP upgrade to a WebSocket failed.
    #[error("WebSocket upgrade at {url}")]
    Upgrade {
        url: String,
        #[source]
        source: Box<tungstenite::Error>,
    },
    /// Reading or writing the WebSocket failed.
    #[error("WebSocket connection to the node")]
    Socket(#[source] Box<tungstenite::Error>),
    /// The node refused the token (`AUTH_FAIL`, or close 4001).
    #[error("authentication failed: the node rejected the token ({reason})")]
    AuthRejected { reason: String },
    /// A reply did not come in time.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        waiting_for: &'static str,
        after: Duration,
    },
    /// The node closed the connection.
    #[error("the node closed the connection (code {code}{})", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    Closed { code: u16, reason: String },
    /// The connection ended without a close frame, or the client was closed.
    #[error("the connection to the node is gone")]
    Disconnected,
    /// The connection failed earlier; the text of that failure.
    #[error("the connection to the node failed: {0}")]
    Lost(String),
    /// The node answered a request with `ERROR {code, message}`.
    #[error("the node answered ERROR {code}: {message}")]
    Server { code: u64, message: String },
    /// A topic name the node would refuse (1–256 of `A-Za-z0-9_-.:/`).
    #[error("invalid topic name {0:?}: use 1 to 256 of A-Z a-z 0-9 _ - . : /")]
    TopicName(String),
    /// A `where` clause that is not a JSON object.
    #[error("the where clause must be a JSON object")]
    WhereClause,
    /// The token claims could not be written as JSON.
    #[error("writing the token claims")]
    TokenClaims(#[source] serde_json::Error),
    /// OpenSSL could not sign the token.
    #[error("signing the token with HMAC-SHA256")]
    TokenSigning(#[source] openssl::error::ErrorStack),
}

impl ClientError {
    /// A copy for one more waiter: the same variant where it can be copied, else
    /// [`ClientError::Lost`] with the full text of the chain.
    pub fn again(&self) -> ClientError {
        match self {
            ClientError::Closed { code, reason } => ClientError::Closed {
                code: *code,
                reason: reason.clone(),
            },
            ClientError::Server { code, message } => ClientError::Server {
                code: *code,
                message: message.clone(),
            },
            ClientError::AuthRejected { reason } => ClientError::AuthRejected {
                reason: reason.clone(),
            },
            ClientError::Disconnected => ClientError::Disconnected,
            other => ClientError::Lost(chain(other)),
        }
    }
}

/// The error and its sources, joined with `": "`, as the CLI prints them.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
