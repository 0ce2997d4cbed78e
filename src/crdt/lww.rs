//! The last-writer-wins map of PROTOCOL.md §5.1 and its Merkle tree (§6).
//!
//! One record per key; the record with the greater HLC timestamp wins, a nil
//! value is a tombstone. Feeding received timestamps to the clock, persisting and
//! broadcasting are the store's job.

use std::collections::BTreeMap;

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::hlc::{Hlc, WallClock};
use super::merkle::{Bucket, MerkleTree};
use super::number::deserialize_opt_u64;
use super::timestamp::Timestamp;
use super::ttl::{self, TtlError};

/// One key's state: `{value, timestamp, ttlMs?}` on the wire (`LWWRecord`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LwwRecord {
    /// The user value, opaque; nil (also when absent on input) marks a tombstone.
    #[serde(default = "nil")]
    pub value: Value,
    /// When and by whom the value was written; decides merges.
    pub timestamp: Timestamp,
    /// Time to live in milliseconds from `timestamp.millis`; omitted when unset.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_opt_u64"
    )]
    pub ttl_ms: Option<u64>,
}

impl LwwRecord {
    /// Whether this record is a tombstone (its value is nil).
    pub fn is_tombstone(&self) -> bool {
        self.value.is_nil()
    }

    /// Whether the TTL has run out at `now_ms` (`millis + ttlMs < now`).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        ttl::is_expired(self.timestamp.millis, self.ttl_ms, now_ms)
    }

    /// Whether reads at `now_ms` see this record: neither tombstone nor expired.
    pub fn is_visible(&self, now_ms: u64) -> bool {
        !self.is_tombstone() && !self.is_expired(now_ms)
    }
}

/// What a server answers to `MERKLE_REQ_BUCKET` for one path (§6.3 step 5).
#[derive(Debug, Clone, PartialEq)]
pub enum SyncReply<'a> {
    /// `SYNC_RESP_LEAF`: every record of the leaf, tombstones and TTL included.
    Leaf(Vec<(&'a str, &'a LwwRecord)>),
    /// `SYNC_RESP_BUCKETS`: child hashes by hex character; empty for unknown paths.
    Buckets(BTreeMap<String, u32>),
}

/// A last-writer-wins map from string keys to opaque values, with its Merkle tree.
#[derive(Debug, Clone, Default)]
pub struct LwwMap {
    records: BTreeMap<String, LwwRecord>,
    tree: MerkleTree,
}

impl LwwMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` under `key` at a fresh `hlc.now()` and returns the record
    /// to broadcast. A `ttl_ms` of `Some(0)` is refused.
    ///
    /// Applied through [`merge`](Self::merge) rather than overwriting as upstream
    /// does: when the clock has seen every merged timestamp (as §5.1 requires) the
    /// two agree, and when it has not, this map still converges with its peers.
    pub fn set<C: WallClock>(
        &mut self,
        hlc: &mut Hlc<C>,
        key: &str,
        value: Value,
        ttl_ms: Option<u64>,
    ) -> Result<LwwRecord, TtlError> {
        let record = LwwRecord {
            value,
            timestamp: hlc.now(),
            ttl_ms: ttl::check(ttl_ms)?,
        };

        self.merge(key, record.clone());
        Ok(record)
    }

    /// Deletes `key` by writing a tombstone at a fresh `hlc.now()`; returns it.
    pub fn remove<C: WallClock>(&mut self, hlc: &mut Hlc<C>, key: &str) -> LwwRecord {
        let record = LwwRecord {
            value: Value::Nil,
            timestamp: hlc.now(),
            ttl_ms: None,
        };

        self.merge(key, record.clone());
        record
    }

    /// Accepts `record` iff there is no record for `key` or `record` is strictly
    /// newer; equal timestamps keep the local record. Returns whether it changed.
    ///
    /// The caller must first pass `record.timestamp` to [`Hlc::update`] (§5.1);
    /// keeping the clock out makes merging a pure function of the two states.
    pub fn merge(&mut self, key: &str, record: LwwRecord) -> bool {
        match self.records.get_mut(key) {
            Some(local) if record.timestamp <= local.timestamp => return false,
            Some(local) => {
                self.tree.update(key, &record.timestamp);
                *local = record;
            }
            None => {
                self.tree.update(key, &record.timestamp);
                self.records.insert(key.to_owned(), record);
            }
        }
        true
    }

    /// Merges every record of `other` into this map; returns how many were accepted.
    pub fn merge_map(&mut self, other: &LwwMap) -> usize {
        let mut accepted = 0;
        for (key, record) in &other.records {
            if self.merge(key, record.clone()) {
                accepted += 1;
            }
        }
        accepted
    }

    /// The value under `key` as reads see it at `now_ms`: tombstones and expired
    /// records are hidden.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<&Value> {
        self.records
            .get(key)
            .filter(|record| record.is_visible(now_ms))
            .map(|record| &record.value)
    }

    /// The stored record for `key`, tombstone or expired alike.
    pub fn record(&self, key: &str) -> Option<&LwwRecord> {
        self.records.get(key)
    }

    /// Every stored record in key order, tombstones and expired ones included.
    pub fn records(&self) -> impl Iterator<Item = (&str, &LwwRecord)> {
        self.records
            .iter()
            .map(|(key, record)| (key.as_str(), record))
    }

    /// The visible entries at `now_ms`, in key order.
    pub fn entries(&self, now_ms: u64) -> impl Iterator<Item = (&str, &Value)> {
        self.records()
            .filter(move |(_, record)| record.is_visible(now_ms))
            .map(|(key, record)| (key, &record.value))
    }

    /// Replaces each live record expired at `now_ms` by a tombstone stamped
    /// `{expiry millis, 0, node_id}` (server GC, §5.1). Returns the tombstones to
    /// persist and broadcast.
    pub fn expire(&mut self, now_ms: u64, node_id: &str) -> Vec<(String, LwwRecord)> {
        let expired: Vec<(String, LwwRecord)> = self
            .records
            .iter()
            .filter(|(_, record)| !record.is_tombstone() && record.is_expired(now_ms))
            .filter_map(|(key, record)| {
                let expiry = ttl::expires_at(record.timestamp.millis, record.ttl_ms)?;
                let tombstone = LwwRecord {
                    value: Value::Nil,
                    timestamp: Timestamp::new(expiry, 0, node_id),
                    ttl_ms: None,
                };
                Some((key.clone(), tombstone))
            })
            .collect();

        // Each tombstone is newer than the record it replaces (ttl > 0), so
        // every merge below is accepted.
        for (key, tombstone) in &expired {
            self.merge(key, tombstone.clone());
        }
        expired
    }

    /// Deletes tombstones older than `older_than` from the map and the tree;
    /// live records are never pruned. Returns the pruned keys.
    pub fn prune(&mut self, older_than: &Timestamp) -> Vec<String> {
        let pruned: Vec<String> = self
            .records
            .iter()
            .filter(|(_, record)| record.is_tombstone() && record.timestamp < *older_than)
            .map(|(key, _)| key.clone())
            .collect();

        for key in &pruned {
            self.records.remove(key);
            self.tree.remove(key);
        }
        pruned
    }

    /// The Merkle root hash sent in `SYNC_RESP_ROOT`.
    pub fn root_hash(&self) -> u32 {
        self.tree.root_hash()
    }

    /// The Merkle tree over this map's keys.
    pub fn merkle(&self) -> &MerkleTree {
        &self.tree
    }

    /// The answer to `MERKLE_REQ_BUCKET {path}` (§6.3 step 5).
    pub fn sync_bucket(&self, path: &str) -> SyncReply<'_> {
        match self.tree.bucket(path) {
            Bucket::Inner(buckets) => SyncReply::Buckets(buckets),
            Bucket::Leaf(keys) => SyncReply::Leaf(
                keys.into_iter()
                    .filter_map(|key| self.records.get_key_value(key))
                    .map(|(key, record)| (key.as_str(), record))
                    .collect(),
            ),
        }
    }
}

fn nil() -> Value {
    Value::Nil
}

#[cfg(test)]
mod tests;
