//! The store seen by partition, for the cluster: digests that owner and backup compare,
//! the records of some partitions to send, and merging what a peer sent.

use std::collections::BTreeSet;

use rmpv::Value;

use super::{Change, Event, EventType, Map, OpError, Store};
use crate::cluster::partition::{partition_of, PARTITION_COUNT};
use crate::crdt::hash::fnv1a_utf16;
use crate::crdt::{SystemClock, WallClock};
use crate::protocol::client::ClientOp;
use crate::storage::{Mutation, Snapshot};

/// What merging a peer's records changed: the changes to broadcast (each carrying its
/// own mutations), and tombstones of tags no key held, to store as well.
#[derive(Debug, Default)]
pub struct Merged {
    pub changes: Vec<Change>,
    pub mutations: Vec<Mutation>,
}

impl Merged {
    /// Every mutation to make durable, the changes' own first.
    pub fn all_mutations(&self) -> Vec<Mutation> {
        self.changes
            .iter()
            .flat_map(|change| change.mutations.iter().cloned())
            .chain(self.mutations.iter().cloned())
            .collect()
    }
}

impl Store {
    /// One digest per partition (index = partition) over every map: the wrapping sum of
    /// a hash per LWW record (map, key, timestamp; tombstones included) and per stored
    /// OR record (map, key, tag). Like a Merkle root, equal digests mean equal contents
    /// with high probability, and the order records arrived in does not matter.
    pub fn partition_digests(&self) -> Vec<u32> {
        let mut digests = vec![0u32; usize::from(PARTITION_COUNT)];
        for (name, map) in &self.maps {
            match map {
                Map::Lww(lww) => {
                    for (key, record) in lww.records() {
                        let hash = fnv1a_utf16(&format!("{name}\u{0}{key}:{}", record.timestamp));
                        let slot = &mut digests[usize::from(partition_of(key))];
                        *slot = slot.wrapping_add(hash);
                    }
                }
                Map::Or(or) => {
                    for (key, records) in or.stored() {
                        let slot = &mut digests[usize::from(partition_of(key))];
                        for record in records {
                            let hash = fnv1a_utf16(&format!("{name}\u{0}{key}\u{0}{}", record.tag));
                            *slot = slot.wrapping_add(hash);
                        }
                    }
                }
            }
        }
        digests
    }

    /// The records of `partitions` in every map, tombstones included, with every OR
    /// tombstone (tags carry no key, so they are not partitioned).
    pub fn partition_snapshot(&self, partitions: &BTreeSet<u16>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let wanted = |key: &str| partitions.contains(&partition_of(key));
        for (name, map) in &self.maps {
            match map {
                Map::Lww(lww) => {
                    let records: std::collections::BTreeMap<_, _> = lww
                        .records()
                        .filter(|(key, _)| wanted(key))
                        .map(|(key, record)| (key.to_owned(), record.clone()))
                        .collect();
                    if !records.is_empty() {
                        snapshot.lww.insert(name.clone(), records);
                    }
                }
                Map::Or(or) => {
                    let keys: std::collections::BTreeMap<_, _> = or
                        .stored()
                        .filter(|(key, _)| wanted(key))
                        .map(|(key, records)| {
                            let by_tag = records
                                .map(|record| (record.tag.clone(), record.clone()))
                                .collect();
                            (key.to_owned(), by_tag)
                        })
                        .collect();
                    if !keys.is_empty() {
                        snapshot.or.insert(name.clone(), keys);
                    }
                    let tombstones: BTreeSet<String> = or.tombstones().map(str::to_owned).collect();
                    if !tombstones.is_empty() {
                        snapshot.or_tombstones.insert(name.clone(), tombstones);
                    }
                }
            }
        }
        snapshot
    }

    /// Merges a peer's records: tombstones first, then LWW and OR records. Records a
    /// map of the other type cannot take are skipped and counted in the error.
    pub fn merge_snapshot(&mut self, snapshot: Snapshot) -> (Merged, Vec<OpError>) {
        let mut merged = Merged::default();
        let mut errors = Vec::new();
        let now = SystemClock.now_millis();

        for (name, tags) in snapshot.or_tombstones {
            let map = match self.or_map(&name) {
                Ok(map) => map,
                Err(error) => {
                    errors.push(error);
                    continue;
                }
            };
            for tag in tags {
                if map.is_tombstoned(&tag) {
                    continue;
                }
                let holders: Vec<String> = map
                    .stored()
                    .filter_map(|(key, mut records)| {
                        records
                            .any(|record| record.tag == tag)
                            .then(|| key.to_owned())
                    })
                    .collect();
                let before: Vec<Option<Value>> = holders
                    .iter()
                    .map(|key| visible_or(map, key, now))
                    .collect();
                map.apply_tombstone(&tag);
                merged.mutations.push(Mutation::TombstoneOr {
                    map: name.clone(),
                    tag: tag.clone(),
                });
                for (key, old) in holders.into_iter().zip(before) {
                    let new = visible_or(map, &key, now);
                    merged.changes.push(Change {
                        event: Event {
                            map_name: name.clone(),
                            key: key.clone(),
                            event_type: EventType::OrRemove,
                            record: None,
                            or_record: None,
                            or_tag: Some(tag.clone()),
                        },
                        old,
                        new,
                        mutations: vec![Mutation::DeleteOr {
                            map: name.clone(),
                            key,
                            tag: tag.clone(),
                        }],
                    });
                }
            }
        }

        let lww = snapshot.lww.into_iter().flat_map(|(name, records)| {
            records.into_iter().map(move |(key, record)| ClientOp {
                id: None,
                map_name: name.clone(),
                key,
                op_type: None,
                record: Some(record),
                or_record: None,
                or_tag: None,
            })
        });
        let or = snapshot.or.into_iter().flat_map(|(name, keys)| {
            keys.into_iter().flat_map(move |(key, records)| {
                let name = name.clone();
                records.into_values().map(move |record| ClientOp {
                    id: None,
                    map_name: name.clone(),
                    key: key.clone(),
                    op_type: Some("OR_ADD".to_owned()),
                    record: None,
                    or_record: Some(record),
                    or_tag: None,
                })
            })
        });
        for op in lww.chain(or) {
            match self.apply(&op) {
                Ok(Some(change)) => merged.changes.push(change),
                Ok(None) => {}
                Err(error) => errors.push(error),
            }
        }
        (merged, errors)
    }

    /// Applies what another node's change event carries (`CLUSTER_EVENT`).
    pub fn apply_event(&mut self, event: &Event) -> Result<Option<Change>, OpError> {
        let op_type = match event.event_type {
            EventType::Updated => None,
            EventType::OrAdd => Some("OR_ADD".to_owned()),
            EventType::OrRemove => Some("OR_REMOVE".to_owned()),
        };
        self.apply(&ClientOp {
            id: None,
            map_name: event.map_name.clone(),
            key: event.key.clone(),
            op_type,
            record: event.record.clone(),
            or_record: event.or_record.clone(),
            or_tag: event.or_tag.clone(),
        })
    }
}

fn visible_or(map: &crate::crdt::OrMap, key: &str, now: u64) -> Option<Value> {
    let values = map.get(key, now);
    (!values.is_empty()).then(|| Value::Array(values.into_iter().cloned().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{LwwRecord, Timestamp};

    fn put(store: &mut Store, key: &str, millis: u64) {
        let op = ClientOp {
            id: None,
            map_name: "m".into(),
            key: key.into(),
            op_type: None,
            record: Some(LwwRecord {
                value: Value::from(millis),
                timestamp: Timestamp::new(millis, 0, "n"),
                ttl_ms: None,
            }),
            or_record: None,
            or_tag: None,
        };
        store.apply(&op).unwrap();
    }

    #[test]
    fn a_partition_snapshot_brings_a_peer_to_the_same_digest() {
        let mut owner = Store::new("a");
        for (i, key) in ["k1", "k2", "k3", "k4"].iter().enumerate() {
            put(&mut owner, key, 1_000 + i as u64);
        }
        let mut backup = Store::new("b");
        put(&mut backup, "k1", 1_000);
        assert_ne!(owner.partition_digests(), backup.partition_digests());

        let all: BTreeSet<u16> = (0..PARTITION_COUNT).collect();
        let (merged, errors) = backup.merge_snapshot(owner.partition_snapshot(&all));
        assert!(errors.is_empty());
        assert_eq!(merged.changes.len(), 3, "k1 was already there");
        assert_eq!(owner.partition_digests(), backup.partition_digests());
    }

    #[test]
    fn a_snapshot_carries_only_the_partitions_asked_for() {
        let mut store = Store::new("a");
        put(&mut store, "k1", 1);
        put(&mut store, "k2", 2);
        let only = BTreeSet::from([partition_of("k1")]);
        let snapshot = store.partition_snapshot(&only);
        let keys: Vec<_> = snapshot.lww["m"].keys().cloned().collect();
        assert_eq!(keys, ["k1"]);
    }

    #[test]
    fn digests_do_not_depend_on_the_order_records_arrived_in() {
        let (mut first, mut second) = (Store::new("a"), Store::new("b"));
        put(&mut first, "x", 1);
        put(&mut first, "y", 2);
        put(&mut second, "y", 2);
        put(&mut second, "x", 1);
        assert_eq!(first.partition_digests(), second.partition_digests());
    }
}
