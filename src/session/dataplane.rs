//! What an authenticated session does with each data-plane message (PROTOCOL.md §3.3,
//! §3.4, §6.3): apply writes to the store, answer the Merkle sync exchange, and
//! broadcast what changed to the other sessions.

use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tracing::debug;

use crate::fanout::Fanout;
use crate::protocol::client::{ClientOp, MerkleReqBucket, OpBatch, SyncInit, WithPayload};
use crate::protocol::{server, Incoming, SchemaError};
use crate::store::{Event, Store};

/// Tombstones older than this may have been pruned: a client whose last sync is older
/// must start over (`SYNC_RESET_REQUIRED`, PROTOCOL.md §6.3 step 2).
pub const GC_AGE_MS: f64 = 2_592_000_000.0;

/// The shared state a session's messages act on.
pub struct Dataplane {
    pub store: Mutex<Store>,
    pub fanout: std::sync::Arc<Fanout>,
}

impl Dataplane {
    /// Handles one message of the session subscribed to the fanout as `me`; returns
    /// the replies for that session, in order.
    pub fn handle(&self, incoming: &Incoming, me: u64) -> Vec<Bytes> {
        let replies = match incoming.kind.as_str() {
            "OP_BATCH" => incoming
                .parse::<WithPayload<OpBatch>>()
                .map(|batch| self.op_batch(&batch.payload.ops, me)),
            "CLIENT_OP" => incoming
                .parse::<WithPayload<ClientOp>>()
                .map(|op| self.client_op(&op.payload, me)),
            "SYNC_INIT" => incoming
                .parse::<SyncInit>()
                .map(|sync| self.sync_init(&sync)),
            "MERKLE_REQ_BUCKET" => incoming
                .parse::<WithPayload<MerkleReqBucket>>()
                .map(|request| self.merkle_bucket(&request.payload)),
            // Accepted by the schema and ignored, as upstream does.
            "SYNC_RESP_ROOT" | "SYNC_RESP_BUCKETS" | "SYNC_RESP_LEAF" => Ok(Vec::new()),
            // TODO(#3): queries, locks and topics.
            other => {
                debug!(message.type = other, "message type not handled yet");
                Ok(Vec::new())
            }
        };
        replies.unwrap_or_else(|SchemaError { kind }| {
            debug!(message.type = %kind, "message fails the schema check");
            vec![server::invalid_message()]
        })
    }

    /// Applies every op in order; `OP_ACK` names the last applied op with an id, and
    /// `ERROR 403` counts the ops that failed.
    fn op_batch(&self, ops: &[ClientOp], me: u64) -> Vec<Bytes> {
        let mut last_id = None;
        let mut failed = 0;
        let mut events = Vec::new();
        {
            let mut store = self.store();
            for op in ops {
                match store.apply(op) {
                    Ok(event) => {
                        if let Some(id) = &op.id {
                            last_id = Some(id.as_str());
                        }
                        events.extend(event.map(|event| stamped(&mut store, event)));
                    }
                    Err(error) => {
                        debug!(%error, map = %op.map_name, "op failed");
                        failed += 1;
                    }
                }
            }
        }
        self.broadcast(&events, me);

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

    /// A single write: nothing back on success, `OP_REJECTED` on failure.
    fn client_op(&self, op: &ClientOp, me: u64) -> Vec<Bytes> {
        let result = {
            let mut store = self.store();
            store
                .apply(op)
                .map(|event| event.map(|event| stamped(&mut store, event)))
        };
        match result {
            Ok(events) => {
                self.broadcast(events.as_slice(), me);
                Vec::new()
            }
            Err(error) => vec![server::op_rejected(op.id.as_deref(), &error.to_string())],
        }
    }

    fn sync_init(&self, sync: &SyncInit) -> Vec<Bytes> {
        let last = sync.last_sync_timestamp.unwrap_or(0.0);
        if last > 0.0 && now_millis() - last > GC_AGE_MS {
            return vec![server::sync_reset_required(&sync.map_name)];
        }
        match self.store().sync_root(&sync.map_name) {
            Ok((root, timestamp)) => vec![server::sync_resp_root(&sync.map_name, root, &timestamp)],
            Err(error) => vec![server::error(501, &error.to_string())],
        }
    }

    fn merkle_bucket(&self, request: &MerkleReqBucket) -> Vec<Bytes> {
        let mut store = self.store();
        store
            .sync_bucket(&request.map_name, &request.path)
            .map(|reply| server::sync_bucket(&request.map_name, &request.path, &reply))
            .into_iter()
            .collect()
    }

    fn broadcast(&self, events: &[(Event, crate::crdt::Timestamp)], me: u64) {
        for (event, timestamp) in events {
            self.fanout
                .publish(Some(me), &server::server_event(event, timestamp));
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // Store operations do not panic halfway through a change; a poisoned lock still
        // guards consistent maps.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Each `SERVER_EVENT` carries a fresh timestamp of the node's clock (§3.4).
fn stamped(store: &mut Store, event: Event) -> (Event, crate::crdt::Timestamp) {
    (event, store.now())
}

fn now_millis() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_millis() as f64)
}
