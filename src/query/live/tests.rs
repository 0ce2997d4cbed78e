//! §7.3: entering, changing and leaving results, with and without a window.

use rmpv::Value;
use serde_json::json;

use crate::query::tests::{encode_named, v};
use crate::query::{LiveQuery, Query, QueryUpdate, UpdateKind};

fn query(json: serde_json::Value) -> Query {
    serde_json::from_value(json).expect("test query is well formed")
}

/// A tiny store: keys in insertion order, with live-query bookkeeping.
struct Store {
    records: Vec<(String, Value)>,
}

impl Store {
    fn new(entries: &[(&str, serde_json::Value)]) -> Store {
        let records = entries
            .iter()
            .map(|(k, j)| (k.to_string(), v(j.clone())))
            .collect();
        Store { records }
    }

    fn subscribe(&self, q: Query) -> (LiveQuery, Vec<String>) {
        let (live, results) = LiveQuery::start(q, self.rows());
        (live, results.into_iter().map(|row| row.key).collect())
    }

    fn rows(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.records.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Writes (or, with `None`, deletes) `key` and returns the updates for `live`.
    fn write(
        &mut self,
        live: &mut LiveQuery,
        key: &str,
        new: Option<serde_json::Value>,
    ) -> Vec<QueryUpdate> {
        let old = self
            .records
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        let new = new.map(v);
        match (&new, self.records.iter().position(|(k, _)| k == key)) {
            (Some(value), Some(at)) => self.records[at].1 = value.clone(),
            (Some(value), None) => self.records.push((key.to_owned(), value.clone())),
            (None, Some(at)) => drop(self.records.remove(at)),
            (None, None) => {}
        }
        live.on_change(key, old.as_ref(), new.as_ref(), || self.rows())
    }
}

fn update(key: &str, value: serde_json::Value) -> QueryUpdate {
    QueryUpdate {
        key: key.into(),
        value: Some(v(value)),
        kind: UpdateKind::Update,
    }
}

fn remove(key: &str) -> QueryUpdate {
    QueryUpdate {
        key: key.into(),
        value: None,
        kind: UpdateKind::Remove,
    }
}

#[test]
fn a_record_that_starts_matching_enters_with_update() {
    let mut store = Store::new(&[("a", json!({"n": 1}))]);
    let (mut live, initial) = store.subscribe(query(json!({"where": {"n": 42}})));

    let updates = store.write(&mut live, "a", Some(json!({"n": 42})));

    assert!(initial.is_empty());
    assert_eq!(updates, [update("a", json!({"n": 42}))]);
    assert_eq!(live.keys(), ["a"]);
}

#[test]
fn a_new_matching_record_enters_with_update() {
    let mut store = Store::new(&[]);
    let (mut live, _) = store.subscribe(Query::default());

    let updates = store.write(&mut live, "a", Some(json!({"x": 1})));

    assert_eq!(updates, [update("a", json!({"x": 1}))]);
}

#[test]
fn a_change_to_a_field_the_query_ignores_still_sends_update() {
    let mut store = Store::new(&[("a", json!({"n": 42, "title": "old"}))]);
    let (mut live, _) = store.subscribe(query(json!({"where": {"n": 42}})));

    let updates = store.write(&mut live, "a", Some(json!({"n": 42, "title": "new"})));

    assert_eq!(updates, [update("a", json!({"n": 42, "title": "new"}))]);
}

#[test]
fn a_record_that_stops_matching_leaves_with_remove_and_nil_value() {
    let mut store = Store::new(&[("a", json!({"n": 42}))]);
    let (mut live, _) = store.subscribe(query(json!({"where": {"n": 42}})));

    let updates = store.write(&mut live, "a", Some(json!({"n": 7})));

    assert_eq!(updates, [remove("a")]);
    assert!(live.keys().is_empty());
}

#[test]
fn deleting_a_result_sends_remove() {
    let mut store = Store::new(&[("a", json!({"n": 1}))]);
    let (mut live, _) = store.subscribe(Query::default());

    let updates = store.write(&mut live, "a", None);

    assert_eq!(updates, [remove("a")]);
}

#[test]
fn changes_outside_the_results_send_nothing() {
    let mut store = Store::new(&[("a", json!({"n": 1}))]);
    let (mut live, _) = store.subscribe(query(json!({"where": {"n": 42}})));

    let changed = store.write(&mut live, "a", Some(json!({"n": 2})));
    let created = store.write(&mut live, "b", Some(json!({"n": 3})));
    let deleted = store.write(&mut live, "a", None);

    assert!(changed.is_empty() && created.is_empty() && deleted.is_empty());
}

#[test]
fn rewriting_the_same_value_in_another_encoding_sends_nothing() {
    let mut store = Store::new(&[("a", json!({"n": 1}))]);
    let (mut live, _) = store.subscribe(Query::default());

    let updates = store.write(&mut live, "a", Some(json!({"n": 1.0})));

    assert!(updates.is_empty());
}

#[test]
fn nested_values_always_count_as_changed() {
    let mut store = Store::new(&[("a", json!({"tags": ["x"]}))]);
    let (mut live, _) = store.subscribe(Query::default());

    let updates = store.write(&mut live, "a", Some(json!({"tags": ["x"]})));

    assert_eq!(updates, [update("a", json!({"tags": ["x"]}))]);
}

#[test]
fn or_map_value_arrays_always_count_as_changed() {
    let mut store = Store::new(&[("a", json!(["x"]))]);
    let (mut live, _) = store.subscribe(Query::default());

    let updates = store.write(&mut live, "a", Some(json!(["x"])));

    assert_eq!(updates, [update("a", json!(["x"]))]);
}

#[test]
fn a_new_record_inside_a_limit_window_pushes_the_last_one_out() {
    let mut store = Store::new(&[("a", json!({"n": 1})), ("b", json!({"n": 3}))]);
    let (mut live, initial) = store.subscribe(query(json!({"sort": {"n": "asc"}, "limit": 2})));

    let updates = store.write(&mut live, "c", Some(json!({"n": 2})));

    assert_eq!(initial, ["a", "b"]);
    assert_eq!(updates, [remove("b"), update("c", json!({"n": 2}))]);
    assert_eq!(live.keys(), ["a", "c"]);
}

#[test]
fn leaving_a_limit_window_pulls_the_next_record_in() {
    let mut store = Store::new(&[
        ("a", json!({"n": 1})),
        ("b", json!({"n": 2})),
        ("c", json!({"n": 3})),
    ]);
    let (mut live, _) = store.subscribe(query(json!({"sort": {"n": "asc"}, "limit": 2})));

    let updates = store.write(&mut live, "a", None);

    assert_eq!(updates, [remove("a"), update("c", json!({"n": 3}))]);
}

#[test]
fn moving_inside_a_window_updates_only_the_changed_key() {
    let mut store = Store::new(&[("a", json!({"n": 1})), ("b", json!({"n": 2}))]);
    let (mut live, _) = store.subscribe(query(json!({"sort": {"n": "asc"}, "limit": 5})));

    let updates = store.write(&mut live, "a", Some(json!({"n": 3})));

    assert_eq!(updates, [update("a", json!({"n": 3}))]);
    assert_eq!(live.keys(), ["b", "a"]);
}

#[test]
fn a_record_leaving_the_offset_region_shifts_the_window() {
    let mut store = Store::new(&[
        ("a", json!({"n": 1})),
        ("b", json!({"n": 2})),
        ("c", json!({"n": 3})),
    ]);
    let q = query(json!({"sort": {"n": "asc"}, "offset": 1, "limit": 1}));
    let (mut live, initial) = store.subscribe(q);

    let updates = store.write(&mut live, "a", None);

    assert_eq!(initial, ["b"]);
    assert_eq!(updates, [remove("b"), update("c", json!({"n": 3}))]);
}

#[test]
fn refresh_removes_vanished_keys_and_updates_every_result() {
    let mut store = Store::new(&[("a", json!({"n": 1})), ("b", json!({"n": 2}))]);
    let (mut live, _) = store.subscribe(Query::default());
    store.records.remove(0);
    store.records.push(("c".into(), v(json!({"n": 3}))));

    let updates = live.refresh(store.rows());

    let expected = [
        remove("a"),
        update("b", json!({"n": 2})),
        update("c", json!({"n": 3})),
    ];
    assert_eq!(updates, expected);
}

#[test]
fn updates_serialize_as_the_query_update_payload() {
    let encoded = encode_named(&[remove("k"), update("j", json!(1))]);

    let expected = json!([
        {"key": "k", "value": null, "type": "REMOVE"},
        {"key": "j", "value": 1, "type": "UPDATE"}
    ]);
    assert_eq!(encoded, v(expected));
}
