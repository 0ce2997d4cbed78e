//! Test clusters: nodes in this process, each on a tokio runtime of its own so that a
//! test can kill one (every task dropped, sockets closed without a goodbye) and start
//! it again on the same data directory and cluster port.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::runtime::Runtime;

use topgun_server::cluster::partition::{partition_of, PartitionTable, PARTITION_COUNT};
use topgun_server::cluster::Cluster;
use topgun_server::config;
use topgun_server::node::{self, RunningNode};
use topgun_server::storage::Snapshot;

use super::path;

/// Fast liveness and repair, so that tests see membership changes within seconds.
pub const FAST_TIMING: [(&str, &str); 3] = [
    ("TOPGUN_CLUSTER_PING_INTERVAL_MS", "200"),
    ("TOPGUN_CLUSTER_PEER_TIMEOUT_MS", "1500"),
    ("TOPGUN_CLUSTER_ANTI_ENTROPY_INTERVAL_MS", "300"),
];

/// One member of a test cluster.
pub struct Member {
    pub id: String,
    runtime: Option<Runtime>,
    node: Option<RunningNode>,
    data: PathBuf,
    _owned_data: Option<TempDir>,
    pub cluster_port: u16,
    pub client: SocketAddr,
}

impl Member {
    /// Starts node `id` dialling `peers`, with its store in a fresh directory.
    pub async fn start(id: &str, peers: &[String], extra: &[(String, String)]) -> Member {
        let data = tempfile::tempdir().unwrap();
        let path = data.path().to_owned();
        let mut member = Member::start_in(id, &path, 0, peers, extra).await;
        member._owned_data = Some(data);
        member
    }

    /// Starts node `id` on `data` and `cluster_port` (0 for any).
    pub async fn start_in(
        id: &str,
        data: &Path,
        cluster_port: u16,
        peers: &[String],
        extra: &[(String, String)],
    ) -> Member {
        let mut vars: Vec<(String, String)> = vec![
            ("NODE_ID".into(), id.into()),
            ("TOPGUN_HOST".into(), "127.0.0.1".into()),
            ("TOPGUN_PORT".into(), "0".into()),
            ("TOPGUN_CLUSTER_PORT".into(), cluster_port.to_string()),
            ("TOPGUN_CLUSTER_ENABLED".into(), "true".into()),
            ("TOPGUN_METRICS_HOST".into(), "127.0.0.1".into()),
            ("TOPGUN_METRICS_PORT".into(), "0".into()),
            ("TOPGUN_DATA_DIR".into(), path(data)),
            ("TOPGUN_PEERS".into(), peers.join(",")),
        ];
        vars.extend(
            FAST_TIMING
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        // A variable in `extra` replaces the default above.
        vars.retain(|(name, _)| !extra.iter().any(|(other, _)| other == name));
        vars.extend(extra.iter().cloned());
        let config = config::from_vars(vars).expect("test configuration is valid");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let node = runtime
            .spawn(async move { node::prepare(config).unwrap().start().await.unwrap() })
            .await
            .unwrap();
        Member {
            id: id.into(),
            cluster_port: node.cluster_addr().unwrap().port(),
            client: node.client_addr(),
            runtime: Some(runtime),
            node: Some(node),
            data: data.to_owned(),
            _owned_data: None,
        }
    }

    /// `<host>:<cluster port>`, as peers dial it.
    pub fn address(&self) -> String {
        self.cluster().peers.address().to_owned()
    }

    /// Where the node's metrics endpoint listens (plain HTTP).
    pub fn metrics(&self) -> SocketAddr {
        self.node.as_ref().unwrap().metrics_addr()
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        self.node.as_ref().unwrap().cluster().unwrap()
    }

    pub fn members(&self) -> Vec<String> {
        self.cluster().peers.table().members().to_vec()
    }

    /// The records this node holds in `partitions`.
    pub fn records(&self, partitions: &BTreeSet<u16>) -> Snapshot {
        self.cluster().dataplane.snapshot_of(partitions)
    }

    /// Kills the node: every task is dropped and every socket closed at once, as a
    /// crash would; what was committed stays in the data directory, which is returned
    /// (and kept until the returned value is dropped).
    pub fn kill(mut self) -> Remains {
        drop(self.node.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        // Let the dropped tasks release the store before it is opened again.
        std::thread::sleep(Duration::from_millis(300));
        Remains {
            data: self.data.clone(),
            _dir: self._owned_data.take(),
        }
    }
}

/// The data directory of a killed member.
pub struct Remains {
    pub data: PathBuf,
    _dir: Option<TempDir>,
}

impl Drop for Member {
    fn drop(&mut self) {
        drop(self.node.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Polls `condition` every 50 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every member sees exactly `ids` as the membership.
pub async fn formed(members: &[&Member], ids: &[&str]) {
    let mut want: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    want.sort();
    eventually(Duration::from_secs(15), "cluster formed", || {
        members.iter().all(|member| member.members() == want)
    })
    .await;
}

/// A key whose partition `owner` owns in a cluster of `ids`.
pub fn key_owned_by(owner: &str, ids: &[&str]) -> String {
    let table = PartitionTable::new(ids.iter().map(|id| id.to_string()).collect());
    (0..)
        .map(|i| format!("key-{i}"))
        .find(|key| table.owner(partition_of(key)) == owner)
        .unwrap()
}

/// Partitions whose owner and backup digests differ, by the first member's table.
pub fn unsynced_partitions(members: &[&Member]) -> Vec<u16> {
    let table = members[0].cluster().peers.table();
    let digests: Vec<(String, Vec<u32>)> = members
        .iter()
        .map(|m| (m.id.clone(), m.cluster().dataplane.partition_digests()))
        .collect();
    let of = |id: &str| &digests.iter().find(|(m, _)| m == id).unwrap().1;
    (0..PARTITION_COUNT)
        .filter(|&p| {
            let owner = of(table.owner(p));
            let backup = of(table.backup(p).unwrap());
            owner[usize::from(p)] != backup[usize::from(p)]
        })
        .collect()
}
