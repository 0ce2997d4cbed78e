//! Locks on the wire (PROTOCOL.md §11): `LOCK_REQUEST` answered by `LOCK_GRANTED` now
//! or when the lock comes free, `LOCK_RELEASE` by `LOCK_RELEASED`. A grant to another
//! session travels through its fan-out queue.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::dataplane::{Caller, Dataplane};
use crate::cluster::partition::partition_of;
use crate::cluster::wire::PeerMessage;
use crate::locks::{clamp_ttl, Grant};
use crate::policy::Action;
use crate::protocol::client::{LockRelease, LockRequest};
use crate::protocol::server;

impl Dataplane {
    /// `LOCK_REQUEST`: needs PUT on the lock's name.
    pub(super) fn lock_request(&self, request: &LockRequest, caller: &Caller<'_>) -> Vec<Bytes> {
        if !self
            .policies
            .check(caller.principal, &request.name, Action::Put)
        {
            let message = format!("Access Denied for lock {}", request.name);
            return vec![server::error(403, &message)];
        }
        let ttl = clamp_ttl(request.ttl);
        if let Some(owner) = self.remote_lock_owner(&request.name) {
            let message = PeerMessage::LockRequest {
                session: caller.me,
                request_id: request.request_id.clone(),
                name: request.name.clone(),
                ttl_ms: ttl.as_millis() as u64,
            };
            // The grant comes back through the cluster when the owner hands it out.
            return self.to_lock_owner(&owner, &message);
        }
        let grant = self.locks().acquire(
            caller.me,
            &request.request_id,
            &request.name,
            ttl,
            Instant::now(),
        );
        grant
            .map(|grant| server::lock_granted(&grant.request_id, &grant.name, grant.fencing_token))
            .into_iter()
            .collect()
    }

    /// `LOCK_RELEASE`: `success` only for the holder with the current token.
    pub(super) fn lock_release(&self, request: &LockRelease, caller: &Caller<'_>) -> Vec<Bytes> {
        let token = request.fencing_token;
        if let Some(owner) = self.remote_lock_owner(&request.name) {
            let message = PeerMessage::LockRelease {
                session: caller.me,
                request_id: request.request_id.clone(),
                name: request.name.clone(),
                fencing_token: token,
            };
            return self.to_lock_owner(&owner, &message);
        }
        let (success, next) = if token.fract() == 0.0 && token >= 0.0 {
            self.locks()
                .release(caller.me, &request.name, token as u64, Instant::now())
        } else {
            (false, None)
        };
        self.deliver(next.into_iter().collect());
        vec![server::lock_released(
            request.request_id.as_deref(),
            &request.name,
            success,
        )]
    }

    /// Hands expired locks to their next waiters; run about once a second.
    pub fn sweep_locks(&self) {
        let grants = self.locks().expire(Instant::now());
        self.deliver(grants);
    }

    /// A session left: releases its locks and drops its waiting requests, here and at
    /// the owners of locks it asked other nodes for.
    pub fn leave(&self, session: u64) {
        let grants = self.locks().disconnect(session, Instant::now());
        self.deliver(grants);
        if let Some(peers) = &self.cluster {
            peers.broadcast(&PeerMessage::LockClientGone { session });
        }
    }

    /// Sends each grant to the session it names, here or on its node.
    fn deliver(&self, grants: Vec<Grant>) {
        for grant in grants {
            let remote = self.remote_holders().get(grant.session).cloned();
            match (remote, &self.cluster) {
                (Some((node, session)), Some(peers)) => {
                    let message = PeerMessage::LockGranted {
                        session,
                        request_id: grant.request_id,
                        name: grant.name,
                        fencing_token: grant.fencing_token,
                    };
                    peers.send(&node, &message);
                }
                (Some(_), None) => {}
                (None, _) => {
                    let message =
                        server::lock_granted(&grant.request_id, &grant.name, grant.fencing_token);
                    self.to_session(grant.session, message);
                }
            }
        }
    }

    /// The owner of lock `name` when it is another node (locks are routed like keys).
    fn remote_lock_owner(&self, name: &str) -> Option<String> {
        let peers = self.cluster.as_ref()?;
        let table = peers.table();
        let owner = table.owner(partition_of(name));
        (owner != self.node_id()).then(|| owner.to_owned())
    }

    fn to_lock_owner(&self, owner: &str, message: &PeerMessage) -> Vec<Bytes> {
        let sent = self
            .cluster
            .as_ref()
            .is_some_and(|peers| peers.send(owner, message));
        if sent {
            Vec::new()
        } else {
            vec![server::error(503, "Lock owner unavailable")]
        }
    }

    fn to_session(&self, session: u64, message: Bytes) {
        self.fanout.publish(|recipient| {
            if recipient.id == session {
                vec![message.clone()]
            } else {
                Vec::new()
            }
        });
    }

    /// `CLUSTER_LOCK_REQ` at the owner: a session of `origin` asks for `name`.
    pub fn remote_lock_request(
        &self,
        origin: &str,
        session: u64,
        request_id: &str,
        name: &str,
        ttl: Duration,
    ) {
        let holder = self.remote_holders().id_for(origin, session);
        let grant = self.locks().acquire(
            holder,
            request_id,
            name,
            clamp_ttl(Some(ttl.as_millis() as f64)),
            Instant::now(),
        );
        self.deliver(grant.into_iter().collect());
    }

    /// `CLUSTER_LOCK_RELEASE` at the owner; answered with `LockReleased`.
    pub fn remote_lock_release(
        &self,
        origin: &str,
        session: u64,
        request_id: Option<String>,
        name: String,
        fencing_token: f64,
    ) {
        let holder = self.remote_holders().find(origin, session);
        let valid_token = fencing_token.fract() == 0.0 && fencing_token >= 0.0;
        let (success, next) = match holder {
            Some(holder) if valid_token => {
                self.locks()
                    .release(holder, &name, fencing_token as u64, Instant::now())
            }
            _ => (false, None),
        };
        self.deliver(next.into_iter().collect());
        if let Some(peers) = &self.cluster {
            let answer = PeerMessage::LockReleased {
                session,
                request_id,
                name,
                success,
            };
            peers.send(origin, &answer);
        }
    }

    /// A session of `origin` left: its locks here are released.
    pub fn remote_lock_client_gone(&self, origin: &str, session: u64) {
        let Some(holder) = self.remote_holders().remove(origin, session) else {
            return;
        };
        let grants = self.locks().disconnect(holder, Instant::now());
        self.deliver(grants);
    }

    /// A member left: every lock its sessions held here is released.
    pub fn remote_node_gone(&self, node: &str) {
        let holders = self.remote_holders().remove_node(node);
        let mut grants = Vec::new();
        {
            let mut locks = self.locks();
            for holder in holders {
                grants.extend(locks.disconnect(holder, Instant::now()));
            }
        }
        self.deliver(grants);
    }

    /// The owner's answer to a lock request or release of one of this node's sessions.
    pub fn lock_answer(&self, message: PeerMessage) {
        match message {
            PeerMessage::LockGranted {
                session,
                request_id,
                name,
                fencing_token,
            } => {
                let granted = server::lock_granted(&request_id, &name, fencing_token);
                self.to_session(session, granted);
            }
            PeerMessage::LockReleased {
                session,
                request_id,
                name,
                success,
            } => {
                let released = server::lock_released(request_id.as_deref(), &name, success);
                self.to_session(session, released);
            }
            _ => {}
        }
    }

    fn remote_holders(&self) -> std::sync::MutexGuard<'_, RemoteHolders> {
        self.remote_holders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Lock holders that are sessions of other nodes, under ids of their own in the lock
/// table (above [`REMOTE_HOLDER_BASE`], far from local session ids).
#[derive(Debug)]
pub struct RemoteHolders {
    by_session: HashMap<(String, u64), u64>,
    by_id: HashMap<u64, (String, u64)>,
    next: u64,
}

/// First id given to a remote holder.
const REMOTE_HOLDER_BASE: u64 = 1 << 62;

impl Default for RemoteHolders {
    fn default() -> Self {
        RemoteHolders {
            by_session: HashMap::new(),
            by_id: HashMap::new(),
            next: REMOTE_HOLDER_BASE,
        }
    }
}

impl RemoteHolders {
    fn id_for(&mut self, node: &str, session: u64) -> u64 {
        let key = (node.to_owned(), session);
        if let Some(id) = self.by_session.get(&key) {
            return *id;
        }
        let id = self.next;
        self.next += 1;
        self.by_session.insert(key.clone(), id);
        self.by_id.insert(id, key);
        id
    }

    fn find(&self, node: &str, session: u64) -> Option<u64> {
        self.by_session.get(&(node.to_owned(), session)).copied()
    }

    fn get(&self, id: u64) -> Option<&(String, u64)> {
        self.by_id.get(&id)
    }

    fn remove(&mut self, node: &str, session: u64) -> Option<u64> {
        let id = self.by_session.remove(&(node.to_owned(), session))?;
        self.by_id.remove(&id);
        Some(id)
    }

    fn remove_node(&mut self, node: &str) -> Vec<u64> {
        let ids: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, (holder_node, _))| holder_node == node)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(key) = self.by_id.remove(id) {
                self.by_session.remove(&key);
            }
        }
        ids
    }
}
