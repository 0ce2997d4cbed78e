//! The variables as read, and how they combine into a [`Config`]: defaults, the
//! cluster's fallbacks to the client settings, and the checks that span variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::fips::{self, FIPS_CIPHERS, FIPS_CIPHERSUITES, FIPS_GROUPS};
use super::parse::*;
use super::pins::parse_pins;
use super::{
    ClientListenerConfig, ClusterConfig, Config, ConfigError, Discovery, IdentitySource, Ignored,
    Limits, LogConfig, MetricsConfig, PassphraseSource, ReloadConfig, Secret, TlsConfig,
    TlsProfile, VarPath, DEFAULT_CIPHERS, DEFAULT_GROUPS, DEFAULT_JWT_SECRET,
};

/// The largest `TOPGUN_MAX_MESSAGE_SIZE` accepted: one message may be held in memory
/// whole, so the bound is a bound on what one client can make the node allocate.
const MAX_MESSAGE_SIZE_LIMIT: usize = 1 << 30;

/// Every variable the node reads. `envy` lower-cases names, so the fields of `Raw` are
/// these names in lower case.
pub const KNOWN_VARS: &[&str] = &[
    "TOPGUN_HOST",
    "TOPGUN_PORT",
    "TOPGUN_CLUSTER_PORT",
    "TOPGUN_METRICS_HOST",
    "TOPGUN_METRICS_PORT",
    "TOPGUN_METRICS_TLS_ENABLED",
    "TOPGUN_METRICS_TLS_CERT_PATH",
    "TOPGUN_METRICS_TLS_KEY_PATH",
    "TOPGUN_METRICS_TLS_CA_PATH",
    "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT",
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
    "TOPGUN_TLS_SESSION_TICKETS",
    "TOPGUN_TLS_RELOAD_INTERVAL_MS",
    "TOPGUN_TLS_TICKET_ROTATION_MS",
    "TOPGUN_CLUSTER_TLS_ENABLED",
    "TOPGUN_CLUSTER_TLS_CERT_PATH",
    "TOPGUN_CLUSTER_TLS_KEY_PATH",
    "TOPGUN_CLUSTER_TLS_PKCS12_PATH",
    "TOPGUN_CLUSTER_TLS_CA_PATH",
    "TOPGUN_CLUSTER_TLS_PASSPHRASE",
    "TOPGUN_CLUSTER_TLS_PASSPHRASE_FILE",
    "TOPGUN_CLUSTER_MTLS",
    "TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED",
    "TOPGUN_CLUSTER_ENABLED",
    "TOPGUN_CLUSTER_ADVERTISE_HOST",
    "TOPGUN_CLUSTER_PING_INTERVAL_MS",
    "TOPGUN_CLUSTER_PEER_TIMEOUT_MS",
    "TOPGUN_CLUSTER_ANTI_ENTROPY_INTERVAL_MS",
    "TOPGUN_CLUSTER_PINS",
    "TOPGUN_CLUSTER_ALLOWED_IDENTITIES",
    "TOPGUN_CLUSTER_CRL_PATH",
    "TOPGUN_MAX_CONNECTIONS",
    "TOPGUN_MAX_CONNECTION_RATE_PER_IP",
    "TOPGUN_MAX_MESSAGE_SIZE",
    "TOPGUN_SHUTDOWN_TIMEOUT_MS",
    "TOPGUN_AUTH_TIMEOUT_MS",
    "TOPGUN_POLICIES_PATH",
    "TOPGUN_GC_INTERVAL_MS",
    "TOPGUN_DATA_DIR",
    "TOPGUN_FIPS",
    "TOPGUN_STORAGE",
];

/// The variables as strings; [`Raw::check`] parses each so that errors name the variable.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Raw {
    topgun_host: Option<String>,
    topgun_port: Option<String>,
    topgun_cluster_port: Option<String>,
    topgun_metrics_host: Option<String>,
    topgun_metrics_port: Option<String>,
    topgun_metrics_tls_enabled: Option<String>,
    topgun_metrics_tls_cert_path: Option<String>,
    topgun_metrics_tls_key_path: Option<String>,
    topgun_metrics_tls_ca_path: Option<String>,
    topgun_metrics_tls_require_client_cert: Option<String>,
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
    topgun_tls_session_tickets: Option<String>,
    topgun_tls_reload_interval_ms: Option<String>,
    topgun_tls_ticket_rotation_ms: Option<String>,
    topgun_cluster_tls_enabled: Option<String>,
    topgun_cluster_tls_cert_path: Option<String>,
    topgun_cluster_tls_key_path: Option<String>,
    topgun_cluster_tls_pkcs12_path: Option<String>,
    topgun_cluster_tls_ca_path: Option<String>,
    topgun_cluster_tls_passphrase: Option<String>,
    topgun_cluster_tls_passphrase_file: Option<String>,
    topgun_cluster_mtls: Option<String>,
    topgun_cluster_tls_reject_unauthorized: Option<String>,
    topgun_cluster_enabled: Option<String>,
    topgun_cluster_advertise_host: Option<String>,
    topgun_cluster_ping_interval_ms: Option<String>,
    topgun_cluster_peer_timeout_ms: Option<String>,
    topgun_cluster_anti_entropy_interval_ms: Option<String>,
    topgun_cluster_pins: Option<String>,
    topgun_cluster_allowed_identities: Option<String>,
    topgun_cluster_crl_path: Option<String>,
    topgun_max_connections: Option<String>,
    topgun_max_connection_rate_per_ip: Option<String>,
    topgun_max_message_size: Option<String>,
    topgun_shutdown_timeout_ms: Option<String>,
    topgun_auth_timeout_ms: Option<String>,
    topgun_policies_path: Option<String>,
    topgun_gc_interval_ms: Option<String>,
    topgun_data_dir: Option<String>,
    topgun_fips: Option<String>,
    topgun_storage: Option<String>,
}

impl Raw {
    pub(super) fn check(self, unknown_vars: Vec<String>) -> Result<Config, ConfigError> {
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

        let fips_mode = parse_bool("TOPGUN_FIPS", self.topgun_fips.as_deref(), false)?;
        let mut profile = TlsProfile {
            min_version: parse_min_version(self.topgun_tls_min_version.as_deref())?,
            ciphers: text_or(self.topgun_tls_ciphers.as_deref(), DEFAULT_CIPHERS),
            ciphersuites: parse_ciphersuites(self.topgun_tls_ciphersuites.as_deref())?,
            groups: text_or(self.topgun_tls_groups.as_deref(), DEFAULT_GROUPS),
            session_tickets: parse_bool(
                "TOPGUN_TLS_SESSION_TICKETS",
                self.topgun_tls_session_tickets.as_deref(),
                true,
            )?,
        };
        let reload = ReloadConfig {
            interval: parse_optional_millis(
                "TOPGUN_TLS_RELOAD_INTERVAL_MS",
                self.topgun_tls_reload_interval_ms.as_deref(),
                10_000,
            )?,
            ticket_rotation: parse_optional_millis(
                "TOPGUN_TLS_TICKET_ROTATION_MS",
                self.topgun_tls_ticket_rotation_ms.as_deref(),
                43_200_000,
            )?,
        };
        if fips_mode {
            let defaults = [
                (&self.topgun_tls_ciphers, &mut profile.ciphers, FIPS_CIPHERS),
                (
                    &self.topgun_tls_ciphersuites,
                    &mut profile.ciphersuites,
                    FIPS_CIPHERSUITES,
                ),
                (&self.topgun_tls_groups, &mut profile.groups, FIPS_GROUPS),
            ];
            for (set, value, default) in defaults {
                if set.is_none() {
                    *value = default.to_owned();
                }
            }
            fips::check_profile(&profile)?;
        }

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
            Some(tls) if self.topgun_cluster_crl_path.is_some() && tls.ca.is_none() => {
                return Err(ConfigError::invalid(
                    "TOPGUN_CLUSTER_CRL_PATH",
                    "revocation lists are checked against the cluster CA; set \
                     TOPGUN_CLUSTER_TLS_CA_PATH",
                ))
            }
            _ => {}
        }

        let metrics_tls = self.metrics_tls(&profile)?;
        let require_client_cert = parse_bool(
            "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT",
            self.topgun_metrics_tls_require_client_cert.as_deref(),
            false,
        )?;
        match &metrics_tls {
            None if require_client_cert => {
                return Err(ConfigError::invalid(
                    "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT",
                    "scraper certificates need metrics TLS; set TOPGUN_METRICS_TLS_ENABLED=true",
                ))
            }
            Some(tls) if require_client_cert && tls.ca.is_none() => {
                return Err(ConfigError::invalid(
                    "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT",
                    "scraper certificates need a CA to verify them; set TOPGUN_METRICS_TLS_CA_PATH",
                ))
            }
            _ => {}
        }

        if fips_mode {
            for tls in [&client_tls, &cluster_tls, &metrics_tls]
                .into_iter()
                .flatten()
            {
                fips::check_identity(tls)?;
            }
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
            auth_timeout: parse_millis(
                "TOPGUN_AUTH_TIMEOUT_MS",
                self.topgun_auth_timeout_ms.as_deref(),
                10_000,
            )?,
            gc_interval: parse_millis(
                "TOPGUN_GC_INTERVAL_MS",
                self.topgun_gc_interval_ms.as_deref(),
                3_600_000,
            )?,
            connection_rate_per_ip: match self.topgun_max_connection_rate_per_ip.as_deref() {
                None => None,
                Some(value) => Some(
                    parse_count("TOPGUN_MAX_CONNECTION_RATE_PER_IP", Some(value), 0)
                        .map(|rate| rate.min(u32::MAX as usize) as u32)?,
                ),
            },
        };

        let discovery_interval = parse_millis(
            "TOPGUN_DISCOVERY_INTERVAL",
            self.topgun_discovery_interval.as_deref(),
            10_000,
        )?;
        let peers = parse_peers(self.topgun_peers.as_deref())?;
        // The cluster port is opened only when asked for: a standalone node exposes
        // nothing that accepts writes without a token.
        let implied =
            !peers.is_empty() || self.topgun_discovery_service.is_some() || cluster_tls.is_some();
        let enabled = parse_bool(
            "TOPGUN_CLUSTER_ENABLED",
            self.topgun_cluster_enabled.as_deref(),
            implied,
        )?;
        let ping_interval = parse_millis(
            "TOPGUN_CLUSTER_PING_INTERVAL_MS",
            self.topgun_cluster_ping_interval_ms.as_deref(),
            1_000,
        )?;
        let peer_timeout = parse_millis(
            "TOPGUN_CLUSTER_PEER_TIMEOUT_MS",
            self.topgun_cluster_peer_timeout_ms.as_deref(),
            5_000,
        )?;
        if peer_timeout <= ping_interval {
            return Err(ConfigError::invalid(
                "TOPGUN_CLUSTER_PEER_TIMEOUT_MS",
                "must be longer than TOPGUN_CLUSTER_PING_INTERVAL_MS, or live peers are dropped",
            ));
        }
        let anti_entropy_interval = parse_millis(
            "TOPGUN_CLUSTER_ANTI_ENTROPY_INTERVAL_MS",
            self.topgun_cluster_anti_entropy_interval_ms.as_deref(),
            10_000,
        )?;
        let advertise_host =
            parse_advertise_host(self.topgun_cluster_advertise_host.as_deref(), host)?;
        let discovery = match self.topgun_discovery_service {
            Some(service) => Discovery::Kubernetes {
                service,
                interval: discovery_interval,
            },
            None => Discovery::Manual,
        };

        let memory_storage = match self.topgun_storage.as_deref() {
            None | Some("embedded") => false,
            Some("memory") if self.database_url.is_some() => {
                return Err(ConfigError::invalid(
                    "TOPGUN_STORAGE",
                    "memory cannot be combined with DATABASE_URL; unset one of them",
                ))
            }
            Some("memory") => true,
            Some(_) => {
                return Err(ConfigError::invalid(
                    "TOPGUN_STORAGE",
                    "must be embedded or memory",
                ))
            }
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
                enabled,
                peers,
                discovery,
                advertise_host,
                ping_interval,
                peer_timeout,
                anti_entropy_interval,
                pins: parse_pins(self.topgun_cluster_pins.as_deref())?,
                allowed_identities: parse_identities(
                    self.topgun_cluster_allowed_identities.as_deref(),
                ),
                crl: var_path("TOPGUN_CLUSTER_CRL_PATH", &self.topgun_cluster_crl_path),
            },
            metrics: MetricsConfig {
                bind: SocketAddr::new(metrics_host, metrics_port),
                tls: metrics_tls,
                require_client_cert,
            },
            limits,
            reload,
            database_url: self.database_url.map(Secret::new),
            data_dir: PathBuf::from(self.topgun_data_dir.as_deref().unwrap_or("data")),
            memory_storage,
            policies: var_path("TOPGUN_POLICIES_PATH", &self.topgun_policies_path),
            jwt_secret_is_default: self.jwt_secret.is_none(),
            jwt_secret: Secret::new(self.jwt_secret.as_deref().unwrap_or(DEFAULT_JWT_SECRET)),
            production,
            fips: fips_mode,
            log,
            unknown_vars,
            ignored,
        })
    }

    /// TLS settings given while their listener's TLS is off: most likely a forgotten
    /// `*_TLS_ENABLED=true`, which would leave traffic unencrypted.
    fn ignored_while_off(&self) -> Vec<Ignored> {
        let listeners = [
            (
                ("TOPGUN_TLS_ENABLED", &self.topgun_tls_enabled),
                vec![
                    ("TOPGUN_TLS_CERT_PATH", &self.topgun_tls_cert_path),
                    ("TOPGUN_TLS_PKCS12_PATH", &self.topgun_tls_pkcs12_path),
                ],
            ),
            (
                (
                    "TOPGUN_CLUSTER_TLS_ENABLED",
                    &self.topgun_cluster_tls_enabled,
                ),
                vec![
                    (
                        "TOPGUN_CLUSTER_TLS_CERT_PATH",
                        &self.topgun_cluster_tls_cert_path,
                    ),
                    (
                        "TOPGUN_CLUSTER_TLS_PKCS12_PATH",
                        &self.topgun_cluster_tls_pkcs12_path,
                    ),
                    ("TOPGUN_CLUSTER_PINS", &self.topgun_cluster_pins),
                    (
                        "TOPGUN_CLUSTER_ALLOWED_IDENTITIES",
                        &self.topgun_cluster_allowed_identities,
                    ),
                    ("TOPGUN_CLUSTER_CRL_PATH", &self.topgun_cluster_crl_path),
                ],
            ),
            (
                (
                    "TOPGUN_METRICS_TLS_ENABLED",
                    &self.topgun_metrics_tls_enabled,
                ),
                vec![
                    (
                        "TOPGUN_METRICS_TLS_CERT_PATH",
                        &self.topgun_metrics_tls_cert_path,
                    ),
                    (
                        "TOPGUN_METRICS_TLS_CA_PATH",
                        &self.topgun_metrics_tls_ca_path,
                    ),
                ],
            ),
        ];

        let on = |value: &Option<String>| {
            value
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        // Cluster and metrics TLS fall back to the client's files: those count whenever
        // any of the three listeners has TLS on.
        let client_files_used = on(&self.topgun_tls_enabled)
            || on(&self.topgun_cluster_tls_enabled)
            || on(&self.topgun_metrics_tls_enabled);
        let mut ignored = Vec::new();
        for ((switch, enabled), files) in listeners {
            let used = if switch == "TOPGUN_TLS_ENABLED" {
                client_files_used
            } else {
                on(enabled)
            };
            if used {
                continue;
            }
            for (var, _) in files.into_iter().filter(|(_, value)| value.is_some()) {
                ignored.push(Ignored { var, switch });
            }
        }
        ignored
    }

    /// Variables that name files holding key material or passphrases.
    fn path_vars(&self) -> [(&'static str, &Option<String>); 16] {
        [
            ("TOPGUN_POLICIES_PATH", &self.topgun_policies_path),
            ("TOPGUN_DATA_DIR", &self.topgun_data_dir),
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
            ("TOPGUN_CLUSTER_CRL_PATH", &self.topgun_cluster_crl_path),
            (
                "TOPGUN_METRICS_TLS_CERT_PATH",
                &self.topgun_metrics_tls_cert_path,
            ),
            (
                "TOPGUN_METRICS_TLS_KEY_PATH",
                &self.topgun_metrics_tls_key_path,
            ),
            (
                "TOPGUN_METRICS_TLS_CA_PATH",
                &self.topgun_metrics_tls_ca_path,
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

    /// With `TOPGUN_METRICS_TLS_CERT_PATH` or `_KEY_PATH` set, the endpoint presents that
    /// pair, a missing half falling back to its client counterpart; with neither, it
    /// presents the client identity (PEM or PKCS#12). The CA falls back to the client CA,
    /// and an encrypted key takes the client passphrase.
    fn metrics_tls(&self, profile: &TlsProfile) -> Result<Option<TlsConfig>, ConfigError> {
        let enabled = parse_bool(
            "TOPGUN_METRICS_TLS_ENABLED",
            self.topgun_metrics_tls_enabled.as_deref(),
            false,
        )?;
        if !enabled {
            return Ok(None);
        }

        let own_pem = self.topgun_metrics_tls_cert_path.is_some()
            || self.topgun_metrics_tls_key_path.is_some();
        let identity = if own_pem {
            identity(
                ("TOPGUN_TLS_PKCS12_PATH", &None),
                fallback(
                    (
                        "TOPGUN_METRICS_TLS_CERT_PATH",
                        &self.topgun_metrics_tls_cert_path,
                    ),
                    ("TOPGUN_TLS_CERT_PATH", &self.topgun_tls_cert_path),
                ),
                fallback(
                    (
                        "TOPGUN_METRICS_TLS_KEY_PATH",
                        &self.topgun_metrics_tls_key_path,
                    ),
                    ("TOPGUN_TLS_KEY_PATH", &self.topgun_tls_key_path),
                ),
                "TOPGUN_METRICS_TLS_ENABLED",
            )?
        } else {
            identity(
                ("TOPGUN_TLS_PKCS12_PATH", &self.topgun_tls_pkcs12_path),
                ("TOPGUN_TLS_CERT_PATH", &self.topgun_tls_cert_path),
                ("TOPGUN_TLS_KEY_PATH", &self.topgun_tls_key_path),
                "TOPGUN_METRICS_TLS_ENABLED",
            )?
        };
        let ca = fallback(
            (
                "TOPGUN_METRICS_TLS_CA_PATH",
                &self.topgun_metrics_tls_ca_path,
            ),
            ("TOPGUN_TLS_CA_PATH", &self.topgun_tls_ca_path),
        );

        Ok(Some(TlsConfig {
            identity,
            ca: var_path(ca.0, ca.1),
            passphrase: self.client_passphrase()?,
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
