//! The node's Prometheus metrics: one [`Registry`] per node and one typed handle per
//! metric, registered once.
//!
//! Each node owns its [`Metrics`] (several nodes share one test process, so the
//! crate's global registry is never used); it is created at start-up and handed as an
//! `Arc` to whatever counts. Label values come from fixed, documented sets or from the
//! node's own names (maps, cluster peer ids): never addresses, SNI names or user ids.
//! [`endpoint`] serves the registry on the metrics port.

pub mod endpoint;

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use openssl::x509::X509;
use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::tls::handshake::Established;
use crate::tls::inspect;

/// The listeners whose TLS handshakes are counted, as the `listener` label spells them.
pub const LISTENERS: &[&str] = &["client", "cluster", "metrics"];

/// Every value of the `error_type` label of `topgun_tls_handshake_errors_total` and
/// `topgun_cluster_dial_errors_total`. Anything else is counted as `other`.
pub const HANDSHAKE_ERROR_TYPES: &[&str] = &[
    "timeout",
    "unsupported_protocol",
    "no_shared_cipher",
    "unknown_ca",
    "cert_expired",
    "cert_not_yet_valid",
    "cert_revoked",
    "wrong_usage",
    "name_mismatch",
    "bad_certificate",
    "no_client_cert",
    "pin_mismatch",
    "identity_rejected",
    "not_tls",
    "unexpected_eof",
    "other",
];

/// Extra `error_type` values of `topgun_cluster_dial_errors_total`: failures before TLS.
pub const DIAL_ERROR_TYPES: &[&str] = &["connect", "dns"];

/// The values of the `cert_type` label of `topgun_certificate_expiry_days`.
pub const CERT_TYPES: &[&str] = &["server", "cluster", "ca", "metrics"];

/// At most this many distinct map names become `map` label values; the maps beyond
/// are counted under [`OVERFLOW_MAP`], so a client inventing map names cannot grow
/// the scrape without bound.
pub const MAX_MAP_LABELS: usize = 1000;

/// The `map` label of maps beyond [`MAX_MAP_LABELS`].
pub const OVERFLOW_MAP: &str = "_other";

/// Handshake duration buckets, in seconds: a local handshake takes about a millisecond,
/// and the default handshake timeout is ten seconds.
const HANDSHAKE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What a client asked for, as the `type` label of `topgun_ops_total` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A write that sets a value (`OP_BATCH` or `CLIENT_OP`).
    Put,
    /// A write that removes a value.
    Delete,
    /// `QUERY_SUB`.
    Subscribe,
    /// `SYNC_INIT`.
    Get,
}

impl Op {
    /// The kind of a write op.
    pub fn write(is_removal: bool) -> Op {
        if is_removal {
            Op::Delete
        } else {
            Op::Put
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Delete => "DELETE",
            Op::Subscribe => "SUBSCRIBE",
            Op::Get => "GET",
        }
    }
}

/// Reports the number of items of each map; called at every scrape.
pub type MapSizes = Box<dyn Fn() -> Vec<(String, usize)> + Send + Sync>;

/// One node's metrics.
pub struct Metrics {
    registry: Registry,
    connected_clients: IntGauge,
    map_size_items: IntGaugeVec,
    ops: IntCounterVec,
    cluster_members: IntGauge,
    tls_connections: IntCounterVec,
    tls_handshake_errors: IntCounterVec,
    tls_handshake_duration: HistogramVec,
    tls_sessions_resumed: IntCounterVec,
    certificate_expiry_days: GaugeVec,
    fips_mode: IntGauge,
    fips_provider: IntGaugeVec,
    cluster_peer_up: IntGaugeVec,
    cluster_forwarded_ops: IntCounter,
    cluster_replication_queue_depth: IntGaugeVec,
    cluster_dial_errors: IntCounterVec,
    tls_reloads: IntCounterVec,
    connections_refused: IntCounterVec,
    /// The certificates whose expiry is exported, re-read at every scrape.
    certificates: Mutex<Vec<(&'static str, X509)>>,
    map_sizes: Mutex<Option<MapSizes>>,
    map_labels: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric, with the handshake error counters of each
    /// listener at zero so that rates work from the first scrape.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let metrics = Metrics {
            connected_clients: register(
                &registry,
                IntGauge::new(
                    "topgun_connected_clients",
                    "Open client WebSocket connections, authenticated or not",
                ),
            ),
            map_size_items: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "topgun_map_size_items",
                        "Items per map: LWW records including tombstones, OR records",
                    ),
                    &["map"],
                ),
            ),
            ops: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "topgun_ops_total",
                        "Client operations by type (PUT, DELETE, SUBSCRIBE, GET) and map",
                    ),
                    &["type", "map"],
                ),
            ),
            cluster_members: register(
                &registry,
                IntGauge::new(
                    "topgun_cluster_members",
                    "Cluster members this node knows of, itself included",
                ),
            ),
            tls_connections: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "topgun_tls_connections_total",
                        "Completed TLS handshakes by listener, protocol version and cipher",
                    ),
                    &["listener", "protocol_version", "cipher"],
                ),
            ),
            tls_handshake_errors: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "topgun_tls_handshake_errors_total",
                        "Failed TLS handshakes by listener and error type",
                    ),
                    &["listener", "error_type"],
                ),
            ),
            tls_handshake_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "topgun_tls_handshake_duration_seconds",
                        "Time from accepting a connection to a completed TLS handshake",
                    )
                    .buckets(HANDSHAKE_BUCKETS.to_vec()),
                    &["listener"],
                ),
            ),
            tls_sessions_resumed: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "topgun_tls_sessions_resumed_total",
                        "Completed TLS handshakes that resumed an earlier session",
                    ),
                    &["listener"],
                ),
            ),
            certificate_expiry_days: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "topgun_certificate_expiry_days",
                        "Days until the certificate expires, fractional; negative once expired",
                    ),
                    &["cert_type"],
                ),
            ),
            fips_mode: register(
                &registry,
                IntGauge::new(
                    "topgun_fips_mode",
                    "1 when OpenSSL runs with the FIPS provider, else 0",
                ),
            ),
            fips_provider: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "topgun_fips_provider_info",
                        "1 for the FIPS provider in force, by its name and version; absent without FIPS mode",
                    ),
                    &["provider", "version"],
                ),
            ),
            cluster_peer_up: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "topgun_cluster_peer_up",
                        "1 while the link to a cluster peer is up, 0 while it is down",
                    ),
                    &["peer"],
                ),
            ),
            cluster_forwarded_ops: register(
                &registry,
                IntCounter::new(
                    "topgun_cluster_forwarded_ops_total",
                    "Operations forwarded to other cluster members",
                ),
            ),
            cluster_replication_queue_depth: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "topgun_cluster_replication_queue_depth",
                        "Operations queued for a cluster peer and not yet sent",
                    ),
                    &["peer"],
                ),
            ),
            cluster_dial_errors: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "topgun_cluster_dial_errors_total",
                        "Failed outbound connections to cluster peers by error type",
                    ),
                    &["error_type"],
                ),
            ),
            tls_reloads: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "topgun_tls_reloads_total",
                        "Reloads of a listener's TLS material by result (success, failure)",
                    ),
                    &["listener", "result"],
                ),
            ),
            connections_refused: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "topgun_connections_refused_total",
                        "Connections closed before any handshake, by listener and reason",
                    ),
                    &["listener", "reason"],
                ),
            ),
            certificates: Mutex::new(Vec::new()),
            map_sizes: Mutex::new(None),
            map_labels: Mutex::new(HashSet::new()),
            registry,
        };

        for listener in LISTENERS {
            for error_type in HANDSHAKE_ERROR_TYPES {
                metrics
                    .tls_handshake_errors
                    .with_label_values(&[listener, error_type]);
            }
            for result in ["success", "failure"] {
                metrics.tls_reloads.with_label_values(&[listener, result]);
            }
            metrics
                .connections_refused
                .with_label_values(&[listener, "rate"]);
        }
        for error_type in HANDSHAKE_ERROR_TYPES.iter().chain(DIAL_ERROR_TYPES) {
            metrics.cluster_dial_errors.with_label_values(&[error_type]);
        }
        metrics.cluster_members.set(1);
        metrics
            .registry
            .register(Box::new(ProcessCollector::new(process_id(), "topgun")))
            .expect("the process collector is registered once");
        metrics
    }

    /// The registry in Prometheus text format 0.0.4, with the certificate expiry and
    /// map sizes sampled now.
    pub fn render(&self) -> String {
        self.sample();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("the registry holds only valid metric families");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// Counts a client WebSocket as connected until the returned guard is dropped.
    pub fn client_connected(&self) -> ConnectedClient {
        self.connected_clients.inc();
        ConnectedClient(self.connected_clients.clone())
    }

    /// Counts one client operation on `map`.
    pub fn count_op(&self, op: Op, map: &str) {
        let map = self.map_label(map);
        self.ops.with_label_values(&[op.label(), &map]).inc();
    }

    /// Sets where map sizes come from. The source is held weakly by the caller's
    /// choice: it must not keep the data plane alive after shutdown.
    pub fn set_map_sizes(&self, source: MapSizes) {
        *lock(&self.map_sizes) = Some(source);
    }

    /// Counts a completed handshake on `listener` that took `elapsed`.
    pub fn handshake_completed(
        &self,
        listener: &'static str,
        established: &Established,
        elapsed: Duration,
    ) {
        self.tls_connections
            .with_label_values(&[listener, established.version, established.cipher])
            .inc();
        self.tls_handshake_duration
            .with_label_values(&[listener])
            .observe(elapsed.as_secs_f64());
        if established.resumed {
            self.tls_sessions_resumed
                .with_label_values(&[listener])
                .inc();
        }
    }

    /// Counts a failed handshake on `listener`; `error_type` outside
    /// [`HANDSHAKE_ERROR_TYPES`] counts as `other`.
    pub fn handshake_failed(&self, listener: &'static str, error_type: &str) {
        self.tls_handshake_errors
            .with_label_values(&[listener, known(error_type, HANDSHAKE_ERROR_TYPES)])
            .inc();
    }

    /// Exports the expiry of `cert` as `cert_type` (one of [`CERT_TYPES`]). With several
    /// certificates of one type (a CA bundle), the earliest expiry is exported.
    pub fn track_certificate(&self, cert_type: &'static str, cert: X509) {
        lock(&self.certificates).push((cert_type, cert));
    }

    /// Replaces the certificates of `cert_type`, as a certificate reload does.
    pub fn replace_certificates(&self, cert_type: &'static str, certs: Vec<X509>) {
        let mut certificates = lock(&self.certificates);
        certificates.retain(|(kind, _)| *kind != cert_type);
        certificates.extend(certs.into_iter().map(|cert| (cert_type, cert)));
    }

    /// Counts a connection `listener` closed before any handshake; `reason` is `rate`.
    pub fn connection_refused(&self, listener: &'static str, reason: &'static str) {
        self.connections_refused
            .with_label_values(&[listener, reason])
            .inc();
    }

    /// Counts a reload of `listener`'s key material; a failed one left the previous
    /// material in service.
    pub fn tls_reloaded(&self, listener: &'static str, succeeded: bool) {
        let result = if succeeded { "success" } else { "failure" };
        self.tls_reloads
            .with_label_values(&[listener, result])
            .inc();
    }

    /// Sets `topgun_fips_mode`: 1 once `tls::fips::enable` has put the provider in force.
    pub fn set_fips_mode(&self, on: bool) {
        self.fips_mode.set(i64::from(on));
    }

    /// Exports `topgun_fips_provider_info{provider, version} 1` for the provider in force.
    pub fn set_fips_provider(&self, provider: &str, version: &str) {
        self.fips_provider
            .with_label_values(&[provider, version])
            .set(1);
    }

    /// Cluster: the members this node knows of, itself included (1 without a cluster).
    pub fn set_cluster_members(&self, members: usize) {
        self.cluster_members.set(gauge_value(members));
    }

    /// Cluster: whether the link to `peer_id` (a node id, never an address) is up.
    pub fn peer_up(&self, peer_id: &str, up: bool) {
        self.cluster_peer_up
            .with_label_values(&[peer_id])
            .set(i64::from(up));
    }

    /// Cluster: drops the series of a peer that left the cluster for good.
    pub fn forget_peer(&self, peer_id: &str) {
        let _ = self.cluster_peer_up.remove_label_values(&[peer_id]);
        let _ = self
            .cluster_replication_queue_depth
            .remove_label_values(&[peer_id]);
    }

    /// Cluster: counts `ops` operations forwarded to other members.
    pub fn forwarded_ops(&self, ops: u64) {
        self.cluster_forwarded_ops.inc_by(ops);
    }

    /// Cluster: operations queued for `peer_id` and not yet sent.
    pub fn replication_queue_depth(&self, peer_id: &str, depth: usize) {
        self.cluster_replication_queue_depth
            .with_label_values(&[peer_id])
            .set(gauge_value(depth));
    }

    /// Cluster: counts a failed outbound connection. `error_type` is a handshake error
    /// kind or one of [`DIAL_ERROR_TYPES`]; anything else counts as `other`. Handshakes
    /// accepted on the cluster port are counted with [`Metrics::handshake_completed`] and
    /// [`Metrics::handshake_failed`] under the listener `cluster`.
    pub fn dial_failed(&self, error_type: &str) {
        let error_type = if DIAL_ERROR_TYPES.contains(&error_type) {
            known(error_type, DIAL_ERROR_TYPES)
        } else {
            known(error_type, HANDSHAKE_ERROR_TYPES)
        };
        self.cluster_dial_errors
            .with_label_values(&[error_type])
            .inc();
    }

    /// Refreshes the gauges that are sampled rather than counted.
    fn sample(&self) {
        let mut earliest: Vec<(&'static str, f64)> = Vec::new();
        for (cert_type, cert) in lock(&self.certificates).iter() {
            let days = inspect::days_until(cert.not_after());
            match earliest.iter_mut().find(|(kind, _)| kind == cert_type) {
                Some((_, known)) => *known = known.min(days),
                None => earliest.push((cert_type, days)),
            }
        }
        self.certificate_expiry_days.reset();
        for (cert_type, days) in earliest {
            self.certificate_expiry_days
                .with_label_values(&[cert_type])
                .set(days);
        }

        let sizes = match &*lock(&self.map_sizes) {
            Some(source) => source(),
            None => return,
        };
        self.map_size_items.reset();
        for (map, size) in sizes {
            let map = self.map_label(&map);
            self.map_size_items
                .with_label_values(&[&map])
                .add(gauge_value(size));
        }
    }

    /// `map` itself while fewer than [`MAX_MAP_LABELS`] names are in use, else
    /// [`OVERFLOW_MAP`].
    fn map_label(&self, map: &str) -> String {
        let mut labels = lock(&self.map_labels);
        if labels.contains(map) {
            return map.to_owned();
        }
        if labels.len() < MAX_MAP_LABELS {
            labels.insert(map.to_owned());
            return map.to_owned();
        }
        OVERFLOW_MAP.to_owned()
    }
}

/// Keeps `topgun_connected_clients` one higher while it lives.
pub struct ConnectedClient(IntGauge);

impl Drop for ConnectedClient {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A map-size source that reads through a weak reference, so that the metrics do not
/// keep what they observe alive; it reports nothing once `target` is gone.
pub fn weak_map_sizes<T, F>(target: Weak<T>, sizes: F) -> MapSizes
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Vec<(String, usize)> + Send + Sync + 'static,
{
    Box::new(move || target.upgrade().map(|t| sizes(&t)).unwrap_or_default())
}

fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let metric = metric.expect("metric names and labels here are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

fn known(value: &str, set: &'static [&'static str]) -> &'static str {
    set.iter()
        .find(|known| **known == value)
        .copied()
        .unwrap_or("other")
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn process_id() -> prometheus::process_collector::pid_t {
    prometheus::process_collector::pid_t::try_from(std::process::id())
        .expect("Linux process ids fit in pid_t")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; a poisoned one still guards valid data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
