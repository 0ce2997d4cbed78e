//! Field-level security (PROTOCOL.md §8.3): what a principal may read of the
//! values of one map, and the filtering of a value to that.

use std::collections::BTreeSet;

use rmpv::Value;

/// What one principal may read of the values of one map; see [`super::PolicySet::read_view`].
///
/// Compute it once per recipient and map, then [`filter`](ReadView::filter)
/// every value sent to that recipient: `QUERY_RESP` results, `SERVER_EVENT`
/// record values and, unlike upstream (PROTOCOL.md §7.3 item 5), `QUERY_UPDATE`
/// values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadView {
    /// No READ access: every value becomes nil.
    Denied,
    /// Every field of every value.
    Whole,
    /// Only these top-level fields of a map value.
    Fields(BTreeSet<String>),
}

impl ReadView {
    /// Whether anything at all may be read.
    pub fn is_denied(&self) -> bool {
        matches!(self, ReadView::Denied)
    }

    /// The part of `value` the principal may see.
    ///
    /// With [`ReadView::Fields`], a map keeps only the entries whose key is one
    /// of the fields (so nested maps are kept or dropped whole, never filtered
    /// inside; keys that are not text are dropped), an array is filtered element
    /// by element, and any other value passes through.
    ///
    /// With [`ReadView::Denied`] the result is nil whatever the value. Upstream
    /// checks READ access only for maps, so a scalar, or an array of scalars,
    /// reaches a principal with no READ access unchanged; here it does not.
    pub fn filter(&self, value: &Value) -> Value {
        match self {
            ReadView::Denied => Value::Nil,
            ReadView::Whole => value.clone(),
            ReadView::Fields(fields) => keep_fields(value, fields),
        }
    }
}

fn keep_fields(value: &Value, fields: &BTreeSet<String>) -> Value {
    match value {
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .filter(|(key, _)| key.as_str().is_some_and(|key| fields.contains(key)))
                .cloned()
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| keep_fields(item, fields)).collect())
        }
        other => other.clone(),
    }
}
