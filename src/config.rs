//! Environment variables → a checked [`Config`].
//!
//! This module only parses and validates: it holds paths to key material, never
//! the material, and opens no files or sockets. Every error names the variable
//! it is about and never repeats the variable's value, which may be a secret.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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
    /// `host:port` of peers to dial (`TOPGUN_PEERS`).
    pub peers: Vec<String>,
    pub discovery: Discovery,
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub bind: SocketAddr,
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
    pub database_url: Option<Secret>,
    pub jwt_secret: Secret,
    /// True when `JWT_SECRET` was not set and the development default is in use.
    pub jwt_secret_is_default: bool,
    pub production: bool,
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

/// The largest `TOPGUN_MAX_MESSAGE_SIZE` accepted: one message may be held in memory
/// whole, so the bound is a bound on what one client can make the node allocate.
const MAX_MESSAGE_SIZE_LIMIT: usize = 1 << 30;

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

/// Every variable the node reads. `envy` lower-cases names, so the fields of [`Raw`]
/// are these names in lower case.
pub const KNOWN_VARS: &[&str] = &[
    "TOPGUN_HOST",
    "TOPGUN_PORT",
    "TOPGUN_CLUSTER_PORT",
    "TOPGUN_METRICS_HOST",
    "TOPGUN_METRICS_PORT",
    "NODE_ID",
    "TOPGUN_PEERS",
    "TOPGUN_DISCOVERY_SERVICE",
    "TOPGUN_DISCOVERY_INTERVAL",
    "DATABASE_URL",
    "JWT_SECRET",
    "LOG_LEVEL",
    "NODE_ENV",
    "TOPGUN_LOG_FORMAT",
    "TOPGUN_TLS_ENABLED",
    "TOPGUN_TLS_CERT_PATH",
    "TOPGUN_TLS_KEY_PATH",
    "TOPGUN_TLS_PKCS12_PATH",
    "TOPGUN_TLS_CA_PATH",
    "TOPGUN_TLS_MIN_VERSION",
    "TOPGUN_TLS_PASSPHRASE",
    "TOPGUN_TLS_PASSPHRASE_FILE",
    "TOPGUN_TLS_CIPHERS",
    "TOPGUN_TLS_CIPHERSUITES",
    "TOPGUN_TLS_GROUPS",
    "TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS",
    "TOPGUN_CLUSTER_TLS_ENABLED",
    "TOPGUN_CLUSTER_TLS_CERT_PATH",
    "TOPGUN_CLUSTER_TLS_KEY_PATH",
    "TOPGUN_CLUSTER_TLS_PKCS12_PATH",
    "TOPGUN_CLUSTER_TLS_CA_PATH",
    "TOPGUN_CLUSTER_TLS_PASSPHRASE",
    "TOPGUN_CLUSTER_TLS_PASSPHRASE_FILE",
    "TOPGUN_CLUSTER_MTLS",
    "TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED",
    "TOPGUN_MAX_CONNECTIONS",
    "TOPGUN_MAX_MESSAGE_SIZE",
    "TOPGUN_SHUTDOWN_TIMEOUT_MS",
];

/// The variables as strings; [`Raw::check`] parses each so that errors name the variable.
#[derive(Debug, Default, Deserialize)]
struct Raw {
    topgun_host: Option<String>,
    topgun_port: Option<String>,
    topgun_cluster_port: Option<String>,
    topgun_metrics_host: Option<String>,
    topgun_metrics_port: Option<String>,
    node_id: Option<String>,
    topgun_peers: Option<String>,
    topgun_discovery_service: Option<String>,
    topgun_discovery_interval: Option<String>,
    database_url: Option<String>,
    jwt_secret: Option<String>,
    log_level: Option<String>,
    node_env: Option<String>,
    topgun_log_format: Option<String>,
    topgun_tls_enabled: Option<String>,
    topgun_tls_cert_path: Option<String>,
    topgun_tls_key_path: Option<String>,
    topgun_tls_pkcs12_path: Option<String>,
    topgun_tls_ca_path: Option<String>,
    topgun_tls_min_version: Option<String>,
    topgun_tls_passphrase: Option<String>,
    topgun_tls_passphrase_file: Option<String>,
    topgun_tls_ciphers: Option<String>,
    topgun_tls_ciphersuites: Option<String>,
    topgun_tls_groups: Option<String>,
    topgun_tls_handshake_timeout_ms: Option<String>,
    topgun_cluster_tls_enabled: Option<String>,
    topgun_cluster_tls_cert_path: Option<String>,
    topgun_cluster_tls_key_path: Option<String>,
    topgun_cluster_tls_pkcs12_path: Option<String>,
    topgun_cluster_tls_ca_path: Option<String>,
    topgun_cluster_tls_passphrase: Option<String>,
    topgun_cluster_tls_passphrase_file: Option<String>,
    topgun_cluster_mtls: Option<String>,
    topgun_cluster_tls_reject_unauthorized: Option<String>,
    topgun_max_connections: Option<String>,
    topgun_max_message_size: Option<String>,
    topgun_shutdown_timeout_ms: Option<String>,
}

impl Raw {
    fn check(self, unknown_vars: Vec<String>) -> Result<Config, ConfigError> {
        let ignored = self.ignored_while_off();
        for (var, value) in self.path_vars() {
            if value.as_deref().is_some_and(looks_like_secret) {
                return Err(ConfigError::invalid(
                    var,
                    "holds what looks like key material, not a file path; mount the secret \
                     as a file and set the variable to its path",
                ));
            }
        }
        let host = parse_host("TOPGUN_HOST", self.topgun_host.as_deref())?;
        let port = parse_port("TOPGUN_PORT", self.topgun_port.as_deref(), 8080)?;
        let cluster_port = parse_port(
            "TOPGUN_CLUSTER_PORT",
            self.topgun_cluster_port.as_deref(),
            9080,
        )?;
        let metrics_host = parse_host("TOPGUN_METRICS_HOST", self.topgun_metrics_host.as_deref())?;
        let metrics_port = parse_port(
            "TOPGUN_METRICS_PORT",
            self.topgun_metrics_port.as_deref(),
            9090,
        )?;

        check_distinct_ports(&[
            ("TOPGUN_PORT", host, port),
            ("TOPGUN_CLUSTER_PORT", host, cluster_port),
            ("TOPGUN_METRICS_PORT", metrics_host, metrics_port),
        ])?;

        let profile = TlsProfile {
            min_version: parse_min_version(self.topgun_tls_min_version.as_deref())?,
            ciphers: text_or(self.topgun_tls_ciphers.as_deref(), DEFAULT_CIPHERS),
            ciphersuites: parse_ciphersuites(self.topgun_tls_ciphersuites.as_deref())?,
            groups: text_or(self.topgun_tls_groups.as_deref(), DEFAULT_GROUPS),
        };

        let client_tls = self.client_tls(&profile)?;
        let cluster_tls = self.cluster_tls(&profile)?;
        let mtls = parse_bool(
            "TOPGUN_CLUSTER_MTLS",
            self.topgun_cluster_mtls.as_deref(),
            false,
        )?;
        match &cluster_tls {
            None if mtls => {
                return Err(ConfigError::invalid(
                    "TOPGUN_CLUSTER_MTLS",
                    "mutual TLS needs cluster TLS; set TOPGUN_CLUSTER_TLS_ENABLED=true",
                ))
            }
            Some(tls) if mtls && tls.ca.is_none() => {
                return Err(ConfigError::invalid(
                    "TOPGUN_CLUSTER_MTLS",
                    "mutual TLS needs a CA to verify peers; set TOPGUN_CLUSTER_TLS_CA_PATH",
                ))
            }
            _ => {}
        }

        let production = self.node_env.as_deref() == Some("production");
        let log = LogConfig {
            filter: parse_log_level(self.log_level.as_deref())?,
            json: parse_log_format(self.topgun_log_format.as_deref(), production)?,
        };

        let limits = Limits {
            handshake_timeout: parse_millis(
                "TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS",
                self.topgun_tls_handshake_timeout_ms.as_deref(),
                10_000,
            )?,
            max_connections: parse_count(
                "TOPGUN_MAX_CONNECTIONS",
                self.topgun_max_connections.as_deref(),
                10_000,
            )?,
            max_message_size: parse_count(
                "TOPGUN_MAX_MESSAGE_SIZE",
                self.topgun_max_message_size.as_deref(),
                16 * 1024 * 1024,
            )
            .and_then(|size| {
                if size > MAX_MESSAGE_SIZE_LIMIT {
                    Err(ConfigError::invalid(
                        "TOPGUN_MAX_MESSAGE_SIZE",
                        "must be at most 1073741824 bytes (1 GiB)",
                    ))
                } else {
                    Ok(size)
                }
            })?,
            shutdown_timeout: parse_millis(
                "TOPGUN_SHUTDOWN_TIMEOUT_MS",
                self.topgun_shutdown_timeout_ms.as_deref(),
                10_000,
            )?,
        };

        let discovery_interval = parse_millis(
            "TOPGUN_DISCOVERY_INTERVAL",
            self.topgun_discovery_interval.as_deref(),
            10_000,
        )?;
        let discovery = match self.topgun_discovery_service {
            Some(service) => Discovery::Kubernetes {
                service,
                interval: discovery_interval,
            },
            None => Discovery::Manual,
        };

        Ok(Config {
            node_id: self.node_id.unwrap_or_else(random_node_id),
            client: ClientListenerConfig {
                bind: SocketAddr::new(host, port),
                tls: client_tls,
            },
            cluster: ClusterConfig {
                bind: SocketAddr::new(host, cluster_port),
                tls: cluster_tls,
                mtls,
                reject_unauthorized: parse_bool(
                    "TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED",
                    self.topgun_cluster_tls_reject_unauthorized.as_deref(),
                    true,
                )?,
                peers: parse_peers(self.topgun_peers.as_deref())?,
                discovery,
            },
            metrics: MetricsConfig {
                bind: SocketAddr::new(metrics_host, metrics_port),
            },
            limits,
            database_url: self.database_url.map(Secret::new),
            jwt_secret_is_default: self.jwt_secret.is_none(),
            jwt_secret: Secret::new(self.jwt_secret.as_deref().unwrap_or(DEFAULT_JWT_SECRET)),
            production,
            log,
            unknown_vars,
            ignored,
        })
    }

    /// TLS files named while their listener's TLS is off: most likely a forgotten
    /// `*_TLS_ENABLED=true`, which would leave traffic unencrypted.
    fn ignored_while_off(&self) -> Vec<Ignored> {
        let listeners = [
            (
                ("TOPGUN_TLS_ENABLED", &self.topgun_tls_enabled),
                [
                    ("TOPGUN_TLS_CERT_PATH", &self.topgun_tls_cert_path),
                    ("TOPGUN_TLS_PKCS12_PATH", &self.topgun_tls_pkcs12_path),
                ],
            ),
            (
                (
                    "TOPGUN_CLUSTER_TLS_ENABLED",
                    &self.topgun_cluster_tls_enabled,
                ),
                [
                    (
                        "TOPGUN_CLUSTER_TLS_CERT_PATH",
                        &self.topgun_cluster_tls_cert_path,
                    ),
                    (
                        "TOPGUN_CLUSTER_TLS_PKCS12_PATH",
                        &self.topgun_cluster_tls_pkcs12_path,
                    ),
                ],
            ),
        ];

        let mut ignored = Vec::new();
        for ((switch, enabled), files) in listeners {
            if enabled
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            {
                continue;
            }
            for (var, _) in files.into_iter().filter(|(_, value)| value.is_some()) {
                ignored.push(Ignored { var, switch });
            }
        }
        ignored
    }

    /// Variables that name files holding key material or passphrases.
    fn path_vars(&self) -> [(&'static str, &Option<String>); 10] {
        [
            ("TOPGUN_TLS_CERT_PATH", &self.topgun_tls_cert_path),
            ("TOPGUN_TLS_KEY_PATH", &self.topgun_tls_key_path),
            ("TOPGUN_TLS_PKCS12_PATH", &self.topgun_tls_pkcs12_path),
            ("TOPGUN_TLS_CA_PATH", &self.topgun_tls_ca_path),
            (
                "TOPGUN_TLS_PASSPHRASE_FILE",
                &self.topgun_tls_passphrase_file,
            ),
            (
                "TOPGUN_CLUSTER_TLS_CERT_PATH",
                &self.topgun_cluster_tls_cert_path,
            ),
            (
                "TOPGUN_CLUSTER_TLS_KEY_PATH",
                &self.topgun_cluster_tls_key_path,
            ),
            (
                "TOPGUN_CLUSTER_TLS_PKCS12_PATH",
                &self.topgun_cluster_tls_pkcs12_path,
            ),
            (
                "TOPGUN_CLUSTER_TLS_CA_PATH",
                &self.topgun_cluster_tls_ca_path,
            ),
            (
                "TOPGUN_CLUSTER_TLS_PASSPHRASE_FILE",
                &self.topgun_cluster_tls_passphrase_file,
            ),
        ]
    }

    fn client_tls(&self, profile: &TlsProfile) -> Result<Option<TlsConfig>, ConfigError> {
        if !parse_bool(
            "TOPGUN_TLS_ENABLED",
            self.topgun_tls_enabled.as_deref(),
            false,
        )? {
            return Ok(None);
        }

        let identity = identity(
            ("TOPGUN_TLS_PKCS12_PATH", &self.topgun_tls_pkcs12_path),
            ("TOPGUN_TLS_CERT_PATH", &self.topgun_tls_cert_path),
            ("TOPGUN_TLS_KEY_PATH", &self.topgun_tls_key_path),
            "TOPGUN_TLS_ENABLED",
        )?;

        Ok(Some(TlsConfig {
            identity,
            ca: var_path("TOPGUN_TLS_CA_PATH", &self.topgun_tls_ca_path),
            passphrase: self.client_passphrase()?,
            profile: profile.clone(),
        }))
    }

    /// Cluster TLS falls back to the client settings field by field, as the spec does;
    /// an explicit cluster PKCS#12 bundle or PEM pair wins over any client setting.
    fn cluster_tls(&self, profile: &TlsProfile) -> Result<Option<TlsConfig>, ConfigError> {
        let enabled = parse_bool(
            "TOPGUN_CLUSTER_TLS_ENABLED",
            self.topgun_cluster_tls_enabled.as_deref(),
            false,
        )?;
        if !enabled {
            return Ok(None);
        }

        let own_pem = self.topgun_cluster_tls_cert_path.is_some()
            || self.topgun_cluster_tls_key_path.is_some();
        let identity = if self.topgun_cluster_tls_pkcs12_path.is_some() {
            // An explicit cluster bundle stands alone: no client PEM file falls into it.
            identity(
                (
                    "TOPGUN_CLUSTER_TLS_PKCS12_PATH",
                    &self.topgun_cluster_tls_pkcs12_path,
                ),
                (
                    "TOPGUN_CLUSTER_TLS_CERT_PATH",
                    &self.topgun_cluster_tls_cert_path,
                ),
                (
                    "TOPGUN_CLUSTER_TLS_KEY_PATH",
                    &self.topgun_cluster_tls_key_path,
                ),
                "TOPGUN_CLUSTER_TLS_ENABLED",
            )?
        } else if own_pem {
            identity(
                ("TOPGUN_CLUSTER_TLS_PKCS12_PATH", &None),
                fallback(
                    (
                        "TOPGUN_CLUSTER_TLS_CERT_PATH",
                        &self.topgun_cluster_tls_cert_path,
                    ),
                    ("TOPGUN_TLS_CERT_PATH", &self.topgun_tls_cert_path),
                ),
                fallback(
                    (
                        "TOPGUN_CLUSTER_TLS_KEY_PATH",
                        &self.topgun_cluster_tls_key_path,
                    ),
                    ("TOPGUN_TLS_KEY_PATH", &self.topgun_tls_key_path),
                ),
                "TOPGUN_CLUSTER_TLS_ENABLED",
            )?
        } else {
            identity(
                ("TOPGUN_TLS_PKCS12_PATH", &self.topgun_tls_pkcs12_path),
                ("TOPGUN_TLS_CERT_PATH", &self.topgun_tls_cert_path),
                ("TOPGUN_TLS_KEY_PATH", &self.topgun_tls_key_path),
                "TOPGUN_CLUSTER_TLS_ENABLED",
            )?
        };

        let ca = fallback(
            (
                "TOPGUN_CLUSTER_TLS_CA_PATH",
                &self.topgun_cluster_tls_ca_path,
            ),
            ("TOPGUN_TLS_CA_PATH", &self.topgun_tls_ca_path),
        );
        let passphrase = match passphrase(
            (
                "TOPGUN_CLUSTER_TLS_PASSPHRASE",
                &self.topgun_cluster_tls_passphrase,
            ),
            (
                "TOPGUN_CLUSTER_TLS_PASSPHRASE_FILE",
                &self.topgun_cluster_tls_passphrase_file,
            ),
        )? {
            Some(own) => Some(own),
            None => self.client_passphrase()?,
        };

        Ok(Some(TlsConfig {
            identity,
            ca: var_path(ca.0, ca.1),
            passphrase,
            profile: profile.clone(),
        }))
    }

    fn client_passphrase(&self) -> Result<Option<PassphraseSource>, ConfigError> {
        passphrase(
            ("TOPGUN_TLS_PASSPHRASE", &self.topgun_tls_passphrase),
            (
                "TOPGUN_TLS_PASSPHRASE_FILE",
                &self.topgun_tls_passphrase_file,
            ),
        )
    }
}

type Var<'a> = (&'static str, &'a Option<String>);

fn fallback<'a>(own: Var<'a>, inherited: Var<'a>) -> Var<'a> {
    if own.1.is_some() {
        own
    } else {
        inherited
    }
}

fn var_path(var: &'static str, value: &Option<String>) -> Option<VarPath> {
    value.as_ref().map(|path| VarPath {
        var,
        path: PathBuf::from(path),
    })
}

fn identity(
    pkcs12: Var<'_>,
    cert: Var<'_>,
    key: Var<'_>,
    enabled_var: &'static str,
) -> Result<IdentitySource, ConfigError> {
    match (var_path(pkcs12.0, pkcs12.1), cert.1, key.1) {
        (Some(_), Some(_), _) => Err(ConfigError::Conflict {
            first: pkcs12.0,
            second: cert.0,
        }),
        (Some(_), None, Some(_)) => Err(ConfigError::Conflict {
            first: pkcs12.0,
            second: key.0,
        }),
        (Some(bundle), None, None) => Ok(IdentitySource::Pkcs12 { bundle }),
        (None, Some(_), Some(_)) => Ok(IdentitySource::Pem {
            cert: var_path(cert.0, cert.1).expect("checked to be set"),
            key: var_path(key.0, key.1).expect("checked to be set"),
        }),
        (None, None, Some(_)) => Err(ConfigError::invalid(
            cert.0,
            format!("{enabled_var} is true but no certificate is set; set {} to the PEM certificate chain", cert.0),
        )),
        (None, Some(_), None) => Err(ConfigError::invalid(
            key.0,
            format!("{enabled_var} is true but no private key is set; set {} to the PEM private key", key.0),
        )),
        (None, None, None) => Err(ConfigError::invalid(
            enabled_var,
            format!(
                "TLS is enabled but no certificate is set; set {} and {}, or {}",
                cert.0, key.0, pkcs12.0
            ),
        )),
    }
}

fn passphrase(value: Var<'_>, file: Var<'_>) -> Result<Option<PassphraseSource>, ConfigError> {
    match (value.1, var_path(file.0, file.1)) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            first: value.0,
            second: file.0,
        }),
        (Some(secret), None) => Ok(Some(PassphraseSource::Value {
            var: value.0,
            value: Secret::new(secret.as_str()),
        })),
        (None, Some(path)) => Ok(Some(PassphraseSource::File(path))),
        (None, None) => Ok(None),
    }
}

/// A `secretKeyRef` put where a mounted file's path belongs: PEM text or several lines.
/// Such values must never reach an error message that would print a path.
fn looks_like_secret(value: &str) -> bool {
    value.contains("-----BEGIN") || value.contains('\n') || value.contains('\r')
}

fn text_or(value: Option<&str>, default: &str) -> String {
    value.unwrap_or(default).to_owned()
}

/// Two listeners on one port would fail at bind time with a less helpful message.
fn check_distinct_ports(listeners: &[(&'static str, IpAddr, u16)]) -> Result<(), ConfigError> {
    for (i, (var, host, port)) in listeners.iter().enumerate() {
        for (other_var, other_host, other_port) in &listeners[..i] {
            let hosts_overlap =
                host == other_host || host.is_unspecified() || other_host.is_unspecified();
            if *port != 0 && port == other_port && hosts_overlap {
                return Err(ConfigError::invalid(
                    var,
                    format!("is the same port as {other_var}; give each listener its own port"),
                ));
            }
        }
    }
    Ok(())
}

/// Strict booleans: a typo such as `TOPGUN_TLS_ENABLED=ture` stops the node instead of
/// silently leaving TLS off, as the reference server would.
fn parse_bool(var: &'static str, value: Option<&str>, default: bool) -> Result<bool, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ConfigError::invalid(var, "must be `true` or `false`")),
    }
}

fn parse_host(var: &'static str, value: Option<&str>) -> Result<IpAddr, ConfigError> {
    match value {
        None => Ok(IpAddr::from([0, 0, 0, 0])),
        Some(v) => v.parse().map_err(|_| {
            ConfigError::invalid(
                var,
                "must be an IP address to bind, such as 0.0.0.0, 127.0.0.1 or ::",
            )
        }),
    }
}

fn parse_port(var: &'static str, value: Option<&str>, default: u16) -> Result<u16, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ConfigError::invalid(
                var,
                "must be a port number from 0 to 65535 (0 picks a free port)",
            )
        }),
    }
}

fn parse_millis(
    var: &'static str,
    value: Option<&str>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let millis = match value {
        None => default,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=86_400_000).contains(ms))
            .ok_or_else(|| {
                ConfigError::invalid(
                    var,
                    "must be a whole number of milliseconds from 1 to 86400000",
                )
            })?,
    };
    Ok(Duration::from_millis(millis))
}

fn parse_count(
    var: &'static str,
    value: Option<&str>,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::invalid(var, "must be a whole number greater than 0")),
    }
}

fn parse_min_version(value: Option<&str>) -> Result<MinVersion, ConfigError> {
    const VAR: &str = "TOPGUN_TLS_MIN_VERSION";
    let Some(value) = value else {
        return Ok(MinVersion::Tls12);
    };
    match value.to_ascii_lowercase().as_str() {
        "tlsv1.2" => Ok(MinVersion::Tls12),
        "tlsv1.3" => Ok(MinVersion::Tls13),
        "tlsv1" | "tlsv1.0" | "tlsv1.1" | "sslv3" => Err(ConfigError::invalid(
            VAR,
            "TLS versions before 1.2 are not supported; use TLSv1.2 or TLSv1.3",
        )),
        _ => Err(ConfigError::invalid(VAR, "must be TLSv1.2 or TLSv1.3")),
    }
}

/// TLS 1.3 suites OpenSSL 3 implements. OpenSSL skips unknown names silently, which
/// could leave TLS 1.3 with no suite at all, so they are checked here.
const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
];

fn parse_ciphersuites(value: Option<&str>) -> Result<String, ConfigError> {
    const VAR: &str = "TOPGUN_TLS_CIPHERSUITES";
    let Some(value) = value else {
        return Ok(DEFAULT_CIPHERSUITES.to_owned());
    };
    if !value.split(':').all(|suite| TLS13_SUITES.contains(&suite)) {
        return Err(ConfigError::invalid(
            VAR,
            format!(
                "names something that is not a TLS 1.3 ciphersuite; use a colon-separated list of {}",
                TLS13_SUITES.join(", ")
            ),
        ));
    }
    Ok(value.to_owned())
}

/// `LOG_LEVEL` takes the reference server's pino levels, or a `tracing` filter.
fn parse_log_level(value: Option<&str>) -> Result<String, ConfigError> {
    const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
    let filter = match value.unwrap_or("info") {
        "fatal" => "error",
        "silent" => "off",
        other => other,
    };
    // A bare word that is no level would be read as a target name and silence every
    // log line, so only directives (with `=` or `,`) may be anything else.
    let bare_unknown = !filter.contains(['=', ','])
        && !LEVELS
            .iter()
            .any(|level| filter.eq_ignore_ascii_case(level));
    if bare_unknown
        || tracing_subscriber::EnvFilter::builder()
            .parse(filter)
            .is_err()
    {
        return Err(ConfigError::invalid(
            "LOG_LEVEL",
            "must be trace, debug, info, warn, error, fatal or silent (or a tracing filter)",
        ));
    }
    Ok(filter.to_owned())
}

fn parse_log_format(value: Option<&str>, production: bool) -> Result<bool, ConfigError> {
    match value {
        None => Ok(production),
        Some("json") => Ok(true),
        Some("text") => Ok(false),
        Some(_) => Err(ConfigError::invalid(
            "TOPGUN_LOG_FORMAT",
            "must be `json` or `text`",
        )),
    }
}

fn parse_peers(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut peers = Vec::new();
    for (index, peer) in value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let valid = peer.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            return Err(ConfigError::invalid(
                "TOPGUN_PEERS",
                format!(
                    "entry #{} is not host:port; list peers as host:port separated by commas",
                    index + 1
                ),
            ));
        }
        peers.push(peer.to_owned());
    }
    Ok(peers)
}

/// `node-` and six base-36 characters, as the reference server names nodes.
fn random_node_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 6];
    openssl::rand::rand_bytes(&mut bytes).expect("the OpenSSL random generator is available");
    let suffix: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("node-{suffix}")
}

#[cfg(test)]
mod tests;
