//! Whether one record value matches a query (PROTOCOL.md §7.1).
//!
//! Upstream's `matchesQuery` and `evaluatePredicate`, with JavaScript value
//! semantics from the `js` module. Expiry and tombstones are the caller's filter.

use rmpv::Value;

use super::js::{self, Js};
use super::like;
use super::{Op, PredicateNode, Query};

impl Query {
    /// Whether a live, unexpired record `value` belongs in this query's results.
    ///
    /// §7.1 in order: falsy values (nil, `false`, `0`, `""`) never match; a
    /// present `predicate` alone decides and `where` is ignored; otherwise every
    /// `where` entry must hold (no `where` matches everything). Attributes are
    /// single top-level properties: `"a.b"` names a key spelled `a.b`, not a
    /// path, and a missing property is JS `undefined`.
    pub fn matches(&self, value: &Value) -> bool {
        if !Js::of(value).truthy() {
            return false;
        }

        if let Some(predicate) = &self.predicate {
            return predicate.evaluate(value);
        }

        self.where_.as_deref().map_or(true, |entries| {
            entries
                .iter()
                .all(|(field, expected)| where_entry_holds(value, field, expected))
        })
    }
}

impl PredicateNode {
    /// Evaluates this node against a record value (`data`); falsy data is false.
    ///
    /// `and` of nothing is true, `or` of nothing false, `not` negates its first
    /// child only (no child: true). A leaf without an attribute (or with `""`)
    /// is false, whatever its op. `eq`/`neq` are JS `===`/`!==` (numbers by
    /// value in any encoding; maps and arrays never equal); `gt`..`lte` are JS
    /// relational operators, so `"5" > 3` and `null >= 0` hold and anything
    /// against a missing property is false. `like` needs two strings and is
    /// anchored and case-insensitive; `%`/`_` match any run/one UTF-16 unit
    /// but no line terminator, and `*`/`?` match themselves (upstream lets them
    /// act as regex quantifiers, a quirk §7.1 names). `regex` is always false
    /// here: see [`Query::validate`].
    pub fn evaluate(&self, data: &Value) -> bool {
        if !Js::of(data).truthy() {
            return false;
        }
        self.eval(data)
    }

    fn eval(&self, data: &Value) -> bool {
        match self.op {
            Op::And => self.children.iter().all(|child| child.eval(data)),
            Op::Or => self.children.iter().any(|child| child.eval(data)),
            Op::Not => self
                .children
                .first()
                .map_or(true, |child| !child.eval(data)),
            _ => self.leaf(data),
        }
    }

    fn leaf(&self, data: &Value) -> bool {
        let Some(attribute) = self.attribute.as_deref().filter(|a| !a.is_empty()) else {
            return false;
        };
        let actual = js::property(data, attribute);
        let expected = self.value.as_ref().map_or(Js::Null, Js::of);

        match self.op {
            Op::Eq => js::strict_eq(&actual, &expected),
            Op::Neq => !js::strict_eq(&actual, &expected),
            Op::Gt => js::gt(&actual, &expected),
            Op::Gte => js::gte(&actual, &expected),
            Op::Lt => js::lt(&actual, &expected),
            Op::Lte => js::lte(&actual, &expected),
            Op::Like => match (&actual, &expected) {
                (Js::Str(text), Js::Str(pattern)) => like::matches(text, pattern),
                _ => false,
            },
            Op::Regex | Op::And | Op::Or | Op::Not => false,
        }
    }
}

/// One `where` entry: operators for a map, JS `===` for anything else.
///
/// Unknown operators fail the entry and an empty operator map holds. Bin and
/// ext values (JS `Uint8Array`, `Date`) are compared with `===`, so they never
/// match; upstream would read their own properties as operators instead.
fn where_entry_holds(data: &Value, field: &str, expected: &Value) -> bool {
    let actual = js::property(data, field);

    let Value::Map(operators) = expected else {
        return js::strict_eq(&actual, &Js::of(expected));
    };
    operators.iter().all(|(operator, operand)| {
        let operand = Js::of(operand);
        match operator.as_str() {
            Some("$gt") => js::gt(&actual, &operand),
            Some("$gte") => js::gte(&actual, &operand),
            Some("$lt") => js::lt(&actual, &operand),
            Some("$lte") => js::lte(&actual, &operand),
            Some("$ne") => !js::strict_eq(&actual, &operand),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests;
