use super::*;

fn record(value: impl Into<Value>, millis: u64, counter: u64, node: &str) -> LwwRecord {
    LwwRecord {
        value: value.into(),
        timestamp: Timestamp::new(millis, counter, node),
        ttl_ms: None,
    }
}

fn tombstone(millis: u64, counter: u64, node: &str) -> LwwRecord {
    record(Value::Nil, millis, counter, node)
}

#[test]
fn first_record_for_a_key_is_accepted() {
    let mut map = LwwMap::new();

    let changed = map.merge("k", record(1, 1_000, 0, "n1"));

    assert!(changed);
    assert_eq!(map.get("k", 1_000), Some(&Value::from(1)));
}

#[test]
fn newer_record_replaces_an_older_one() {
    let mut map = LwwMap::new();
    map.merge("k", record(1, 1_000, 0, "n1"));

    let changed = map.merge("k", record(2, 1_000, 1, "n1"));

    assert!(changed);
    assert_eq!(map.get("k", 1_000), Some(&Value::from(2)));
}

#[test]
fn older_record_is_rejected() {
    let mut map = LwwMap::new();
    map.merge("k", record(2, 2_000, 0, "n1"));

    let changed = map.merge("k", record(1, 1_000, 9, "n2"));

    assert!(!changed);
    assert_eq!(map.get("k", 2_000), Some(&Value::from(2)));
}

#[test]
fn equal_timestamps_keep_the_local_record() {
    let mut map = LwwMap::new();
    map.merge("k", record("local", 1_000, 0, "n1"));

    let changed = map.merge("k", record("remote", 1_000, 0, "n1"));

    assert!(!changed);
    assert_eq!(map.get("k", 1_000), Some(&Value::from("local")));
}

#[test]
fn node_id_breaks_ties_in_collation_order() {
    let mut map = LwwMap::new();
    map.merge("k", record("upper", 1_000, 0, "node-A"));

    let changed = map.merge("k", record("lower", 1_000, 0, "node-a"));

    assert!(!changed, "node-a sorts before node-A, so it is older");
    assert_eq!(map.get("k", 1_000), Some(&Value::from("upper")));
}

#[test]
fn tombstone_hides_the_key_but_stays_stored() {
    let mut map = LwwMap::new();
    map.merge("k", record(1, 1_000, 0, "n1"));

    map.merge("k", tombstone(1_001, 0, "n2"));

    assert_eq!(map.get("k", 2_000), None);
    assert!(map.record("k").is_some_and(LwwRecord::is_tombstone));
    assert_eq!(map.entries(2_000).count(), 0);
}

#[test]
fn older_write_does_not_resurrect_a_tombstone() {
    let mut map = LwwMap::new();
    map.merge("k", tombstone(2_000, 0, "n1"));

    let changed = map.merge("k", record(1, 1_999, 5, "n2"));

    assert!(!changed);
    assert_eq!(map.get("k", 2_000), None);
}

#[test]
fn record_is_hidden_once_its_ttl_has_strictly_passed() {
    let mut map = LwwMap::new();
    let mut rec = record(1, 1_000, 0, "n1");
    rec.ttl_ms = Some(500);
    map.merge("k", rec);

    assert_eq!(map.get("k", 1_500), Some(&Value::from(1)));
    assert_eq!(map.get("k", 1_501), None);
    assert!(map.record("k").is_some(), "expiry hides, GC removes");
}

#[test]
fn local_set_stamps_the_record_with_the_clock() {
    let mut hlc = Hlc::with_clock("srv", || 5_000);
    let mut map = LwwMap::new();

    let written = map.set(&mut hlc, "k", Value::from("v"), Some(100)).unwrap();

    assert_eq!(written.timestamp, Timestamp::new(5_000, 0, "srv"));
    assert_eq!(written.ttl_ms, Some(100));
    assert_eq!(map.record("k"), Some(&written));
}

#[test]
fn local_set_refuses_a_zero_ttl() {
    let mut hlc = Hlc::with_clock("srv", || 5_000);
    let mut map = LwwMap::new();

    let result = map.set(&mut hlc, "k", Value::from("v"), Some(0));

    assert_eq!(result, Err(TtlError));
    assert!(map.record("k").is_none());
}

#[test]
fn local_remove_writes_a_newer_tombstone() {
    let mut hlc = Hlc::with_clock("srv", || 5_000);
    let mut map = LwwMap::new();
    map.set(&mut hlc, "k", Value::from("v"), None).unwrap();

    let removed = map.remove(&mut hlc, "k");

    assert_eq!(removed.timestamp, Timestamp::new(5_000, 1, "srv"));
    assert_eq!(map.get("k", 5_000), None);
}

#[test]
fn gc_turns_expired_records_into_tombstones_at_their_expiry() {
    let mut map = LwwMap::new();
    let mut rec = record(1, 1_000, 3, "client");
    rec.ttl_ms = Some(500);
    map.merge("k", rec);
    map.merge("live", record(2, 1_000, 0, "client"));

    let expired = map.expire(2_000, "srv");

    let expected = tombstone(1_500, 0, "srv");
    assert_eq!(expired, [("k".to_owned(), expected.clone())]);
    assert_eq!(map.record("k"), Some(&expected));
    assert_eq!(map.get("live", 2_000), Some(&Value::from(2)));
}

#[test]
fn gc_leaves_records_that_have_not_expired_yet() {
    let mut map = LwwMap::new();
    let mut rec = record(1, 1_000, 0, "client");
    rec.ttl_ms = Some(500);
    map.merge("k", rec.clone());

    let expired = map.expire(1_500, "srv");

    assert!(expired.is_empty());
    assert_eq!(map.record("k"), Some(&rec));
}

#[test]
fn prune_removes_only_tombstones_older_than_the_threshold() {
    let mut map = LwwMap::new();
    map.merge("old-tombstone", tombstone(1_000, 0, "n1"));
    map.merge("new-tombstone", tombstone(3_000, 0, "n1"));
    map.merge("old-live", record(1, 1_000, 0, "n1"));
    let kept_hash = {
        let mut kept = LwwMap::new();
        kept.merge("new-tombstone", tombstone(3_000, 0, "n1"));
        kept.merge("old-live", record(1, 1_000, 0, "n1"));
        kept.root_hash()
    };

    let pruned = map.prune(&Timestamp::new(2_000, 0, "n1"));

    assert_eq!(pruned, ["old-tombstone"]);
    assert!(map.record("old-tombstone").is_none());
    assert!(map.record("new-tombstone").is_some());
    assert!(map.record("old-live").is_some());
    assert_eq!(map.root_hash(), kept_hash);
}

#[test]
fn prune_threshold_is_exclusive() {
    let mut map = LwwMap::new();
    map.merge("k", tombstone(2_000, 0, "n1"));

    let pruned = map.prune(&Timestamp::new(2_000, 0, "n1"));

    assert!(pruned.is_empty());
}

#[test]
fn root_hash_follows_the_protocol_example() {
    let mut map = LwwMap::new();
    map.merge("a", record("x", 1_000, 0, "n1"));
    map.merge("b", record("y", 1_000, 1, "n1"));
    map.merge("c", tombstone(2_000, 0, "n2"));

    assert_eq!(map.root_hash(), 3_281_175_942);
    assert_eq!(
        map.sync_bucket(""),
        SyncReply::Buckets(BTreeMap::from([("e".to_owned(), 3_281_175_942)]))
    );
}

#[test]
fn leaf_request_returns_every_record_in_the_leaf_including_tombstones() {
    // "k1" and "k5482" both hash to 983…, so they share leaf "983".
    let mut map = LwwMap::new();
    let mut live = record("v", 1_796_311_503_565, 0, "client-a");
    live.ttl_ms = Some(10);
    let gone = tombstone(1, 0, "n1");
    map.merge("k1", live.clone());
    map.merge("k5482", gone.clone());
    map.merge("a", record("elsewhere", 1, 0, "n1"));

    let reply = map.sync_bucket("983");

    assert_eq!(
        reply,
        SyncReply::Leaf(vec![("k1", &live), ("k5482", &gone)])
    );
}

#[test]
fn bucket_request_above_the_leaves_returns_child_hashes() {
    let mut map = LwwMap::new();
    map.merge("k1", record("v", 1_796_311_503_565, 0, "client-a"));

    let reply = map.sync_bucket("98");

    assert_eq!(
        reply,
        SyncReply::Buckets(BTreeMap::from([("3".to_owned(), 54_204_058)]))
    );
}

#[test]
fn record_travels_as_a_named_map_without_an_unset_ttl() {
    let rec = record("v", 1_000, 0, "n1");

    let bytes = rmp_serde::to_vec_named(&rec).unwrap();
    let wire: Value = rmp_serde::from_slice(&bytes).unwrap();

    let keys: Vec<_> = wire
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, [Some("value"), Some("timestamp")]);
    assert_eq!(rmp_serde::from_slice::<LwwRecord>(&bytes).unwrap(), rec);
}

#[test]
fn record_with_nil_ttl_and_opaque_value_decodes() {
    let value = Value::Array(vec![Value::Binary(vec![1, 2]), Value::Ext(-1, vec![0; 4])]);
    let wire = Value::Map(vec![
        (Value::from("value"), value.clone()),
        (
            Value::from("timestamp"),
            Value::Map(vec![
                (Value::from("millis"), Value::from(1_000_u64)),
                (Value::from("counter"), Value::from(0_u8)),
                (Value::from("nodeId"), Value::from("n1")),
            ]),
        ),
        (Value::from("ttlMs"), Value::Nil),
    ]);
    let bytes = rmp_serde::to_vec(&wire).unwrap();

    let rec: LwwRecord = rmp_serde::from_slice(&bytes).unwrap();

    assert_eq!(rec.value, value);
    assert_eq!(rec.ttl_ms, None);
}
