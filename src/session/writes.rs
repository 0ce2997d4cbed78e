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
use crate::store::{Change, OpError};

impl Dataplane {
    /// Applies every permitted op in order; once durable, `OP_ACK` names the last
    /// applied op with an id, and `ERROR 403` counts the ops that were denied or failed.
    /// In a cluster each op goes to the owner of its key, and the acknowledgement waits
    /// for every owner.
    pub(super) async fn op_batch(&self, ops: &[ClientOp], caller: &Caller<'_>) -> Vec<Bytes> {
        let permitted: Vec<ClientOp> = ops
            .iter()
            .filter(|op| self.may_write(caller.principal, op))
            .cloned()
            .collect();
        let denied = ops.len() - permitted.len();
        let applied = match self.write(&permitted, caller.me).await {
            Ok(applied) => applied,
            Err(failure) => return vec![server::error(failure.code(), failure.message())],
        };

        let mut replies = Vec::new();
        let last_id = permitted
            .iter()
            .zip(&applied)
            .filter(|(_, applied)| **applied)
            .filter_map(|(op, _)| op.id.as_deref())
            .next_back();
        if let Some(last_id) = last_id {
            replies.push(server::op_ack(last_id));
        }
        let failed = denied + applied.iter().filter(|applied| !**applied).count();
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
        let single = std::slice::from_ref(op);
        if let Some(cluster) = &self.cluster {
            return match self.write_routed(cluster, single, caller.me).await {
                Ok(applied) if applied[0] => Vec::new(),
                Ok(_) => vec![server::op_rejected(
                    op.id.as_deref(),
                    "Op could not be applied",
                )],
                Err(failure) => vec![server::op_rejected(op.id.as_deref(), failure.message())],
            };
        }
        match self
            .apply_and_commit(single, self.node_id(), caller.me)
            .await
        {
            Ok(mut outcomes) => match outcomes.remove(0) {
                Ok(()) => Vec::new(),
                Err(error) => vec![server::op_rejected(op.id.as_deref(), &error.to_string())],
            },
            Err(failure) => vec![server::op_rejected(op.id.as_deref(), failure.message())],
        }
    }

    /// Writes `ops` where they belong: here on a single node, at each key's owner in a
    /// cluster. One flag per op: whether it was applied.
    async fn write(&self, ops: &[ClientOp], writer: u64) -> Result<Vec<bool>, WriteFailed> {
        match &self.cluster {
            Some(cluster) => self.write_routed(cluster, ops, writer).await,
            None => {
                let outcomes = self.apply_and_commit(ops, self.node_id(), writer).await?;
                Ok(outcomes.iter().map(Result::is_ok).collect())
            }
        }
    }

    /// Applies `ops` here and makes them durable, then tells this node's sessions; the
    /// other members are told meanwhile, and the backup makes them durable too. `origin` and `writer` name the session that wrote, which gets no
    /// echo. One outcome per op; `Err` when nothing could be made durable.
    pub(crate) async fn apply_and_commit(
        &self,
        ops: &[ClientOp],
        origin: &str,
        writer: u64,
    ) -> Result<Vec<Result<(), OpError>>, WriteFailed> {
        let serial = self.writes.lock().await;
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut changes = Vec::new();
        {
            let mut store = self.store();
            for op in ops {
                match store.apply(op) {
                    Ok(change) => {
                        self.metrics
                            .count_op(Op::write(op.is_removal()), &op.map_name);
                        changes.extend(change.map(|change| stamped(&mut store, change)));
                        outcomes.push(Ok(()));
                    }
                    Err(error) => {
                        debug!(%error, map = %op.map_name, "op failed");
                        outcomes.push(Err(error));
                    }
                }
            }
        }
        let local_writer = if origin == self.node_id() {
            writer
        } else {
            NO_WRITER
        };
        let commit = async {
            let durable = self.commit_in_order(serial, mutations(&changes)).await;
            if durable.is_ok() {
                self.broadcast(&changes, local_writer);
            }
            durable
        };
        // The backup writes its copy while this node writes its own: an acknowledged
        // write is durable on both, at the cost of one fsync's time, not two.
        let (durable, ()) = tokio::join!(commit, self.replicate(&changes, origin, writer));
        durable.map_err(|_| WriteFailed::NotDurable)?;
        Ok(outcomes)
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
        if let Err(failure) = self.commit_in_order(serial, garbage.mutations).await {
            error!(error = %failure, "garbage collection could not be made durable");
            return;
        }
        self.broadcast(&expired, NO_WRITER);
        let prune = server::gc_prune(&older_than);
        self.fanout.publish(|_| vec![prune.clone()]);
    }

    /// Commits `mutations`, whose place in the write order `serial` (the write lock)
    /// holds. Where storage fixes that order when a commit is called, the lock is
    /// released before the fsync, so that the next writer can apply meanwhile and
    /// concurrent writes share one fsync (group commit).
    pub(super) async fn commit_in_order(
        &self,
        serial: tokio::sync::MutexGuard<'_, ()>,
        mutations: Vec<Mutation>,
    ) -> Result<(), StorageError> {
        if mutations.is_empty() {
            return Ok(());
        }
        let commit = self.storage.commit(Batch { mutations });
        if self.storage.orders_at_call() {
            drop(serial);
        }
        commit.await.inspect_err(|failure| {
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

/// Why writes were not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteFailed {
    /// Storage refused the commit (here or at the owner); the error itself is logged
    /// where it happened, not sent (it may name hosts and files).
    NotDurable,
    /// The owner of a key could not be reached in time.
    OwnerUnavailable,
}

impl WriteFailed {
    /// The `ERROR` code a client gets.
    pub(crate) fn code(self) -> u16 {
        match self {
            WriteFailed::NotDurable => 500,
            WriteFailed::OwnerUnavailable => 503,
        }
    }

    /// What a client is told.
    pub(crate) fn message(self) -> &'static str {
        match self {
            WriteFailed::NotDurable => "Failed to persist the write",
            WriteFailed::OwnerUnavailable => "The owner of the key is unavailable; retry",
        }
    }
}
