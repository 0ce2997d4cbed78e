//! Composition: builds every part of the node from a [`Config`], starts it, and
//! returns a handle with the bound addresses and a shutdown trigger.
//!
//! Loading is split from binding so that `check-config` runs exactly the checks
//! start-up runs, and so that no socket is bound before all key material is good.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::SslAcceptor;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::{KeyError, Verifier, MIN_HS256_SECRET_LEN};
use crate::cluster::{self, Cluster, Peers};
use crate::config::{Config, ConfigError, IdentitySource};
use crate::fanout::Fanout;
use crate::listener::client::{self, ClientContext};
use crate::listener::Listener;
use crate::locks::LockTable;
use crate::metrics::{self, endpoint, Metrics};
use crate::policy::{PolicyError, PolicySet};
use crate::reload::{self, Watched};
use crate::session::dataplane::Dataplane;
use crate::session::SessionContext;
use crate::storage::{
    EmbeddedStorage, MemoryStorage, PostgresStorage, Snapshot, Storage, StorageError,
};
use crate::store::Store;
use crate::tls::swap::Swap;
use crate::tls::{self, inspect, ListenerTls, PeerCertificates, PeerConnector, TlsError};

/// Why the node could not start. Each message names the variable or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Auth(#[from] KeyError),
    #[error("TOPGUN_POLICIES_PATH: {0}")]
    Policies(#[from] PolicyError),
    /// The storage error is chained as the source; it never contains a password.
    #[error("{var}: cannot open storage; check the setting and that the store is reachable")]
    Storage {
        var: &'static str,
        #[source]
        source: StorageError,
    },
    #[error(transparent)]
    ClusterBind(#[from] crate::cluster::BindError),
    #[error("TOPGUN_HOST/TOPGUN_PORT: cannot listen on {addr}: {io}; choose a free port or another address")]
    Bind {
        addr: SocketAddr,
        // Shown in the message itself rather than chained as a source.
        io: std::io::Error,
    },
    #[error("TOPGUN_METRICS_HOST/TOPGUN_METRICS_PORT: cannot listen on {addr}: {io}; choose a free port or another address")]
    MetricsBind {
        addr: SocketAddr,
        // Shown in the message itself rather than chained as a source.
        io: std::io::Error,
    },
}

/// Certificates closer than this to their expiry are reported at start-up.
pub const EXPIRY_WARNING_DAYS: f64 = 30.0;

/// A checked configuration with its key material loaded: everything but the sockets.
pub struct PreparedNode {
    pub config: Config,
    pub verifier: Verifier,
    pub policies: PolicySet,
    pub client_tls: Option<ListenerTls>,
    pub cluster_tls: Option<ListenerTls>,
    /// The TLS side of dialling peers, when cluster TLS is on.
    pub cluster_dialer: Option<PeerConnector>,
    pub metrics_tls: Option<ListenerTls>,
}

/// Loads and checks all key material named by `config`.
pub fn prepare(config: Config) -> Result<PreparedNode, StartError> {
    let client_tls = match &config.client.tls {
        Some(settings) => Some(tls::prepare(
            settings,
            PeerCertificates::NotRequested,
            CLIENT_SESSIONS,
        )?),
        None => None,
    };

    let (cluster_tls, cluster_dialer) = match &config.cluster.tls {
        Some(settings) => {
            let (listener, dialer) =
                tls::prepare_cluster(settings, &config.cluster, config.limits.handshake_timeout)?;
            (Some(listener), Some(dialer))
        }
        None => (None, None),
    };

    let metrics_tls = endpoint::prepare_tls(&config.metrics)?;

    let verifier = Verifier::from_secret(&config.jwt_secret)?;
    let policies = match &config.policies {
        Some(file) => PolicySet::from_file(&file.path)?,
        None => PolicySet::upstream_default(),
    };

    Ok(PreparedNode {
        config,
        verifier,
        policies,
        client_tls,
        cluster_tls,
        cluster_dialer,
        metrics_tls,
    })
}

/// A node that is serving.
pub struct RunningNode {
    reload_trigger: Arc<Notify>,
    client_addr: SocketAddr,
    cluster: Option<Arc<Cluster>>,
    cluster_addr: Option<SocketAddr>,
    metrics_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl PreparedNode {
    /// Logs what an operator should know about this configuration before it serves.
    pub fn log_warnings(&self) {
        let config = &self.config;
        for ignored in &config.ignored {
            warn!(var = ignored.var, switch = ignored.switch, "TLS setting set but TLS is off for this listener; set the switch to true to use it");
        }
        for var in &config.unknown_vars {
            warn!(var = %var, "unknown TOPGUN_ variable ignored; check its spelling");
        }
        if config.production && config.client.tls.is_none() {
            warn!("TLS is disabled! Client connections are NOT encrypted.");
        }
        if config.production && config.cluster.tls.is_none() {
            warn!("Cluster TLS is disabled! Inter-node traffic is NOT encrypted.");
        }
        if config.cluster.tls.is_some() && !config.cluster.reject_unauthorized {
            warn!("TOPGUN_CLUSTER_TLS_REJECT_UNAUTHORIZED=false: peer certificates are NOT verified; use this only in development");
        }
        if let Some(crls) = self.cluster_dialer.as_ref().and_then(|d| d.policy().crls()) {
            for stale in crls.stale() {
                warn!(file = %crls.file, crl = stale.position, next_update = %stale.next_update, "cluster CRL is past its nextUpdate; its revocations still apply, but newer ones may be missing; publish a fresh CRL");
            }
        }
        if config.production && config.jwt_secret_is_default {
            warn!("JWT_SECRET is not set: the public development secret is in use; set JWT_SECRET");
        } else if !config.jwt_secret_is_default && self.verifier.secret_is_short() {
            warn!(
                min_bytes = MIN_HS256_SECRET_LEN,
                "JWT_SECRET is a short HS256 secret; use a longer random one"
            );
        }

        let listeners = [
            ("client", &self.client_tls),
            ("cluster", &self.cluster_tls),
            ("metrics", &self.metrics_tls),
        ];
        for (listener, tls) in listeners {
            let Some(tls) = tls else { continue };
            let cert = &tls.identity.leaf;
            let days_left = inspect::days_until(cert.not_after());
            if days_left < EXPIRY_WARNING_DAYS {
                warn!(listener, file = %tls.identity.source, days_left = days_left.floor() as i64, "certificate expires soon; renew it");
            }
            if tls::identity::not_yet_valid(cert) {
                warn!(listener, file = %tls.identity.source, "certificate is not valid yet; check the clock");
            }
            if let Some(Err(reason)) = &tls.chain_verified {
                warn!(listener, file = %tls.identity.source, %reason, "certificate does not verify against the configured CA");
            }
        }
    }

    /// Hands the served certificates and the CAs to `metrics` for
    /// `topgun_certificate_expiry_days`.
    fn track_certificates(&self, metrics: &Metrics) {
        // The metrics endpoint counts as its own type only with its own certificate;
        // otherwise it serves the client one, already tracked as `server`.
        let own_metrics_cert = self.config.metrics.tls.as_ref().is_some_and(|tls| {
            matches!(&tls.identity, IdentitySource::Pem { cert, .. } if cert.var.starts_with("TOPGUN_METRICS_"))
        });
        let listeners = [
            ("server", &self.client_tls),
            ("cluster", &self.cluster_tls),
            ("metrics", &self.metrics_tls),
        ];
        for (cert_type, tls) in listeners {
            let Some(tls) = tls else { continue };
            if cert_type != "metrics" || own_metrics_cert {
                metrics.track_certificate(cert_type, tls.identity.leaf.clone());
            }
            for ca in &tls.ca {
                metrics.track_certificate("ca", ca.clone());
            }
        }
    }

    /// Binds the listeners and starts serving.
    pub async fn start(self) -> Result<RunningNode, StartError> {
        let config = &self.config;
        // Storage first: a store that cannot be opened stops the node before it binds.
        let (storage, snapshot) = open_storage(config).await?;
        let records: usize = snapshot.lww.values().map(|map| map.len()).sum::<usize>()
            + snapshot
                .or
                .values()
                .flat_map(|keys| keys.values())
                .map(|tags| tags.len())
                .sum::<usize>();
        info!(records, "storage loaded");

        let cluster_port = match config.cluster.enabled {
            true => Some(cluster::bind(&config.cluster).await?),
            false => None,
        };
        let peers = cluster_port.as_ref().map(|(_, bound)| {
            let address = cluster::advertised_address(&config.cluster, *bound);
            Arc::new(Peers::new(&config.node_id, &address))
        });

        let bind = config.client.bind;
        let tcp = TcpListener::bind(bind)
            .await
            .map_err(|io| StartError::Bind { addr: bind, io })?;
        let listener = Listener::new("client", tcp, config.limits.max_connections)
            .limit_rate(config.limits.connection_rate_per_ip);
        let client_addr = listener
            .local_addr()
            .map_err(|io| StartError::Bind { addr: bind, io })?;

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let metrics = Arc::new(Metrics::new());
        if let Some(fips) = crate::tls::fips::active() {
            metrics.set_fips_mode(true);
            metrics.set_fips_provider(&fips.name, &fips.version);
        }
        self.track_certificates(&metrics);
        // From here on, handshakes take the current context of each listener.
        let served = Served {
            client: self.client_tls.map(|tls| Swap::new(tls.acceptor)),
            cluster: self.cluster_tls.map(|tls| Swap::new(tls.acceptor)),
            dialer: self.cluster_dialer.map(Swap::new),
            metrics: self.metrics_tls.map(|tls| Swap::new(tls.acceptor)),
        };
        let reload_trigger = Arc::new(Notify::new());
        let watched = reloadable(config, &served, &metrics);
        let dataplane = Arc::new(Dataplane {
            node_id: config.node_id.clone(),
            cluster: peers.clone(),
            store: Mutex::new(Store::restore(&config.node_id, snapshot)),
            storage,
            writes: tokio::sync::Mutex::new(()),
            fanout: Arc::new(Fanout::default()),
            policies: self.policies,
            locks: Mutex::new(LockTable::default()),
            remote_holders: Mutex::default(),
            metrics: metrics.clone(),
        });
        metrics.set_map_sizes(metrics::weak_map_sizes(
            Arc::downgrade(&dataplane),
            Dataplane::map_sizes,
        ));
        tasks.spawn(sweep_locks(dataplane.clone(), shutdown.clone()));
        tasks.spawn(collect_garbage(
            dataplane.clone(),
            config.limits.gc_interval,
            shutdown.clone(),
        ));
        let client = Arc::new(ClientContext {
            acceptor: served.client,
            node_id: config.node_id.clone(),
            handshake_timeout: config.limits.handshake_timeout,
            max_message_size: config.limits.max_message_size,
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
            metrics: metrics.clone(),
            session: Arc::new(SessionContext {
                verifier: Arc::new(self.verifier),
                auth_timeout: config.limits.auth_timeout,
                shutdown: shutdown.clone(),
                dataplane: dataplane.clone(),
            }),
        });

        let metrics_addr = endpoint::start(
            &config.metrics,
            served.metrics,
            metrics.clone(),
            &config.limits,
            &shutdown,
            &tasks,
        )
        .await
        .map_err(|io| StartError::MetricsBind {
            addr: config.metrics.bind,
            io,
        })?;

        let secure = client.acceptor.is_some();
        info!(addr = %client_addr, tls = secure, node.id = %config.node_id, "client listener ready");

        let listener = listener.counted_by(metrics.clone());
        tasks.spawn(
            listener.run(shutdown.clone(), tasks.clone(), move |tcp, slot| {
                client::serve(client.clone(), tcp, slot)
            }),
        );

        let mut cluster_addr = None;
        let mut running_cluster = None;
        if let (Some((tcp, bound)), Some(peers)) = (cluster_port, peers) {
            let settings = cluster::Settings {
                ping_interval: config.cluster.ping_interval,
                peer_timeout: config.cluster.peer_timeout,
                anti_entropy_interval: config.cluster.anti_entropy_interval,
                handshake_timeout: config.limits.handshake_timeout,
                max_message_size: cluster::Settings::link_limit(config.limits.max_message_size),
            };
            info!(
                addr = %bound,
                advertised = %peers.address(),
                tls = served.cluster.is_some(),
                mtls = config.cluster.mtls,
                "cluster listener ready"
            );
            let start = cluster::Start {
                peers,
                dataplane,
                settings,
                acceptor: served.cluster,
                dialer: served.dialer,
                max_connections: config.limits.max_connections,
                connection_rate_per_ip: config.limits.connection_rate_per_ip,
                shutdown: shutdown.clone(),
                tasks: tasks.clone(),
            };
            running_cluster = Some(cluster::start(&config.cluster, tcp, start));
            cluster_addr = Some(bound);
        }

        tasks.spawn(reload::run(
            watched,
            config.reload.interval,
            config.reload.ticket_rotation,
            reload_trigger.clone(),
            metrics,
            shutdown.clone(),
        ));

        Ok(RunningNode {
            reload_trigger,
            client_addr,
            cluster: running_cluster,
            cluster_addr,
            metrics_addr,
            shutdown,
            tasks,
        })
    }
}

/// The TLS contexts handshakes take, each replaced by a reload.
struct Served {
    client: Option<Arc<Swap<SslAcceptor>>>,
    cluster: Option<Arc<Swap<SslAcceptor>>>,
    dialer: Option<Arc<Swap<PeerConnector>>>,
    metrics: Option<Arc<Swap<SslAcceptor>>>,
}

/// Session id contexts: a session of one listener never resumes on another.
const CLIENT_SESSIONS: &[u8] = b"topgun-client";

/// The listeners whose key material [`reload::run`] watches, each with how to rebuild
/// it exactly as start-up built it.
fn reloadable(config: &Config, served: &Served, metrics: &Arc<Metrics>) -> Vec<Watched> {
    let mut watched = Vec::new();
    if let (Some(settings), Some(swap)) = (&config.client.tls, &served.client) {
        let (settings, swap, metrics) = (settings.clone(), swap.clone(), metrics.clone());
        watched.push(Watched {
            listener: "client",
            files: reload::files_of(&settings),
            rebuild: Box::new(move || {
                let fresh =
                    tls::prepare(&settings, PeerCertificates::NotRequested, CLIENT_SESSIONS)?;
                metrics.replace_certificates("server", vec![fresh.identity.leaf.clone()]);
                swap.replace(fresh.acceptor);
                Ok(())
            }),
        });
    }
    if let (Some(settings), Some(acceptor), Some(dialer)) =
        (&config.cluster.tls, &served.cluster, &served.dialer)
    {
        let mut files = reload::files_of(settings);
        files.extend(config.cluster.crl.iter().map(|crl| crl.path.clone()));
        let (settings, cluster_config) = (settings.clone(), config.cluster.clone());
        let timeout = config.limits.handshake_timeout;
        let (acceptor, dialer, metrics) = (acceptor.clone(), dialer.clone(), metrics.clone());
        watched.push(Watched {
            listener: "cluster",
            files,
            rebuild: Box::new(move || {
                let (listener, connector) =
                    tls::prepare_cluster(&settings, &cluster_config, timeout)?;
                metrics.replace_certificates("cluster", vec![listener.identity.leaf.clone()]);
                acceptor.replace(listener.acceptor);
                dialer.replace(connector);
                Ok(())
            }),
        });
    }
    if let (Some(settings), Some(swap)) = (&config.metrics.tls, &served.metrics) {
        let own_certificate = matches!(
            &settings.identity,
            IdentitySource::Pem { cert, .. } if cert.var.starts_with("TOPGUN_METRICS_")
        );
        let (metrics_config, swap, metrics) =
            (config.metrics.clone(), swap.clone(), metrics.clone());
        watched.push(Watched {
            listener: "metrics",
            files: reload::files_of(settings),
            rebuild: Box::new(move || {
                let Some(fresh) = endpoint::prepare_tls(&metrics_config)? else {
                    return Ok(());
                };
                if own_certificate {
                    metrics.replace_certificates("metrics", vec![fresh.identity.leaf.clone()]);
                }
                swap.replace(fresh.acceptor);
                Ok(())
            }),
        });
    }
    watched
}

/// PostgreSQL when `DATABASE_URL` is set, memory when `TOPGUN_STORAGE=memory`, else the
/// embedded store; and its contents.
async fn open_storage(config: &Config) -> Result<(Box<dyn Storage>, Snapshot), StartError> {
    if config.memory_storage {
        warn!("TOPGUN_STORAGE=memory: writes are acknowledged without being durable and are lost when the node stops; use it for benchmarks and tests only");
        return Ok((Box::new(MemoryStorage), Snapshot::default()));
    }
    let (storage, var): (Box<dyn Storage>, _) = match &config.database_url {
        Some(url) => {
            let storage = PostgresStorage::connect(url.expose())
                .await
                .map_err(|source| StartError::Storage {
                    var: "DATABASE_URL",
                    source,
                })?;
            (Box::new(storage), "DATABASE_URL")
        }
        None => {
            let storage = EmbeddedStorage::open(&config.data_dir)
                .await
                .map_err(|source| StartError::Storage {
                    var: "TOPGUN_DATA_DIR",
                    source,
                })?;
            (Box::new(storage), "TOPGUN_DATA_DIR")
        }
    };
    let snapshot = storage
        .load()
        .await
        .map_err(|source| StartError::Storage { var, source })?;
    Ok((storage, snapshot))
}

/// Hands expired locks on, once a second, until shutdown (PROTOCOL.md §11).
async fn sweep_locks(dataplane: Arc<Dataplane>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(LOCK_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => dataplane.sweep_locks(),
        }
    }
}

/// Runs garbage collection every `interval`, the first time one interval after start.
async fn collect_garbage(
    dataplane: Arc<Dataplane>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let start = tokio::time::Instant::now() + interval;
    let mut tick = tokio::time::interval_at(start, interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => dataplane.collect_garbage().await,
        }
    }
}

/// How often expired locks are handed to their next waiter.
const LOCK_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl RunningNode {
    /// Where the client listener is bound (useful with port 0).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Where the cluster listener is bound, when the cluster is enabled.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.cluster_addr
    }

    /// The running cluster, when enabled: membership, partition table, counters.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Rebuilds every listener's TLS material from its files now (SIGHUP); see
    /// [`crate::reload`].
    pub fn reload_tls(&self) {
        self.reload_trigger.notify_one();
    }

    /// Where the metrics endpoint is bound (useful with port 0).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Stops accepting, tells every client to go (`SHUTDOWN_PENDING`, close 1001) and
    /// waits up to `drain` for connections to end. Returns whether all ended in time.
    pub async fn shutdown(self, drain: Duration) -> bool {
        self.shutdown.cancel();
        self.tasks.close();
        tokio::time::timeout(drain, self.tasks.wait()).await.is_ok()
    }
}
