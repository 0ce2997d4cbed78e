//! Decoding the `Query` wire shape (PROTOCOL.md §1.1, §3.1).

use rmpv::Value;
use serde_json::json;

use super::*;

/// A MessagePack value from JSON notation (integers stay integers).
pub(super) fn v(json: serde_json::Value) -> Value {
    rmpv::ext::to_value(json).expect("JSON converts to MessagePack")
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// How the protocol layer encodes a reply: `rmp_serde::to_vec_named`, read back.
pub(super) fn encode_named<T: serde::Serialize>(value: &T) -> Value {
    let bytes = rmp_serde::to_vec_named(value).expect("serializing to a Vec succeeds");
    rmpv::decode::read_value(&mut bytes.as_slice()).expect("rmp_serde writes MessagePack")
}

fn msgpack(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value).expect("writing to a Vec succeeds");
    bytes
}

#[test]
fn full_wire_shape_decodes_from_msgpack_bytes() {
    let wire = v(json!({
        "where": {"status": "active"},
        "predicate": {"op": "and", "children": [
            {"op": "gt", "attribute": "age", "value": 18},
            {"op": "like", "attribute": "name", "value": "a%"}
        ]},
        "sort": {"age": "desc", "name": "asc"},
        "limit": 10,
        "offset": 5
    }));

    let query = Query::from_slice(&msgpack(&wire)).unwrap();

    assert_eq!(
        query.where_,
        Some(vec![("status".into(), Value::from("active"))])
    );
    let predicate = query.predicate.unwrap();
    assert_eq!(predicate.op, Op::And);
    assert_eq!(predicate.children[0].attribute.as_deref(), Some("age"));
    assert_eq!(predicate.children[1].op, Op::Like);
    let sort = query.sort.unwrap();
    assert_eq!(sort[0], ("age".into(), SortDirection::Desc));
    assert_eq!(sort[1], ("name".into(), SortDirection::Asc));
    assert_eq!((query.limit, query.offset), (Some(10.0), Some(5.0)));
}

#[test]
fn limit_and_offset_accept_every_number_encoding() {
    let encodings = [
        Value::from(3_u8),
        Value::from(3_u64),
        Value::from(3_i64),
        Value::F32(3.0),
        Value::F64(3.0),
    ];

    for encoding in encodings {
        let wire = map(vec![("limit", encoding.clone()), ("offset", encoding)]);

        let query = Query::from_slice(&msgpack(&wire)).unwrap();

        assert_eq!((query.limit, query.offset), (Some(3.0), Some(3.0)));
    }
}

#[test]
fn nil_reads_as_absent_for_every_optional_field() {
    let wire = v(json!({
        "where": null, "sort": null, "limit": null, "offset": null,
        "predicate": {"op": "not", "attribute": null, "value": null, "children": null}
    }));

    let query = Query::decode(&wire).unwrap();

    assert_eq!(query.where_, None);
    assert_eq!(query.sort, None);
    assert_eq!((query.limit, query.offset), (None, None));
    let predicate = query.predicate.unwrap();
    assert_eq!((predicate.attribute, predicate.value), (None, None));
    assert!(predicate.children.is_empty());
    assert_eq!(
        Query::decode(&v(json!({"predicate": null}))).unwrap(),
        Query::default()
    );
}

#[test]
fn an_empty_map_is_the_empty_query_and_unknown_fields_are_ignored() {
    let query = Query::decode(&v(json!({"cursor": "abc", "extra": [1, 2]}))).unwrap();

    assert_eq!(query, Query::default());
}

#[test]
fn an_unknown_op_is_a_typed_error_even_deep_in_the_tree() {
    let top = v(json!({"predicate": {"op": "in", "attribute": "a", "value": [1]}}));
    let deep = v(json!({"predicate": {"op": "or", "children": [
        {"op": "eq", "attribute": "a", "value": 1},
        {"op": "not", "children": [{"op": "EQ", "attribute": "a", "value": 1}]}
    ]}}));

    let top = Query::decode(&top);
    let deep = Query::decode(&deep);

    assert!(matches!(top, Err(QueryError::UnknownOp { op }) if op == "in"));
    assert!(matches!(deep, Err(QueryError::UnknownOp { op }) if op == "EQ"));
}

#[test]
fn plain_serde_also_refuses_an_unknown_op() {
    let wire = json!({"predicate": {"op": "between", "attribute": "a"}});

    let decoded = serde_json::from_value::<Query>(wire);

    assert!(decoded.is_err());
}

#[test]
fn regex_is_refused_as_unsupported_by_decode_but_not_by_serde() {
    let wire = json!({"predicate": {"op": "not", "children": [
        {"op": "regex", "attribute": "name", "value": "^a"}
    ]}});

    let decoded = Query::decode(&v(wire.clone()));
    let via_serde: Query = serde_json::from_value(wire).unwrap();

    assert!(matches!(
        decoded,
        Err(QueryError::Unsupported { op: Op::Regex })
    ));
    assert!(matches!(
        via_serde.validate(),
        Err(QueryError::Unsupported { .. })
    ));
}

#[test]
fn wrong_types_are_malformed() {
    let cases = [
        json!({"limit": "10"}),
        json!({"where": [1, 2]}),
        json!({"predicate": {"attribute": "a"}}),
        json!({"predicate": {"op": 5}}),
    ];

    for case in cases {
        let decoded = Query::decode(&v(case.clone()));

        assert!(matches!(decoded, Err(QueryError::Malformed(_))), "{case}");
    }
}

#[test]
fn an_unknown_sort_direction_is_refused() {
    let decoded = Query::decode(&v(json!({"sort": {"age": "up"}})));
    let via_serde = serde_json::from_value::<Query>(json!({"sort": {"age": "up"}}));

    assert!(
        matches!(decoded, Err(QueryError::UnknownDirection { direction }) if direction == "up")
    );
    assert!(via_serde.is_err());
}

#[test]
fn bytes_that_are_not_msgpack_are_refused() {
    let decoded = Query::from_slice(&[0x92, 0x01]);

    assert!(matches!(decoded, Err(QueryError::NotMessagePack(_))));
}

#[test]
fn bytes_nested_past_the_message_depth_budget_are_refused_without_recursing() {
    // 100,000 nested one-element arrays: read without a depth limit, they overflowed
    // the stack of the thread decoding them.
    let mut bytes = vec![0x91; 100_000];
    bytes.push(0xc0);

    let decoded = Query::from_slice(&bytes);

    assert!(matches!(decoded, Err(QueryError::NotMessagePack(_))));
}

#[test]
fn a_repeated_sort_key_keeps_its_first_position_and_last_direction() {
    let wire = Value::Map(vec![(
        Value::from("sort"),
        map(vec![
            ("a", Value::from("asc")),
            ("b", Value::from("asc")),
            ("a", Value::from("desc")),
        ]),
    )]);

    let query = Query::decode(&wire).unwrap();

    let sort = query.sort.unwrap();
    assert_eq!(
        sort,
        vec![
            ("a".into(), SortDirection::Desc),
            ("b".into(), SortDirection::Asc)
        ]
    );
}

#[test]
fn errors_name_the_operation_and_the_op() {
    let error = QueryError::UnknownOp { op: "in".into() };

    assert_eq!(
        error.to_string(),
        "decoding query: unknown predicate op `in`"
    );
}
