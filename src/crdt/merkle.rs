//! The Merkle tree of LWW-Map delta sync (PROTOCOL.md §6.2–§6.3).
//!
//! A prefix trie of depth 3 over the hex form of each key's hash; every hash is
//! a wrapping `u32` sum, so the tree does not depend on insertion order. Which
//! records a leaf holds is the map's business; the tree only knows keys.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use super::hash::{fnv1a_utf16, Fnv1aUtf16};
use super::timestamp::Timestamp;

/// Number of hex characters of a key's hash that route it to its leaf.
pub const DEPTH: usize = 3;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The hash of one record: `fnv1a(key:millis:counter:nodeId)`.
///
/// The value and `ttlMs` are deliberately not hashed (§6.2), so only timestamps
/// are compared during sync.
pub fn item_hash(key: &str, timestamp: &Timestamp) -> u32 {
    let mut hasher = Fnv1aUtf16::new();
    write!(hasher, "{key}:{timestamp}").expect("hashing text cannot fail");
    hasher.finish()
}

/// The routing path of a key: `fnv1a(key)` as 8 lowercase, zero-padded hex digits.
///
/// The leaf holding the key is the first [`DEPTH`] characters of this path.
pub fn key_path(key: &str) -> String {
    format!("{:08x}", fnv1a_utf16(key))
}

/// What a server answers to `MERKLE_REQ_BUCKET` for one path (§6.3 step 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bucket<'a> {
    /// A leaf with at least one key: answer `SYNC_RESP_LEAF` with these keys' records.
    Leaf(Vec<&'a str>),
    /// Anything else: answer `SYNC_RESP_BUCKETS` with these child hashes, keyed by
    /// one lowercase hex character (empty for unknown paths and empty leaves).
    Inner(BTreeMap<String, u32>),
}

/// Merkle tree over the keys of one LWW-Map.
///
/// As upstream, a node once created is never deleted: after a prune a bucket
/// may be reported with hash 0. There are at most 1 + 16 + 256 + 4096 nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleTree {
    /// Hash of every node, keyed by its path ("" = root, 3 hex chars = leaf).
    nodes: HashMap<String, u32>,
    /// Item hash of every key, grouped by leaf path.
    leaves: HashMap<String, BTreeMap<String, u32>>,
}

impl MerkleTree {
    /// An empty tree; its root hash is 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records (or replaces) the item hash of `key` written at `timestamp`.
    pub fn update(&mut self, key: &str, timestamp: &Timestamp) {
        let hash = item_hash(key, timestamp);
        let path = leaf_path(key);
        let path = path.as_str();

        // Lookups by reference first: a key written again allocates nothing.
        let leaf = match self.leaves.get_mut(path) {
            Some(leaf) => leaf,
            None => self.leaves.entry(path.to_owned()).or_default(),
        };
        let old = match leaf.get_mut(key) {
            Some(old) => std::mem::replace(old, hash),
            None => {
                leaf.insert(key.to_owned(), hash);
                0
            }
        };

        self.add_along(path, hash.wrapping_sub(old));
    }

    /// Forgets `key`; used when tombstones are pruned.
    pub fn remove(&mut self, key: &str) {
        let path = leaf_path(key);
        let path = path.as_str();
        let Some(old) = self.leaves.get_mut(path).and_then(|leaf| leaf.remove(key)) else {
            return;
        };

        self.add_along(path, 0u32.wrapping_sub(old));
    }

    /// The root hash: the wrapping sum of the item hashes of every key.
    pub fn root_hash(&self) -> u32 {
        self.hash_at("").unwrap_or(0)
    }

    /// Hash of the node at `path`, or `None` if no such node was ever created.
    pub fn hash_at(&self, path: &str) -> Option<u32> {
        self.nodes.get(path).copied()
    }

    /// Child hashes of the node at `path`, keyed by one hex character.
    ///
    /// Empty for leaves and for paths that name no node (too long, upper-case
    /// or non-hex characters, or a bucket that never held a key).
    pub fn buckets(&self, path: &str) -> BTreeMap<String, u32> {
        if path.len() >= DEPTH || !self.nodes.contains_key(path) {
            return BTreeMap::new();
        }

        HEX.iter()
            .map(|&digit| format!("{path}{}", char::from(digit)))
            .filter_map(|child| {
                let hash = self.nodes.get(&child).copied()?;
                Some((child[path.len()..].to_owned(), hash))
            })
            .collect()
    }

    /// The keys in the leaf at `path`, sorted; empty when `path` is not a leaf.
    pub fn leaf_keys(&self, path: &str) -> Vec<&str> {
        self.leaves
            .get(path)
            .map(|leaf| leaf.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The answer to a bucket request for `path`: a non-empty leaf's keys, or
    /// the node's child hashes (§6.3 step 5).
    pub fn bucket(&self, path: &str) -> Bucket<'_> {
        let keys = self.leaf_keys(path);
        if keys.is_empty() {
            Bucket::Inner(self.buckets(path))
        } else {
            Bucket::Leaf(keys)
        }
    }

    /// Adds `delta` (wrapping) to the leaf at `leaf` and to each of its ancestors,
    /// creating any that do not exist yet.
    fn add_along(&mut self, leaf: &str, delta: u32) {
        for len in 0..=DEPTH {
            let path = &leaf[..len];
            match self.nodes.get_mut(path) {
                Some(hash) => *hash = hash.wrapping_add(delta),
                None => {
                    self.nodes.insert(path.to_owned(), delta);
                }
            }
        }
    }
}

/// The first [`DEPTH`] hex digits of a key's path, without building the whole path.
struct LeafPath([u8; DEPTH]);

impl LeafPath {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

fn leaf_path(key: &str) -> LeafPath {
    let hash = fnv1a_utf16(key);
    let mut digits = [0u8; DEPTH];
    for (position, digit) in digits.iter_mut().enumerate() {
        let shift = 28 - 4 * position;
        *digit = HEX[(hash >> shift) as usize & 0xf];
    }
    LeafPath(digits)
}

#[cfg(test)]
mod tests;
