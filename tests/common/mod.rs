//! Shared test harness: a throwaway PKI in a temp dir, nodes on 127.0.0.1 port 0,
//! TLS clients, and the built binary for exit-status tests.

#![allow(dead_code)]

pub mod cluster;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslMethod, SslVerifyMode, SslVersion};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use topgun_server::config;
use topgun_server::node::{self, RunningNode};
use topgun_server::pki::{CertificateAuthority, Issued, LeafSpec, Usage};

/// A CA and a directory to write certificates into, removed when dropped.
pub struct Pki {
    pub dir: TempDir,
    pub ca: CertificateAuthority,
    pub ca_path: PathBuf,
}

/// Paths of a written certificate and key.
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::root(&format!("{name} test CA")).unwrap();
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, ca.cert().to_pem().unwrap()).unwrap();
        Pki { dir, ca, ca_path }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server_spec() -> LeafSpec {
        let mut spec = LeafSpec::new("localhost");
        spec.dns_names = vec!["localhost".into()];
        spec.ips = vec!["127.0.0.1".parse().unwrap()];
        spec.usages = vec![Usage::ServerAuth];
        spec
    }

    /// Issues `spec` and writes `<name>.crt` and `<name>.key`.
    pub fn write(&self, name: &str, spec: &LeafSpec) -> (Issued, Files) {
        let issued = self.ca.issue(spec).unwrap();
        let files = Files {
            cert: self.path(&format!("{name}.crt")),
            key: self.path(&format!("{name}.key")),
        };
        issued.write(&files.cert, &files.key).unwrap();
        (issued, files)
    }

    /// The usual server certificate, written as `server.crt` / `server.key`.
    pub fn server(&self) -> Files {
        self.write("server", &Self::server_spec()).1
    }
}

/// Variables that enable client TLS with these files.
pub fn tls_vars(files: &Files) -> Vec<(String, String)> {
    vec![
        ("TOPGUN_TLS_ENABLED".into(), "true".into()),
        ("TOPGUN_TLS_CERT_PATH".into(), path(&files.cert)),
        ("TOPGUN_TLS_KEY_PATH".into(), path(&files.key)),
    ]
}

pub fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Starts a node on 127.0.0.1 with free client and metrics ports and the given extra
/// variables, which win over those defaults. Its embedded store lives in a temporary
/// directory removed with the node.
pub async fn start_node(vars: Vec<(String, String)>) -> TestNode {
    let data = tempfile::tempdir().unwrap();
    let defaults = [
        ("TOPGUN_HOST", "127.0.0.1".to_owned()),
        ("TOPGUN_PORT", "0".to_owned()),
        ("TOPGUN_CLUSTER_PORT", "0".to_owned()),
        ("TOPGUN_METRICS_HOST", "127.0.0.1".to_owned()),
        ("TOPGUN_METRICS_PORT", "0".to_owned()),
        ("TOPGUN_DATA_DIR", path(data.path())),
    ];
    let mut all: Vec<(String, String)> = defaults
        .into_iter()
        .filter(|(name, _)| !vars.iter().any(|(given, _)| given == name))
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    all.extend(vars);
    let config = config::from_vars(all).expect("test configuration is valid");
    let prepared = node::prepare(config).expect("test key material loads");
    let node = prepared.start().await.expect("node starts");
    TestNode { node, _data: data }
}

/// A node started in-process, with the temporary directory of its store.
pub struct TestNode {
    node: RunningNode,
    _data: TempDir,
}

impl TestNode {
    pub fn client_addr(&self) -> SocketAddr {
        self.node.client_addr()
    }

    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.node.cluster_addr()
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.node.metrics_addr()
    }

    pub async fn shutdown(self, drain: std::time::Duration) -> bool {
        self.node.shutdown(drain).await
    }
}

/// A client connector trusting `ca`, limited to `max` when given.
pub fn connector(ca: &Path, max: Option<SslVersion>) -> SslConnector {
    connector_builder(ca, max).build()
}

pub fn connector_builder(ca: &Path, max: Option<SslVersion>) -> SslConnectorBuilder {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_ca_file(ca).unwrap();
    builder.set_verify(SslVerifyMode::PEER);
    builder.set_max_proto_version(max).unwrap();
    builder
}

/// Opens a verified TLS connection to `addr`, checking the certificate against `host`.
pub async fn tls_connect(
    connector: &SslConnector,
    addr: SocketAddr,
    host: &str,
) -> Result<SslStream<TcpStream>, openssl::ssl::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let ssl = connector.configure().unwrap().into_ssl(host).unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut stream).connect().await?;
    Ok(stream)
}

/// Sends `GET path` with `Connection: close` and returns the status code and body.
pub async fn http_get<S>(mut stream: S, path: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// How long one run of the binary may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs the built `topgun-server` with exactly these variables (plus PATH) and no
/// terminal; kills it and fails the test if it has not exited within [`DEADLINE`]
/// (a node waiting on a passphrase prompt would hang a pod).
pub fn run_binary(args: &[&str], vars: &[(String, String)]) -> Output {
    // A temporary working directory, so that a node that gets as far as opening its
    // default store (`data/`) does not write into the repository.
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_topgun-server"))
        .args(args)
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited on") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("topgun-server {args:?} still running after {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };

    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A `topgun-server` process serving on 127.0.0.1 with a free port, logging JSON.
pub struct NodeProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// The log events printed up to and including "client listener ready".
    pub startup_log: Vec<serde_json::Value>,
    /// Where the metrics endpoint is bound, from its "metrics endpoint ready" event.
    pub metrics_addr: Option<SocketAddr>,
    /// The log events printed after start-up, as they arrive.
    pub later_log: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    _data: Option<TempDir>,
}

impl NodeProcess {
    /// Starts the binary with exactly `vars` (plus host, port 0 and JSON logs) and waits
    /// for it to report its address.
    pub fn start(vars: &[(String, String)]) -> NodeProcess {
        let data = tempfile::tempdir().unwrap();
        let mut process = Self::start_in(data.path(), vars);
        process._data = Some(data);
        process
    }

    /// Like [`NodeProcess::start`], keeping the embedded store in `data_dir`.
    pub fn start_in(data_dir: &Path, vars: &[(String, String)]) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_topgun-server"))
            .env_clear()
            .env("TOPGUN_DATA_DIR", data_dir)
            .env("TOPGUN_HOST", "127.0.0.1")
            .env("TOPGUN_PORT", "0")
            // Any cluster listener too: a fixed default port may be taken on the machine.
            .env("TOPGUN_CLUSTER_PORT", "0")
            .env("TOPGUN_METRICS_HOST", "127.0.0.1")
            .env("TOPGUN_METRICS_PORT", "0")
            .env("TOPGUN_LOG_FORMAT", "json")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = std::io::BufRead::lines(stdout);
        let mut startup_log = Vec::new();
        let addr = loop {
            let line = lines.next().expect("the node logs its address").unwrap();
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            startup_log.push(event.clone());
            if event["message"] == "client listener ready" {
                break event["addr"].as_str().unwrap().parse().unwrap();
            }
        };
        let metrics_addr = startup_log
            .iter()
            .find(|event| event["message"] == "metrics endpoint ready")
            .and_then(|event| event["addr"].as_str()?.parse().ok());
        // Keep draining the log so that the node never blocks on a full pipe.
        let later_log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = later_log.clone();
        thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(event);
                }
            }
        });
        NodeProcess {
            child,
            addr,
            startup_log,
            metrics_addr,
            later_log,
            _data: None,
        }
    }

    /// Waits up to [`DEADLINE`] for a log event after start-up with `message`.
    pub fn wait_for_event(&self, message: &str) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let found = self
                .later_log
                .lock()
                .unwrap()
                .iter()
                .find(|event| event["message"] == message)
                .cloned();
            if let Some(event) = found {
                return event;
            }
            assert!(started.elapsed() < DEADLINE, "no {message:?} logged");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The messages logged at `level` during start-up.
    pub fn startup_messages(&self, level: &str) -> Vec<String> {
        self.startup_log
            .iter()
            .filter(|event| event["level"] == level)
            .map(|event| event["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGHUP: the node reloads its TLS key material.
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    /// Sends SIGKILL: the process gets no chance to flush or clean up.
    pub fn kill_hard(&self) {
        self.signal("-KILL");
    }

    fn signal(&self, signal: &str) {
        let killed = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// Waits up to [`DEADLINE`] for the process to exit, killing it after that.
    pub fn wait(mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("the node did not exit within {DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain `ws://` client session, past the node's `AUTH_REQUIRED` greeting.
pub async fn ws_session(addr: SocketAddr) -> WsClient {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    let greeting = ws.next().await.unwrap().unwrap();
    assert!(matches!(greeting, Message::Binary(_)), "{greeting:?}");
    ws
}

pub type WsClient = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Reads the next message and returns it as a close frame, failing on anything else.
pub async fn expect_close<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> CloseFrame
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let message = ws.next().await.unwrap().unwrap();
    match message {
        Message::Close(Some(frame)) => frame,
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// A compact HS256 JWT over `claims`, minted by the client library.
pub fn hs256_token(secret: &str, claims: &serde_json::Value) -> String {
    topgun_server::client::mint_hs256(secret.as_bytes(), claims).unwrap()
}

/// Encodes `value` as the node expects a client message: one named MessagePack map.
pub fn packed(value: &serde_json::Value) -> Message {
    Message::Binary(rmp_serde::to_vec_named(value).unwrap().into())
}

/// Reads the next message as a MessagePack map, converted to JSON for comparison.
pub async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match ws.next().await.unwrap().unwrap() {
        Message::Binary(bytes) => rmp_serde::from_slice(&bytes).unwrap(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// Opens a session and authenticates it with a development-secret token over `claims`.
pub async fn authenticated(addr: SocketAddr, claims: &serde_json::Value) -> WsClient {
    let mut ws = ws_session(addr).await;
    authenticate(&mut ws, claims).await;
    ws
}

/// Sends `AUTH` with a development-secret token over `claims` and expects `AUTH_ACK`.
pub async fn authenticate<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    claims: &serde_json::Value,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let token = hs256_token("topgun-secret-dev", claims);
    send(ws, serde_json::json!({"type": "AUTH", "token": token})).await;
    let ack = next_json(ws).await;
    assert_eq!(ack, serde_json::json!({"type": "AUTH_ACK"}));
}

/// Sends `message` as one MessagePack map.
pub async fn send<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, message: serde_json::Value)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    futures_util::SinkExt::send(ws, packed(&message))
        .await
        .unwrap();
}

/// An LWW `PUT` op as the stock client writes it into `OP_BATCH`.
pub fn put_op(
    map: &str,
    id: &str,
    key: &str,
    value: serde_json::Value,
    millis: u64,
) -> serde_json::Value {
    let timestamp = serde_json::json!({"millis": millis, "counter": 0, "nodeId": "client-a"});
    serde_json::json!({
        "mapName": map, "opType": "PUT", "key": key,
        "record": {"value": value, "timestamp": timestamp},
        "orRecord": null, "orTag": null, "timestamp": timestamp, "synced": false, "id": id,
    })
}

/// The next message that is not a `SERVER_EVENT` (a session receives one for every
/// write it may read, interleaved with the replies to its own messages).
pub async fn next_reply<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = next_json(ws).await;
        if message["type"] != "SERVER_EVENT" {
            return message;
        }
    }
}

/// A `wss://` session to a TLS node whose CA is `ca`, past the `AUTH_REQUIRED` greeting.
pub async fn wss_session(addr: SocketAddr, ca: &Path) -> TlsWsClient {
    let stream = tls_connect(&connector(ca, None), addr, "localhost")
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let greeting = ws.next().await.unwrap().unwrap();
    assert!(matches!(greeting, Message::Binary(_)), "{greeting:?}");
    ws
}

pub type TlsWsClient = tokio_tungstenite::WebSocketStream<SslStream<TcpStream>>;

/// One masked client frame (RFC 6455 §5.2), for tests that split or cut messages.
pub fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 | opcode } else { opcode }];
    match payload.len() {
        len if len < 126 => frame.push(0x80 | len as u8),
        len if len <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend((len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend((len as u64).to_be_bytes());
        }
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    frame.extend(mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The path of `tool` on `PATH`, or `None` after printing that the test is skipped.
/// Under CI (`CI=true`, set for `.ci/run`, which installs the tool) a missing tool
/// fails the test instead, so that a green run never hides a skipped check.
pub fn tool_or_skip(tool: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: `{tool}` is not installed; .ci/run installs Debian's prometheus package"
        );
        println!("{test}: skipped, `{tool}` is not installed (apt-get install prometheus)");
    }
    found
}
