//! The observed-remove multimap of PROTOCOL.md §5.2.
//!
//! Each add is a record with a unique tag; a remove tombstones tags, and a
//! tombstoned tag can never come back. OR-maps have no Merkle sync (§5.2), so
//! this module has no tree; feeding timestamps to the clock is the store's job.

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::hlc::{Hlc, WallClock};
use super::number::deserialize_opt_u64;
use super::timestamp::Timestamp;
use super::ttl::{self, TtlError};

/// One added value: `{value, timestamp, tag, ttlMs?}` on the wire (`ORMapRecord`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrRecord {
    /// The user value, opaque (nil is an ordinary value here, not a tombstone).
    #[serde(default = "nil")]
    pub value: Value,
    /// When and by whom the value was added.
    pub timestamp: Timestamp,
    /// Globally unique id of this add: the timestamp's string form.
    pub tag: String,
    /// Time to live in milliseconds from `timestamp.millis`; omitted when unset.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_opt_u64"
    )]
    pub ttl_ms: Option<u64>,
}

impl OrRecord {
    /// Whether the TTL has run out at `now_ms` (`millis + ttlMs < now`).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        ttl::is_expired(self.timestamp.millis, self.ttl_ms, now_ms)
    }
}

/// An observed-remove map: key → tag → record, plus one tombstone set of tags.
///
/// Stored records are never tombstoned: a tag is either live under its key or
/// in the tombstone set. Tags are assumed unique (they embed node id and HLC);
/// the same tag arriving twice is taken to be the same add.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrMap {
    items: BTreeMap<String, BTreeMap<String, OrRecord>>,
    tombstones: BTreeSet<String>,
}

impl OrMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `key` with the tag `hlc.now().to_string()` and returns
    /// the record to send. A `ttl_ms` of `Some(0)` is refused.
    pub fn add<C: WallClock>(
        &mut self,
        hlc: &mut Hlc<C>,
        key: &str,
        value: Value,
        ttl_ms: Option<u64>,
    ) -> Result<OrRecord, TtlError> {
        let ttl_ms = ttl::check(ttl_ms)?;
        let timestamp = hlc.now();
        let record = OrRecord {
            value,
            tag: timestamp.to_string(),
            timestamp,
            ttl_ms,
        };

        self.apply(key, record.clone());
        Ok(record)
    }

    /// Tombstones every tag under `key` whose value equals `value`; returns the
    /// tags, one `OR_REMOVE` each.
    ///
    /// Upstream compares with JS `===`, which matches maps, arrays and binaries
    /// only by object identity, so a decoded value could never be removed that
    /// way. Here such values compare structurally; numbers compare numerically
    /// (`1` equals `1.0`), as in JavaScript.
    pub fn remove(&mut self, key: &str, value: &Value) -> Vec<String> {
        let Some(records) = self.items.get(key) else {
            return Vec::new();
        };
        let tags: Vec<String> = records
            .values()
            .filter(|record| same_value(&record.value, value))
            .map(|record| record.tag.clone())
            .collect();

        for tag in &tags {
            self.apply_tombstone(tag);
        }
        tags
    }

    /// Applies a remote add (`OR_ADD`); ignored, returning `false`, if its tag is
    /// tombstoned. The caller passes `record.timestamp` to [`Hlc::update`] (§5.2).
    pub fn apply(&mut self, key: &str, record: OrRecord) -> bool {
        if self.tombstones.contains(&record.tag) {
            return false;
        }

        self.items
            .entry(key.to_owned())
            .or_default()
            .insert(record.tag.clone(), record);
        true
    }

    /// Applies a remote remove (`OR_REMOVE`): tombstones `tag` and deletes it from
    /// whichever key holds it. Returns the keys whose records changed.
    ///
    /// Upstream stops at the first key holding the tag; this removes it from
    /// every key, so a tag smuggled under two keys cannot survive its removal.
    pub fn apply_tombstone(&mut self, tag: &str) -> Vec<String> {
        self.tombstones.insert(tag.to_owned());

        let holders: Vec<String> = self
            .items
            .iter()
            .filter(|(_, records)| records.contains_key(tag))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &holders {
            self.remove_tag(key, tag);
        }
        holders
    }

    /// Merges the whole state of `other`: the union of tombstones, then the
    /// union of records minus every tombstoned tag.
    pub fn merge(&mut self, other: &OrMap) {
        for tag in &other.tombstones {
            if !self.tombstones.contains(tag) {
                self.apply_tombstone(tag);
            }
        }

        for (key, records) in &other.items {
            for record in records.values() {
                let known = self
                    .items
                    .get(key)
                    .is_some_and(|local| local.contains_key(&record.tag));
                if !known {
                    self.apply(key, record.clone());
                }
            }
        }
    }

    /// The values under `key` that reads see at `now_ms` (not expired), in tag order.
    pub fn get(&self, key: &str, now_ms: u64) -> Vec<&Value> {
        self.records(key, now_ms)
            .map(|record| &record.value)
            .collect()
    }

    /// The records under `key` that are not expired at `now_ms`, in tag order.
    pub fn records(&self, key: &str, now_ms: u64) -> impl Iterator<Item = &OrRecord> {
        self.items
            .get(key)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(move |record| !record.is_expired(now_ms))
    }

    /// Every key with at least one stored record, with all its records (expired
    /// ones included), in key order: what storage persists.
    pub fn stored(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &OrRecord>)> {
        self.items
            .iter()
            .map(|(key, records)| (key.as_str(), records.values()))
    }

    /// The keys with at least one value visible at `now_ms`, with those values.
    pub fn entries(&self, now_ms: u64) -> impl Iterator<Item = (&str, Vec<&Value>)> {
        self.items.keys().filter_map(move |key| {
            let values = self.get(key, now_ms);
            (!values.is_empty()).then_some((key.as_str(), values))
        })
    }

    /// Whether `tag` has been removed.
    pub fn is_tombstoned(&self, tag: &str) -> bool {
        self.tombstones.contains(tag)
    }

    /// Every tombstoned tag, in string order.
    pub fn tombstones(&self) -> impl Iterator<Item = &str> {
        self.tombstones.iter().map(String::as_str)
    }

    /// Tombstones every record expired at `now_ms` (server GC, §5.2); returns the
    /// tags to broadcast as `OR_REMOVE`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let expired: Vec<String> = self
            .items
            .values()
            .flat_map(BTreeMap::values)
            .filter(|record| record.is_expired(now_ms))
            .map(|record| record.tag.clone())
            .collect();

        for tag in &expired {
            self.apply_tombstone(tag);
        }
        expired
    }

    /// Forgets tombstoned tags whose parsed timestamp is older than `older_than`;
    /// tags that do not parse as `"<millis>:<counter>:<nodeId>"` are kept forever.
    /// Returns the forgotten tags.
    pub fn prune(&mut self, older_than: &Timestamp) -> Vec<String> {
        let pruned: Vec<String> = self
            .tombstones
            .iter()
            .filter(|tag| {
                tag.parse::<Timestamp>()
                    .is_ok_and(|timestamp| timestamp < *older_than)
            })
            .cloned()
            .collect();

        for tag in &pruned {
            self.tombstones.remove(tag);
        }
        pruned
    }

    fn remove_tag(&mut self, key: &str, tag: &str) {
        if let Some(records) = self.items.get_mut(key) {
            records.remove(tag);
            if records.is_empty() {
                self.items.remove(key);
            }
        }
    }
}

/// JavaScript-like equality for [`OrMap::remove`]: numbers by value across
/// integer and float encodings, everything else structurally.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Integer(_), Value::Integer(_)) => a == b,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

fn nil() -> Value {
    Value::Nil
}

#[cfg(test)]
mod tests;
