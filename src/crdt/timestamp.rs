//! HLC timestamps: their order, string form and serde shape (PROTOCOL.md §4).
//!
//! Producing timestamps is [`super::hlc`]'s job; this module only says how two
//! compare, how one is written as `"<millis>:<counter>:<nodeId>"`, and how it
//! travels (`{millis, counter, nodeId}` as a MessagePack map).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::collation::compare_node_ids;
use super::number::deserialize_u64;

/// A hybrid logical clock reading: wall millis, logical counter, writer's node id.
///
/// Ordered by `millis`, then `counter`, then `node_id` in ICU root collation
/// order for ASCII (see `collation.rs`). Numbers decode from any MessagePack int
/// or an integral float; keep them below 2^53 so JavaScript peers read them exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timestamp {
    /// Wall-clock milliseconds since the Unix epoch (or the logical successor).
    #[serde(deserialize_with = "deserialize_u64")]
    pub millis: u64,
    /// Logical counter within `millis`.
    #[serde(deserialize_with = "deserialize_u64")]
    pub counter: u64,
    /// Id of the node (server `NODE_ID` or client id) that made the reading.
    pub node_id: String,
}

/// A string that is not `"<millis>:<counter>:<nodeId>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseTimestampError {
    /// Splitting on `:` did not give exactly three parts.
    #[error("timestamp string must have exactly 3 ':'-separated parts, found {0}")]
    Parts(usize),
    /// The millis or counter part is not a decimal integer.
    #[error("timestamp {part} is not a decimal integer")]
    Number {
        /// Which part failed: `millis` or `counter`.
        part: &'static str,
    },
}

impl Timestamp {
    /// A timestamp from its three parts.
    pub fn new(millis: u64, counter: u64, node_id: impl Into<String>) -> Self {
        Self {
            millis,
            counter,
            node_id: node_id.into(),
        }
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.millis
            .cmp(&other.millis)
            .then(self.counter.cmp(&other.counter))
            .then_with(|| compare_node_ids(&self.node_id, &other.node_id))
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The upstream string form, used for OR-Map tags: `"<millis>:<counter>:<nodeId>"`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.millis, self.counter, self.node_id)
    }
}

/// Parses the string form; a node id containing `:` cannot be read back (§4).
///
/// Stricter than upstream's `parseInt`, which would read `"12abc"` as 12: here
/// such a part is an error, so the tag counts as unparsable (kept forever by
/// OR-Map pruning, as upstream does with `NaN`).
impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let [millis, counter, node_id] = parts[..] else {
            return Err(ParseTimestampError::Parts(parts.len()));
        };
        let number = |text: &str, part| {
            text.parse::<u64>()
                .map_err(|_| ParseTimestampError::Number { part })
        };

        Ok(Self::new(
            number(millis, "millis")?,
            number(counter, "counter")?,
            node_id,
        ))
    }
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;

    #[test]
    fn later_millis_wins_over_a_higher_counter() {
        let earlier = Timestamp::new(1_000, 9, "z");
        let later = Timestamp::new(1_001, 0, "a");

        assert!(later > earlier);
    }

    #[test]
    fn counter_decides_when_millis_are_equal() {
        let low = Timestamp::new(1_000, 1, "z");
        let high = Timestamp::new(1_000, 2, "a");

        assert!(high > low);
    }

    #[test]
    fn node_id_decides_last_in_collation_order() {
        let lower = Timestamp::new(1_000, 0, "node-a");
        let upper = Timestamp::new(1_000, 0, "node-A");

        assert!(lower < upper);
        assert!(Timestamp::new(1, 0, "a") < Timestamp::new(1, 0, "B"));
    }

    #[test]
    fn string_form_round_trips() {
        let ts = Timestamp::new(1_796_311_503_565, 3, "client-a");

        let text = ts.to_string();

        assert_eq!(text, "1796311503565:3:client-a");
        assert_eq!(text.parse::<Timestamp>(), Ok(ts));
    }

    #[test]
    fn string_with_a_colon_in_the_node_id_does_not_parse() {
        let parsed = "1:0:node:x".parse::<Timestamp>();

        assert_eq!(parsed, Err(ParseTimestampError::Parts(4)));
    }

    #[test]
    fn string_with_a_non_numeric_part_does_not_parse() {
        let parsed = "12abc:0:n1".parse::<Timestamp>();

        assert_eq!(parsed, Err(ParseTimestampError::Number { part: "millis" }));
    }

    #[test]
    fn wire_form_is_a_map_with_camel_case_names() {
        let ts = Timestamp::new(1_796_311_503_565, 0, "client-a");

        let bytes = rmp_serde::to_vec_named(&ts).unwrap();
        let value: Value = rmp_serde::from_slice(&bytes).unwrap();

        let keys: Vec<_> = value
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, [Some("millis"), Some("counter"), Some("nodeId")]);
        assert_eq!(rmp_serde::from_slice::<Timestamp>(&bytes).unwrap(), ts);
    }

    #[test]
    fn millis_sent_as_a_float_still_decodes() {
        let wire = Value::Map(vec![
            (Value::from("millis"), Value::F64(1_700_000_000_000.0)),
            (Value::from("counter"), Value::from(2_u8)),
            (Value::from("nodeId"), Value::from("n1")),
        ]);
        let bytes = rmp_serde::to_vec(&wire).unwrap();

        let ts: Timestamp = rmp_serde::from_slice(&bytes).unwrap();

        assert_eq!(ts, Timestamp::new(1_700_000_000_000, 2, "n1"));
    }
}
