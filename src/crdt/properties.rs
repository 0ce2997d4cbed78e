//! Property tests of the CRDT laws: merge is commutative, associative and
//! idempotent for both maps, and Merkle hashes do not depend on insertion order.
//!
//! Writes come from one shared pool with unique timestamps (or tags), because
//! the HLC guarantees that in the real system; each replica sees a random part.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use rmpv::Value;

use super::lww::{LwwMap, LwwRecord};
use super::merkle::{self, MerkleTree};
use super::ormap::{OrMap, OrRecord};
use super::timestamp::Timestamp;

/// Node ids chosen so that collation, not byte order, decides some ties.
const NODES: [&str; 4] = ["a", "B", "node-a", "node-A"];
const KEYS: [&str; 3] = ["k1", "k2", "user:42"];
/// Reads are compared at a time when some TTLs have run out and some have not.
const NOW: u64 = 4;

/// One write of the pool, plus which of the replicas A, B, C see it (bits 0–2)
/// and, for the OR-Map, which of them also see its tag removed (bits 3–5).
#[derive(Debug, Clone)]
struct Write {
    key: &'static str,
    timestamp: Timestamp,
    value: Option<i64>,
    ttl_ms: Option<u64>,
    seen_by: u8,
}

fn write() -> impl Strategy<Value = Write> {
    (
        0..KEYS.len(),
        0..NODES.len(),
        0..6u64,
        0..3u64,
        proptest::option::weighted(0.8, 0..4i64),
        proptest::option::of(1..4u64),
        any::<u8>(),
    )
        .prop_map(
            |(key, node, millis, counter, value, ttl_ms, seen_by)| Write {
                key: KEYS[key],
                timestamp: Timestamp::new(millis, counter, NODES[node]),
                value,
                ttl_ms,
                seen_by,
            },
        )
}

/// A pool of writes with pairwise distinct timestamps.
fn pool() -> impl Strategy<Value = Vec<Write>> {
    proptest::collection::vec(write(), 0..24).prop_map(|writes| {
        let mut seen = HashSet::new();
        writes
            .into_iter()
            .filter(|write| seen.insert(write.timestamp.clone()))
            .collect()
    })
}

fn lww_record(write: &Write) -> LwwRecord {
    LwwRecord {
        value: write.value.map_or(Value::Nil, Value::from),
        timestamp: write.timestamp.clone(),
        ttl_ms: write.ttl_ms,
    }
}

fn lww_replica<'a>(writes: impl Iterator<Item = &'a Write>, replica: u8) -> LwwMap {
    let mut map = LwwMap::new();
    for write in writes.filter(|write| write.seen_by & (1 << replica) != 0) {
        map.merge(write.key, lww_record(write));
    }
    map
}

fn lww_merged(mut left: LwwMap, right: &LwwMap) -> LwwMap {
    left.merge_map(right);
    left
}

type LwwState = (Vec<(String, LwwRecord)>, u32, Vec<(String, Value)>);

/// Everything observable: stored records, root hash and visible entries.
fn lww_state(map: &LwwMap) -> LwwState {
    let records = map
        .records()
        .map(|(k, r)| (k.to_owned(), r.clone()))
        .collect();
    let visible = map
        .entries(NOW)
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    (records, map.root_hash(), visible)
}

fn or_replica<'a>(writes: impl Iterator<Item = &'a Write>, replica: u8) -> OrMap {
    let mut map = OrMap::new();
    for write in writes {
        let record = OrRecord {
            value: write.value.map_or(Value::Nil, Value::from),
            tag: write.timestamp.to_string(),
            timestamp: write.timestamp.clone(),
            ttl_ms: write.ttl_ms,
        };
        if write.seen_by & (1 << replica) != 0 {
            map.apply(write.key, record);
        }
        if write.seen_by & (1 << (replica + 3)) != 0 {
            map.apply_tombstone(&write.timestamp.to_string());
        }
    }
    map
}

fn or_merged(mut left: OrMap, right: &OrMap) -> OrMap {
    left.merge(right);
    left
}

type OrState = (OrMap, Vec<(String, Vec<Value>)>);

fn or_state(map: &OrMap) -> OrState {
    let visible = map
        .entries(NOW)
        .map(|(k, values)| (k.to_owned(), values.into_iter().cloned().collect()))
        .collect();
    (map.clone(), visible)
}

proptest! {
    #[test]
    fn lww_merge_is_commutative(writes in pool()) {
        let (a, b) = (lww_replica(writes.iter(), 0), lww_replica(writes.iter(), 1));

        let ab = lww_merged(a.clone(), &b);
        let ba = lww_merged(b, &a);

        prop_assert_eq!(lww_state(&ab), lww_state(&ba));
    }

    #[test]
    fn lww_merge_is_associative(writes in pool()) {
        let a = lww_replica(writes.iter(), 0);
        let b = lww_replica(writes.iter(), 1);
        let c = lww_replica(writes.iter(), 2);

        let left = lww_merged(lww_merged(a.clone(), &b), &c);
        let right = lww_merged(a, &lww_merged(b, &c));

        prop_assert_eq!(lww_state(&left), lww_state(&right));
    }

    #[test]
    fn lww_merge_is_idempotent(writes in pool()) {
        let a = lww_replica(writes.iter(), 0);

        let aa = lww_merged(a.clone(), &a);

        prop_assert_eq!(lww_state(&aa), lww_state(&a));
    }

    #[test]
    fn lww_state_does_not_depend_on_delivery_order(writes in pool()) {
        let forward = lww_replica(writes.iter(), 0);
        let backward = lww_replica(writes.iter().rev(), 0);

        prop_assert_eq!(lww_state(&forward), lww_state(&backward));
    }

    #[test]
    fn or_merge_is_commutative(writes in pool()) {
        let (a, b) = (or_replica(writes.iter(), 0), or_replica(writes.iter(), 1));

        let ab = or_merged(a.clone(), &b);
        let ba = or_merged(b, &a);

        prop_assert_eq!(or_state(&ab), or_state(&ba));
    }

    #[test]
    fn or_merge_is_associative(writes in pool()) {
        let a = or_replica(writes.iter(), 0);
        let b = or_replica(writes.iter(), 1);
        let c = or_replica(writes.iter(), 2);

        let left = or_merged(or_merged(a.clone(), &b), &c);
        let right = or_merged(a, &or_merged(b, &c));

        prop_assert_eq!(or_state(&left), or_state(&right));
    }

    #[test]
    fn or_merge_is_idempotent(writes in pool()) {
        let a = or_replica(writes.iter(), 0);

        let aa = or_merged(a.clone(), &a);

        prop_assert_eq!(or_state(&aa), or_state(&a));
    }

    #[test]
    fn or_state_does_not_depend_on_delivery_order(writes in pool()) {
        let forward = or_replica(writes.iter(), 0);
        let backward = or_replica(writes.iter().rev(), 0);

        prop_assert_eq!(or_state(&forward), or_state(&backward));
    }

    #[test]
    fn merkle_hashes_do_not_depend_on_insertion_order(
        (items, shuffled) in merkle_items().prop_flat_map(|items| {
            let shuffled = Just(items.clone()).prop_shuffle();
            (Just(items), shuffled)
        })
    ) {
        let build = |items: &[(String, Timestamp)]| {
            let mut tree = MerkleTree::new();
            for (key, timestamp) in items {
                tree.update(key, timestamp);
            }
            tree
        };

        let (tree, other) = (build(&items), build(&shuffled));

        let sum = items
            .iter()
            .map(|(key, timestamp)| merkle::item_hash(key, timestamp))
            .fold(0u32, u32::wrapping_add);
        prop_assert_eq!(tree.root_hash(), sum);
        prop_assert_eq!(&tree, &other);
        for path in tree.buckets("").keys() {
            prop_assert_eq!(tree.buckets(path), other.buckets(path));
        }
    }
}

/// Distinct keys (any Unicode, to exercise UTF-16 hashing) with a timestamp each.
fn merkle_items() -> impl Strategy<Value = Vec<(String, Timestamp)>> {
    proptest::collection::btree_map(".{0,8}", (0..u64::from(u32::MAX), 0..4u64), 0..40).prop_map(
        |items: BTreeMap<String, (u64, u64)>| {
            items
                .into_iter()
                .map(|(key, (millis, counter))| (key, Timestamp::new(millis, counter, "n1")))
                .collect()
        },
    )
}
