//! What an authenticated session does with each data-plane message (PROTOCOL.md §3.3,
//! §3.4, §6.3, §8): check permissions, apply writes to the store, answer the Merkle
//! sync exchange, and broadcast what changed to the other sessions, each seeing only
//! the fields it may read.

use std::cell::OnceCell;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use tracing::debug;

use crate::auth::Principal;
use crate::crdt::{SystemClock, Timestamp, WallClock};
use crate::fanout::Fanout;
use crate::locks::LockTable;
use crate::metrics::{Metrics, Op};
use crate::policy::{Action, PolicySet, ReadView};
use crate::protocol::client::{
    ClientOp, LockRelease, LockRequest, MerkleReqBucket, OpBatch, QuerySub, QueryUnsub, SyncInit,
    TopicName, TopicPub, WithPayload,
};
use crate::protocol::{server, Incoming, SchemaError};
use crate::storage::Storage;
use crate::store::{Change, Event, Store};

use super::queries;

/// Tombstones older than this are pruned, and a client whose last sync is older must
/// start over (`SYNC_RESET_REQUIRED`, PROTOCOL.md §6.3 step 2, §10).
pub const GC_AGE_MS: u64 = 2_592_000_000;

/// The writer id of changes no session made (garbage collection).
pub(super) const NO_WRITER: u64 = u64::MAX;

/// The shared state a session's messages act on.
pub struct Dataplane {
    /// This node's id.
    pub node_id: String,
    /// The other members, when the node is part of a cluster.
    pub cluster: Option<std::sync::Arc<crate::cluster::Peers>>,
    pub store: Mutex<Store>,
    /// Where acknowledged writes are kept; an `OP_ACK` follows its commit.
    pub storage: Box<dyn Storage>,
    /// Held from applying a write to committing it, so that storage receives writes
    /// in the order the store applied them.
    pub writes: tokio::sync::Mutex<()>,
    pub fanout: std::sync::Arc<Fanout>,
    pub policies: PolicySet,
    pub locks: Mutex<LockTable>,
    /// Lock holders that are sessions of other nodes.
    pub remote_holders: Mutex<super::locks::RemoteHolders>,
    pub metrics: std::sync::Arc<Metrics>,
}

impl Dataplane {
    /// Handles one message of `principal`'s session, subscribed to the fanout as `me`;
    /// returns the replies for that session, in order.
    pub async fn handle(&self, incoming: Incoming, principal: &Principal, me: u64) -> Vec<Bytes> {
        let session = Caller { principal, me };
        let replies = match incoming.kind.as_str() {
            "OP_BATCH" => match incoming.parse::<WithPayload<OpBatch>>() {
                Ok(batch) => Ok(self.op_batch(&batch.payload.ops, &session).await),
                Err(error) => Err(error),
            },
            "CLIENT_OP" => match incoming.parse::<WithPayload<ClientOp>>() {
                Ok(op) => Ok(self.client_op(&op.payload, &session).await),
                Err(error) => Err(error),
            },
            "QUERY_SUB" => match incoming.parse::<WithPayload<QuerySub>>() {
                Ok(request) => Ok(self.query_sub(&request.payload, &session).await),
                Err(error) => Err(error),
            },
            _ => self.handle_read(incoming, &session),
        };
        replies.unwrap_or_else(|SchemaError { kind }| {
            debug!(message.type = %kind, "message fails the schema check");
            vec![server::invalid_message()]
        })
    }

    /// Every message but the writes.
    fn handle_read(
        &self,
        incoming: Incoming,
        session: &Caller<'_>,
    ) -> Result<Vec<Bytes>, SchemaError> {
        let principal = session.principal;
        match incoming.kind.as_str() {
            "SYNC_INIT" => incoming
                .parse::<SyncInit>()
                .map(|sync| self.sync_init(&sync, principal)),
            "MERKLE_REQ_BUCKET" => incoming
                .parse::<WithPayload<MerkleReqBucket>>()
                .map(|request| self.merkle_bucket(&request.payload, principal)),
            "QUERY_UNSUB" => incoming
                .parse::<WithPayload<QueryUnsub>>()
                .map(|request| self.query_unsub(&request.payload, session)),
            "TOPIC_SUB" => incoming
                .parse::<WithPayload<TopicName>>()
                .map(|request| self.topic_sub(&request.payload, session)),
            "TOPIC_UNSUB" => incoming
                .parse::<WithPayload<TopicName>>()
                .map(|request| self.topic_unsub(&request.payload, session)),
            "TOPIC_PUB" => incoming
                .parse::<WithPayload<TopicPub>>()
                .map(|request| self.topic_pub(&request.payload, session)),
            // Accepted by the schema and ignored, as upstream does.
            "SYNC_RESP_ROOT" | "SYNC_RESP_BUCKETS" | "SYNC_RESP_LEAF" => Ok(Vec::new()),
            "LOCK_REQUEST" => incoming
                .parse::<WithPayload<LockRequest>>()
                .map(|request| self.lock_request(&request.payload, session)),
            "LOCK_RELEASE" => incoming
                .parse::<WithPayload<LockRelease>>()
                .map(|request| self.lock_release(&request.payload, session)),
            // `is_valid` let only the 15 client types through; AUTH never gets here.
            other => {
                debug!(message.type = other, "message type not expected here");
                Ok(Vec::new())
            }
        }
    }

    fn sync_init(&self, sync: &SyncInit, principal: &Principal) -> Vec<Bytes> {
        if let Some(denied) = self.read_denied(principal, &sync.map_name) {
            return vec![denied];
        }
        self.metrics.count_op(Op::Get, &sync.map_name);
        let last = sync.last_sync_timestamp.unwrap_or(0.0);
        if last > 0.0 && SystemClock.now_millis() as f64 - last > GC_AGE_MS as f64 {
            return vec![server::sync_reset_required(&sync.map_name)];
        }
        match self.store().sync_root(&sync.map_name) {
            Ok((root, timestamp)) => vec![server::sync_resp_root(&sync.map_name, root, &timestamp)],
            Err(error) => vec![server::error(501, &error.to_string())],
        }
    }

    fn merkle_bucket(&self, request: &MerkleReqBucket, principal: &Principal) -> Vec<Bytes> {
        if let Some(denied) = self.read_denied(principal, &request.map_name) {
            return vec![denied];
        }
        let mut store = self.store();
        store
            .sync_bucket(&request.map_name, &request.path)
            .map(|reply| server::sync_bucket(&request.map_name, &request.path, &reply))
            .into_iter()
            .collect()
    }

    pub(super) fn may_write(&self, principal: &Principal, op: &ClientOp) -> bool {
        let action = Action::for_write(op.op_type.as_deref(), op.is_removal());
        let allowed = self.policies.check(principal, &op.map_name, action);
        if !allowed {
            debug!(map = %op.map_name, action = action.as_str(), "write denied");
        }
        allowed
    }

    /// `ERROR 403` when `principal` may not read `map`.
    pub(super) fn read_denied(&self, principal: &Principal, map: &str) -> Option<Bytes> {
        if self.policies.check(principal, map, Action::Read) {
            return None;
        }
        Some(server::error(403, &format!("Access Denied for map {map}")))
    }

    /// Sends each change to every session that may read its map: a `SERVER_EVENT` to
    /// the sessions other than the writer, and a `QUERY_UPDATE` for each of a session's
    /// live queries that the change affects, the writer's included. Values are cut to
    /// the fields each session may read; each distinct `SERVER_EVENT` view is encoded
    /// once, however many sessions share it. Unlike upstream, a session without READ
    /// access gets nothing rather than a nil value its client would take for a removal.
    pub(super) fn broadcast(&self, changes: &[(Change, Timestamp)], writer: u64) {
        if changes.is_empty() {
            return;
        }
        // Per change, its encodings so far, one per distinct view.
        let mut encoded: Vec<Vec<(ReadView, Bytes)>> = vec![Vec::new(); changes.len()];
        // Per change, its map as it is now, read only if a windowed query needs it.
        let entries: Vec<OnceCell<_>> = changes.iter().map(|_| OnceCell::new()).collect();
        // One pass over the sessions for the whole batch: each session's view of a map
        // is worked out once, not once per change.
        self.fanout.publish(|recipient| {
            let mut views: Vec<(&str, ReadView)> = Vec::new();
            let mut messages = Vec::new();
            for (index, (change, timestamp)) in changes.iter().enumerate() {
                let event = &change.event;
                let known = views.iter().position(|(map, _)| *map == event.map_name);
                let at = known.unwrap_or_else(|| {
                    let view = self
                        .policies
                        .read_view(&recipient.principal, &event.map_name);
                    views.push((&event.map_name, view));
                    views.len() - 1
                });
                let view = &views[at].1;
                if view.is_denied() {
                    continue;
                }
                if recipient.id != writer {
                    let shapes = &mut encoded[index];
                    let bytes = match shapes.iter().find(|(seen, _)| seen == view) {
                        Some((_, bytes)) => bytes.clone(),
                        None => {
                            let bytes = server::server_event(&filtered(event, view), timestamp);
                            shapes.push((view.clone(), bytes.clone()));
                            bytes
                        }
                    };
                    messages.push(bytes);
                }
                messages.extend(queries::updates(recipient, change, view, || {
                    entries[index].get_or_init(|| self.store().entries(&event.map_name))
                }));
            }
            messages
        });
    }

    /// Items per map, for `topgun_map_size_items`.
    pub fn map_sizes(&self) -> Vec<(String, usize)> {
        self.store().sizes()
    }

    pub(super) fn locks(&self) -> std::sync::MutexGuard<'_, LockTable> {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // Store operations do not panic halfway through a change; a poisoned lock still
        // guards consistent maps.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session a message came from.
pub(super) struct Caller<'a> {
    pub(super) principal: &'a Principal,
    pub(super) me: u64,
}

/// Each `SERVER_EVENT` carries a fresh timestamp of the node's clock (§3.4).
pub(super) fn stamped(store: &mut Store, change: Change) -> (Change, Timestamp) {
    (change, store.now())
}

/// `event` with its record value cut down to `view`.
fn filtered(event: &Event, view: &ReadView) -> Event {
    let mut event = event.clone();
    if let Some(record) = &mut event.record {
        record.value = view.filter(&record.value);
    }
    if let Some(record) = &mut event.or_record {
        record.value = view.filter(&record.value);
    }
    event
}
