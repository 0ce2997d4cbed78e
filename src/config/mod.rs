//! Environment variables → a checked [`Config`].
//!
//! This module only parses and validates: it holds paths to key material, never
//! the material, and opens no files or sockets. Every error names the variable
//! it is about and never repeats the variable's value, which may be a secret.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod env;
mod fips;
mod parse;
pub mod pins;

use env::Raw;
pub use env::KNOWN_VARS;
pub use fips::{FIPS_CIPHERS, FIPS_CIPHERSUITES, FIPS_GROUPS};
pub use pins::Pin;

/// Why the environment does not describe a node that can start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {problem}")]
    Invalid { var: &'static str, problem: String },
    #[error("{var}: the value is not valid UTF-8; set it to plain text")]
    NotUnicode { var: String },
    #[error("{first} and {second} are both set; set only one of them")]
    Conflict {
        first: &'static str,
        second: &'static str,
    },
    #[error("reading the environment")]
    Envy(#[source] envy::Error),
}

impl ConfigError {
    fn invalid(var: &'static str, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            var,
            problem: problem.into(),
        }
    }
}

/// A file named by an environment variable, kept together so that errors can name both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarPath {
    /// The variable the path came from (after fallbacks), e.g. `TOPGUN_TLS_CERT_PATH`.
    pub var: &'static str,
    pub path: PathBuf,
}

impl fmt::Display for VarPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.var)
    }
}

/// A value that must never reach a log line; its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the passphrase of an encrypted key or PKCS#12 bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// Given directly in the named variable.
    Value { var: &'static str, value: Secret },
    /// Read from a file at start-up, as Kubernetes mounts secrets. One trailing
    /// newline is removed.
    File(VarPath),
}

impl PassphraseSource {
    /// The variable an operator sets to change this passphrase.
    pub fn var(&self) -> &'static str {
        match self {
            PassphraseSource::Value { var, .. } => var,
            PassphraseSource::File(file) => file.var,
        }
    }
}

/// The certificate and private key a listener presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// A PEM chain (leaf first, then intermediates) and a PEM private key.
    Pem { cert: VarPath, key: VarPath },
    /// A PKCS#12 bundle holding the key, the leaf and optionally the chain.
    Pkcs12 { bundle: VarPath },
}

/// Lowest TLS version a listener accepts (`TOPGUN_TLS_MIN_VERSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

impl MinVersion {
    /// The spelling used in the environment and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MinVersion::Tls12 => "TLSv1.2",
            MinVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// Protocol settings shared by every TLS listener of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProfile {
    pub min_version: MinVersion,
    /// OpenSSL cipher string for TLS 1.2 (`TOPGUN_TLS_CIPHERS`).
    pub ciphers: String,
    /// TLS 1.3 ciphersuites (`TOPGUN_TLS_CIPHERSUITES`).
    pub ciphersuites: String,
    /// Key-exchange groups, most preferred first (`TOPGUN_TLS_GROUPS`).
    pub groups: String,
    /// Whether TLS 1.3 resumption tickets are issued (`TOPGUN_TLS_SESSION_TICKETS`);
    /// without them sessions resume from the server's cache.
    pub session_tickets: bool,
}

/// Mozilla "intermediate" TLS 1.2 ciphers, restricted to ECDHE key exchange with AEAD.
pub const DEFAULT_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
/// The three TLS 1.3 suites every OpenSSL 3 build enables.
pub const DEFAULT_CIPHERSUITES: &str =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
/// Mozilla's recommended groups.
pub const DEFAULT_GROUPS: &str = "X25519:P-256:P-384";

/// TLS settings of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub identity: IdentitySource,
    /// CA bundle: verifies our own chain at start-up, completes the chain we send, and
    /// (cluster only) verifies peers.
    pub ca: Option<VarPath>,
    pub passphrase: Option<PassphraseSource>,
    pub profile: TlsProfile,
}

/// The listener for TopGun clients (HTTP, WebSocket, and their TLS forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListenerConfig {
    pub bind: SocketAddr,
    pub tls: Option<TlsConfig>,
}

/// How the node finds its cluster peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// Only the peers of `TOPGUN_PEERS`.
    Manual,
    /// DNS A records of a (headless) service, polled every `interval`.
    Kubernetes { service: String, interval: Duration },
}

/// The listener and dialer for other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub bind: SocketAddr,
    pub tls: Option<TlsConfig>,
    /// Require and verify a peer certificate on inbound links (`TOPGUN_CLUSTER_MTLS`).
    pub mtls: bool,
    /// Verify peer certificates when dialling (`TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED`).
    pub reject_unauthorized: bool,
    /// Whether the cluster port is served and peers dialled (`TOPGUN_CLUSTER_ENABLED`;
    /// implied by `TOPGUN_PEERS`, `TOPGUN_DISCOVERY_SERVICE` or cluster TLS).
    pub enabled: bool,
    /// `host:port` of peers to dial (`TOPGUN_PEERS`).
    pub peers: Vec<String>,
    pub discovery: Discovery,
    /// The host peers dial to reach this node (`TOPGUN_CLUSTER_ADVERTISE_HOST`); `None`
    /// means the machine's host name, used when the node listens on every address.
    pub advertise_host: Option<String>,
    /// How often a WebSocket ping goes to each peer.
    pub ping_interval: Duration,
    /// A peer that sends nothing for this long is dropped from the membership.
    pub peer_timeout: Duration,
    /// How often a partition's owner compares its contents with the backup.
    pub anti_entropy_interval: Duration,
    /// Pins a peer certificate must match, one of them, when any are set
    /// (`TOPGUN_CLUSTER_PINS`). Checked when dialling, and on inbound links with mTLS.
    pub pins: Vec<Pin>,
    /// Peer identities accepted, when any are set: a DNS or URI SAN, or the subject CN,
    /// equal to an entry (`TOPGUN_CLUSTER_ALLOWED_IDENTITIES`).
    pub allowed_identities: Vec<String>,
    /// PEM file of revocation lists for peer certificates (`TOPGUN_CLUSTER_CRL_PATH`).
    pub crl: Option<VarPath>,
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub bind: SocketAddr,
    /// `None` serves plain `http://` (`TOPGUN_METRICS_TLS_ENABLED=false`).
    pub tls: Option<TlsConfig>,
    /// Require a scraper certificate that verifies against the CA
    /// (`TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT`).
    pub require_client_cert: bool,
}

/// Bounds that keep one peer from costing the node its availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a new connection has to finish TLS and send its HTTP request head.
    pub handshake_timeout: Duration,
    /// Connections held at once on each listener; further ones wait in the backlog.
    pub max_connections: usize,
    /// Largest WebSocket message accepted; a larger one closes the connection with 1009.
    pub max_message_size: usize,
    /// How long a graceful shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
    /// How long a WebSocket may stay unauthenticated before it is closed with 4001.
    pub auth_timeout: Duration,
    /// How often TTL expiry and tombstone pruning run (PROTOCOL.md §10).
    pub gc_interval: Duration,
    /// New connections per second accepted from one address on each listener
    /// (`TOPGUN_MAX_CONNECTION_RATE_PER_IP`); `None` is no limit.
    pub connection_rate_per_ip: Option<u32>,
}

/// When listeners reload their key material without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadConfig {
    /// How often the key material files are read for changes
    /// (`TOPGUN_TLS_RELOAD_INTERVAL_MS`); `None` reloads on SIGHUP only.
    pub interval: Option<Duration>,
    /// How often every TLS context is rebuilt even without changes, which gives new
    /// session ticket keys (`TOPGUN_TLS_TICKET_ROTATION_MS`); `None` never.
    pub ticket_rotation: Option<Duration>,
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter: a level, or directives such as `info,topgun_server=debug`.
    pub filter: String,
    pub json: bool,
}

/// Everything the node reads from its environment, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node_id: String,
    pub client: ClientListenerConfig,
    pub cluster: ClusterConfig,
    pub metrics: MetricsConfig,
    pub limits: Limits,
    pub reload: ReloadConfig,
    /// PostgreSQL storage (`DATABASE_URL`); when unset, the embedded store in `data_dir`.
    pub database_url: Option<Secret>,
    /// Directory of the embedded store (`TOPGUN_DATA_DIR`, default `data`).
    pub data_dir: PathBuf,
    pub jwt_secret: Secret,
    /// Permission policies (`TOPGUN_POLICIES_PATH`); unset means upstream's default,
    /// every USER may do everything on every map.
    pub policies: Option<VarPath>,
    /// True when `JWT_SECRET` was not set and the development default is in use.
    pub jwt_secret_is_default: bool,
    pub production: bool,
    /// Run every cryptographic operation in OpenSSL's FIPS provider, or refuse to
    /// start (`TOPGUN_FIPS`). The TLS profile and identities were checked for it.
    pub fips: bool,
    pub log: LogConfig,
    /// `TOPGUN_*` variables that this node does not know, most likely typos.
    pub unknown_vars: Vec<String>,
    /// Settings that are valid but have no effect, for the operator to review.
    pub ignored: Vec<Ignored>,
}

/// A variable that is set but has no effect because a switch is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub var: &'static str,
    /// The switch that would make it count.
    pub switch: &'static str,
}

/// The development JWT secret of the reference server, used when `JWT_SECRET` is unset.
pub const DEFAULT_JWT_SECRET: &str = "topgun-secret-dev";

/// Builds a [`Config`] from the process environment.
///
/// Non-UTF-8 values are an error only for variables this node reads.
pub fn from_env() -> Result<Config, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().map(str::to_owned) else {
            continue;
        };
        if !is_ours(&name) {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_: OsString| ConfigError::NotUnicode { var: name.clone() })?;
        vars.push((name, value));
    }
    from_vars(vars)
}

/// Builds a [`Config`] from explicit pairs; tests call this instead of editing the environment.
///
/// ```
/// let config = topgun_server::config::from_vars([("TOPGUN_PORT", "9000")]).unwrap();
/// assert_eq!(config.client.bind.port(), 9000);
/// assert!(config.client.tls.is_none());
///
/// let error = topgun_server::config::from_vars([("TOPGUN_TLS_ENABLED", "yes")]).unwrap_err();
/// assert_eq!(error.to_string(), "TOPGUN_TLS_ENABLED: must be `true` or `false`");
/// ```
pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let mut known = Vec::new();
    let mut unknown_vars = Vec::new();
    for (name, value) in vars {
        let (name, value) = (name.into(), value.into());
        if KNOWN_VARS.contains(&name.as_str()) {
            // Kubernetes manifests often carry `value: ""`; treat it as unset.
            if !value.is_empty() {
                known.push((name, value));
            }
        } else if name.starts_with("TOPGUN_") {
            unknown_vars.push(name);
        }
    }
    unknown_vars.sort();

    let raw: Raw = envy::from_iter(known).map_err(ConfigError::Envy)?;
    raw.check(unknown_vars)
}

fn is_ours(name: &str) -> bool {
    name.starts_with("TOPGUN_") || KNOWN_VARS.contains(&name)
}

#[cfg(test)]
mod tests;
