//! Values at the API edge: `serde_json::Value` in and out, MessagePack on the wire.
//!
//! JSON maps onto MessagePack directly. The other way, MessagePack has values JSON
//! lacks; they come out in a documented, lossless JSON shape instead of failing.

use rmpv::Value;
use serde_json::{json, Number};

/// A JSON value as MessagePack: integers stay integers, other numbers are float64,
/// objects are maps with string keys.
pub fn to_msgpack(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (_, Some(i), _) => Value::from(i),
            (_, _, f) => Value::F64(f.unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(to_msgpack).collect()),
        serde_json::Value::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(key, value)| (Value::from(key.as_str()), to_msgpack(value)))
                .collect(),
        ),
    }
}

/// A MessagePack value as JSON.
///
/// Beyond the obvious: non-finite floats become `null`; binary becomes
/// `{"$bin": "<base64>"}`; an extension (e.g. type -1, a JS `Date`) becomes
/// `{"$ext": type, "data": "<base64>"}`; non-string map keys are written as their
/// JSON text; strings that are not UTF-8 are decoded lossily.
pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => u.into(),
            (_, Some(i)) => i.into(),
            _ => serde_json::Value::Null,
        },
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => match s.as_str() {
            Some(text) => text.into(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned().into(),
        },
        Value::Binary(bytes) => json!({ "$bin": openssl::base64::encode_block(bytes) }),
        Value::Array(items) => items.iter().map(to_json).collect(),
        Value::Map(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let key = match key.as_str() {
                        Some(text) => text.to_owned(),
                        None => to_json(key).to_string(),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Value::Ext(kind, data) => {
            json!({ "$ext": kind, "data": openssl::base64::encode_block(data) })
        }
    }
}

fn float(f: f64) -> serde_json::Value {
    Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_survives_a_round_trip_through_messagepack() {
        let original = json!({"n": 42, "neg": -3, "f": 1.5, "s": "x", "a": [true, null], "o": {}});

        let back = to_json(&to_msgpack(&original));

        assert_eq!(back, original);
        assert!(to_msgpack(&json!(42)).is_u64());
        assert!(to_msgpack(&json!(1.5)).is_f64());
    }

    #[test]
    fn messagepack_only_values_get_a_tagged_json_shape() {
        let bin = Value::Binary(vec![1, 2, 3]);
        let date = Value::Ext(-1, vec![0, 0, 0, 1]);
        let int_keys = Value::Map(vec![(Value::from(1), Value::from("one"))]);

        assert_eq!(to_json(&bin), json!({"$bin": "AQID"}));
        assert_eq!(to_json(&date), json!({"$ext": -1, "data": "AAAAAQ=="}));
        assert_eq!(to_json(&int_keys), json!({"1": "one"}));
        assert_eq!(to_json(&Value::F64(f64::NAN)), serde_json::Value::Null);
    }
}
