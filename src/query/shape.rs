//! Result shaping (PROTOCOL.md §7.2): filter, stable sort, offset/limit window.
//!
//! Produces the `results` array of `QUERY_RESP`. Candidate order (insertion
//! order upstream) and cluster de-duplication are the caller's.

use std::cmp::Ordering;
use std::ops::Range;

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::js::{self, Js};
use super::{Query, SortDirection};

/// One row of `QUERY_RESP.results`: `{key, value}`, no timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEntry {
    /// The record's key.
    pub key: String,
    /// The record's value, before field-level filtering (§8.3).
    pub value: Value,
}

impl Query {
    /// Runs the query over `records` (live, unexpired, in candidate order).
    ///
    /// Keeps the matching records ([`Query::matches`]), sorts them
    /// ([`Query::sort_by_value`]) and cuts the [`Query::window`]; only the
    /// returned values are cloned.
    pub fn execute<'a, I>(&self, records: I) -> Vec<ResultEntry>
    where
        I: IntoIterator<Item = (&'a str, &'a Value)>,
    {
        let mut rows: Vec<(&str, &Value)> = records
            .into_iter()
            .filter(|(_, value)| self.matches(value))
            .collect();

        self.sort_by_value(&mut rows, |(_, value)| value);

        rows.drain(self.window(rows.len()))
            .map(|(key, value)| ResultEntry {
                key: key.to_owned(),
                value: value.clone(),
            })
            .collect()
    }

    /// Sorts and windows rows that already match, e.g. the de-duplicated
    /// results gathered from a cluster.
    pub fn shape(&self, mut rows: Vec<ResultEntry>) -> Vec<ResultEntry> {
        self.sort_by_value(&mut rows, |row| &row.value);
        let window = self.window(rows.len());
        rows.truncate(window.end);
        rows.drain(..window.start);
        rows
    }

    /// Stable sort by the `sort` fields; the first field that differs decides.
    ///
    /// Upstream compares with JS `<`/`>`, which is no total order on mixed
    /// values (e.g. `undefined` is "equal" to everything), so the result there
    /// depends on V8's sort. This node uses a total order that agrees with JS
    /// for numbers (any encoding; nil as 0, booleans as 0/1) and for strings
    /// (UTF-16 order), and otherwise puts every number before every string.
    /// Values JS cannot order (missing, NaN, maps, arrays, bin, ext) compare
    /// equal to each other and come last in both directions; `desc` reverses
    /// only the orderable ones.
    pub fn sort_by_value<T>(&self, rows: &mut [T], value_of: impl Fn(&T) -> &Value) {
        let Some(fields) = self.sort.as_deref().filter(|fields| !fields.is_empty()) else {
            return;
        };

        let keys: Vec<Vec<Rank>> = rows
            .iter()
            .map(|row| {
                let value = value_of(row);
                fields.iter().map(|(field, _)| rank(value, field)).collect()
            })
            .collect();
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| {
            fields
                .iter()
                .zip(keys[a].iter().zip(&keys[b]))
                .map(|((_, direction), (x, y))| compare(x, y, *direction))
                .find(|ordering| ordering.is_ne())
                .unwrap_or(Ordering::Equal)
        });

        apply_permutation(rows, order);
    }

    /// The index range of `len` sorted matches that the query returns.
    ///
    /// JS `slice(offset || 0, (offset || 0) + (limit || len))`, applied only when
    /// `offset` or `limit` is truthy: `limit: 0` means no limit, fractions are
    /// truncated and negative values count from the end, as in JS.
    pub fn window(&self, len: usize) -> Range<usize> {
        let truthy = |n: Option<f64>| n.filter(|n| Js::Number(*n).truthy());
        let (offset, limit) = (truthy(self.offset), truthy(self.limit));
        if offset.is_none() && limit.is_none() {
            return 0..len;
        }

        let start = offset.unwrap_or(0.0);
        let end = start + limit.unwrap_or(len as f64);
        let (start, end) = (slice_index(start, len), slice_index(end, len));
        start..end.max(start)
    }

    /// Whether offset/limit can make membership depend on other records.
    pub fn is_windowed(&self) -> bool {
        let truthy = |n: Option<f64>| n.is_some_and(|n| Js::Number(n).truthy());
        truthy(self.offset) || truthy(self.limit)
    }
}

/// Where one value stands for one sort field.
#[derive(Debug)]
enum Rank<'a> {
    Number(f64),
    Text(std::borrow::Cow<'a, str>),
    Unordered,
}

fn rank<'a>(value: &'a Value, field: &str) -> Rank<'a> {
    match js::property(value, field) {
        Js::Str(text) => Rank::Text(text),
        Js::Undefined | Js::Object => Rank::Unordered,
        other => match other.to_number() {
            n if n.is_nan() => Rank::Unordered,
            n => Rank::Number(n),
        },
    }
}

fn compare(a: &Rank, b: &Rank, direction: SortDirection) -> Ordering {
    let ascending = match (a, b) {
        (Rank::Unordered, Rank::Unordered) => return Ordering::Equal,
        (Rank::Unordered, _) => return Ordering::Greater,
        (_, Rank::Unordered) => return Ordering::Less,
        (Rank::Number(x), Rank::Number(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Rank::Number(_), Rank::Text(_)) => Ordering::Less,
        (Rank::Text(_), Rank::Number(_)) => Ordering::Greater,
        (Rank::Text(x), Rank::Text(y)) => js::cmp_utf16(x, y),
    };
    match direction {
        SortDirection::Asc => ascending,
        SortDirection::Desc => ascending.reverse(),
    }
}

/// JS `ToIntegerOrInfinity` then `slice`'s clamping of one bound.
fn slice_index(bound: f64, len: usize) -> usize {
    let bound = if bound.is_nan() { 0.0 } else { bound.trunc() };
    let len_f = len as f64;
    let clamped = if bound < 0.0 {
        (len_f + bound).max(0.0)
    } else {
        bound.min(len_f)
    };
    // `clamped` is integral and within 0..=len.
    clamped as usize
}

/// Reorders `rows` so that `rows[i]` becomes the old `rows[order[i]]`.
fn apply_permutation<T>(rows: &mut [T], mut order: Vec<usize>) {
    for start in 0..order.len() {
        // Follow the cycle through `start`; a placed slot has `order[j] == j`.
        let mut slot = start;
        loop {
            let source = order[slot];
            order[slot] = slot;
            if source == start {
                break;
            }
            rows.swap(slot, source);
            slot = source;
        }
    }
}

#[cfg(test)]
mod tests;
