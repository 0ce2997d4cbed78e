//! Locks on the wire (PROTOCOL.md §11): `LOCK_REQUEST` answered by `LOCK_GRANTED` now
//! or when the lock comes free, `LOCK_RELEASE` by `LOCK_RELEASED`. A grant to another
//! session travels through its fan-out queue.

use std::time::Instant;

use bytes::Bytes;

use super::dataplane::{Caller, Dataplane};
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
        let grant = self.locks().acquire(
            caller.me,
            &request.request_id,
            &request.name,
            clamp_ttl(request.ttl),
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

    /// A session left: releases its locks and drops its waiting requests.
    pub fn leave(&self, session: u64) {
        let grants = self.locks().disconnect(session, Instant::now());
        self.deliver(grants);
    }

    /// Sends each grant to the session it names.
    fn deliver(&self, grants: Vec<Grant>) {
        for grant in grants {
            let message = server::lock_granted(&grant.request_id, &grant.name, grant.fencing_token);
            self.fanout.publish(|recipient| {
                if recipient.id == grant.session {
                    vec![message.clone()]
                } else {
                    Vec::new()
                }
            });
        }
    }
}
