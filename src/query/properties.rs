//! Property tests: boolean laws of predicates, shaping bounds, and live
//! updates that always agree with a fresh run of the query.

use proptest::prelude::*;
use rmpv::Value;

use super::{LiveQuery, Op, PredicateNode, Query, SortDirection};

const FIELDS: [&str; 3] = ["a", "b", "c"];

/// A field value: numbers in several encodings, strings, nil, booleans, arrays.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0_u8..5).prop_map(Value::from),
        (-3_i64..5).prop_map(Value::from),
        (-3_i32..5).prop_map(|n| Value::F64(f64::from(n) / 2.0)),
        prop::sample::select(vec!["", "1", "a", "B", "10"]).prop_map(Value::from),
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        Just(Value::Array(vec![])),
    ]
}

/// A record value: a map over some of `FIELDS` (always truthy).
fn record() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(FIELDS.to_vec()), field_value()), 0..4)
        .prop_map(|entries| Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect()))
}

fn leaf() -> impl Strategy<Value = PredicateNode> {
    let ops = vec![Op::Eq, Op::Neq, Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::Like];
    (
        prop::sample::select(ops),
        prop::sample::select(FIELDS.to_vec()),
        field_value(),
    )
        .prop_map(|(op, attribute, value)| PredicateNode {
            op,
            attribute: Some(attribute.into()),
            value: Some(value),
            children: Vec::new(),
        })
}

fn node(op: Op, children: Vec<PredicateNode>) -> PredicateNode {
    PredicateNode {
        op,
        attribute: None,
        value: None,
        children,
    }
}

fn tree() -> impl Strategy<Value = PredicateNode> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        (
            prop::sample::select(vec![Op::And, Op::Or, Op::Not]),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(op, children)| node(op, children))
    })
}

fn sorted_query(limit: Option<f64>, offset: Option<f64>, predicate: PredicateNode) -> Query {
    Query {
        predicate: Some(predicate),
        sort: Some(vec![
            ("a".into(), SortDirection::Asc),
            ("b".into(), SortDirection::Desc),
        ]),
        limit,
        offset,
        ..Query::default()
    }
}

proptest! {
    #[test]
    fn not_is_the_negation_of_its_child(p in tree(), data in record()) {
        let negated = node(Op::Not, vec![p.clone()]);

        prop_assert_eq!(negated.evaluate(&data), !p.evaluate(&data));
    }

    #[test]
    fn and_and_or_agree_with_boolean_logic(children in prop::collection::vec(tree(), 0..4), data in record()) {
        let values: Vec<bool> = children.iter().map(|c| c.evaluate(&data)).collect();

        let all = node(Op::And, children.clone()).evaluate(&data);
        let any = node(Op::Or, children).evaluate(&data);

        prop_assert_eq!(all, values.iter().all(|b| *b));
        prop_assert_eq!(any, values.iter().any(|b| *b));
    }

    #[test]
    fn shaping_never_returns_more_than_limit_and_results_all_match(
        data in prop::collection::vec(record(), 0..12),
        limit in 1_u8..6,
        offset in 0_u8..6,
        predicate in tree(),
    ) {
        let keys: Vec<String> = (0..data.len()).map(|i| format!("k{i}")).collect();
        let q = sorted_query(Some(f64::from(limit)), Some(f64::from(offset)), predicate);

        let results = q.execute(keys.iter().map(String::as_str).zip(&data));

        let matching = data.iter().filter(|value| q.matches(value)).count();
        prop_assert!(results.len() <= usize::from(limit));
        prop_assert_eq!(results.len(), matching.saturating_sub(usize::from(offset)).min(usize::from(limit)));
        prop_assert!(results.iter().all(|row| q.matches(&row.value)));
    }

    #[test]
    fn sorting_is_idempotent_on_mixed_values(data in prop::collection::vec(record(), 0..12)) {
        let q = sorted_query(None, None, node(Op::And, vec![]));
        let mut once = data.clone();
        q.sort_by_value(&mut once, |value| value);

        let mut twice = once.clone();
        q.sort_by_value(&mut twice, |value| value);

        prop_assert_eq!(once, twice);
    }

    #[test]
    fn live_keys_always_equal_a_fresh_run(
        changes in prop::collection::vec((0_usize..5, prop::option::of(record())), 1..20),
        limit in prop::option::of(1_u8..4),
        offset in prop::option::of(0_u8..3),
        predicate in tree(),
    ) {
        let q = sorted_query(limit.map(f64::from), offset.map(f64::from), predicate);
        let mut store: Vec<(String, Value)> = Vec::new();
        let (mut live, _) = LiveQuery::start(q.clone(), std::iter::empty());

        for (slot, new) in changes {
            let key = format!("k{slot}");
            let at = store.iter().position(|(k, _)| *k == key);
            let old = at.map(|at| store[at].1.clone());
            match (at, &new) {
                (Some(at), Some(value)) => store[at].1 = value.clone(),
                (None, Some(value)) => store.push((key.clone(), value.clone())),
                (Some(at), None) => drop(store.remove(at)),
                (None, None) => {}
            }

            live.on_change(&key, old.as_ref(), new.as_ref(), || store.iter().map(|(k, v)| (k.as_str(), v)));

            let mut expected: Vec<String> = q.execute(store.iter().map(|(k, v)| (k.as_str(), v))).into_iter().map(|row| row.key).collect();
            let mut held = live.keys().to_vec();
            if !q.is_windowed() {
                expected.sort();
                held.sort();
            }
            prop_assert_eq!(held, expected);
        }
    }
}
