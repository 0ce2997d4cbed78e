//! Live query updates (PROTOCOL.md §7.3): which `QUERY_UPDATE`s one change
//! causes for one subscription.
//!
//! Holds a subscription's query and the keys it last sent; the registry, the
//! `queryId`, field-level filtering and sending are the caller's.

use std::collections::HashSet;

use rmpv::Value;
use serde::Serialize;

use super::js::{self, Js};
use super::{Query, ResultEntry};

/// `QUERY_UPDATE.payload.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum UpdateKind {
    /// The key is (still or newly) in the results with this value.
    Update,
    /// The key left the results.
    Remove,
}

/// A `QUERY_UPDATE` payload without its `queryId`: `{key, value, type}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryUpdate {
    /// The record's key.
    pub key: String,
    /// The current value for `Update`; `None` (nil on the wire) for `Remove`.
    pub value: Option<Value>,
    /// Update or removal.
    #[serde(rename = "type")]
    pub kind: UpdateKind,
}

/// One subscription: its query and the result keys the client holds.
#[derive(Debug, Clone)]
pub struct LiveQuery {
    query: Query,
    keys: Vec<String>,
    key_set: HashSet<String>,
}

impl LiveQuery {
    /// Runs `query` over `records` for `QUERY_RESP` and remembers the keys.
    pub fn start<'a, I>(query: Query, records: I) -> (LiveQuery, Vec<ResultEntry>)
    where
        I: IntoIterator<Item = (&'a str, &'a Value)>,
    {
        let results = query.execute(records);
        let keys = results.iter().map(|row| row.key.clone()).collect();
        (LiveQuery::with_keys(query, keys), results)
    }

    /// A subscription whose `QUERY_RESP` carried `keys` (e.g. gathered from a cluster).
    pub fn with_keys(query: Query, keys: Vec<String>) -> LiveQuery {
        let key_set = keys.iter().cloned().collect();
        LiveQuery {
            query,
            keys,
            key_set,
        }
    }

    /// The subscribed query.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The keys the client currently holds: in result order after a window
    /// recomputation, otherwise in the order they entered.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The updates one change of `key` from `old` to `new` causes (§7.3).
    ///
    /// `old`/`new` are the visible values (`None` for absent, removed or
    /// expired); `records` yields the map after the change and is called only
    /// when a window (`limit`/`offset`) must be recomputed. Passing only local
    /// data there reproduces the cluster quirk of §7.3.6.
    ///
    /// Differences from upstream, all towards the client seeing the truth:
    /// every subscription is a candidate, so a change to a field the query does
    /// not mention still sends `UPDATE` (§7.3.3 allows that fix); a windowed
    /// query is also recomputed when the old value matched, so a record leaving
    /// the `offset` region shifts the window; without a window only `key` is
    /// considered, so keys this node never held are not removed; and the changed
    /// key gets at most one `UPDATE`.
    pub fn on_change<'a, F, I>(
        &mut self,
        key: &str,
        old: Option<&Value>,
        new: Option<&Value>,
        records: F,
    ) -> Vec<QueryUpdate>
    where
        F: FnOnce() -> I,
        I: IntoIterator<Item = (&'a str, &'a Value)>,
    {
        if let (Some(old), Some(new)) = (old, new) {
            if unchanged(old, new) {
                return Vec::new();
            }
        }

        let new_matches = new.is_some_and(|value| self.query.matches(value));
        let old_matches = old.is_some_and(|value| self.query.matches(value));
        let was_in = self.key_set.contains(key);
        let windowed = self.query.is_windowed();
        let concerned = new_matches || was_in || (windowed && old_matches);
        if !concerned {
            return Vec::new();
        }

        if windowed {
            let results = self.query.execute(records());
            return self.replace(results, |row| row.key == key);
        }

        match new.filter(|_| new_matches) {
            Some(value) => {
                if !was_in {
                    self.keys.push(key.to_owned());
                    self.key_set.insert(key.to_owned());
                }
                vec![update(key, value.clone())]
            }
            None => {
                self.keys.retain(|held| held != key);
                self.key_set.remove(key);
                vec![remove(key)]
            }
        }
    }

    /// After the map (re)loads: `REMOVE` for vanished keys and `UPDATE` for
    /// every current result (§7.3.7).
    pub fn refresh<'a, I>(&mut self, records: I) -> Vec<QueryUpdate>
    where
        I: IntoIterator<Item = (&'a str, &'a Value)>,
    {
        let results = self.query.execute(records);
        self.replace(results, |_| true)
    }

    /// Diffs `results` against the held keys, then holds `results`' keys.
    fn replace(
        &mut self,
        results: Vec<ResultEntry>,
        always_send: impl Fn(&ResultEntry) -> bool,
    ) -> Vec<QueryUpdate> {
        let new_set: HashSet<String> = results.iter().map(|row| row.key.clone()).collect();

        let mut updates: Vec<QueryUpdate> = self
            .keys
            .iter()
            .filter(|held| !new_set.contains(*held))
            .map(|held| remove(held))
            .collect();
        let mut keys = Vec::with_capacity(results.len());
        for row in results {
            if always_send(&row) || !self.key_set.contains(&row.key) {
                updates.push(update(&row.key, row.value));
            }
            keys.push(row.key);
        }

        self.keys = keys;
        self.key_set = new_set;
        updates
    }
}

/// §7.3.2: both values exist and no top-level field differs by `!==`.
///
/// Arrays and nested maps always count as changed; whole values that are not
/// maps compare with `===`, except bin and ext, compared by content (upstream
/// would see two different `Date`s as unchanged).
fn unchanged(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Map(old_fields), Value::Map(new_fields)) => {
            let same = |name: &Value| match name {
                Value::String(name) => {
                    let name = String::from_utf8_lossy(name.as_bytes());
                    js::strict_eq(&js::property(old, &name), &js::property(new, &name))
                }
                Value::Integer(i) => {
                    let name = i.to_string();
                    js::strict_eq(&js::property(old, &name), &js::property(new, &name))
                }
                _ => false,
            };
            old_fields
                .iter()
                .chain(new_fields)
                .all(|(name, _)| same(name))
        }
        (Value::Binary(_), Value::Binary(_)) | (Value::Ext(..), Value::Ext(..)) => old == new,
        _ => js::strict_eq(&Js::of(old), &Js::of(new)),
    }
}

fn update(key: &str, value: Value) -> QueryUpdate {
    QueryUpdate {
        key: key.to_owned(),
        value: Some(value),
        kind: UpdateKind::Update,
    }
}

fn remove(key: &str) -> QueryUpdate {
    QueryUpdate {
        key: key.to_owned(),
        value: None,
        kind: UpdateKind::Remove,
    }
}

#[cfg(test)]
mod tests;
