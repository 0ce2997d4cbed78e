//! Who is in the cluster right now: one live link per peer, the partition table that
//! follows from the membership, and requests awaiting a peer's answer.
//!
//! Membership is the set of peers with a registered link, plus this node. When two
//! links to one peer exist (both dialled at once), the one dialled by the node whose id
//! sorts first is kept on both sides, so the two ends agree without talking about it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::partition::PartitionTable;
use super::wire::{Member, PeerMessage};

/// Messages queued for one peer before it counts as too slow and its link is cut; the
/// peer is brought up to date by anti-entropy when it is back.
pub const PEER_QUEUE_CAPACITY: usize = 16_384;

/// The sending half of a link, as the registry holds it.
pub struct LinkHandle {
    /// Unique per link, so that a late deregistration of a replaced link is ignored.
    pub id: u64,
    /// The node that dialled this link.
    pub dialler: String,
    /// Where the peer says it can be dialled.
    pub address: String,
    pub outbound: mpsc::Sender<Bytes>,
    /// Cancelled to close the link (a duplicate, a too-slow peer).
    pub close: CancellationToken,
}

/// Why a link was not registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The peer is this node (a discovery or configuration loop-back).
    IsSelf,
    /// A link to this peer that wins the tie-break already exists.
    Duplicate,
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the peer is not connected")]
    NotConnected,
    #[error("the peer did not answer in time")]
    Timeout,
}

/// A membership change, as registration reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Joined,
    Replaced,
}

/// The cluster as this node sees it.
pub struct Peers {
    me: String,
    address: String,
    state: Mutex<State>,
    table_tx: watch::Sender<Arc<PartitionTable>>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Waiter>>,
}

/// A request waiting for its answer, and the peer that owes it.
struct Waiter {
    peer: String,
    answer: oneshot::Sender<PeerMessage>,
    /// Query entries of the parts received so far.
    parts: Vec<(String, rmpv::Value)>,
}

struct State {
    links: HashMap<String, LinkHandle>,
}

impl Peers {
    /// A cluster of one: this node, reachable at `address`.
    pub fn new(me: &str, address: &str) -> Self {
        let (table_tx, _) = watch::channel(Arc::new(PartitionTable::new(vec![me.to_owned()])));
        Peers {
            me: me.to_owned(),
            address: address.to_owned(),
            state: Mutex::new(State {
                links: HashMap::new(),
            }),
            table_tx,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// This node's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Where peers dial this node.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A fresh id for a link or a request.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The current partition table.
    pub fn table(&self) -> Arc<PartitionTable> {
        self.table_tx.borrow().clone()
    }

    /// Follows the partition table as members come and go.
    pub fn watch_table(&self) -> watch::Receiver<Arc<PartitionTable>> {
        self.table_tx.subscribe()
    }

    /// The members other than this node, as they can be dialled.
    pub fn members(&self) -> Vec<Member> {
        self.state()
            .links
            .iter()
            .map(|(node_id, link)| Member {
                node_id: node_id.clone(),
                address: link.address.clone(),
            })
            .collect()
    }

    /// Whether a link to `node_id` is registered.
    pub fn is_linked(&self, node_id: &str) -> bool {
        self.state().links.contains_key(node_id)
    }

    /// Registers a link to `peer` after its `Hello`.
    pub fn register(&self, peer: &str, link: LinkHandle) -> Result<Change, Refused> {
        if peer == self.me {
            return Err(Refused::IsSelf);
        }
        let mut state = self.state();
        let change = match state.links.get(peer) {
            None => Change::Joined,
            Some(existing) => {
                // The link dialled by the node that sorts first wins, on both ends.
                let winner = if self.me.as_str() < peer {
                    &self.me
                } else {
                    peer
                };
                let existing_wins = existing.dialler == winner;
                let new_wins = link.dialler == winner;
                if existing_wins || !new_wins {
                    return Err(Refused::Duplicate);
                }
                existing.close.cancel();
                Change::Replaced
            }
        };
        state.links.insert(peer.to_owned(), link);
        if change == Change::Joined {
            self.publish_table(&state);
        }
        Ok(change)
    }

    /// Removes the link `link_id` to `peer`; true when the peer left the membership
    /// (the link was the registered one).
    pub fn deregister(&self, peer: &str, link_id: u64) -> bool {
        let mut state = self.state();
        if state.links.get(peer).map(|link| link.id) != Some(link_id) {
            return false;
        }
        state.links.remove(peer);
        self.publish_table(&state);
        drop(state);
        // Requests to the peer fail now rather than at their timeout.
        self.pending().retain(|_, waiter| waiter.peer != peer);
        true
    }

    /// Queues `message` for `peer`; false when the peer is not linked. A peer whose
    /// queue is full is cut off: it is too slow to follow and will be repaired later.
    pub fn send(&self, peer: &str, message: &PeerMessage) -> bool {
        let state = self.state();
        let Some(link) = state.links.get(peer) else {
            return false;
        };
        enqueue(peer, link, message.encode())
    }

    /// Queues `message` for every linked peer.
    pub fn broadcast(&self, message: &PeerMessage) {
        let state = self.state();
        if state.links.is_empty() {
            return;
        }
        let bytes = message.encode();
        for (peer, link) in &state.links {
            enqueue(peer, link, bytes.clone());
        }
    }

    /// Sends the request that `build` makes with a fresh id, and waits for its answer.
    pub async fn request(
        &self,
        peer: &str,
        timeout: Duration,
        build: impl FnOnce(u64) -> PeerMessage,
    ) -> Result<PeerMessage, RequestError> {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            peer: peer.to_owned(),
            answer: tx,
            parts: Vec::new(),
        };
        self.pending().insert(id, waiter);
        let _forget = Forget { peers: self, id };
        if !self.send(peer, &build(id)) {
            return Err(RequestError::NotConnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            // The waiter was dropped by `deregister`: the link went down.
            Ok(Err(_)) => Err(RequestError::NotConnected),
            Err(_) => Err(RequestError::Timeout),
        }
    }

    /// Hands an answer to its waiting request; false when nobody waits any more. The
    /// parts of a query answer are gathered until the last one.
    pub fn complete(&self, request: u64, answer: PeerMessage) -> bool {
        let mut pending = self.pending();
        let Some(waiter) = pending.get_mut(&request) else {
            return false;
        };
        let answer = match answer {
            PeerMessage::QueryResults {
                entries,
                more: true,
                ..
            } => {
                waiter.parts.extend(entries);
                return true;
            }
            PeerMessage::QueryResults {
                request,
                mut entries,
                more: false,
            } => {
                let mut all = std::mem::take(&mut waiter.parts);
                all.append(&mut entries);
                PeerMessage::QueryResults {
                    request,
                    entries: all,
                    more: false,
                }
            }
            answer => answer,
        };
        let waiter = pending.remove(&request).expect("looked up above");
        waiter.answer.send(answer).is_ok()
    }

    fn publish_table(&self, state: &State) {
        let members = state
            .links
            .keys()
            .cloned()
            .chain([self.me.clone()])
            .collect();
        self.table_tx
            .send_replace(Arc::new(PartitionTable::new(members)));
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Waiter>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Partitions `node` holds in `new` but not in `old`: the ones it must fetch.
pub fn gained(old: &PartitionTable, new: &PartitionTable, node: &str) -> BTreeSet<u16> {
    new.held_by(node).filter(|&p| !old.holds(node, p)).collect()
}

fn enqueue(peer: &str, link: &LinkHandle, bytes: Bytes) -> bool {
    match link.outbound.try_send(bytes) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(
                peer.id = peer,
                "peer too slow to take its messages; closing the link"
            );
            link.close.cancel();
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Removes a request's waiter however the request ends.
struct Forget<'a> {
    peers: &'a Peers,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.peers.pending().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: u64, dialler: &str) -> (LinkHandle, mpsc::Receiver<Bytes>) {
        let (outbound, rx) = mpsc::channel(4);
        let handle = LinkHandle {
            id,
            dialler: dialler.into(),
            address: "127.0.0.1:1".into(),
            outbound,
            close: CancellationToken::new(),
        };
        (handle, rx)
    }

    #[test]
    fn both_ends_keep_the_link_dialled_by_the_lower_id() {
        // On "a": its own dial (a→b) arrives second and replaces b's.
        let a = Peers::new("a", "127.0.0.1:1");
        let (from_b, _rx1) = link(1, "b");
        let first_close = from_b.close.clone();
        assert_eq!(a.register("b", from_b), Ok(Change::Joined));
        let (to_b, _rx2) = link(2, "a");
        assert_eq!(a.register("b", to_b), Ok(Change::Replaced));
        assert!(first_close.is_cancelled());

        // On "b": a's dial is already there; b's own dial is refused.
        let b = Peers::new("b", "127.0.0.1:2");
        let (from_a, _rx3) = link(3, "a");
        assert_eq!(b.register("a", from_a), Ok(Change::Joined));
        let (to_a, _rx4) = link(4, "b");
        assert_eq!(b.register("a", to_a), Err(Refused::Duplicate));
    }

    #[test]
    fn a_replaced_link_leaving_late_does_not_remove_the_member() {
        let a = Peers::new("a", "x:1");
        let (from_b, _rx1) = link(1, "b");
        a.register("b", from_b).unwrap();
        let (to_b, _rx2) = link(2, "a");
        a.register("b", to_b).unwrap();
        assert!(!a.deregister("b", 1));
        assert!(a.is_linked("b"));
        assert!(a.deregister("b", 2));
        assert_eq!(a.table().members(), ["a"]);
    }

    #[test]
    fn a_node_refuses_a_link_to_itself() {
        let a = Peers::new("a", "x:1");
        let (me, _rx) = link(1, "a");
        assert_eq!(a.register("a", me), Err(Refused::IsSelf));
    }

    #[test]
    fn a_join_recomputes_the_table_and_gains_partitions_for_the_newcomer() {
        let a = Peers::new("a", "x:1");
        let before = a.table();
        let (from_b, _rx) = link(1, "b");
        a.register("b", from_b).unwrap();
        let after = a.table();
        assert_eq!(after.members(), ["a", "b"]);
        // "a" held everything alone; with "b" every partition has both.
        assert!(gained(&before, &after, "a").is_empty());
        assert_eq!(gained(&before, &after, "b").len(), 271);
    }

    #[tokio::test]
    async fn a_request_fails_as_soon_as_its_peer_leaves() {
        let a = Arc::new(Peers::new("a", "x:1"));
        let (from_b, _rx) = link(1, "b");
        a.register("b", from_b).unwrap();
        let asking = a.clone();
        let request = tokio::spawn(async move {
            asking
                .request("b", Duration::from_secs(30), |request| {
                    PeerMessage::SyncRequest {
                        request,
                        partitions: Vec::new(),
                    }
                })
                .await
        });
        while a.pending().is_empty() {
            tokio::task::yield_now().await;
        }
        a.deregister("b", 1);
        let answer = tokio::time::timeout(Duration::from_secs(1), request).await;
        assert_eq!(answer.unwrap().unwrap(), Err(RequestError::NotConnected));
    }

    #[tokio::test]
    async fn a_request_to_an_unlinked_peer_fails_at_once() {
        let a = Peers::new("a", "x:1");
        let answer = a
            .request("b", Duration::from_secs(5), |request| {
                PeerMessage::SyncRequest {
                    request,
                    partitions: Vec::new(),
                }
            })
            .await;
        assert_eq!(answer, Err(RequestError::NotConnected));
        assert!(a.pending().is_empty());
    }
}
