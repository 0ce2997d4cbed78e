//! Queries of the TopGun data plane (PROTOCOL.md §3.1, §7): the `Query` wire
//! shape, `where`/`predicate` matching, result shaping and live-update decisions.
//!
//! Pure logic on `rmpv::Value`s. Expiry, tombstones, field-level security,
//! subscription registries and cluster scatter/gather belong to the callers.

mod js;
mod like;
mod live;
mod predicate;
mod shape;
mod wire;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

use std::fmt;

use rmpv::Value;
use serde::{Deserialize, Serialize};

pub use live::{LiveQuery, QueryUpdate, UpdateKind};
pub use shape::ResultEntry;

/// A `Query` as sent in `QUERY_SUB` (§3.1); every field may be absent or nil.
///
/// Unknown fields are ignored. Plain serde accepts every op of the schema; use
/// [`Query::decode`] (or [`Query::validate`] afterwards) to also refuse ops this
/// node cannot evaluate.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Query {
    /// Legacy filter: field → expected value or `{$gt|$gte|$lt|$lte|$ne: v}`, in wire order.
    #[serde(rename = "where", deserialize_with = "wire::opt_ordered_map")]
    pub where_: Option<Vec<(String, Value)>>,
    /// Predicate tree; when present, `where_` is ignored.
    pub predicate: Option<PredicateNode>,
    /// Sort fields in wire order, each `asc` or `desc`; the first decides first.
    #[serde(deserialize_with = "wire::opt_ordered_map")]
    pub sort: Option<Vec<(String, SortDirection)>>,
    /// Page size as the JS number it decodes to; `0`, NaN and absent mean no limit.
    #[serde(deserialize_with = "wire::opt_number")]
    pub limit: Option<f64>,
    /// Rows to skip as the JS number it decodes to; see [`Query::window`].
    #[serde(deserialize_with = "wire::opt_number")]
    pub offset: Option<f64>,
}

/// One node of a predicate tree: `{op, attribute?, value?, children?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PredicateNode {
    /// What this node tests.
    pub op: Op,
    /// Top-level property a leaf op reads; nil and absent are the same.
    #[serde(default)]
    pub attribute: Option<String>,
    /// Operand of a leaf op; nil and absent are the same (JS `null`).
    #[serde(default)]
    pub value: Option<Value>,
    /// Operands of `and`/`or`/`not`; nil and absent mean none.
    #[serde(default, deserialize_with = "wire::nil_as_empty")]
    pub children: Vec<PredicateNode>,
}

/// The ops the upstream schema accepts (§3.1), sent as lowercase strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Op {
    /// JS `===`.
    Eq,
    /// JS `!==`.
    Neq,
    /// JS `>`.
    Gt,
    /// JS `>=`.
    Gte,
    /// JS `<`.
    Lt,
    /// JS `<=`.
    Lte,
    /// Anchored, case-insensitive SQL-ish pattern.
    Like,
    /// JS regular expression search; not supported by this node.
    Regex,
    /// All children hold.
    And,
    /// Some child holds.
    Or,
    /// The first child does not hold.
    Not,
}

/// Direction of one sort field, sent as `"asc"` or `"desc"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum SortDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A predicate node names an op outside the schema (upstream: ERROR 400).
    #[error("decoding query: unknown predicate op `{op}`")]
    UnknownOp {
        /// The op as sent.
        op: String,
    },
    /// A schema-valid op this node cannot evaluate.
    #[error("checking query: predicate op `{op}` is not supported by this node")]
    Unsupported {
        /// The op.
        op: Op,
    },
    /// A sort direction other than `asc` or `desc`.
    #[error("decoding query: unknown sort direction `{direction}`")]
    UnknownDirection {
        /// The direction as sent.
        direction: String,
    },
    /// Any other departure from the wire shape (wrong types, missing `op`).
    #[error("decoding query")]
    Malformed(#[source] rmpv::ext::Error),
    /// The bytes are not one MessagePack document.
    #[error("decoding query: not MessagePack")]
    NotMessagePack(#[source] rmpv::decode::Error),
}

impl Query {
    /// Decodes and validates the `query` field of a `QUERY_SUB` payload.
    ///
    /// Unknown ops give [`QueryError::UnknownOp`], unknown sort directions
    /// [`QueryError::UnknownDirection`], `regex` [`QueryError::Unsupported`]
    /// (see [`Query::validate`]).
    pub fn decode(value: &Value) -> Result<Query, QueryError> {
        // Serde would flatten these into a message; look for them first.
        if let Some(predicate) = map_get(value, "predicate") {
            find_unknown_op(predicate)?;
        }
        if let Some(Value::Map(sort)) = map_get(value, "sort") {
            for (_, direction) in sort {
                if let Some(direction) = direction.as_str() {
                    SortDirection::try_from(direction.to_owned())?;
                }
            }
        }

        let query: Query = rmpv::ext::from_value(value.clone()).map_err(QueryError::Malformed)?;
        query.validate()?;
        Ok(query)
    }

    /// Like [`Query::decode`], from the bytes of one MessagePack document, nested no
    /// deeper than a client message may be ([`crate::protocol::MAX_NESTING`]).
    pub fn from_slice(mut bytes: &[u8]) -> Result<Query, QueryError> {
        let value =
            rmpv::decode::read_value_with_max_depth(&mut bytes, crate::protocol::MAX_NESTING)
                .map_err(QueryError::NotMessagePack)?;
        Query::decode(&value)
    }

    /// Refuses predicates this node cannot evaluate faithfully.
    ///
    /// `regex` needs JS `RegExp` semantics and this crate has no regex engine
    /// among its direct dependencies, so it is refused here rather than silently
    /// matching nothing; a `regex` node that reaches evaluation anyway is false.
    pub fn validate(&self) -> Result<(), QueryError> {
        match &self.predicate {
            Some(node) => node.validate(),
            None => Ok(()),
        }
    }
}

impl PredicateNode {
    fn validate(&self) -> Result<(), QueryError> {
        if self.op == Op::Regex {
            return Err(QueryError::Unsupported { op: self.op });
        }
        self.children.iter().try_for_each(PredicateNode::validate)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let name = OPS.iter().find(|(_, op)| op == self).map(|(name, _)| *name);
        f.write_str(name.unwrap_or("?"))
    }
}

const OPS: [(&str, Op); 11] = [
    ("eq", Op::Eq),
    ("neq", Op::Neq),
    ("gt", Op::Gt),
    ("gte", Op::Gte),
    ("lt", Op::Lt),
    ("lte", Op::Lte),
    ("like", Op::Like),
    ("regex", Op::Regex),
    ("and", Op::And),
    ("or", Op::Or),
    ("not", Op::Not),
];

impl TryFrom<String> for Op {
    type Error = QueryError;

    fn try_from(op: String) -> Result<Op, QueryError> {
        OPS.iter()
            .find(|(name, _)| *name == op)
            .map(|(_, known)| *known)
            .ok_or(QueryError::UnknownOp { op })
    }
}

impl TryFrom<String> for SortDirection {
    type Error = QueryError;

    fn try_from(direction: String) -> Result<SortDirection, QueryError> {
        match direction.as_str() {
            "asc" => Ok(SortDirection::Asc),
            "desc" => Ok(SortDirection::Desc),
            _ => Err(QueryError::UnknownDirection { direction }),
        }
    }
}

/// Walks a raw predicate tree for a string op outside the schema.
fn find_unknown_op(node: &Value) -> Result<(), QueryError> {
    if let Some(Value::String(op)) = map_get(node, "op") {
        let known = op
            .as_str()
            .is_some_and(|op| OPS.iter().any(|(name, _)| *name == op));
        if !known {
            let op = String::from_utf8_lossy(op.as_bytes()).into_owned();
            return Err(QueryError::UnknownOp { op });
        }
    }
    if let Some(Value::Array(children)) = map_get(node, "children") {
        children.iter().try_for_each(find_unknown_op)?;
    }
    Ok(())
}

fn map_get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .as_map()?
        .iter()
        .rev()
        .find_map(|(k, v)| (k.as_str() == Some(key)).then_some(v))
}
