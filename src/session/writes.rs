//! The write path (PROTOCOL.md §3.3): permission check, apply to the store, commit to
//! durable storage, then acknowledge and broadcast. A write is acknowledged only once
//! it is durable; a failed commit is reported and not acknowledged, so the client
//! sends the op again.

use bytes::Bytes;
use tracing::{debug, error};

use super::dataplane::{stamped, Caller, Dataplane, GC_AGE_MS, NO_WRITER};
use crate::crdt::Timestamp;
use crate::metrics::Op;
use crate::protocol::client::ClientOp;
use crate::protocol::server;
use crate::storage::{Batch, Mutation, StorageError};
use crate::store::Change;

impl Dataplane {
    /// Applies every permitted op in order; once durable, `OP_ACK` names the last
    /// applied op with an id, and `ERROR 403` counts the ops that were denied or failed.
    pub(super) async fn op_batch(&self, ops: &[ClientOp], caller: &Caller<'_>) -> Vec<Bytes> {
        let serial = self.writes.lock().await;
        let mut last_id = None;
        let mut failed = 0;
        let mut changes = Vec::new();
        {
            let mut store = self.store();
            for op in ops {
                if !self.may_write(caller.principal, op) {
                    failed += 1;
                    continue;
                }
                match store.apply(op) {
                    Ok(change) => {
                        self.metrics
                            .count_op(Op::write(op.is_removal()), &op.map_name);
                        if let Some(id) = &op.id {
                            last_id = Some(id.as_str());
                        }
                        changes.extend(change.map(|change| stamped(&mut store, change)));
                    }
                    Err(error) => {
                        debug!(%error, map = %op.map_name, "op failed");
                        failed += 1;
                    }
                }
            }
        }
        if self.persist(mutations(&changes)).await.is_err() {
            return vec![server::error(500, PERSIST_FAILED)];
        }
        drop(serial);
        self.broadcast(&changes, caller.me);

        let mut replies = Vec::new();
        if let Some(last_id) = last_id {
            replies.push(server::op_ack(last_id));
        }
        if failed > 0 {
            let message = format!("Partial batch failure: {failed} ops denied");
            replies.push(server::error(403, &message));
        }
        replies
    }

    /// A single write: nothing back once durable, `OP_REJECTED` on failure.
    pub(super) async fn client_op(&self, op: &ClientOp, caller: &Caller<'_>) -> Vec<Bytes> {
        if !self.may_write(caller.principal, op) {
            return vec![server::op_rejected(op.id.as_deref(), "Access Denied")];
        }
        let serial = self.writes.lock().await;
        let applied = {
            let mut store = self.store();
            store
                .apply(op)
                .map(|change| change.map(|change| stamped(&mut store, change)))
        };
        let changes: Vec<_> = match applied {
            Ok(change) => {
                self.metrics
                    .count_op(Op::write(op.is_removal()), &op.map_name);
                change.into_iter().collect()
            }
            Err(error) => return vec![server::op_rejected(op.id.as_deref(), &error.to_string())],
        };
        if self.persist(mutations(&changes)).await.is_err() {
            return vec![server::op_rejected(op.id.as_deref(), PERSIST_FAILED)];
        }
        drop(serial);
        self.broadcast(&changes, caller.me);
        Vec::new()
    }

    /// One garbage-collection round (PROTOCOL.md §10, single node): expired records
    /// are broadcast as removals, tombstones older than 30 days are forgotten, both
    /// durably, and every session is told so with `GC_PRUNE`.
    ///
    /// Upstream lowers the threshold to the oldest `lastActiveHlc` of a connected
    /// client; with the 30-day margin this node uses its own clock only.
    pub async fn collect_garbage(&self) {
        let serial = self.writes.lock().await;
        let (garbage, older_than, expired) = {
            let mut store = self.store();
            let now = store.now();
            let older_than = Timestamp::new(now.millis.saturating_sub(GC_AGE_MS), 0, now.node_id);
            let mut garbage = store.collect_garbage(&older_than);
            let expired: Vec<_> = std::mem::take(&mut garbage.expired)
                .into_iter()
                .map(|change| stamped(&mut store, change))
                .collect();
            (garbage, older_than, expired)
        };
        if let Err(failure) = self.persist(garbage.mutations).await {
            error!(error = %failure, "garbage collection could not be made durable");
            return;
        }
        drop(serial);
        self.broadcast(&expired, NO_WRITER);
        let prune = server::gc_prune(&older_than);
        self.fanout.publish(|_| vec![prune.clone()]);
    }

    async fn persist(&self, mutations: Vec<Mutation>) -> Result<(), StorageError> {
        if mutations.is_empty() {
            return Ok(());
        }
        self.storage
            .commit(Batch { mutations })
            .await
            .inspect_err(|failure| {
                error!(error = %failure, "writes could not be made durable; not acknowledged");
            })
    }
}

fn mutations(changes: &[(Change, Timestamp)]) -> Vec<Mutation> {
    changes
        .iter()
        .flat_map(|(change, _)| change.mutations.iter().cloned())
        .collect()
}

/// What a client is told when its write could not be made durable; the storage error
/// itself is logged, not sent (it may name hosts and files).
const PERSIST_FAILED: &str = "Failed to persist the write";
