use rmpv::Value;

use super::*;

fn lww_put(map: &str, key: &str, value: Value, millis: u64) -> ClientOp {
    ClientOp {
        id: Some("1".into()),
        map_name: map.into(),
        key: key.into(),
        op_type: Some("PUT".into()),
        record: Some(LwwRecord {
            value,
            timestamp: Timestamp::new(millis, 0, "client-a"),
            ttl_ms: None,
        }),
        or_record: None,
        or_tag: None,
    }
}

fn or_add(map: &str, key: &str, tag_millis: u64) -> ClientOp {
    let timestamp = Timestamp::new(tag_millis, 0, "client-a");
    ClientOp {
        id: None,
        map_name: map.into(),
        key: key.into(),
        op_type: Some("OR_ADD".into()),
        record: None,
        or_record: Some(OrRecord {
            value: "v".into(),
            tag: timestamp.to_string(),
            timestamp,
            ttl_ms: None,
        }),
        or_tag: None,
    }
}

#[test]
fn an_lww_put_is_merged_and_reported_and_an_older_one_changes_nothing() {
    let mut store = Store::new("node-a");

    let newer = store.apply(&lww_put("m", "k", "new".into(), 2000)).unwrap();
    let older = store.apply(&lww_put("m", "k", "old".into(), 1000)).unwrap();

    let change = newer.expect("the first write changes the map");
    assert_eq!(change.event.event_type, EventType::Updated);
    assert_eq!(change.event.record.unwrap().value, Value::from("new"));
    assert_eq!((change.old, change.new), (None, Some(Value::from("new"))));
    assert_eq!(older, None);
    assert_eq!(store.entries("m"), [("k".to_owned(), Value::from("new"))]);
}

/// The observed exchange of PROTOCOL.md §15.3: one record `k1` written by `client-a`
/// at 1796311503565 gives the root hash 54204058.
#[test]
fn the_sync_root_matches_the_observed_exchange() {
    let mut store = Store::new("node-a");
    store
        .apply(&lww_put("demo", "k1", "anything".into(), 1_796_311_503_565))
        .unwrap();

    let (root, timestamp) = store.sync_root("demo").unwrap();

    assert_eq!(root, 54_204_058);
    assert_eq!(timestamp.node_id, "node-a");
    assert!(matches!(
        store.sync_bucket("demo", ""),
        Some(SyncReply::Buckets(_))
    ));
}

#[test]
fn or_ops_and_lww_ops_on_one_map_are_a_type_mismatch() {
    let mut store = Store::new("node-a");
    store.apply(&or_add("tags", "k", 1000)).unwrap();

    let error = store
        .apply(&lww_put("tags", "k", "v".into(), 2000))
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        "Map type mismatch: tags is an ORMap but received an LWW op"
    );
}

#[test]
fn an_or_remove_reports_the_tag_once_and_or_maps_are_not_merkle_synced() {
    let mut store = Store::new("node-a");
    let add = or_add("tags", "k", 1000);
    let tag = add.or_record.as_ref().unwrap().tag.clone();
    store.apply(&add).unwrap();
    let remove = ClientOp {
        op_type: Some("OR_REMOVE".into()),
        or_record: None,
        or_tag: Some(tag.clone()),
        ..add
    };

    let first = store.apply(&remove).unwrap();
    let again = store.apply(&remove).unwrap();

    let first = first.unwrap();
    assert_eq!(first.event.or_tag, Some(tag));
    assert_eq!(first.old, Some(Value::Array(vec!["v".into()])));
    assert_eq!(first.new, None);
    assert_eq!(again, None);
    assert!(store.sync_root("tags").is_err());
    assert!(store.sync_bucket("tags", "").is_none());
}

#[test]
fn an_op_without_its_record_is_refused() {
    let mut store = Store::new("node-a");
    let mut op = lww_put("m", "k", Value::Nil, 1);
    op.record = None;

    let error = store.apply(&op).unwrap_err();

    assert_eq!(error.to_string(), "Missing record for LWW op");
}
