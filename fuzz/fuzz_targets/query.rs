//! Query decoding, matching, sorting and windowing.
//!
//! The input is two MessagePack values: the query, then the records it runs over
//! (a map of key to value; any other value is taken as one record).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rmpv::Value;
use topgun_server::protocol::MAX_NESTING;
use topgun_server::query::Query;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::on_worker_stack(|| run(data));
});

fn run(data: &[u8]) {
    // The public entry point for raw bytes; it must refuse what it cannot read.
    let _ = Query::from_slice(data);

    // The node reads whole messages with this depth budget before a query sees them.
    let mut rest = data;
    let Ok(wire) = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_NESTING) else {
        return;
    };
    let Ok(query) = Query::decode(&wire) else {
        return;
    };
    let records =
        rmpv::decode::read_value_with_max_depth(&mut rest, MAX_NESTING).unwrap_or(Value::Nil);

    let rows: Vec<(String, &Value)> = match &records {
        Value::Map(entries) => entries
            .iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
        other => vec![("only".to_owned(), other)],
    };
    for (_, value) in &rows {
        query.matches(value);
    }
    let results = query.execute(rows.iter().map(|(key, value)| (key.as_str(), *value)));
    assert!(
        results.len() <= rows.len(),
        "a query returned more rows than it was given"
    );
    query.shape(results);
}
