//! The cluster (PROTOCOL.md §9): peer links on the cluster port, membership, the
//! partition table, and keeping owner and backup of every partition in step.
//!
//! - [`wire`]: what nodes say to each other (MessagePack).
//! - [`partition`]: which node owns and backs up a key.
//! - [`peers`]: the live links, the table they imply, requests awaiting answers.
//! - [`link`]: one link from `Hello` to close, with liveness.
//! - [`dial`]: dialling and re-dialling with backoff.
//!
//! Beyond upstream: writes reach their owner as bare ops and are acknowledged only
//! once it made them durable; a node that gains partitions fetches what differs
//! before answering queries for them; and every anti-entropy interval each owner sends
//! its backup a digest per shared partition, and the two exchange the records of the
//! partitions that differ, so nodes converge after a crash or a network partition.

pub mod dial;
pub mod link;
pub mod partition;
pub mod peers;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use openssl::ssl::SslAcceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::{ClusterConfig, Discovery};
use crate::listener::{self, Listener, Slot};
use crate::session::dataplane::Dataplane;
use crate::tls::dialer::PeerConnector;
use crate::tls::swap::Swap;
use partition::{partition_of, PartitionTable};
pub use peers::Peers;
use wire::PeerMessage;

/// How long a node that gained partitions waits for each member's records.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a query fragment waits for a migration in progress before answering with
/// what this node has.
const MIGRATION_WAIT: Duration = Duration::from_secs(5);

/// Timing and size settings of the cluster links.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ping_interval: Duration,
    pub peer_timeout: Duration,
    pub anti_entropy_interval: Duration,
    pub handshake_timeout: Duration,
    /// Largest message on a cluster link. Replicated changes carry a write's value with
    /// the key's old and new visible values, so links take several times the client
    /// limit; bulk transfers are cut into parts of [`Settings::part_budget`].
    pub max_message_size: usize,
}

impl Settings {
    /// Cluster link limit for a node whose clients may send `client_limit` bytes.
    pub fn link_limit(client_limit: usize) -> usize {
        client_limit.saturating_mul(4).min(1 << 30)
    }

    /// Encoded size aimed at for each part of a bulk transfer (records, query results).
    pub fn part_budget(&self) -> usize {
        self.max_message_size / 4
    }
}

/// Counters of what the cluster did, for tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Partitions found different by anti-entropy and repaired.
    pub repaired_partitions: AtomicU64,
    /// Records changed by merging a peer's records.
    pub merged_records: AtomicU64,
}

/// The running cluster of one node.
pub struct Cluster {
    pub peers: Arc<Peers>,
    pub dataplane: Arc<Dataplane>,
    pub settings: Settings,
    pub stats: Stats,
    acceptor: Option<Arc<Swap<SslAcceptor>>>,
    /// Dials peers over TLS when cluster TLS is on.
    dialer: Option<Arc<Swap<PeerConnector>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Addresses with a dial loop running.
    dialling: Mutex<HashSet<String>>,
    /// Addresses found to be this node.
    own_addresses: Mutex<HashSet<String>>,
    /// Partitions gained and still being fetched.
    migrating: Mutex<BTreeSet<u16>>,
    migrated: Notify,
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
#[error("TOPGUN_HOST/TOPGUN_CLUSTER_PORT: cannot listen on {addr}: {io}; choose a free port or another address")]
pub struct BindError {
    pub addr: SocketAddr,
    pub io: std::io::Error,
}

/// What [`start`] needs besides the configuration.
pub struct Start {
    pub peers: Arc<Peers>,
    pub dataplane: Arc<Dataplane>,
    pub settings: Settings,
    pub acceptor: Option<Arc<Swap<SslAcceptor>>>,
    pub dialer: Option<Arc<Swap<PeerConnector>>>,
    pub max_connections: usize,
    /// `TOPGUN_MAX_CONNECTION_RATE_PER_IP`, applied to the cluster port too.
    pub connection_rate_per_ip: Option<u32>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// Binds the cluster port (before the node serves anything).
pub async fn bind(config: &ClusterConfig) -> Result<(TcpListener, SocketAddr), BindError> {
    let addr = config.bind;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|io| BindError { addr, io })?;
    let local = tcp.local_addr().map_err(|io| BindError { addr, io })?;
    Ok((tcp, local))
}

/// The address peers dial: the advertised host (or this machine's name) and the port
/// actually bound.
pub fn advertised_address(config: &ClusterConfig, bound: SocketAddr) -> String {
    let host = config.advertise_host.clone().unwrap_or_else(host_name);
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]:{}", bound.port()),
        Err(_) => format!("{host}:{}", bound.port()),
    }
}

/// Starts serving the bound cluster port, dialling peers and keeping partitions in step.
pub fn start(config: &ClusterConfig, tcp: TcpListener, start: Start) -> Arc<Cluster> {
    let cluster = Arc::new(Cluster {
        peers: start.peers,
        dataplane: start.dataplane,
        settings: start.settings,
        stats: Stats::default(),
        acceptor: start.acceptor,
        dialer: start.dialer,
        shutdown: start.shutdown,
        tasks: start.tasks,
        dialling: Mutex::new(HashSet::new()),
        own_addresses: Mutex::new(HashSet::from([cluster_address_of(&tcp)])),
        migrating: Mutex::new(BTreeSet::new()),
        migrated: Notify::new(),
    });

    let listener = Listener::new("cluster", tcp, start.max_connections)
        .limit_rate(start.connection_rate_per_ip)
        .counted_by(cluster.dataplane.metrics.clone());
    let serving = cluster.clone();
    cluster.tasks.spawn(listener.run(
        cluster.shutdown.clone(),
        cluster.tasks.clone(),
        move |tcp, slot| serve(serving.clone(), tcp, slot),
    ));
    cluster.tasks.spawn(follow_membership(cluster.clone()));
    cluster.tasks.spawn(anti_entropy(cluster.clone()));
    for peer in &config.peers {
        cluster.dial(peer);
    }
    if let Discovery::Kubernetes { service, interval } = &config.discovery {
        let port = config.bind.port();
        cluster
            .tasks
            .spawn(discover(cluster.clone(), service.clone(), port, *interval));
    }
    cluster
}

impl Cluster {
    /// Starts a dial loop for `address` unless one runs or it is this node.
    pub fn dial(self: &Arc<Self>, address: &str) {
        if self.own().contains(address) || address == self.peers.address() {
            return;
        }
        if !self.dialling().insert(address.to_owned()) {
            return;
        }
        self.tasks
            .spawn(dial::dial_loop(self.clone(), address.to_owned()));
    }

    /// Dials a member a peer told about, unless it is linked already.
    pub fn dial_if_unknown(self: &Arc<Self>, node_id: &str, address: &str) {
        if node_id == self.peers.me() || self.peers.is_linked(node_id) {
            return;
        }
        self.dial(address);
    }

    /// Remembers that `address` reaches this node.
    pub fn forget_self_address(&self, address: &str) {
        self.own().insert(address.to_owned());
    }

    /// Called when a peer joins.
    pub fn peer_joined(&self, peer: &str) {
        let members = self.peers.table().members().len();
        self.dataplane.metrics.set_cluster_members(members);
        self.dataplane.metrics.peer_up(peer, true);
        info!(peer.id = peer, members, "cluster membership changed");
    }

    /// Called when a peer leaves: locks its sessions held here are released.
    pub fn peer_left(&self, peer: &str) {
        let members = self.peers.table().members().len();
        self.dataplane.metrics.set_cluster_members(members);
        self.dataplane.metrics.peer_up(peer, false);
        warn!(peer.id = peer, members, "peer left the cluster");
        self.dataplane.remote_node_gone(peer);
    }

    /// Waits `duration`; false when the node is shutting down.
    pub async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }

    /// A message from `peer`: answers go to their request; requests that may wait
    /// (forwarded writes, backups' replicated changes, queries, digests, sync) to a task
    /// of their own; everything else, whose order matters, to the link's `ordered`
    /// queue. False when that queue is full.
    pub fn receive(
        self: &Arc<Self>,
        peer: &str,
        message: PeerMessage,
        ordered: &mpsc::Sender<PeerMessage>,
    ) -> bool {
        if let Some(request) = message.answers() {
            if !self.peers.complete(request, message) {
                debug!(peer.id = peer, request, "answer after its request gave up");
            }
            return true;
        }
        match message {
            // A forwarded write waits for its backup's confirmation, which may come
            // through the very link it arrived on: it must not hold up that queue.
            // Replicated changes are merges, which commute; taking them one at a
            // time would give each its own fsync, where concurrent ones share one.
            PeerMessage::Forward { .. }
            | PeerMessage::Replicate { .. }
            | PeerMessage::QueryExec { .. }
            | PeerMessage::Digests { .. }
            | PeerMessage::SyncRequest { .. } => {
                let cluster = self.clone();
                let peer = peer.to_owned();
                self.tasks
                    .spawn(async move { cluster.handle(&peer, message).await });
                true
            }
            message => ordered.try_send(message).is_ok(),
        }
    }

    /// Acts on one message from `peer`.
    pub async fn handle(&self, peer: &str, message: PeerMessage) {
        let dataplane = &self.dataplane;
        match message {
            PeerMessage::Forward {
                request,
                writer,
                ops,
            } => {
                let outcome = dataplane.apply_forwarded(&ops, peer, writer).await;
                self.peers
                    .send(peer, &PeerMessage::Forwarded { request, outcome });
            }
            PeerMessage::Events(events) => {
                let table = self.peers.table();
                let me = self.peers.me();
                let holds = |key: &str| table.holds(me, partition_of(key));
                dataplane.merge_replicated(events, holds).await;
            }
            PeerMessage::Replicate { request, events } => {
                // The owner named this node the backup: it keeps the changes whatever
                // its own table says, and confirms only what is durable.
                if dataplane.merge_replicated(events, |_| true).await {
                    self.peers
                        .send(peer, &PeerMessage::ReplicaDurable { request });
                }
            }
            PeerMessage::QueryExec {
                request,
                map,
                query,
            } => {
                self.wait_for_migration().await;
                let table = self.peers.table();
                let me = self.peers.me();
                let entries = dataplane
                    .owned_matches(&map, &query, |key| table.owner(partition_of(key)) == me);
                let parts = wire::in_parts(entries, self.settings.part_budget());
                let last = parts.len() - 1;
                for (index, entries) in parts.into_iter().enumerate() {
                    let part = PeerMessage::QueryResults {
                        request,
                        entries,
                        more: index < last,
                    };
                    self.peers.send(peer, &part);
                }
            }
            PeerMessage::Digests { partitions } => self.compare(peer, partitions).await,
            PeerMessage::SyncRequest {
                request,
                partitions,
            } => {
                let mine = dataplane.partition_digests();
                let differing = partitions
                    .into_iter()
                    .filter(|&(p, digest)| mine.get(usize::from(p)) != Some(&digest))
                    .map(|(p, _)| p)
                    .collect();
                let snapshot = dataplane.snapshot_of(&differing);
                // All parts but the last are pushes; the last one answers the request.
                let parts = wire::snapshot_in_parts(snapshot, self.settings.part_budget());
                let last = parts.len() - 1;
                for (index, snapshot) in parts.into_iter().enumerate() {
                    let part = PeerMessage::Records {
                        request: (index == last).then_some(request),
                        snapshot,
                    };
                    self.peers.send(peer, &part);
                }
            }
            PeerMessage::Records { snapshot, .. } => {
                let changed = dataplane.merge_records(snapshot).await;
                self.stats
                    .merged_records
                    .fetch_add(changed as u64, Ordering::Relaxed);
            }
            PeerMessage::Topic {
                topic,
                data,
                publisher,
            } => dataplane.deliver_topic(&topic, &data, &publisher),
            PeerMessage::LockRequest {
                session,
                request_id,
                name,
                ttl_ms,
            } => dataplane.remote_lock_request(
                peer,
                session,
                &request_id,
                &name,
                Duration::from_millis(ttl_ms),
            ),
            PeerMessage::LockRelease {
                session,
                request_id,
                name,
                fencing_token,
            } => dataplane.remote_lock_release(peer, session, request_id, name, fencing_token),
            PeerMessage::LockClientGone { session } => {
                dataplane.remote_lock_client_gone(peer, session)
            }
            answer @ (PeerMessage::LockGranted { .. } | PeerMessage::LockReleased { .. }) => {
                dataplane.lock_answer(answer)
            }
            PeerMessage::Hello(_) => {
                warn!(peer.id = peer, "second Hello from peer ignored");
            }
            PeerMessage::Forwarded { .. }
            | PeerMessage::ReplicaDurable { .. }
            | PeerMessage::QueryResults { .. } => {}
        }
    }

    /// The backup's side of anti-entropy: partitions whose digest differs from the
    /// owner's are repaired both ways — this node's records go to the owner, and the
    /// owner's come back.
    async fn compare(&self, owner: &str, theirs: Vec<(u16, u32)>) {
        let mine = self.dataplane.partition_digests();
        let table = self.peers.table();
        let me = self.peers.me();
        let differing: Vec<(u16, u32)> = theirs
            .into_iter()
            .filter(|&(p, digest)| table.holds(me, p) && mine.get(usize::from(p)) != Some(&digest))
            .map(|(p, _)| (p, mine[usize::from(p)]))
            .collect();
        if differing.is_empty() {
            return;
        }
        info!(
            peer.id = owner,
            partitions = differing.len(),
            "anti-entropy: repairing partitions that differ from the owner"
        );
        self.stats
            .repaired_partitions
            .fetch_add(differing.len() as u64, Ordering::Relaxed);
        let partitions: BTreeSet<u16> = differing.iter().map(|&(p, _)| p).collect();
        let snapshot = self.dataplane.snapshot_of(&partitions);
        for part in wire::snapshot_in_parts(snapshot, self.settings.part_budget()) {
            let push = PeerMessage::Records {
                request: None,
                snapshot: part,
            };
            self.peers.send(owner, &push);
        }
        self.fetch(owner, differing).await;
    }

    /// Asks `peer` for the records of `partitions` that differ, and merges them.
    async fn fetch(&self, peer: &str, partitions: Vec<(u16, u32)>) -> bool {
        let answer = self
            .peers
            .request(peer, MIGRATION_TIMEOUT, |request| {
                PeerMessage::SyncRequest {
                    request,
                    partitions,
                }
            })
            .await;
        match answer {
            Ok(PeerMessage::Records { snapshot, .. }) => {
                let changed = self.dataplane.merge_records(snapshot).await;
                self.stats
                    .merged_records
                    .fetch_add(changed as u64, Ordering::Relaxed);
                true
            }
            Ok(_) => false,
            Err(error) => {
                warn!(peer.id = peer, %error, "could not fetch partition records");
                false
            }
        }
    }

    /// Waits until no partition this node gained is still being fetched, or for
    /// [`MIGRATION_WAIT`] at most.
    async fn wait_for_migration(&self) {
        let deadline = tokio::time::Instant::now() + MIGRATION_WAIT;
        loop {
            let notified = self.migrated.notified();
            if self.migrating().is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                warn!("answering a query while partitions are still being fetched");
                return;
            }
        }
    }

    fn dialling(&self) -> MutexGuard<'_, HashSet<String>> {
        self.dialling.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn own(&self) -> MutexGuard<'_, HashSet<String>> {
        self.own_addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn migrating(&self) -> MutexGuard<'_, BTreeSet<u16>> {
        self.migrating
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves one inbound connection on the cluster port: TLS when configured, then the
/// WebSocket upgrade on any path, then the link.
async fn serve(cluster: Arc<Cluster>, tcp: TcpStream, _slot: Slot) {
    let timeout = cluster.settings.handshake_timeout;
    match cluster.acceptor.as_ref().map(|swap| swap.current()) {
        Some(acceptor) => match listener::tls_accept(
            "cluster",
            &acceptor,
            tcp,
            timeout,
            &cluster.dataplane.metrics,
        )
        .await
        {
            Ok(established) => upgrade(cluster.clone(), established.stream).await,
            Err(error) => {
                warn!(error_type = error.kind(), %error, "cluster TLS handshake failed");
            }
        },
        None => upgrade(cluster, tcp).await,
    }
}

async fn upgrade<S>(cluster: Arc<Cluster>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let size = cluster.settings.max_message_size;
    let config = WebSocketConfig::default()
        .max_message_size(Some(size))
        .max_frame_size(Some(size));
    let accepted = tokio_tungstenite::accept_async_with_config(stream, Some(config));
    match tokio::time::timeout(cluster.settings.handshake_timeout, accepted).await {
        Ok(Ok(ws)) => {
            link::run(cluster, ws, false).await;
        }
        Ok(Err(error)) => debug!(%error, "cluster WebSocket upgrade failed"),
        Err(_) => debug!("no WebSocket upgrade on the cluster port in time"),
    }
}

/// Recomputes what this node must fetch each time the membership changes.
///
/// A node alone knows nothing of the others' writes, so the first table with peers
/// after being alone (start-up included) counts every held partition as gained; only
/// the partitions whose digests differ are transferred.
async fn follow_membership(cluster: Arc<Cluster>) {
    let mut tables = cluster.peers.watch_table();
    let me = cluster.peers.me().to_owned();
    let mut previous: Option<Arc<PartitionTable>> = None;
    loop {
        tokio::select! {
            _ = cluster.shutdown.cancelled() => return,
            changed = tables.changed() => if changed.is_err() { return },
        }
        let table = tables.borrow_and_update().clone();
        if table.members().len() < 2 {
            previous = None;
            continue;
        }
        let gained: BTreeSet<u16> = match &previous {
            Some(old) => peers::gained(old, &table, &me),
            None => table.held_by(&me).collect(),
        };
        previous = Some(table.clone());
        if gained.is_empty() {
            continue;
        }
        debug!(partitions = gained.len(), "fetching partitions gained");
        cluster.migrating().extend(gained.iter().copied());
        let fetching = cluster.clone();
        cluster.tasks.spawn(async move {
            let digests = fetching.dataplane.partition_digests();
            let wanted: Vec<(u16, u32)> = gained
                .iter()
                .map(|&p| (p, digests[usize::from(p)]))
                .collect();
            let others = table
                .members()
                .iter()
                .filter(|member| **member != fetching.peers.me());
            join_all(others.map(|member| fetching.fetch(member, wanted.clone()))).await;
            let mut migrating = fetching.migrating();
            for p in &gained {
                migrating.remove(p);
            }
            drop(migrating);
            fetching.migrated.notify_waiters();
        });
    }
}

/// Every interval, the owner of each partition sends its backup a digest of it.
async fn anti_entropy(cluster: Arc<Cluster>) {
    let interval = cluster.settings.anti_entropy_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = cluster.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let table = cluster.peers.table();
        if table.members().len() < 2 {
            continue;
        }
        let me = cluster.peers.me();
        let digests = cluster.dataplane.partition_digests();
        let mut by_backup: BTreeMap<&str, Vec<(u16, u32)>> = BTreeMap::new();
        for p in table.held_by(me) {
            if table.owner(p) != me {
                continue;
            }
            if let Some(backup) = table.backup(p) {
                by_backup
                    .entry(backup)
                    .or_default()
                    .push((p, digests[usize::from(p)]));
            }
        }
        for (backup, partitions) in by_backup {
            cluster
                .peers
                .send(backup, &PeerMessage::Digests { partitions });
        }
    }
}

/// Kubernetes discovery: resolves `service` (A and AAAA records of a headless service)
/// every `interval` and dials each address on the cluster port, skipping this node and
/// peers already dialled.
async fn discover(cluster: Arc<Cluster>, service: String, port: u16, interval: Duration) {
    let mut failing = false;
    loop {
        match tokio::net::lookup_host((service.as_str(), port)).await {
            Ok(addresses) => {
                failing = false;
                let known: HashSet<String> = cluster
                    .peers
                    .members()
                    .into_iter()
                    .map(|member| member.address)
                    .collect();
                for address in addresses {
                    let address = address.to_string();
                    if !known.contains(&address) {
                        cluster.dial(&address);
                    }
                }
            }
            Err(error) if !failing => {
                failing = true;
                warn!(service = %service, %error, "TOPGUN_DISCOVERY_SERVICE: lookup failed; retrying");
            }
            Err(error) => debug!(service = %service, %error, "discovery lookup still failing"),
        }
        if !cluster.pause(interval).await {
            return;
        }
    }
}

/// The bound address in the form dial loops use, when it is a specific address.
fn cluster_address_of(tcp: &TcpListener) -> String {
    tcp.local_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_default()
}

/// This machine's host name (a pod's name in Kubernetes).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
