//! The data plane's side of the cluster (PROTOCOL.md §9.2): writes routed to the owner
//! of each key, changes replicated to every member, and what arrives from peers —
//! forwarded writes, replicated changes, records to merge, query fragments, topics.
//!
//! Everything a peer sends is merged with the same CRDT rules as a client write, so
//! applying it twice, late or out of order converges to the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use rmpv::Value;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::dataplane::{stamped, Dataplane, NO_WRITER};
use super::writes::WriteFailed;
use crate::cluster::partition::partition_of;
use crate::cluster::wire::{ForwardOutcome, PeerMessage, Replicated};
use crate::cluster::Peers;
use crate::crdt::{SystemClock, WallClock};
use crate::protocol::client::ClientOp;
use crate::protocol::server;
use crate::query::Query;
use crate::storage::Snapshot;
use crate::store::Change;

/// How long a write keeps looking for the owner of its key (across membership
/// changes) before the client is told to retry.
pub const FORWARD_DEADLINE: Duration = Duration::from_secs(5);

/// How long a coordinator waits for each member's part of a query.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an owner waits for a backup to confirm a write before acknowledging it.
pub const BACKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause before a write tries an owner again after a failed attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

impl Dataplane {
    /// This node's id, the `origin` of its own sessions' writes.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Writes each op at the owner of its key: here, or forwarded as the bare op. An op
    /// whose owner cannot be reached is tried again as the membership changes, until
    /// [`FORWARD_DEADLINE`]; ops are CRDT merges, so a retried one applies once.
    pub(super) async fn write_routed(
        &self,
        peers: &Peers,
        ops: &[ClientOp],
        writer: u64,
    ) -> Result<Vec<bool>, WriteFailed> {
        let deadline = Instant::now() + FORWARD_DEADLINE;
        let mut applied = vec![false; ops.len()];
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        loop {
            let table = peers.table();
            let mut by_owner: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for index in pending {
                let owner = table.owner(partition_of(&ops[index].key));
                by_owner.entry(owner.to_owned()).or_default().push(index);
            }
            let attempts = by_owner.into_iter().map(|(owner, indexes)| async move {
                let group: Vec<ClientOp> = indexes.iter().map(|&i| ops[i].clone()).collect();
                let outcome = if owner == self.node_id() {
                    self.apply_and_commit(&group, self.node_id(), writer)
                        .await
                        .map(|outcomes| outcomes.iter().map(Result::is_ok).collect())
                } else {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let count = group.len() as u64;
                    let forwarded = forward(peers, &owner, group, writer, left).await;
                    if forwarded.is_ok() {
                        self.metrics.forwarded_ops(count);
                    }
                    forwarded
                };
                (indexes, outcome)
            });

            let mut retry = Vec::new();
            for (indexes, outcome) in join_all(attempts).await {
                match outcome {
                    Ok(flags) => {
                        for (index, flag) in indexes.into_iter().zip(flags) {
                            applied[index] = flag;
                        }
                    }
                    Err(WriteFailed::OwnerUnavailable) => retry.extend(indexes),
                    Err(failure) => return Err(failure),
                }
            }
            if retry.is_empty() {
                return Ok(applied);
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                warn!(
                    ops = retry.len(),
                    "owner of the keys unreachable; writes not acknowledged"
                );
                return Err(WriteFailed::OwnerUnavailable);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
            pending = retry;
        }
    }

    /// Tells every other member what changed here (`CLUSTER_EVENT`), and waits until
    /// the backup of each changed key has made it durable too, for at most
    /// [`BACKUP_TIMEOUT`]: an acknowledged write then survives the loss of one node's
    /// disk. A backup that does not answer in time is caught up by anti-entropy.
    pub(super) async fn replicate(
        &self,
        changes: &[(Change, crate::crdt::Timestamp)],
        origin: &str,
        writer: u64,
    ) {
        let Some(peers) = &self.cluster else {
            return;
        };
        if changes.is_empty() {
            return;
        }
        let table = peers.table();
        let me = self.node_id();
        let mut for_backup: BTreeMap<&str, Vec<Replicated>> = BTreeMap::new();
        let mut for_all = Vec::new();
        for (change, _) in changes {
            let replicated = Replicated {
                event: change.event.clone(),
                old: change.old.clone(),
                new: change.new.clone(),
                origin: origin.to_owned(),
                writer,
            };
            let partition = partition_of(&change.event.key);
            match table.backup(partition) {
                Some(backup) if table.owner(partition) == me => {
                    for_backup.entry(backup).or_default().push(replicated)
                }
                _ => for_all.push(replicated),
            }
        }
        // Members that are no change's backup get every change as plain events.
        let backed: Vec<Replicated> = for_backup.values().flatten().cloned().collect();
        for member in table.members() {
            if member == me {
                continue;
            }
            let mut events = for_all.clone();
            if !for_backup.contains_key(member.as_str()) {
                events.extend(backed.iter().cloned());
            } else {
                // Its own backups travel in the request below; the others' as events.
                events.extend(
                    for_backup
                        .iter()
                        .filter(|(backup, _)| **backup != member.as_str())
                        .flat_map(|(_, events)| events.iter().cloned()),
                );
            }
            if !events.is_empty() {
                peers.send(member, &PeerMessage::Events(events));
            }
        }
        let confirmations = for_backup.into_iter().map(|(backup, events)| async move {
            // The backup merges every change it is sent, so it never needs the values
            // that stand in for a merge on members that do not hold the key.
            let events: Vec<Replicated> = events
                .into_iter()
                .map(|replicated| Replicated {
                    old: None,
                    new: None,
                    ..replicated
                })
                .collect();
            let answer = peers
                .request(backup, BACKUP_TIMEOUT, |request| PeerMessage::Replicate {
                    request,
                    events,
                })
                .await;
            if let Err(error) = answer {
                debug!(peer.id = backup, %error, "backup did not confirm; anti-entropy will repair it");
            }
        });
        join_all(confirmations).await;
    }

    /// A peer's forwarded writes: applied here whatever the table says (a merge is safe
    /// anywhere, and the holders get it through replication), then answered.
    pub async fn apply_forwarded(
        &self,
        ops: &[ClientOp],
        origin: &str,
        writer: u64,
    ) -> ForwardOutcome {
        match self.apply_and_commit(ops, origin, writer).await {
            Ok(outcomes) => ForwardOutcome::Applied(outcomes.iter().map(Result::is_ok).collect()),
            Err(_) => ForwardOutcome::NotDurable,
        }
    }

    /// A peer's changes: merged where `holds` says this node keeps the key, and sent to
    /// this node's sessions either way — from the local merge when there is one, else
    /// as the peer saw them. Returns whether the merged changes are durable.
    pub async fn merge_replicated(
        &self,
        events: Vec<Replicated>,
        holds: impl Fn(&str) -> bool,
    ) -> bool {
        let me = self.node_id().to_owned();
        let mut told = Vec::new();
        let durable;
        {
            let serial = self.writes.lock().await;
            let mut merged = Vec::new();
            {
                let mut store = self.store();
                for replicated in events {
                    let writer = if replicated.origin == me {
                        replicated.writer
                    } else {
                        NO_WRITER
                    };
                    if holds(&replicated.event.key) {
                        match store.apply_event(&replicated.event) {
                            Ok(Some(change)) => merged.push((stamped(&mut store, change), writer)),
                            Ok(None) => {}
                            Err(error) => debug!(%error, "replicated change refused"),
                        }
                    } else {
                        let change = Change {
                            event: replicated.event,
                            old: replicated.old,
                            new: replicated.new,
                            mutations: Vec::new(),
                        };
                        told.push((stamped(&mut store, change), writer));
                    }
                }
            }
            let mutations = merged
                .iter()
                .flat_map(|((change, _), _)| change.mutations.iter().cloned())
                .collect();
            durable = self.commit_in_order(serial, mutations).await.is_ok();
            if !durable {
                error!(
                    "replicated changes could not be made durable; anti-entropy will repair them"
                );
            }
            told.extend(merged);
        }
        for (change, writer) in told {
            self.broadcast(std::slice::from_ref(&change), writer);
        }
        durable
    }

    /// Records a peer sent (migration or repair): merged, made durable, and sent to
    /// this node's sessions. Returns how many changes they made.
    pub async fn merge_records(&self, snapshot: Snapshot) -> usize {
        let serial = self.writes.lock().await;
        let (merged, refused) = self.store().merge_snapshot(snapshot);
        if !refused.is_empty() {
            debug!(
                refused = refused.len(),
                "records of a map of the other type skipped"
            );
        }
        let durable = self.commit_in_order(serial, merged.all_mutations()).await;
        if durable.is_err() {
            error!("merged records could not be made durable; anti-entropy will repair them");
        }
        let changes: Vec<_> = {
            let mut store = self.store();
            merged
                .changes
                .into_iter()
                .map(|change| stamped(&mut store, change))
                .collect()
        };
        self.broadcast(&changes, NO_WRITER);
        changes.len()
    }

    /// Every record of `partitions`, for a peer.
    pub fn snapshot_of(&self, partitions: &BTreeSet<u16>) -> Snapshot {
        self.store().partition_snapshot(partitions)
    }

    /// This node's digest of every partition.
    pub fn partition_digests(&self) -> Vec<u32> {
        self.store().partition_digests()
    }

    /// The entries of `map` matching `query` among the keys `owned` says are this
    /// node's part of a cluster query. An undecodable query matches nothing.
    pub fn owned_matches(
        &self,
        map: &str,
        query: &Value,
        owned: impl Fn(&str) -> bool,
    ) -> Vec<(String, Value)> {
        let Ok(query) = Query::decode(query) else {
            return Vec::new();
        };
        self.store()
            .entries(map)
            .into_iter()
            .filter(|(key, value)| owned(key) && query.matches(value))
            .collect()
    }

    /// The entries a cluster query starts from: this node's part and every other
    /// member's, each member answering for the keys it owns. A member that does not
    /// answer in time leaves its part out, with a warning.
    pub(super) async fn cluster_entries(
        &self,
        peers: &Peers,
        map: &str,
        query: &Value,
    ) -> Vec<(String, Value)> {
        let table = peers.table();
        let me = self.node_id();
        let owned_here = |key: &str| table.owner(partition_of(key)) == me;
        let mut entries = self.owned_matches(map, query, owned_here);
        let others = table
            .members()
            .iter()
            .filter(|member| member.as_str() != me);
        let answers = join_all(others.map(|member| async move {
            let answer = peers
                .request(member, QUERY_TIMEOUT, |request| PeerMessage::QueryExec {
                    request,
                    map: map.to_owned(),
                    query: query.clone(),
                })
                .await;
            (member, answer)
        }))
        .await;
        let mut seen: BTreeSet<String> = entries.iter().map(|(key, _)| key.clone()).collect();
        for (member, answer) in answers {
            match answer {
                Ok(PeerMessage::QueryResults { entries: part, .. }) => {
                    for (key, value) in part {
                        if seen.insert(key.clone()) {
                            entries.push((key, value));
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => warn!(peer.id = %member, %error, "query results incomplete"),
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    /// A topic message published on another node: delivered to every local subscriber.
    pub fn deliver_topic(&self, topic: &str, data: &Value, publisher: &str) {
        let message = server::topic_message(topic, data, publisher, SystemClock.now_millis());
        self.fanout.publish(|recipient| {
            if recipient.topics.contains(topic) {
                vec![message.clone()]
            } else {
                Vec::new()
            }
        });
    }
}

/// Sends `ops` to their owner and waits for it to make them durable.
async fn forward(
    peers: &Peers,
    owner: &str,
    ops: Vec<ClientOp>,
    writer: u64,
    timeout: Duration,
) -> Result<Vec<bool>, WriteFailed> {
    let answer = peers
        .request(owner, timeout, |request| PeerMessage::Forward {
            request,
            writer,
            ops,
        })
        .await;
    match answer {
        Ok(PeerMessage::Forwarded {
            outcome: ForwardOutcome::Applied(flags),
            ..
        }) => Ok(flags),
        Ok(PeerMessage::Forwarded {
            outcome: ForwardOutcome::NotDurable,
            ..
        }) => Err(WriteFailed::NotDurable),
        Ok(_) | Err(_) => Err(WriteFailed::OwnerUnavailable),
    }
}
