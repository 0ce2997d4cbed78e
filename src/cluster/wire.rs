//! What nodes say to each other: one MessagePack map per binary WebSocket message.
//!
//! Each message is a [`PeerMessage`] encoded with `rmp-serde` as a map with named
//! fields: the variant name is the single key of the outer map (`{"Forward": {...}}`).
//! User values stay MessagePack end to end, so binary values and timestamps survive
//! the hop, unlike upstream's JSON. Both sides send [`Hello`] first; a peer whose
//! `protocol` differs is refused. Mixed clusters with the TypeScript server are not a
//! goal.

use bytes::Bytes;
use rmpv::Value;
use serde::{Deserialize, Serialize};

use crate::protocol::client::ClientOp;
use crate::storage::Snapshot;
use crate::store::Event;

/// Version of this wire format; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// One message between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// The first message on every link, from both sides.
    Hello(Hello),
    /// Writes for keys the receiver owns; answered with `Forwarded` once durable.
    Forward {
        request: u64,
        /// The session that wrote, so that it gets no echo of its own write.
        writer: u64,
        ops: Vec<ClientOp>,
    },
    /// The answer to `Forward`.
    Forwarded {
        request: u64,
        outcome: ForwardOutcome,
    },
    /// Changes the sender applied (`CLUSTER_EVENT`): holders of the key merge them,
    /// every node tells its clients.
    Events(Vec<Replicated>),
    /// Changes for which the receiver is the backup: merged, made durable, then
    /// answered with `Replicated`, which the owner waits for before acknowledging.
    Replicate {
        request: u64,
        events: Vec<Replicated>,
    },
    /// The backup's answer to `Replicate`.
    ReplicaDurable { request: u64 },
    /// Runs a query over the keys the receiver owns (`CLUSTER_QUERY_EXEC`).
    QueryExec {
        request: u64,
        map: String,
        query: Value,
    },
    /// The matching entries of the keys the sender owns (`CLUSTER_QUERY_RESP`), in
    /// parts that each fit a message: every part but the last has `more` set.
    QueryResults {
        request: u64,
        entries: Vec<(String, Value)>,
        more: bool,
    },
    /// Anti-entropy: the owner's digest of each partition it shares with the receiver.
    Digests { partitions: Vec<(u16, u32)> },
    /// Asks for the records of the partitions whose digest differs from the one given
    /// (the asker's own); answered with `Records`.
    SyncRequest {
        request: u64,
        partitions: Vec<(u16, u32)>,
    },
    /// Records to merge: an answer to `SyncRequest` (`request` set) or a repair push.
    Records {
        request: Option<u64>,
        snapshot: Snapshot,
    },
    /// A session of the sender asks the receiver, the lock's owner, for a lock
    /// (`CLUSTER_LOCK_REQ`).
    LockRequest {
        session: u64,
        request_id: String,
        name: String,
        ttl_ms: u64,
    },
    /// The owner granted a lock to a session of the receiver (`CLUSTER_LOCK_GRANTED`).
    LockGranted {
        session: u64,
        request_id: String,
        name: String,
        fencing_token: u64,
    },
    /// A session of the sender releases a lock the receiver owns.
    LockRelease {
        session: u64,
        request_id: Option<String>,
        name: String,
        fencing_token: f64,
    },
    /// The owner's answer to `LockRelease` (`CLUSTER_LOCK_RELEASED`).
    LockReleased {
        session: u64,
        request_id: Option<String>,
        name: String,
        success: bool,
    },
    /// A session of the sender disconnected (`CLUSTER_CLIENT_DISCONNECTED`).
    LockClientGone { session: u64 },
    /// A topic message published on the sender (`CLUSTER_TOPIC_PUB`).
    Topic {
        topic: String,
        data: Value,
        publisher: String,
    },
}

/// Who a node is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub node_id: String,
    /// `host:port` other nodes dial to reach the sender's cluster port.
    pub address: String,
    /// The members the sender is linked to, so that a joining node meets all of them.
    pub members: Vec<Member>,
}

/// A member as others can dial it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: String,
    pub address: String,
}

/// What became of forwarded writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardOutcome {
    /// Durable on the owner; one flag per op, false for an op the store refused.
    Applied(Vec<bool>),
    /// The owner could not make them durable; nothing is acknowledged.
    NotDurable,
}

/// One applied change, as the node that applied it saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replicated {
    pub event: Event,
    /// The key's visible value before and after, for live queries of nodes that do not
    /// hold the key.
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// The node whose client wrote, and that client's session there.
    pub origin: String,
    pub writer: u64,
}

/// Splits `items` into runs whose MessagePack encodings add up to about `budget` bytes
/// each (an item larger than the budget travels alone), so that no message outgrows
/// the peer's message size limit. Always returns at least one (maybe empty) run.
pub fn in_parts<T: Serialize>(items: Vec<T>, budget: usize) -> Vec<Vec<T>> {
    let mut parts = vec![Vec::new()];
    let mut size = 0;
    for item in items {
        let item_size = rmp_serde::to_vec_named(&item).map_or(0, |bytes| bytes.len());
        let current = parts.last_mut().expect("parts is never empty");
        if !current.is_empty() && size + item_size > budget {
            parts.push(Vec::new());
            size = 0;
        }
        size += item_size;
        parts.last_mut().expect("parts is never empty").push(item);
    }
    parts
}

/// One record of a [`Snapshot`], for splitting it.
#[derive(Serialize)]
enum Piece {
    Lww(String, String, crate::crdt::LwwRecord),
    Or(String, String, crate::crdt::OrRecord),
    Tombstone(String, String),
}

/// Splits `snapshot` into snapshots of about `budget` encoded bytes each.
pub fn snapshot_in_parts(snapshot: Snapshot, budget: usize) -> Vec<Snapshot> {
    let mut pieces = Vec::new();
    for (map, tags) in snapshot.or_tombstones {
        pieces.extend(
            tags.into_iter()
                .map(|tag| Piece::Tombstone(map.clone(), tag)),
        );
    }
    for (map, records) in snapshot.lww {
        pieces.extend(
            records
                .into_iter()
                .map(|(key, record)| Piece::Lww(map.clone(), key, record)),
        );
    }
    for (map, keys) in snapshot.or {
        for (key, records) in keys {
            pieces.extend(
                records
                    .into_values()
                    .map(|record| Piece::Or(map.clone(), key.clone(), record)),
            );
        }
    }
    in_parts(pieces, budget)
        .into_iter()
        .map(|part| {
            let mut snapshot = Snapshot::default();
            for piece in part {
                match piece {
                    Piece::Lww(map, key, record) => {
                        snapshot.lww.entry(map).or_default().insert(key, record);
                    }
                    Piece::Or(map, key, record) => {
                        snapshot
                            .or
                            .entry(map)
                            .or_default()
                            .entry(key)
                            .or_default()
                            .insert(record.tag.clone(), record);
                    }
                    Piece::Tombstone(map, tag) => {
                        snapshot.or_tombstones.entry(map).or_default().insert(tag);
                    }
                }
            }
            snapshot
        })
        .collect()
}

impl PeerMessage {
    /// The request id of an answer, which goes to whoever waits for it.
    pub fn answers(&self) -> Option<u64> {
        match self {
            PeerMessage::Forwarded { request, .. }
            | PeerMessage::ReplicaDurable { request }
            | PeerMessage::QueryResults { request, .. }
            | PeerMessage::Records {
                request: Some(request),
                ..
            } => Some(*request),
            _ => None,
        }
    }

    /// The name used in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerMessage::Hello(_) => "hello",
            PeerMessage::Forward { .. } => "forward",
            PeerMessage::Forwarded { .. } => "forwarded",
            PeerMessage::Events(_) => "events",
            PeerMessage::Replicate { .. } => "replicate",
            PeerMessage::ReplicaDurable { .. } => "replica_durable",
            PeerMessage::QueryExec { .. } => "query_exec",
            PeerMessage::QueryResults { .. } => "query_results",
            PeerMessage::Digests { .. } => "digests",
            PeerMessage::SyncRequest { .. } => "sync_request",
            PeerMessage::Records { .. } => "records",
            PeerMessage::LockRequest { .. } => "lock_request",
            PeerMessage::LockGranted { .. } => "lock_granted",
            PeerMessage::LockRelease { .. } => "lock_release",
            PeerMessage::LockReleased { .. } => "lock_released",
            PeerMessage::LockClientGone { .. } => "lock_client_gone",
            PeerMessage::Topic { .. } => "topic",
        }
    }

    /// The bytes of one WebSocket message.
    pub fn encode(&self) -> Bytes {
        // Every field serializes: maps have string keys and values are MessagePack.
        Bytes::from(rmp_serde::to_vec_named(self).expect("peer messages always encode"))
    }

    /// Reads one WebSocket message.
    pub fn decode(bytes: &[u8]) -> Result<PeerMessage, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{LwwRecord, Timestamp};

    #[test]
    fn a_forward_survives_the_round_trip_with_binary_and_timestamp_values() {
        let value = Value::Map(vec![
            ("bin".into(), Value::Binary(vec![0, 159, 255])),
            ("when".into(), Value::Ext(-1, vec![0, 0, 0, 1])),
        ]);
        let message = PeerMessage::Forward {
            request: 7,
            writer: 3,
            ops: vec![ClientOp {
                id: Some("12".into()),
                map_name: "m".into(),
                key: "k".into(),
                op_type: Some("PUT".into()),
                record: Some(LwwRecord {
                    value,
                    timestamp: Timestamp::new(1, 2, "n"),
                    ttl_ms: Some(5),
                }),
                or_record: None,
                or_tag: None,
            }],
        };
        assert_eq!(PeerMessage::decode(&message.encode()).unwrap(), message);
    }

    #[test]
    fn a_snapshot_split_in_parts_keeps_every_record_and_respects_the_budget() {
        let mut snapshot = Snapshot::default();
        for i in 0..100u64 {
            let record = LwwRecord {
                value: Value::Binary(vec![7; 1000]),
                timestamp: Timestamp::new(i, 0, "n"),
                ttl_ms: None,
            };
            snapshot
                .lww
                .entry("m".into())
                .or_default()
                .insert(format!("k{i}"), record);
        }
        let parts = snapshot_in_parts(snapshot.clone(), 10_000);
        assert!(parts.len() >= 10, "{} parts", parts.len());
        for part in &parts {
            assert!(rmp_serde::to_vec_named(part).unwrap().len() < 12_000);
        }
        let mut merged = Snapshot::default();
        for part in parts {
            for (map, records) in part.lww {
                merged.lww.entry(map).or_default().extend(records);
            }
        }
        assert_eq!(merged, snapshot);
        assert_eq!(snapshot_in_parts(Snapshot::default(), 10).len(), 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xc1", b"\x81\xa5Hello\x01", b"\x92\x01"] {
            assert!(PeerMessage::decode(bytes).is_err());
        }
    }
}
