use std::sync::Arc;

use rmpv::Value;

use super::EmbeddedStorage;
use crate::crdt::{LwwRecord, Timestamp};
use crate::storage::{Batch, Mutation, Storage};

fn put(key: &str, millis: u64) -> Batch {
    let record = LwwRecord {
        value: Value::from(key),
        timestamp: Timestamp::new(millis, 0, "node-a"),
        ttl_ms: None,
    };
    let mut batch = Batch::new();
    batch.push(Mutation::PutLww {
        map: "m".into(),
        key: key.into(),
        record,
    });
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_all_stored_and_a_bad_one_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(EmbeddedStorage::open(dir.path()).await.unwrap());

    // Enough concurrent commits that the writer thread groups many of them; one
    // carries a timestamp no backend can hold.
    let mut commits = Vec::new();
    for i in 0..200u64 {
        let storage = Arc::clone(&storage);
        let millis = if i == 77 { u64::MAX } else { i + 1 };
        commits.push(tokio::spawn(async move {
            storage.commit(put(&format!("k{i}"), millis)).await
        }));
    }
    for (i, commit) in commits.into_iter().enumerate() {
        let outcome = commit.await.unwrap();
        assert_eq!(outcome.is_err(), i == 77, "commit {i}: {outcome:?}");
    }

    let snapshot = storage.load().await.unwrap();
    let stored = &snapshot.lww["m"];
    assert_eq!(stored.len(), 199);
    assert!(!stored.contains_key("k77"));
}

#[tokio::test]
async fn the_file_can_be_opened_again_as_soon_as_the_last_handle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(dir.path()).await.unwrap();
    let copy = storage.clone();
    copy.commit(put("k", 1)).await.unwrap();
    drop(storage);
    drop(copy);

    let reopened = EmbeddedStorage::open(dir.path()).await.unwrap();
    assert!(reopened.load().await.unwrap().lww["m"].contains_key("k"));
}

#[tokio::test]
async fn batches_are_stored_in_the_order_of_the_calls_whatever_order_they_are_awaited_in() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(dir.path()).await.unwrap();
    assert!(storage.orders_at_call());

    let mut older = put("k", 1);
    let mut newer = put("k", 2);
    if let (Mutation::PutLww { record: a, .. }, Mutation::PutLww { record: b, .. }) =
        (&mut older.mutations[0], &mut newer.mutations[0])
    {
        a.value = Value::from("first");
        b.value = Value::from("second");
    }
    let first = storage.commit(older);
    let second = storage.commit(newer);
    second.await.unwrap();
    first.await.unwrap();

    let snapshot = storage.load().await.unwrap();
    assert_eq!(snapshot.lww["m"]["k"].value, Value::from("second"));
}
