//! The node's maps by name, and the one place their state changes (PROTOCOL.md §3.3,
//! §5, §6.3).
//!
//! The store applies client ops to LWW and OR maps, answers the Merkle sync exchange,
//! and says what changed as a [`Change`]: the [`Event`] to broadcast and the visible
//! value before and after, for live queries. It sends nothing and knows no connection.

use std::collections::HashMap;

use rmpv::Value;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::crdt::{
    Hlc, LwwMap, LwwRecord, OrMap, OrRecord, SyncReply, SystemClock, Timestamp, WallClock,
};
use crate::protocol::client::ClientOp;
use crate::storage::{Mutation, Snapshot};

/// What a write changed, as `SERVER_EVENT.payload` and `CLUSTER_EVENT` carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub map_name: String,
    pub key: String,
    pub event_type: EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<LwwRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub or_record: Option<OrRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub or_tag: Option<String>,
}

/// An applied op: what to broadcast, the key's visible value before and after (an OR
/// map's value is the array of its live values; `None` when absent), and what to
/// write to durable storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub event: Event,
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub mutations: Vec<Mutation>,
}

/// What a garbage-collection round changed: expiries to broadcast, and every write
/// (expiries and pruned tombstones) to make durable.
#[derive(Debug, Default)]
pub struct Garbage {
    pub expired: Vec<Change>,
    pub mutations: Vec<Mutation>,
}

/// `EventPayload.eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// An LWW put or removal (a removal carries a nil value).
    #[serde(rename = "UPDATED")]
    Updated,
    #[serde(rename = "OR_ADD")]
    OrAdd,
    #[serde(rename = "OR_REMOVE")]
    OrRemove,
}

/// Why an op could not be applied; the text is what `OP_REJECTED.reason` carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("Map type mismatch: {map} is an {existing} but received an {requested} op")]
    TypeMismatch {
        map: String,
        existing: &'static str,
        requested: &'static str,
    },
    #[error("Missing {field} for {op} op")]
    Missing {
        field: &'static str,
        op: &'static str,
    },
}

/// Why a map cannot take part in Merkle sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Merkle Sync not supported for ORMap {map}")]
pub struct NotSyncable {
    pub map: String,
}

enum Map {
    Lww(LwwMap),
    Or(OrMap),
}

impl Map {
    fn kind(&self) -> &'static str {
        match self {
            Map::Lww(_) => "LWWMap",
            Map::Or(_) => "ORMap",
        }
    }

    /// What reads and queries see of `key`.
    fn visible(&self, key: &str, now_ms: u64) -> Option<Value> {
        match self {
            Map::Lww(map) => map.get(key, now_ms).cloned(),
            Map::Or(map) => {
                let values = map.get(key, now_ms);
                (!values.is_empty()).then(|| Value::Array(values.into_iter().cloned().collect()))
            }
        }
    }
}

/// All maps of this node, with the node's hybrid logical clock.
pub struct Store {
    hlc: Hlc,
    maps: HashMap<String, Map>,
}

impl Store {
    /// An empty store whose clock stamps with `node_id`.
    pub fn new(node_id: &str) -> Self {
        Store {
            hlc: Hlc::new(node_id),
            maps: HashMap::new(),
        }
    }

    /// A store holding what durable storage loaded. Tombstoned tags are applied before
    /// the records, so that a record whose tag was removed stays removed.
    pub fn restore(node_id: &str, snapshot: Snapshot) -> Self {
        let mut store = Store::new(node_id);
        for (name, records) in snapshot.lww {
            let mut map = LwwMap::new();
            for (key, record) in records {
                store.observe(&record.timestamp);
                map.merge(&key, record);
            }
            store.maps.insert(name, Map::Lww(map));
        }
        for (name, tags) in snapshot.or_tombstones {
            let Map::Or(map) = store
                .maps
                .entry(name)
                .or_insert_with(|| Map::Or(OrMap::new()))
            else {
                continue;
            };
            for tag in tags {
                map.apply_tombstone(&tag);
            }
        }
        for (name, keys) in snapshot.or {
            let entry = store
                .maps
                .entry(name)
                .or_insert_with(|| Map::Or(OrMap::new()));
            let Map::Or(map) = entry else {
                continue;
            };
            for (key, records) in keys {
                for record in records.into_values() {
                    map.apply(&key, record);
                }
            }
        }
        store
    }

    /// A fresh timestamp of this node's clock.
    pub fn now(&mut self) -> Timestamp {
        self.hlc.now()
    }

    /// Applies one client op. Returns what changed, or `None` when the op changed
    /// nothing (an LWW record older than the one held, an already tombstoned tag):
    /// upstream broadcasts those too, and every receiver discards them.
    pub fn apply(&mut self, op: &ClientOp) -> Result<Option<Change>, OpError> {
        let now = SystemClock.now_millis();
        let old = self.visible(&op.map_name, &op.key, now);
        let Some((event, mutations)) = self.apply_op(op)? else {
            return Ok(None);
        };
        let new = self.visible(&op.map_name, &op.key, now);
        Ok(Some(Change {
            event,
            old,
            new,
            mutations,
        }))
    }

    /// The number of items of each map, as the reference server's metrics count them:
    /// LWW records including tombstones, OR records (not tombstoned tags).
    pub fn sizes(&self) -> Vec<(String, usize)> {
        self.maps
            .iter()
            .map(|(name, map)| {
                let size = match map {
                    Map::Lww(map) => map.records().count(),
                    Map::Or(map) => map.stored().map(|(_, records)| records.count()).sum(),
                };
                (name.clone(), size)
            })
            .collect()
    }

    /// Every visible entry of a map, for queries; an unknown map is empty. Entries come
    /// in key order (upstream uses insertion order, which only matters for unsorted
    /// queries with `offset`/`limit`).
    pub fn entries(&self, map_name: &str) -> Vec<(String, Value)> {
        let now = SystemClock.now_millis();
        match self.maps.get(map_name) {
            None => Vec::new(),
            Some(Map::Lww(map)) => map
                .entries(now)
                .map(|(key, value)| (key.to_owned(), value.clone()))
                .collect(),
            Some(Map::Or(map)) => map
                .entries(now)
                .map(|(key, values)| {
                    let values = values.into_iter().cloned().collect();
                    (key.to_owned(), Value::Array(values))
                })
                .collect(),
        }
    }

    fn visible(&self, map_name: &str, key: &str, now_ms: u64) -> Option<Value> {
        self.maps.get(map_name)?.visible(key, now_ms)
    }

    fn apply_op(&mut self, op: &ClientOp) -> Result<Option<(Event, Vec<Mutation>)>, OpError> {
        let map = op.map_name.clone();
        let event = |event_type, record, or_record, or_tag| Event {
            map_name: op.map_name.clone(),
            key: op.key.clone(),
            event_type,
            record,
            or_record,
            or_tag,
        };

        match op.op_type.as_deref() {
            Some("OR_ADD") => {
                let record = op.or_record.clone().ok_or(OpError::Missing {
                    field: "orRecord",
                    op: "OR_ADD",
                })?;
                self.observe(&record.timestamp);
                let changed = self.or_map(&op.map_name)?.apply(&op.key, record.clone());
                let put = Mutation::PutOr {
                    map,
                    key: op.key.clone(),
                    record: record.clone(),
                };
                Ok(changed.then(|| (event(EventType::OrAdd, None, Some(record), None), vec![put])))
            }
            Some("OR_REMOVE") => {
                let tag = op.or_tag.clone().ok_or(OpError::Missing {
                    field: "orTag",
                    op: "OR_REMOVE",
                })?;
                let or = self.or_map(&op.map_name)?;
                if or.is_tombstoned(&tag) {
                    return Ok(None);
                }
                let holders = or.apply_tombstone(&tag);
                let mut mutations = vec![Mutation::TombstoneOr {
                    map: map.clone(),
                    tag: tag.clone(),
                }];
                mutations.extend(holders.into_iter().map(|key| Mutation::DeleteOr {
                    map: map.clone(),
                    key,
                    tag: tag.clone(),
                }));
                Ok(Some((
                    event(EventType::OrRemove, None, None, Some(tag)),
                    mutations,
                )))
            }
            _ => {
                let record = op.record.clone().ok_or(OpError::Missing {
                    field: "record",
                    op: "LWW",
                })?;
                self.observe(&record.timestamp);
                let changed = self.lww_map(&op.map_name)?.merge(&op.key, record.clone());
                let put = Mutation::PutLww {
                    map,
                    key: op.key.clone(),
                    record: record.clone(),
                };
                Ok(changed.then(|| {
                    (
                        event(EventType::Updated, Some(record), None, None),
                        vec![put],
                    )
                }))
            }
        }
    }

    /// The Merkle root of an LWW map for `SYNC_RESP_ROOT`, with a fresh timestamp. An
    /// unknown map is created empty, as upstream does.
    pub fn sync_root(&mut self, map_name: &str) -> Result<(u32, Timestamp), NotSyncable> {
        let root = match self.lww_map(map_name) {
            Ok(map) => map.root_hash(),
            Err(_) => {
                return Err(NotSyncable {
                    map: map_name.to_owned(),
                })
            }
        };
        Ok((root, self.hlc.now()))
    }

    /// The answer to `MERKLE_REQ_BUCKET`; `None` for an OR map, which gets no reply.
    pub fn sync_bucket(&mut self, map_name: &str, path: &str) -> Option<SyncReply<'_>> {
        self.lww_map(map_name).ok().map(|map| map.sync_bucket(path))
    }

    /// Garbage collection of every map (PROTOCOL.md §10): records whose TTL ran out
    /// become tombstones (LWW) or tombstoned tags (OR), then tombstones older than
    /// `older_than` are forgotten.
    pub fn collect_garbage(&mut self, older_than: &Timestamp) -> Garbage {
        let now = SystemClock.now_millis();
        let node_id = self.hlc.node_id().to_owned();
        let mut garbage = Garbage::default();
        for (name, map) in &mut self.maps {
            match map {
                Map::Lww(lww) => {
                    // An expired record is already invisible, so the visible value
                    // stays absent; live queries still holding the key drop it.
                    for (key, tombstone) in lww.expire(now, &node_id) {
                        let put = Mutation::PutLww {
                            map: name.clone(),
                            key: key.clone(),
                            record: tombstone.clone(),
                        };
                        garbage.mutations.push(put.clone());
                        garbage.expired.push(Change {
                            event: event_for(name, key, EventType::Updated, Some(tombstone), None),
                            old: None,
                            new: None,
                            mutations: vec![put],
                        });
                    }
                    let pruned = lww.prune(older_than);
                    garbage
                        .mutations
                        .extend(pruned.into_iter().map(|key| Mutation::DeleteLww {
                            map: name.clone(),
                            key,
                        }));
                }
                Map::Or(or) => {
                    let expired: Vec<(String, String)> = or
                        .stored()
                        .flat_map(|(key, records)| {
                            records
                                .filter(|record| record.is_expired(now))
                                .map(move |record| (key.to_owned(), record.tag.clone()))
                        })
                        .collect();
                    or.expire(now);
                    for (key, tag) in expired {
                        let mutations = vec![
                            Mutation::TombstoneOr {
                                map: name.clone(),
                                tag: tag.clone(),
                            },
                            Mutation::DeleteOr {
                                map: name.clone(),
                                key: key.clone(),
                                tag: tag.clone(),
                            },
                        ];
                        garbage.mutations.extend(mutations.iter().cloned());
                        // Expired values were already invisible: the visible value
                        // does not change, so no live query is updated.
                        let values = or.get(&key, now);
                        let visible = (!values.is_empty())
                            .then(|| Value::Array(values.into_iter().cloned().collect()));
                        garbage.expired.push(Change {
                            event: event_for(name, key, EventType::OrRemove, None, Some(tag)),
                            old: visible.clone(),
                            new: visible,
                            mutations,
                        });
                    }
                    let pruned = or.prune(older_than);
                    garbage.mutations.extend(pruned.into_iter().map(|tag| {
                        Mutation::DeleteOrTombstone {
                            map: name.clone(),
                            tag,
                        }
                    }));
                }
            }
        }
        garbage
    }

    /// Feeds a received timestamp into the clock, warning when it is far ahead.
    fn observe(&mut self, timestamp: &Timestamp) {
        if let Some(drift) = self.hlc.update(timestamp) {
            warn!(
                node.id = %timestamp.node_id,
                ahead_ms = drift.ahead_by_ms,
                "received a timestamp far ahead of this node's clock"
            );
        }
    }

    fn lww_map(&mut self, name: &str) -> Result<&mut LwwMap, OpError> {
        match self
            .maps
            .entry(name.to_owned())
            .or_insert_with(|| Map::Lww(LwwMap::new()))
        {
            Map::Lww(map) => Ok(map),
            other => Err(OpError::TypeMismatch {
                map: name.to_owned(),
                existing: other.kind(),
                requested: "LWW",
            }),
        }
    }

    fn or_map(&mut self, name: &str) -> Result<&mut OrMap, OpError> {
        match self
            .maps
            .entry(name.to_owned())
            .or_insert_with(|| Map::Or(OrMap::new()))
        {
            Map::Or(map) => Ok(map),
            other => Err(OpError::TypeMismatch {
                map: name.to_owned(),
                existing: other.kind(),
                requested: "OR",
            }),
        }
    }
}

fn event_for(
    map: &str,
    key: String,
    event_type: EventType,
    record: Option<LwwRecord>,
    or_tag: Option<String>,
) -> Event {
    Event {
        map_name: map.to_owned(),
        key,
        event_type,
        record,
        or_record: None,
        or_tag,
    }
}

mod partition;
pub use partition::Merged;

#[cfg(test)]
mod tests;
