//! How the upstream TypeScript server sees a MessagePack value (PROTOCOL.md §1.1, §7.1).
//!
//! Queries compare values with JavaScript's `===`, `<` and truthiness; this
//! module reproduces those for decoded `rmpv::Value`s and nothing else.

use std::borrow::Cow;
use std::cmp::Ordering;

use rmpv::Value;

/// A value as a JavaScript engine would hold it after `@msgpack/msgpack` decoding.
///
/// Maps, arrays, bin (`Uint8Array`) and ext (`Date`, `ExtData`) are all objects:
/// they are truthy, never `===` anything, and, by the practical rule of §7.1,
/// never compare with `<`/`>` (upstream would first turn them into primitives).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Js<'a> {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    Str(Cow<'a, str>),
    Object,
}

impl<'a> Js<'a> {
    /// The JS value a decoded MessagePack value becomes.
    ///
    /// Integers become doubles, as in JS (precision is lost above 2^53); invalid
    /// UTF-8 is replaced with U+FFFD, as the JS decoder does.
    pub(crate) fn of(value: &'a Value) -> Js<'a> {
        match value {
            Value::Nil => Js::Null,
            Value::Boolean(b) => Js::Bool(*b),
            Value::Integer(i) => Js::Number(
                i.as_i64()
                    .map(|n| n as f64)
                    .or_else(|| i.as_u64().map(|n| n as f64))
                    .unwrap_or(f64::NAN),
            ),
            Value::F32(f) => Js::Number(f64::from(*f)),
            Value::F64(f) => Js::Number(*f),
            Value::String(s) => Js::Str(String::from_utf8_lossy(s.as_bytes())),
            Value::Binary(_) | Value::Array(_) | Value::Map(_) | Value::Ext(..) => Js::Object,
        }
    }

    /// JS `ToBoolean`.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Js::Undefined | Js::Null => false,
            Js::Bool(b) => *b,
            Js::Number(n) => *n != 0.0 && !n.is_nan(),
            Js::Str(s) => !s.is_empty(),
            Js::Object => true,
        }
    }

    /// JS `ToNumber` for primitives; objects give NaN (see the type's doc).
    pub(crate) fn to_number(&self) -> f64 {
        match self {
            Js::Undefined | Js::Object => f64::NAN,
            Js::Null => 0.0,
            Js::Bool(b) => f64::from(u8::from(*b)),
            Js::Number(n) => *n,
            Js::Str(s) => string_to_number(s),
        }
    }
}

/// `data[name]` for a single top-level property (no dotted paths, §7.1).
///
/// Maps are looked up by string key (or integer key with the same decimal
/// text, as JS objects have only string keys; the last duplicate wins, as in the
/// decoder). Arrays answer `length` and canonical indices. Everything else,
/// including inherited properties like `constructor`, reads as `undefined`.
pub(crate) fn property<'a>(data: &'a Value, name: &str) -> Js<'a> {
    match data {
        Value::Map(entries) => entries
            .iter()
            .rev()
            .find(|(key, _)| match key {
                Value::String(s) => s.as_bytes() == name.as_bytes(),
                Value::Integer(i) => i.to_string() == name,
                _ => false,
            })
            .map_or(Js::Undefined, |(_, value)| Js::of(value)),
        Value::Array(items) if name == "length" => Js::Number(items.len() as f64),
        Value::Array(items) => array_index(name)
            .and_then(|index| items.get(index))
            .map_or(Js::Undefined, Js::of),
        _ => Js::Undefined,
    }
}

/// JS `a === b`. Numbers compare by value whatever their encoding; NaN is not
/// equal to itself; objects are never equal.
pub(crate) fn strict_eq(a: &Js, b: &Js) -> bool {
    match (a, b) {
        (Js::Undefined, Js::Undefined) | (Js::Null, Js::Null) => true,
        (Js::Bool(x), Js::Bool(y)) => x == y,
        (Js::Number(x), Js::Number(y)) => x == y,
        (Js::Str(x), Js::Str(y)) => x == y,
        _ => false,
    }
}

/// JS `a < b`.
pub(crate) fn lt(a: &Js, b: &Js) -> bool {
    less_than(a, b) == Some(true)
}

/// JS `a > b`.
pub(crate) fn gt(a: &Js, b: &Js) -> bool {
    less_than(b, a) == Some(true)
}

/// JS `a <= b`: false when the comparison is undefined (NaN, `undefined`).
pub(crate) fn lte(a: &Js, b: &Js) -> bool {
    less_than(b, a) == Some(false)
}

/// JS `a >= b`.
pub(crate) fn gte(a: &Js, b: &Js) -> bool {
    less_than(a, b) == Some(false)
}

/// Orders two strings by UTF-16 code units, as JS `<` does.
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The abstract relational comparison `a < b`; `None` is JS's "undefined" result.
fn less_than(a: &Js, b: &Js) -> Option<bool> {
    if let (Js::Str(x), Js::Str(y)) = (a, b) {
        return Some(cmp_utf16(x, y) == Ordering::Less);
    }

    let (x, y) = (a.to_number(), b.to_number());
    if x.is_nan() || y.is_nan() {
        None
    } else {
        Some(x < y)
    }
}

/// JS `StringToNumber`: trimmed decimal, `Infinity`, or `0x`/`0o`/`0b` integers;
/// the empty string is 0 and anything else is NaN.
fn string_to_number(text: &str) -> f64 {
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if trimmed.is_empty() {
        return 0.0;
    }

    let radix = match trimmed.get(..2) {
        Some("0x" | "0X") => Some(16),
        Some("0o" | "0O") => Some(8),
        Some("0b" | "0B") => Some(2),
        _ => None,
    };
    if let Some(radix) = radix {
        return parse_radix(&trimmed[2..], radix);
    }

    let unsigned = trimmed.trim_start_matches(['+', '-']);
    if unsigned == "Infinity" && trimmed.len() - unsigned.len() <= 1 {
        return if trimmed.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }

    // Rust also accepts `inf`, `nan` and the like; JS only digits, `.`, exponent.
    let decimal_chars = trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if decimal_chars {
        trimmed.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

/// Digits of a `0x`/`0o`/`0b` literal, without overflow (large values round).
fn parse_radix(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() {
        return f64::NAN;
    }
    digits
        .chars()
        .try_fold(0.0_f64, |acc, c| {
            c.to_digit(radix)
                .map(|d| acc * f64::from(radix) + f64::from(d))
        })
        .unwrap_or(f64::NAN)
}

/// A canonical array index (`"0"`, `"17"`, never `"017"` or `"+1"`).
fn array_index(name: &str) -> Option<usize> {
    let canonical = name == "0" || (!name.starts_with('0') && !name.is_empty());
    if canonical && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Js<'_> {
        Js::Str(Cow::Borrowed(text))
    }

    #[test]
    fn every_integer_and_float_encoding_of_a_number_is_strictly_equal() {
        let encodings = [
            Value::from(7_u8),
            Value::from(7_i64),
            Value::from(7_u64),
            Value::F32(7.0),
            Value::F64(7.0),
        ];

        for a in &encodings {
            for b in &encodings {
                assert!(strict_eq(&Js::of(a), &Js::of(b)), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn objects_are_truthy_and_never_equal_even_to_themselves() {
        let map = Value::Map(vec![]);

        assert!(Js::of(&map).truthy());
        assert!(!strict_eq(&Js::of(&map), &Js::of(&map)));
    }

    #[test]
    fn numeric_strings_coerce_like_javascript() {
        assert_eq!(string_to_number(" 12 "), 12.0);
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("0x1f"), 31.0);
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(string_to_number(".5e1"), 5.0);
        assert!(string_to_number("inf").is_nan());
        assert!(string_to_number("12px").is_nan());
        assert!(string_to_number("-0x1").is_nan());
    }

    #[test]
    fn relational_operators_follow_the_abstract_comparison() {
        assert!(gt(&s("5"), &Js::Number(3.0)));
        assert!(gte(&Js::Null, &Js::Number(0.0)));
        assert!(!lte(&Js::Undefined, &Js::Undefined));
        assert!(!lt(&s("abc"), &Js::Number(1.0)) && !gte(&s("abc"), &Js::Number(1.0)));
        assert!(lt(&s("10"), &s("5")));
    }

    #[test]
    fn strings_order_by_utf16_code_units_not_code_points() {
        assert!(lt(&s("\u{1F600}"), &s("\u{FF61}")));
    }

    #[test]
    fn arrays_answer_length_and_canonical_indices_only() {
        let array = Value::Array(vec![Value::from("a"), Value::from("b")]);

        assert_eq!(property(&array, "length"), Js::Number(2.0));
        assert_eq!(property(&array, "1"), s("b"));
        assert_eq!(property(&array, "01"), Js::Undefined);
    }
}
