//! §7.2: sort order, stability, offset/limit and the `{key, value}` rows.

use rmpv::Value;
use serde_json::json;

use crate::query::tests::{encode_named, v};
use crate::query::{Query, ResultEntry};

fn query(json: serde_json::Value) -> Query {
    serde_json::from_value(json).expect("test query is well formed")
}

/// Records `k0, k1, ...` with the given values, in that candidate order.
fn records(values: Vec<Value>) -> Vec<(String, Value)> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| (format!("k{i}"), value))
        .collect()
}

fn run(q: &Query, records: &[(String, Value)]) -> Vec<String> {
    let rows = records.iter().map(|(k, v)| (k.as_str(), v));
    q.execute(rows).into_iter().map(|row| row.key).collect()
}

#[test]
fn without_sort_results_keep_candidate_order() {
    let data = records(vec![v(json!({"n": 3})), v(json!({"n": 1})), Value::Nil]);

    let keys = run(&Query::default(), &data);

    assert_eq!(keys, ["k0", "k1"]);
}

#[test]
fn numbers_sort_numerically_whatever_their_encoding() {
    let data = records(vec![
        v(json!({"n": 10})),
        Value::Map(vec![(Value::from("n"), Value::F64(2.5))]),
        Value::Map(vec![(Value::from("n"), Value::from(-1_i64))]),
        Value::Map(vec![(Value::from("n"), Value::from(3_u8))]),
    ]);

    let asc = run(&query(json!({"sort": {"n": "asc"}})), &data);
    let desc = run(&query(json!({"sort": {"n": "desc"}})), &data);

    assert_eq!(asc, ["k2", "k1", "k3", "k0"]);
    assert_eq!(desc, ["k0", "k3", "k1", "k2"]);
}

#[test]
fn the_first_differing_sort_field_decides() {
    let data = records(vec![
        v(json!({"a": 1, "b": "y"})),
        v(json!({"a": 0, "b": "z"})),
        v(json!({"a": 1, "b": "x"})),
    ]);

    let keys = run(&query(json!({"sort": {"a": "desc", "b": "asc"}})), &data);

    assert_eq!(keys, ["k2", "k0", "k1"]);
}

#[test]
fn equal_sort_keys_keep_candidate_order_in_both_directions() {
    let data = records(vec![
        v(json!({"n": 1, "id": 0})),
        v(json!({"n": 1.0, "id": 1})),
        v(json!({"n": 0, "id": 2})),
        v(json!({"n": 1, "id": 3})),
    ]);

    let asc = run(&query(json!({"sort": {"n": "asc"}})), &data);
    let desc = run(&query(json!({"sort": {"n": "desc"}})), &data);

    assert_eq!(asc, ["k2", "k0", "k1", "k3"]);
    assert_eq!(desc, ["k0", "k1", "k3", "k2"]);
}

#[test]
fn missing_and_unorderable_values_come_last_in_both_directions() {
    let data = records(vec![
        v(json!({"other": 1})),
        v(json!({"n": 2})),
        v(json!({"n": {"nested": 1}})),
        v(json!({"n": 1})),
    ]);

    let asc = run(&query(json!({"sort": {"n": "asc"}})), &data);
    let desc = run(&query(json!({"sort": {"n": "desc"}})), &data);

    assert_eq!(asc, ["k3", "k1", "k0", "k2"]);
    assert_eq!(desc, ["k1", "k3", "k0", "k2"]);
}

#[test]
fn numbers_sort_before_strings_and_strings_by_utf16_units() {
    let data = records(vec![
        v(json!({"n": "\u{FF61}"})),
        v(json!({"n": "b"})),
        v(json!({"n": 5})),
        v(json!({"n": "\u{1F600}"})),
        v(json!({"n": null})),
        v(json!({"n": true})),
    ]);

    let keys = run(&query(json!({"sort": {"n": "asc"}})), &data);

    assert_eq!(keys, ["k4", "k5", "k2", "k1", "k3", "k0"]);
}

#[test]
fn offset_and_limit_cut_the_sorted_results() {
    let data = records((0..5).map(|n| v(json!({"n": 5 - n}))).collect());
    let q = query(json!({"sort": {"n": "asc"}, "offset": 1, "limit": 2}));

    let keys = run(&q, &data);

    assert_eq!(keys, ["k3", "k2"]);
}

#[test]
fn window_bounds_follow_javascript_slice() {
    let window = |json| query(json).window(5);

    assert_eq!(window(json!({})), 0..5);
    assert_eq!(window(json!({"limit": 0})), 0..5);
    assert_eq!(window(json!({"limit": 2})), 0..2);
    assert_eq!(window(json!({"limit": 9})), 0..5);
    assert_eq!(window(json!({"offset": 3})), 3..5);
    assert_eq!(window(json!({"offset": 7, "limit": 2})), 5..5);
    assert_eq!(window(json!({"offset": 4, "limit": 2})), 4..5);
    assert_eq!(window(json!({"limit": 2.9})), 0..2);
    assert_eq!(window(json!({"limit": -1})), 0..4);
    assert_eq!(window(json!({"offset": -2})), 3..3);
    assert_eq!(window(json!({"offset": 3, "limit": -2})), 3..3);
}

#[test]
fn shape_sorts_and_windows_gathered_rows() {
    let rows: Vec<ResultEntry> = [3, 1, 2]
        .into_iter()
        .map(|n| ResultEntry {
            key: format!("n{n}"),
            value: v(json!({"n": n})),
        })
        .collect();
    let q = query(json!({"sort": {"n": "desc"}, "limit": 2}));

    let shaped = q.shape(rows);

    let keys: Vec<_> = shaped.iter().map(|row| row.key.as_str()).collect();
    assert_eq!(keys, ["n3", "n2"]);
}

#[test]
fn results_serialize_as_key_value_maps() {
    let row = ResultEntry {
        key: "k".into(),
        value: v(json!({"n": 1})),
    };

    let encoded = encode_named(&vec![row]);

    assert_eq!(encoded, v(json!([{"key": "k", "value": {"n": 1}}])));
}

#[test]
fn is_windowed_only_when_offset_or_limit_is_truthy() {
    assert!(!query(json!({"limit": 0, "offset": 0})).is_windowed());
    assert!(!query(json!({"sort": {"n": "asc"}})).is_windowed());
    assert!(query(json!({"limit": 1})).is_windowed());
    assert!(query(json!({"offset": 1})).is_windowed());
}
