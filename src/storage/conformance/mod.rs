//! The conformance suite every [`Storage`] backend must pass.
//!
//! Each case is written once over `&dyn Storage` and run against the embedded
//! backend always, and against PostgreSQL when `TOPGUN_TEST_DATABASE_URL` is
//! set, each run in a fresh schema that is dropped afterwards.

use rmpv::Value;

use super::{Batch, Mutation, Snapshot, Storage};
use crate::crdt::{LwwRecord, OrRecord, Timestamp};

mod backends;

fn lww(value: Value, millis: u64, ttl_ms: Option<u64>) -> LwwRecord {
    let timestamp = Timestamp::new(millis, 1, "node-a");
    LwwRecord {
        value,
        timestamp,
        ttl_ms,
    }
}

fn or(value: Value, millis: u64, ttl_ms: Option<u64>) -> OrRecord {
    OrRecord {
        value,
        timestamp: Timestamp::new(millis, 0, "client-b"),
        tag: format!("{millis}:0:client-b"),
        ttl_ms,
    }
}

fn put_lww(map: &str, key: &str, record: LwwRecord) -> Mutation {
    let (map, key) = (map.to_owned(), key.to_owned());
    Mutation::PutLww { map, key, record }
}

fn put_or(map: &str, key: &str, record: OrRecord) -> Mutation {
    let (map, key) = (map.to_owned(), key.to_owned());
    Mutation::PutOr { map, key, record }
}

fn tombstone_or(map: &str, tag: &str) -> Mutation {
    let (map, tag) = (map.to_owned(), tag.to_owned());
    Mutation::TombstoneOr { map, tag }
}

async fn commit(storage: &dyn Storage, mutations: Vec<Mutation>) {
    storage.commit(Batch { mutations }).await.unwrap();
}

async fn empty_storage_loads_nothing(storage: &dyn Storage) {
    assert_eq!(storage.load().await.unwrap(), Snapshot::default());
}

async fn lww_upsert_is_loaded_back(storage: &dyn Storage) {
    let record = lww(Value::from("hello"), 1_700_000_000_000, Some(60_000));

    commit(storage, vec![put_lww("users", "u1", record.clone())]).await;

    let snapshot = storage.load().await.unwrap();
    assert_eq!(snapshot.lww["users"]["u1"], record);
    assert!(snapshot.or.is_empty() && snapshot.or_tombstones.is_empty());
}

async fn last_written_record_replaces_the_earlier_one(storage: &dyn Storage) {
    let newer = lww(Value::from("newer"), 2_000, None);
    let older = lww(Value::from("older"), 1_000, None);

    commit(storage, vec![put_lww("m", "k", newer)]).await;
    commit(storage, vec![put_lww("m", "k", older.clone())]).await;

    // Storage does not merge: the store decides, storage keeps the last write.
    assert_eq!(storage.load().await.unwrap().lww["m"]["k"], older);
}

async fn lww_tombstone_is_kept(storage: &dyn Storage) {
    let tombstone = lww(Value::Nil, 3_000, None);

    commit(
        storage,
        vec![put_lww("m", "k", lww(Value::from(1), 2_000, None))],
    )
    .await;
    commit(storage, vec![put_lww("m", "k", tombstone.clone())]).await;

    let loaded = &storage.load().await.unwrap().lww["m"]["k"];
    assert!(loaded.is_tombstone());
    assert_eq!(*loaded, tombstone);
}

async fn pruned_records_and_tags_are_deleted(storage: &dyn Storage) {
    let kept = or(Value::from("kept"), 5, None);
    commit(
        storage,
        vec![
            put_lww("m", "dead", lww(Value::Nil, 1, None)),
            put_lww("m", "live", lww(Value::from(1), 2, None)),
            put_or("o", "k", or(Value::from("gone"), 3, None)),
            put_or("o", "k", kept.clone()),
            tombstone_or("o", "4:0:client-b"),
        ],
    )
    .await;

    let prune = vec![
        Mutation::DeleteLww {
            map: "m".into(),
            key: "dead".into(),
        },
        Mutation::DeleteOr {
            map: "o".into(),
            key: "k".into(),
            tag: "3:0:client-b".into(),
        },
        Mutation::DeleteOrTombstone {
            map: "o".into(),
            tag: "4:0:client-b".into(),
        },
        Mutation::DeleteLww {
            map: "m".into(),
            key: "never-existed".into(),
        },
    ];
    commit(storage, prune).await;

    let snapshot = storage.load().await.unwrap();
    assert_eq!(snapshot.lww["m"].keys().collect::<Vec<_>>(), ["live"]);
    assert_eq!(snapshot.or["o"]["k"].values().collect::<Vec<_>>(), [&kept]);
    assert!(snapshot.or_tombstones.is_empty());
}

async fn or_records_and_tombstones_round_trip(storage: &dyn Storage) {
    let a = or(Value::from("a"), 10, Some(5_000));
    let b = or(Value::from("a"), 11, None);
    let c = or(Value::from("c"), 12, None);

    commit(
        storage,
        vec![
            put_or("tags", "k1", a.clone()),
            put_or("tags", "k1", b.clone()),
            put_or("tags", "k2", c.clone()),
            tombstone_or("tags", "9:0:client-b"),
            tombstone_or("tags", "not-an-hlc"),
            tombstone_or("tags", "9:0:client-b"),
        ],
    )
    .await;

    let snapshot = storage.load().await.unwrap();
    let k1 = &snapshot.or["tags"]["k1"];
    assert_eq!((&k1[&a.tag], &k1[&b.tag]), (&a, &b));
    assert_eq!(snapshot.or["tags"]["k2"][&c.tag], c);
    let tombstones: Vec<_> = snapshot.or_tombstones["tags"].iter().collect();
    assert_eq!(tombstones, ["9:0:client-b", "not-an-hlc"]);
}

async fn bin_and_ext_values_survive_byte_exact(storage: &dyn Storage) {
    let value = Value::Map(vec![
        (Value::from("bin"), Value::Binary(vec![0, 0xc1, 0xff, 0x00])),
        (
            Value::from("ts"),
            Value::Ext(-1, vec![0, 0, 0, 1, 0, 0, 0, 0, 0x65, 0, 0, 0]),
        ),
        (Value::from("f32"), Value::F32(1.5)),
        (Value::from("big"), Value::from(u64::MAX)),
        (Value::from("neg"), Value::from(-7)),
        (
            Value::Integer(3.into()),
            Value::Array(vec![Value::Nil, true.into()]),
        ),
    ]);
    let mut expected = Vec::new();
    rmpv::encode::write_value(&mut expected, &value).unwrap();

    commit(
        storage,
        vec![
            put_lww("bytes", "k", lww(value.clone(), 1, None)),
            put_or("bytes-or", "k", or(value, 2, None)),
        ],
    )
    .await;

    let snapshot = storage.load().await.unwrap();
    for loaded in [
        &snapshot.lww["bytes"]["k"].value,
        &snapshot.or["bytes-or"]["k"]["2:0:client-b"].value,
    ] {
        let mut actual = Vec::new();
        rmpv::encode::write_value(&mut actual, loaded).unwrap();
        assert_eq!(actual, expected);
    }
}

/// A record whose timestamp no backend can hold fails the batch midway, after
/// earlier changes of the same batch were already written to the transaction.
async fn failed_batch_stores_nothing(storage: &dyn Storage) {
    commit(
        storage,
        vec![put_lww("m", "k", lww(Value::from("old"), 1, None))],
    )
    .await;
    let before = storage.load().await.unwrap();

    let result = storage
        .commit(Batch {
            mutations: vec![
                put_lww("m", "k", lww(Value::from("new"), 2, None)),
                put_or("o", "k", or(Value::from("x"), 3, None)),
                tombstone_or("o", "1:0:x"),
                put_lww("m", "bad", lww(Value::from("bad"), u64::MAX, None)),
            ],
        })
        .await;

    assert!(result.is_err());
    assert_eq!(storage.load().await.unwrap(), before);
}

/// First half of the reopen case: what a restart must find again.
async fn write_records_for_reopen(storage: &dyn Storage) -> Snapshot {
    commit(
        storage,
        vec![
            put_lww("m", "a", lww(Value::from("a"), 1, Some(10))),
            put_lww("m", "b", lww(Value::Nil, 2, None)),
            put_or("o", "k", or(Value::Binary(vec![1, 2]), 3, None)),
            tombstone_or("o", "0:0:gone"),
        ],
    )
    .await;
    commit(
        storage,
        vec![put_lww("m", "a", lww(Value::from("a2"), 4, None))],
    )
    .await;
    storage.load().await.unwrap()
}
