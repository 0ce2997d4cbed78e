//! Lenient decoding of JavaScript numbers into `u64` (PROTOCOL.md §1.1).
//!
//! The JS encoder sends an integral number as any MessagePack int or, after
//! arithmetic, as a float64; both must decode. Used by `#[serde(deserialize_with)]`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Decodes a non-negative integral number sent as any MessagePack int or float.
///
/// Fails on negative, fractional, non-finite or out-of-range numbers: none of
/// the fields this is used for (HLC millis and counter, `ttlMs`) can hold them.
pub fn deserialize_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(U64Visitor)
}

/// Like [`deserialize_u64`], with nil (and, via `#[serde(default)]`, absence) as `None`.
pub fn deserialize_opt_u64<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_option(OptU64Visitor)
}

struct U64Visitor;

impl<'de> Visitor<'de> for U64Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integral number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // 2^64 is exactly representable; every integral float below it fits.
        // NaN and infinities fall outside the range.
        let in_range = (0.0..18_446_744_073_709_551_616.0).contains(&v);
        if in_range && v.fract() == 0.0 {
            Ok(v as u64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

struct OptU64Visitor;

impl<'de> Visitor<'de> for OptU64Visitor {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("nil or a non-negative integral number")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u64>, D::Error> {
        deserialize_u64(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;

    fn decode(value: Value) -> Result<u64, rmpv::ext::Error> {
        deserialize_u64(value)
    }

    #[test]
    fn unsigned_signed_and_integral_float_numbers_all_decode() {
        assert_eq!(
            decode(Value::from(1_796_311_503_565_u64)).unwrap(),
            1_796_311_503_565
        );
        assert_eq!(decode(Value::from(7_i64)).unwrap(), 7);
        assert_eq!(
            decode(Value::F64(1_700_000_000_000.0)).unwrap(),
            1_700_000_000_000
        );
    }

    #[test]
    fn negative_fractional_and_non_numbers_are_refused() {
        assert!(decode(Value::from(-1_i64)).is_err());
        assert!(decode(Value::F64(1.5)).is_err());
        assert!(decode(Value::F64(f64::NAN)).is_err());
        assert!(decode(Value::from("12")).is_err());
    }

    #[test]
    fn nil_is_no_value_for_the_optional_form() {
        assert_eq!(deserialize_opt_u64(Value::Nil).unwrap(), None);
        assert_eq!(deserialize_opt_u64(Value::from(5_u8)).unwrap(), Some(5));
    }
}
