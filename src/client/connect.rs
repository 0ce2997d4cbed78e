//! Opening a session: TCP, TLS through OpenSSL for `wss://`, the WebSocket upgrade
//! and the `AUTH` exchange (PROTOCOL.md §2). What happens after `AUTH_ACK` is the
//! background task's business.

use std::pin::Pin;

use futures_util::{SinkExt, StreamExt};
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::X509VerifyResult;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::wire::{self, ServerMessage};
use super::{ClientConfig, ClientError};

/// A byte stream the WebSocket runs over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An authenticated WebSocket to the node.
pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Close code the node uses for a refused or missing token.
const CLOSE_AUTH: u16 = 4001;

/// Where to connect, read from a `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Splits `url`; the port defaults to 80 (`ws`) or 443 (`wss`).
    pub fn parse(url: &str) -> Result<Target, ClientError> {
        let invalid = |reason| ClientError::Url {
            url: url.to_owned(),
            reason,
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(invalid("the scheme must be ws:// or wss://"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse()
                    .map_err(|_| invalid("the port is not a number"))?;
                (host, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

/// Connects, upgrades and authenticates within `config.timeout`.
pub async fn open(config: &ClientConfig) -> Result<Socket, ClientError> {
    let target = Target::parse(&config.url)?;
    let connector = if target.tls {
        Some(tls_connector(config)?)
    } else {
        None
    };

    let handshake = async {
        let mut socket = upgrade(config, &target, connector.as_ref()).await?;
        authenticate(&mut socket, &config.token).await?;
        Ok(socket)
    };
    tokio::time::timeout(config.timeout, handshake)
        .await
        .map_err(|_| ClientError::Timeout {
            waiting_for: "the connection and AUTH_ACK",
            after: config.timeout,
        })?
}

/// An OpenSSL connector with the configured trust and client identity; peer
/// verification always on.
fn tls_connector(config: &ClientConfig) -> Result<SslConnector, ClientError> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(ClientError::Tls)?;
    builder.set_verify(SslVerifyMode::PEER);
    if let Some(ca) = &config.ca_file {
        builder
            .set_ca_file(ca)
            .map_err(|source| ClientError::CaFile {
                path: ca.clone(),
                source,
            })?;
    }
    if let Some(cert) = &config.cert_file {
        builder
            .set_certificate_chain_file(cert)
            .map_err(|source| ClientError::ClientCert {
                path: cert.clone(),
                source,
            })?;
    }
    if let Some(key_path) = &config.key_file {
        let key_error = |source| ClientError::ClientKey {
            path: key_path.clone(),
            source,
        };
        let pem = std::fs::read(key_path).map_err(|source| ClientError::ReadKey {
            path: key_path.clone(),
            source,
        })?;
        let key = match &config.key_passphrase {
            Some(passphrase) => PKey::private_key_from_pem_passphrase(&pem, passphrase),
            None => PKey::private_key_from_pem(&pem),
        }
        .map_err(key_error)?;
        builder.set_private_key(&key).map_err(key_error)?;
        builder.check_private_key().map_err(key_error)?;
    }
    Ok(builder.build())
}

/// TCP, then TLS when `connector` is given, then the WebSocket upgrade.
async fn upgrade(
    config: &ClientConfig,
    target: &Target,
    connector: Option<&SslConnector>,
) -> Result<Socket, ClientError> {
    let addr = format!("{}:{}", target.host, target.port);
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);

    let stream: Box<dyn Io> = match connector {
        None => Box::new(tcp),
        Some(connector) => {
            let name = config.server_name.as_deref().unwrap_or(&target.host);
            Box::new(tls_handshake(connector, tcp, name, config.verify_hostname).await?)
        }
    };

    let (socket, _) = tokio_tungstenite::client_async(config.url.as_str(), stream)
        .await
        .map_err(|source| ClientError::Upgrade {
            url: config.url.clone(),
            source: Box::new(source),
        })?;
    Ok(socket)
}

/// The TLS handshake with SNI and (unless disabled) hostname or IP verification
/// against `name`; a verification failure names OpenSSL's verify result.
async fn tls_handshake(
    connector: &SslConnector,
    tcp: TcpStream,
    name: &str,
    verify_hostname: bool,
) -> Result<SslStream<TcpStream>, ClientError> {
    let ssl = connector
        .configure()
        .map_err(ClientError::Tls)?
        .verify_hostname(verify_hostname)
        .into_ssl(name)
        .map_err(ClientError::Tls)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(ClientError::Tls)?;
    if let Err(source) = Pin::new(&mut stream).connect().await {
        let verdict = stream.ssl().verify_result();
        if verdict != X509VerifyResult::OK {
            return Err(ClientError::TlsVerify {
                name: name.to_owned(),
                reason: verdict.error_string().to_owned(),
            });
        }
        return Err(ClientError::TlsHandshake {
            name: name.to_owned(),
            source,
        });
    }
    Ok(stream)
}

/// Sends `AUTH` and waits for `AUTH_ACK`, skipping the `AUTH_REQUIRED` greeting.
async fn authenticate(socket: &mut Socket, token: &str) -> Result<(), ClientError> {
    let auth = wire::encode(&wire::auth(token));
    socket
        .send(Message::Binary(auth.into()))
        .await
        .map_err(|source| ClientError::Socket(Box::new(source)))?;

    while let Some(message) = socket.next().await {
        let message = message.map_err(|source| ClientError::Socket(Box::new(source)))?;
        match message {
            Message::Binary(bytes) => match wire::decode(&bytes) {
                Some(ServerMessage::AuthAck) => return Ok(()),
                Some(ServerMessage::AuthFail(reason)) => {
                    return Err(ClientError::AuthRejected { reason })
                }
                _ => {}
            },
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                    .unwrap_or((u16::from(CloseCode::Status), String::new()));
                if code == CLOSE_AUTH {
                    return Err(ClientError::AuthRejected { reason });
                }
                return Err(ClientError::Closed { code, reason });
            }
            _ => {}
        }
    }
    Err(ClientError::Disconnected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_scheme_host_and_port_with_defaults() {
        let plain = Target::parse("ws://127.0.0.1:8080").unwrap();
        let secure = Target::parse("wss://db.example.com/any/path").unwrap();
        let ipv6 = Target::parse("wss://[::1]:9443/").unwrap();

        assert_eq!(
            (plain.tls, plain.host.as_str(), plain.port),
            (false, "127.0.0.1", 8080)
        );
        assert_eq!(
            (secure.tls, secure.host.as_str(), secure.port),
            (true, "db.example.com", 443)
        );
        assert_eq!((ipv6.host.as_str(), ipv6.port), ("::1", 9443));
        assert!(Target::parse("http://x").is_err());
        assert!(Target::parse("ws://:80").is_err());
        assert!(Target::parse("ws://h:port").is_err());
    }
}
