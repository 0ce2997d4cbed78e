//! §7.1 rule by rule.

use rmpv::Value;
use serde_json::json;

use crate::query::tests::v;
use crate::query::{PredicateNode, Query};

fn query(json: serde_json::Value) -> Query {
    serde_json::from_value(json).expect("test query is well formed")
}

fn leaf(op: &str, attribute: &str, value: serde_json::Value) -> Query {
    query(json!({"predicate": {"op": op, "attribute": attribute, "value": value}}))
}

fn record_with(field: &str, value: Value) -> Value {
    Value::Map(vec![(Value::from(field), value)])
}

#[test]
fn falsy_record_values_never_match_even_the_empty_query() {
    let everything = Query::default();
    let falsy = [
        Value::Nil,
        Value::from(false),
        Value::from(0),
        Value::F64(0.0),
        Value::F64(f64::NAN),
        Value::from(""),
    ];

    for value in falsy {
        assert!(!everything.matches(&value), "{value:?}");
    }
}

#[test]
fn the_empty_query_matches_every_truthy_value() {
    let everything = Query::default();

    for value in [
        v(json!({})),
        v(json!([])),
        Value::from("x"),
        Value::Binary(vec![]),
    ] {
        assert!(everything.matches(&value), "{value:?}");
    }
}

#[test]
fn a_present_predicate_decides_and_where_is_ignored() {
    let q = query(json!({
        "where": {"status": "active"},
        "predicate": {"op": "eq", "attribute": "status", "value": "archived"}
    }));

    assert!(q.matches(&v(json!({"status": "archived"}))));
    assert!(!q.matches(&v(json!({"status": "active"}))));
}

#[test]
fn where_equality_holds_across_number_encodings() {
    let q = query(json!({"where": {"n": 42}}));

    for encoding in [Value::from(42_u8), Value::from(42_i64), Value::F64(42.0)] {
        assert!(
            q.matches(&record_with("n", encoding.clone())),
            "{encoding:?}"
        );
    }
    assert!(!q.matches(&record_with("n", Value::from("42"))));
}

#[test]
fn where_operators_compare_like_javascript() {
    let adult = query(json!({"where": {"age": {"$gte": 18, "$lt": 65}}}));
    let not_bob = query(json!({"where": {"name": {"$ne": "bob"}}}));

    assert!(adult.matches(&v(json!({"age": 18}))));
    assert!(adult.matches(&v(json!({"age": "30"}))));
    assert!(!adult.matches(&v(json!({"age": 65}))));
    assert!(!adult.matches(&v(json!({"name": "no age"}))));
    assert!(not_bob.matches(&v(json!({"name": "alice"}))));
    assert!(not_bob.matches(&v(json!({"other": 1}))));
    assert!(!not_bob.matches(&v(json!({"name": "bob"}))));
}

#[test]
fn where_unknown_operators_fail_and_an_empty_operator_map_holds() {
    let unknown = query(json!({"where": {"age": {"$gt": 1, "$in": [1]}}}));
    let empty = query(json!({"where": {"age": {}}}));

    assert!(!unknown.matches(&v(json!({"age": 5}))));
    assert!(empty.matches(&v(json!({"other": 5}))));
}

#[test]
fn where_arrays_never_equal_and_nil_equals_only_a_present_nil() {
    let array = query(json!({"where": {"tags": ["a"]}}));
    let nil = query(json!({"where": {"deleted": null}}));

    assert!(!array.matches(&v(json!({"tags": ["a"]}))));
    assert!(nil.matches(&v(json!({"deleted": null}))));
    assert!(!nil.matches(&v(json!({"other": 1}))));
}

#[test]
fn and_of_nothing_is_true_or_of_nothing_is_false_not_of_nothing_is_true() {
    let data = v(json!({"a": 1}));

    assert!(query(json!({"predicate": {"op": "and"}})).matches(&data));
    assert!(!query(json!({"predicate": {"op": "or", "children": []}})).matches(&data));
    assert!(query(json!({"predicate": {"op": "not"}})).matches(&data));
}

#[test]
fn not_negates_its_first_child_only() {
    let q = query(json!({"predicate": {"op": "not", "children": [
        {"op": "eq", "attribute": "a", "value": 1},
        {"op": "eq", "attribute": "a", "value": 2}
    ]}}));

    assert!(!q.matches(&v(json!({"a": 1}))));
    assert!(q.matches(&v(json!({"a": 2}))));
}

#[test]
fn a_leaf_without_attribute_is_false_whatever_its_op() {
    let neq = query(json!({"predicate": {"op": "neq", "value": 1}}));
    let empty = leaf("neq", "", json!(1));

    assert!(!neq.matches(&v(json!({"a": 2}))));
    assert!(!empty.matches(&v(json!({"": 2}))));
}

#[test]
fn eq_and_neq_compare_primitives_and_never_equal_objects() {
    let data = v(json!({"n": 1.0, "s": "x", "b": true, "z": null, "m": {}}));

    assert!(leaf("eq", "n", json!(1)).matches(&data));
    assert!(leaf("eq", "s", json!("x")).matches(&data));
    assert!(leaf("eq", "b", json!(true)).matches(&data));
    assert!(leaf("eq", "z", json!(null)).matches(&data));
    assert!(!leaf("eq", "m", json!({})).matches(&data));
    assert!(leaf("neq", "m", json!({})).matches(&data));
    assert!(!leaf("eq", "b", json!(1)).matches(&data));
}

#[test]
fn a_missing_attribute_is_undefined() {
    let data = v(json!({"a": 1}));

    assert!(!leaf("eq", "missing", json!(null)).matches(&data));
    assert!(leaf("neq", "missing", json!(null)).matches(&data));
    for op in ["gt", "gte", "lt", "lte"] {
        assert!(!leaf(op, "missing", json!(0)).matches(&data), "{op}");
    }
}

#[test]
fn relational_ops_coerce_mixed_types_like_javascript() {
    let data = v(json!({"s": "5", "z": null, "t": true, "w": "abc"}));

    assert!(leaf("gt", "s", json!(3)).matches(&data));
    assert!(leaf("gte", "z", json!(0)).matches(&data));
    assert!(leaf("gt", "t", json!(0)).matches(&data));
    assert!(!leaf("gt", "w", json!(1)).matches(&data));
    assert!(!leaf("lte", "w", json!(1)).matches(&data));
    assert!(leaf("lt", "s", json!("6")).matches(&data));
    assert!(!leaf("lt", "s", json!("10")).matches(&data));
}

#[test]
fn relational_ops_compare_numbers_whatever_the_encoding() {
    let data = record_with("n", Value::from(10_u8));

    assert!(leaf("gt", "n", json!(9.5)).matches(&data));
    assert!(leaf("lte", "n", json!(10.0)).matches(&data));
    assert!(!leaf("lt", "n", json!(-3)).matches(&data));
}

#[test]
fn like_needs_two_strings_and_matches_anchored_without_case() {
    let data = v(json!({"name": "Johnny", "n": 5}));

    assert!(leaf("like", "name", json!("john%")).matches(&data));
    assert!(leaf("like", "name", json!("J_HNNY")).matches(&data));
    assert!(!leaf("like", "name", json!("ohn")).matches(&data));
    assert!(!leaf("like", "n", json!("5")).matches(&data));
}

#[test]
fn regex_never_matches_here() {
    let q = leaf("regex", "name", json!("."));

    assert!(!q.matches(&v(json!({"name": "anything"}))));
}

#[test]
fn attributes_are_top_level_properties_not_paths() {
    let nested = v(json!({"a": {"b": 1}}));
    let dotted = v(json!({"a.b": 1}));

    assert!(!leaf("eq", "a.b", json!(1)).matches(&nested));
    assert!(leaf("eq", "a.b", json!(1)).matches(&dotted));
}

#[test]
fn array_values_answer_length_and_indices() {
    let or_map_value = v(json!(["x", "y"]));

    assert!(leaf("eq", "length", json!(2)).matches(&or_map_value));
    assert!(leaf("eq", "0", json!("x")).matches(&or_map_value));
    assert!(!query(json!({"where": {"status": "x"}})).matches(&or_map_value));
}

#[test]
fn evaluating_a_node_directly_rejects_falsy_data() {
    let node: PredicateNode = serde_json::from_value(json!({"op": "not"})).unwrap();

    assert!(node.evaluate(&v(json!({}))));
    assert!(!node.evaluate(&Value::Nil));
}
