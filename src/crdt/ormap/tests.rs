use super::*;

fn record(value: impl Into<Value>, millis: u64, counter: u64, node: &str) -> OrRecord {
    let timestamp = Timestamp::new(millis, counter, node);
    OrRecord {
        value: value.into(),
        tag: timestamp.to_string(),
        timestamp,
        ttl_ms: None,
    }
}

fn values(map: &OrMap, key: &str, now_ms: u64) -> Vec<Value> {
    map.get(key, now_ms).into_iter().cloned().collect()
}

#[test]
fn local_add_tags_the_record_with_its_timestamp() {
    let mut hlc = Hlc::with_clock("client-a", || 1_796_311_503_565);
    let mut map = OrMap::new();

    let added = map.add(&mut hlc, "k", Value::from("v"), None).unwrap();

    assert_eq!(added.tag, "1796311503565:0:client-a");
    assert_eq!(values(&map, "k", 0), [Value::from("v")]);
}

#[test]
fn local_add_refuses_a_zero_ttl() {
    let mut hlc = Hlc::with_clock("n1", || 1_000);
    let mut map = OrMap::new();

    let result = map.add(&mut hlc, "k", Value::from("v"), Some(0));

    assert_eq!(result, Err(TtlError));
    assert!(map.get("k", 1_000).is_empty());
}

#[test]
fn concurrent_adds_of_the_same_key_are_all_kept() {
    let mut map = OrMap::new();

    map.apply("k", record("x", 1_000, 0, "n1"));
    map.apply("k", record("y", 1_000, 0, "n2"));
    map.apply("k", record("x", 1_001, 0, "n2"));

    assert_eq!(map.get("k", 1_000).len(), 3);
}

#[test]
fn remove_tombstones_every_tag_with_an_equal_value() {
    let mut map = OrMap::new();
    map.apply("k", record("x", 1_000, 0, "n1"));
    map.apply("k", record("y", 1_000, 0, "n2"));
    map.apply("k", record("x", 1_001, 0, "n2"));

    let tags = map.remove("k", &Value::from("x"));

    assert_eq!(tags, ["1000:0:n1", "1001:0:n2"]);
    assert_eq!(values(&map, "k", 0), [Value::from("y")]);
    assert!(tags.iter().all(|tag| map.is_tombstoned(tag)));
}

#[test]
fn remove_matches_numbers_across_integer_and_float_encodings() {
    let mut map = OrMap::new();
    map.apply("k", record(1, 1_000, 0, "n1"));
    map.apply("k", record(Value::F64(2.5), 1_000, 1, "n1"));

    let tags = map.remove("k", &Value::F64(1.0));

    assert_eq!(tags, ["1000:0:n1"]);
    assert_eq!(values(&map, "k", 0), [Value::F64(2.5)]);
}

#[test]
fn add_of_a_tombstoned_tag_is_ignored() {
    let mut map = OrMap::new();
    map.apply_tombstone("1000:0:n1");

    let applied = map.apply("k", record("x", 1_000, 0, "n1"));

    assert!(!applied);
    assert!(map.get("k", 1_000).is_empty());
}

#[test]
fn tombstone_finds_its_tag_without_being_told_the_key() {
    let mut map = OrMap::new();
    map.apply("k", record("x", 1_000, 0, "n1"));
    map.apply("other", record("y", 1_000, 1, "n1"));

    let changed = map.apply_tombstone("1000:0:n1");

    assert_eq!(changed, ["k"]);
    assert!(map.get("k", 1_000).is_empty());
    assert_eq!(
        map.stored().map(|(key, _)| key).collect::<Vec<_>>(),
        ["other"]
    );
}

#[test]
fn expired_records_are_hidden_from_reads() {
    let mut map = OrMap::new();
    let mut short = record("short", 1_000, 0, "n1");
    short.ttl_ms = Some(100);
    map.apply("k", short);
    map.apply("k", record("long", 1_000, 1, "n1"));

    assert_eq!(values(&map, "k", 1_100).len(), 2);
    assert_eq!(values(&map, "k", 1_101), [Value::from("long")]);
}

#[test]
fn gc_tombstones_expired_records_and_reports_their_tags() {
    let mut map = OrMap::new();
    let mut short = record("short", 1_000, 0, "n1");
    short.ttl_ms = Some(100);
    map.apply("k", short);
    map.apply("k", record("long", 1_000, 1, "n1"));

    let expired = map.expire(2_000);

    assert_eq!(expired, ["1000:0:n1"]);
    assert!(map.is_tombstoned("1000:0:n1"));
    assert_eq!(values(&map, "k", 2_000), [Value::from("long")]);
}

#[test]
fn merge_unions_records_and_applies_remote_tombstones() {
    let mut local = OrMap::new();
    local.apply("k", record("x", 1_000, 0, "n1"));
    local.apply("k", record("y", 1_000, 1, "n1"));
    let mut remote = OrMap::new();
    remote.apply("k", record("z", 1_000, 0, "n2"));
    remote.apply_tombstone("1000:0:n1");

    local.merge(&remote);

    let mut seen = values(&local, "k", 1_000);
    seen.sort_by_key(|value| value.as_str().map(str::to_owned));
    assert_eq!(seen, [Value::from("y"), Value::from("z")]);
    assert!(local.is_tombstoned("1000:0:n1"));
}

#[test]
fn merge_does_not_resurrect_a_locally_removed_tag() {
    let mut local = OrMap::new();
    local.apply_tombstone("1000:0:n1");
    let mut remote = OrMap::new();
    remote.apply("k", record("x", 1_000, 0, "n1"));

    local.merge(&remote);

    assert!(local.get("k", 1_000).is_empty());
}

#[test]
fn prune_forgets_old_tombstones_and_keeps_unparsable_ones() {
    let mut map = OrMap::new();
    for tag in ["1000:0:n1", "3000:0:n1", "not-a-timestamp", "12abc:0:n1"] {
        map.apply_tombstone(tag);
    }

    let pruned = map.prune(&Timestamp::new(2_000, 0, "n1"));

    assert_eq!(pruned, ["1000:0:n1"]);
    let left: Vec<_> = map.tombstones().collect();
    assert_eq!(left, ["12abc:0:n1", "3000:0:n1", "not-a-timestamp"]);
}

#[test]
fn entries_list_only_keys_with_visible_values() {
    let mut map = OrMap::new();
    let mut gone = record("gone", 1_000, 0, "n1");
    gone.ttl_ms = Some(1);
    map.apply("expired", gone);
    map.apply("k", record("v", 1_000, 1, "n1"));

    let entries: Vec<_> = map.entries(5_000).collect();

    assert_eq!(entries, [("k", vec![&Value::from("v")])]);
}

#[test]
fn record_travels_with_its_tag_and_camel_case_ttl() {
    let mut rec = record("v", 1_000, 0, "n1");
    rec.ttl_ms = Some(30);

    let bytes = rmp_serde::to_vec_named(&rec).unwrap();
    let wire: Value = rmp_serde::from_slice(&bytes).unwrap();

    let keys: Vec<_> = wire
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [Some("value"), Some("timestamp"), Some("tag"), Some("ttlMs")]
    );
    assert_eq!(rmp_serde::from_slice::<OrRecord>(&bytes).unwrap(), rec);
}
