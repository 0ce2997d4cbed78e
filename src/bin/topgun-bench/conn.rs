//! The load generator's side of a connection: TCP, TLS through OpenSSL (with or
//! without a saved session), a plain HTTP request, a bare WebSocket upgrade, and an
//! authenticated TopGun session speaking MessagePack (PROTOCOL.md §2, §3).

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use openssl::ssl::{
    SslConnector, SslMethod, SslSession, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use rmpv::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use topgun_server::client::{mint_hs256, TokenClaims};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Tls = SslStream<TcpStream>;

/// The newest session ticket a connector received, for resumed handshakes.
pub type SessionSlot = Arc<Mutex<Option<SslSession>>>;

/// A TLS 1.3 client connector trusting `ca`. With `slot`, every session the server
/// hands out (TLS 1.3 tickets) is kept there.
pub fn connector(ca: &Path, slot: Option<SessionSlot>) -> Result<SslConnector, BoxError> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    builder.set_ca_file(ca)?;
    builder.set_verify(SslVerifyMode::PEER);
    builder.set_min_proto_version(Some(SslVersion::TLS1_3))?;
    match slot {
        Some(slot) => {
            builder.set_session_cache_mode(SslSessionCacheMode::CLIENT);
            builder.set_new_session_callback(move |_, session| {
                *slot.lock().unwrap() = Some(session);
            });
        }
        None => {
            builder.set_session_cache_mode(SslSessionCacheMode::OFF);
        }
    }
    Ok(builder.build())
}

/// TCP connect and a TLS handshake verified for `localhost`, resuming `session` if given.
pub async fn tls_connect(
    connector: &SslConnector,
    addr: SocketAddr,
    session: Option<&SslSession>,
) -> Result<Tls, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut ssl = connector.configure()?.into_ssl("localhost")?;
    if let Some(session) = session {
        // SAFETY: the session came from a connector with this same context.
        unsafe { ssl.set_session(session)? };
    }
    let mut stream = SslStream::new(ssl, tcp)?;
    Pin::new(&mut stream).connect().await?;
    Ok(stream)
}

/// `GET /` with `Connection: close`; reads the whole response and checks for 200.
pub async fn http_get_close(stream: &mut Tls) -> Result<(), BoxError> {
    let request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // A peer that closes without close_notify still sent the whole response.
    let _ = stream.read_to_end(&mut response).await;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err("no 200 response to GET /".into());
    }
    Ok(())
}

/// `GET /` on a kept-alive connection; reads the response head and a small body.
pub async fn http_get_keepalive(stream: &mut Tls) -> Result<(), BoxError> {
    let request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    stream.write_all(request.as_bytes()).await?;
    read_head(stream).await?;
    Ok(())
}

/// A WebSocket upgrade request; reads the response head and checks for 101.
pub async fn ws_upgrade(stream: &mut Tls) -> Result<(), BoxError> {
    let request = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    stream.write_all(request.as_bytes()).await?;
    let head = read_head(stream).await?;
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err("no 101 response to the upgrade".into());
    }
    Ok(())
}

/// Reads up to and including the blank line that ends an HTTP head, plus whatever
/// else arrived in the same reads.
pub async fn read_head(stream: &mut Tls) -> Result<Vec<u8>, BoxError> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// A development token for `user` signed with the node's default secret.
pub fn token(user: &str, roles: Vec<String>) -> String {
    let claims = TokenClaims::expiring_in(Some(user.to_owned()), roles, 3600);
    mint_hs256(b"topgun-secret-dev", &claims).expect("HS256 signing works")
}

/// What the load generator reads of a server message.
pub enum Incoming {
    AuthAck,
    OpAck(String),
    ServerEvent(Option<String>),
    Closed(Option<u16>),
    Other,
}

/// An authenticated `wss://` session.
pub struct Session {
    pub ws: WebSocketStream<Tls>,
}

impl Session {
    /// TLS, upgrade, `AUTH`, and waits for `AUTH_ACK`.
    pub async fn open(
        connector: &SslConnector,
        addr: SocketAddr,
        token: &str,
    ) -> Result<Session, BoxError> {
        let stream = tls_connect(connector, addr, None).await?;
        let request = format!("wss://localhost:{}/", addr.port()).into_client_request()?;
        let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
        let mut session = Session { ws };
        let auth = map(vec![("type", "AUTH".into()), ("token", token.into())]);
        session.send(&auth).await?;
        loop {
            match session.next().await? {
                Incoming::AuthAck => return Ok(session),
                Incoming::Closed(code) => {
                    return Err(format!("closed during AUTH: {code:?}").into())
                }
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, message: &Value) -> Result<(), BoxError> {
        self.ws.send(Message::binary(encode(message))).await?;
        Ok(())
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), BoxError> {
        self.ws.send(Message::binary(bytes)).await?;
        Ok(())
    }

    /// The next message, reduced to what the harness acts on.
    pub async fn next(&mut self) -> Result<Incoming, BoxError> {
        loop {
            let message = match self.ws.next().await {
                None => return Ok(Incoming::Closed(None)),
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(message)) => message,
            };
            match message {
                Message::Binary(bytes) => return Ok(classify(&bytes)),
                Message::Close(frame) => {
                    return Ok(Incoming::Closed(frame.map(|f| u16::from(f.code))))
                }
                _ => {}
            }
        }
    }

    /// Sends `OP_BATCH` and waits for the `OP_ACK` of its last op; returns how many
    /// `SERVER_EVENT`s arrived meanwhile.
    pub async fn write_batch(&mut self, batch: Value, last_id: &str) -> Result<u64, BoxError> {
        self.send(&batch).await?;
        self.wait_ack(last_id).await
    }

    pub async fn wait_ack(&mut self, last_id: &str) -> Result<u64, BoxError> {
        let mut events = 0;
        loop {
            match self.next().await? {
                Incoming::OpAck(id) if id == last_id => return Ok(events),
                Incoming::ServerEvent(_) => events += 1,
                Incoming::Closed(code) => {
                    return Err(format!("closed while waiting for OP_ACK: {code:?}").into())
                }
                _ => {}
            }
        }
    }
}

fn classify(bytes: &[u8]) -> Incoming {
    let Ok(value) = rmpv::decode::read_value(&mut &bytes[..]) else {
        return Incoming::Other;
    };
    match field(&value, "type").and_then(Value::as_str) {
        Some("AUTH_ACK") => Incoming::AuthAck,
        Some("OP_ACK") => {
            let last = field(&value, "payload").and_then(|p| field(p, "lastId"));
            let id = match last {
                Some(Value::String(s)) => s.as_str().unwrap_or_default().to_owned(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            Incoming::OpAck(id)
        }
        Some("SERVER_EVENT") => {
            let key = field(&value, "payload")
                .and_then(|p| field(p, "key"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            Incoming::ServerEvent(key)
        }
        _ => Incoming::Other,
    }
}

fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

/// A map with string keys, in order.
pub fn map(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

pub fn encode(message: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, message).expect("writing to a Vec never fails");
    bytes
}

/// Builds LWW `PUT` ops for one `OP_BATCH`, stamped so that each wins its merge.
pub struct OpWriter {
    node_id: String,
    counter: u64,
}

impl OpWriter {
    pub fn new(node_id: &str) -> OpWriter {
        OpWriter {
            node_id: node_id.to_owned(),
            counter: 0,
        }
    }

    /// `OP_BATCH` of one op per key, each with `value`; returns it with its last op id.
    pub fn batch(&mut self, map_name: &str, keys: &[String], value: &Value) -> (Value, String) {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let mut ops = Vec::with_capacity(keys.len());
        let mut last = String::new();
        for key in keys {
            self.counter += 1;
            last = self.counter.to_string();
            let timestamp = map(vec![
                ("millis", millis.into()),
                ("counter", self.counter.into()),
                ("nodeId", self.node_id.as_str().into()),
            ]);
            ops.push(map(vec![
                ("mapName", map_name.into()),
                ("opType", "PUT".into()),
                ("key", key.as_str().into()),
                (
                    "record",
                    map(vec![
                        ("value", value.clone()),
                        ("timestamp", timestamp.clone()),
                    ]),
                ),
                ("timestamp", timestamp),
                ("id", last.as_str().into()),
            ]));
        }
        let batch = map(vec![
            ("type", "OP_BATCH".into()),
            ("payload", map(vec![("ops", Value::Array(ops))])),
        ]);
        (batch, last)
    }
}
