//! Delivery of server events to every authenticated session, through bounded queues.
//!
//! A message is encoded once per distinct view of it (what each recipient may read
//! decides the view) and shared as `Bytes`. Each session has a queue of
//! [`QUEUE_CAPACITY`] messages; a session whose queue is full when an event arrives is
//! cut off (its receiver ends) and closes with 1013: it catches up through Merkle sync
//! when it reconnects, instead of the node buffering for it without limit.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tracing::debug;

use crate::auth::Principal;
use crate::query::LiveQuery;

mod queue;

pub use queue::{Receiver, RecvError};
use queue::{SendError, Sender};

/// Messages a session may have waiting before it counts as too slow.
pub const QUEUE_CAPACITY: usize = 1024;

/// The set of sessions that receive broadcasts.
#[derive(Default)]
pub struct Fanout {
    next_id: AtomicU64,
    members: Mutex<HashMap<u64, Member>>,
}

struct Member {
    queue: Sender,
    recipient: Recipient,
}

/// What decides which broadcasts a session gets, and in which form.
#[derive(Debug)]
pub struct Recipient {
    pub id: u64,
    pub principal: Arc<Principal>,
    /// Topics the session subscribed to (`TOPIC_SUB`).
    pub topics: HashSet<String>,
    /// Live queries by the session's own query ids (`QUERY_SUB`).
    pub queries: HashMap<String, Subscribed>,
}

/// One live query of a session.
#[derive(Debug)]
pub struct Subscribed {
    pub map: String,
    pub live: LiveQuery,
}

/// One session's place in the [`Fanout`]; leaving is dropping it.
pub struct Subscription {
    pub id: u64,
    /// Broadcasts for this session; `None` once it was cut off for being too slow.
    pub queue: Receiver,
    fanout: Arc<Fanout>,
}

impl Fanout {
    /// Adds the session of an authenticated `principal`.
    pub fn subscribe(self: &Arc<Self>, principal: Arc<Principal>) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, queue) = queue::bounded(QUEUE_CAPACITY);
        let member = Member {
            queue: sender,
            recipient: Recipient {
                id,
                principal,
                topics: HashSet::new(),
                queries: HashMap::new(),
            },
        };
        self.lock().insert(id, member);
        Subscription {
            id,
            queue,
            fanout: self.clone(),
        }
    }

    /// Queues for every session what `messages_for` gives for it (it may also update
    /// the session's live queries), cutting off the sessions that are full.
    pub fn publish<F>(&self, mut messages_for: F)
    where
        F: FnMut(&mut Recipient) -> Vec<Bytes>,
    {
        self.lock().retain(|id, member| {
            for message in messages_for(&mut member.recipient) {
                match member.queue.try_send(message) {
                    Ok(()) => {}
                    Err(SendError::Full) => {
                        debug!(
                            session = id,
                            "session too slow for its broadcasts; cutting it off"
                        );
                        return false;
                    }
                    Err(SendError::Closed) => return false,
                }
            }
            true
        });
    }

    /// Runs `change` on the recipient state of session `id`, if it is still subscribed.
    pub fn update<R>(&self, id: u64, change: impl FnOnce(&mut Recipient) -> R) -> Option<R> {
        self.lock()
            .get_mut(&id)
            .map(|member| change(&mut member.recipient))
    }

    /// How many sessions receive broadcasts.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session receives broadcasts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Member>> {
        // A panic while holding this lock leaves the map consistent, so poison is ignored.
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.fanout.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: &str) -> Arc<Principal> {
        Arc::new(Principal {
            user_id: None,
            roles: vec![role.to_owned()],
            claims: Default::default(),
        })
    }

    fn event(_: &mut Recipient) -> Vec<Bytes> {
        vec![Bytes::from_static(b"event")]
    }

    #[tokio::test]
    async fn a_broadcast_reaches_everyone_but_the_writer() {
        let fanout = Arc::new(Fanout::default());
        let mut writer = fanout.subscribe(principal("USER"));
        let mut reader = fanout.subscribe(principal("USER"));

        let writer_id = writer.id;
        fanout.publish(|recipient| {
            if recipient.id == writer_id {
                return Vec::new();
            }
            event(recipient)
        });

        assert_eq!(reader.queue.recv().await.unwrap(), &b"event"[..]);
        assert!(writer.queue.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_session_that_falls_behind_is_cut_off_and_the_others_are_not() {
        let fanout = Arc::new(Fanout::default());
        let mut slow = fanout.subscribe(principal("USER"));
        let mut fast = fanout.subscribe(principal("USER"));

        for _ in 0..=QUEUE_CAPACITY {
            fanout.publish(event);
            let _ = fast.queue.try_recv();
        }

        let mut received = 0;
        while slow.queue.recv().await.is_some() {
            received += 1;
        }
        assert_eq!(received, QUEUE_CAPACITY);
        assert_eq!(fanout.len(), 1);
        drop(fast);
        assert!(fanout.is_empty());
    }

    #[tokio::test]
    async fn each_recipient_gets_the_message_made_for_its_principal() {
        let fanout = Arc::new(Fanout::default());
        let mut admin = fanout.subscribe(principal("ADMIN"));
        let mut guest = fanout.subscribe(principal("GUEST"));

        fanout.publish(|recipient| {
            if recipient.principal.roles[0] == "ADMIN" {
                vec![Bytes::from_static(b"secret")]
            } else {
                Vec::new()
            }
        });

        assert_eq!(admin.queue.recv().await.unwrap(), &b"secret"[..]);
        assert!(guest.queue.try_recv().is_err());
    }
}
