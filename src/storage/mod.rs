//! Durable records of every map, behind one [`Storage`] trait (issue 3, item 6).
//!
//! Storage keeps whatever it was last told to keep: merging, TTL expiry and
//! pruning decisions belong to the store, which sends their results here as a
//! [`Batch`]. Two backends: [`EmbeddedStorage`] (redb) and [`PostgresStorage`], and
//! [`MemoryStorage`], which keeps nothing (benchmarks and tests).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crdt::{LwwRecord, OrRecord, Timestamp};

pub mod embedded;
pub mod memory;
pub mod postgres;
mod postgres_sql;
mod postgres_tls;

#[cfg(test)]
mod conformance;

pub use embedded::EmbeddedStorage;
pub use memory::MemoryStorage;
pub use postgres::PostgresStorage;

/// The future every [`Storage`] method returns.
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Durable records of LWW and OR maps.
///
/// Implementations are shared by every session of the node, hence `Send + Sync`.
pub trait Storage: Send + Sync {
    /// Every stored record of every map, read at start-up.
    fn load(&self) -> StorageFuture<'_, Snapshot>;

    /// Writes `batch` as one transaction: all of it or none of it.
    ///
    /// Returns only once the batch is durable (fsync'd or committed), so the
    /// node may acknowledge the writes it carries (`OP_ACK`) as soon as this
    /// returns `Ok`, and never before. On `Err` nothing of the batch is stored.
    fn commit(&self, batch: Batch) -> StorageFuture<'_, ()>;

    /// Whether a batch takes its place in the order of writes when [`Storage::commit`]
    /// is *called* (not when its future is first polled), so that batches committed
    /// one after the other are stored in that order even when their futures are
    /// awaited concurrently. The write path then waits for durability without holding
    /// its write lock, and concurrent writes can share one fsync. Default: `false`.
    fn orders_at_call(&self) -> bool {
        false
    }
}

/// Everything a backend holds, by map name.
///
/// A store should apply OR tombstones before OR records: a record whose tag is
/// tombstoned may still be stored if the batch that tombstoned it did not also
/// delete it, and applying tombstones first keeps such a record dead.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// LWW records (tombstones included) by map, then key.
    pub lww: BTreeMap<String, BTreeMap<String, LwwRecord>>,
    /// OR records by map, then key, then tag.
    pub or: BTreeMap<String, BTreeMap<String, BTreeMap<String, OrRecord>>>,
    /// Tombstoned OR tags by map.
    pub or_tombstones: BTreeMap<String, BTreeSet<String>>,
}

/// One change of a [`Batch`]; changes apply in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Stores `record` under `key`, replacing what was there (tombstones included).
    PutLww {
        map: String,
        key: String,
        record: LwwRecord,
    },
    /// Stores `record` under `key` and its tag, replacing a record with that tag.
    PutOr {
        map: String,
        key: String,
        record: OrRecord,
    },
    /// Adds `tag` to the map's tombstone set. The record holding the tag is
    /// not touched: send a [`Mutation::DeleteOr`] for each key that held it.
    TombstoneOr { map: String, tag: String },
    /// Forgets the LWW record of `key` (a pruned tombstone); absent is fine.
    DeleteLww { map: String, key: String },
    /// Forgets the OR record `tag` under `key`; absent is fine.
    DeleteOr {
        map: String,
        key: String,
        tag: String,
    },
    /// Forgets a tombstoned tag (a pruned tombstone); absent is fine.
    DeleteOrTombstone { map: String, tag: String },
}

/// Changes to write in one transaction, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// The changes, applied first to last.
    pub mutations: Vec<Mutation>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    /// Appends one change.
    pub fn push(&mut self, mutation: Mutation) -> &mut Self {
        self.mutations.push(mutation);
        self
    }
}

/// Why a storage operation failed. Embedded errors name the file; PostgreSQL
/// errors name host, port and database, never the password.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("creating data directory {}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} in {}", path.display())]
    Embedded {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("encoding record {map}/{key}")]
    Encode {
        map: String,
        key: String,
        #[source]
        source: rmp_serde::encode::Error,
    },
    #[error("decoding record {map}/{key} from {location}")]
    Decode {
        map: String,
        key: String,
        location: String,
        #[source]
        source: rmp_serde::decode::Error,
    },
    #[error("record {map}/{key}: {field} {value} does not fit a signed 64-bit integer")]
    OutOfRange {
        map: String,
        key: String,
        field: &'static str,
        value: u64,
    },
    #[error("record {map}/{key} in {location} has a negative {field}")]
    Negative {
        map: String,
        key: String,
        location: String,
        field: &'static str,
    },
    #[error("storage worker thread for {} stopped", path.display())]
    Worker {
        path: PathBuf,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("parsing DATABASE_URL: {reason}")]
    DatabaseUrl { reason: String },
    #[error("parsing DATABASE_URL")]
    DatabaseUrlSyntax(#[source] tokio_postgres::Error),
    #[error("building the OpenSSL connector for PostgreSQL")]
    PostgresTls(#[source] openssl::error::ErrorStack),
    #[error("loading sslrootcert {}", path.display())]
    PostgresCa {
        path: PathBuf,
        #[source]
        source: openssl::error::ErrorStack,
    },
    #[error("{op} on PostgreSQL {target}")]
    Postgres {
        op: &'static str,
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// `value` as the `i64` that both backends can hold (PostgreSQL has no unsigned
/// `BIGINT`; the embedded backend refuses the same values so both agree).
fn to_i64(map: &str, key: &str, field: &'static str, value: u64) -> Result<i64, StorageError> {
    i64::try_from(value).map_err(|_| StorageError::OutOfRange {
        map: map.to_owned(),
        key: key.to_owned(),
        field,
        value,
    })
}

/// Refuses a record whose numbers would not fit both backends.
fn check_ranges(
    map: &str,
    key: &str,
    timestamp: &Timestamp,
    ttl_ms: Option<u64>,
) -> Result<(), StorageError> {
    to_i64(map, key, "timestamp millis", timestamp.millis)?;
    to_i64(map, key, "timestamp counter", timestamp.counter)?;
    if let Some(ttl_ms) = ttl_ms {
        to_i64(map, key, "ttlMs", ttl_ms)?;
    }
    Ok(())
}

/// MessagePack with field names, so records stay readable by other tools.
fn encode<T: Serialize>(map: &str, key: &str, value: &T) -> Result<Vec<u8>, StorageError> {
    rmp_serde::to_vec_named(value).map_err(|source| StorageError::Encode {
        map: map.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// Reads what [`encode`] wrote; `location` names the file or database.
fn decode<T: DeserializeOwned>(
    map: &str,
    key: &str,
    bytes: &[u8],
    location: &dyn Display,
) -> Result<T, StorageError> {
    rmp_serde::from_slice(bytes).map_err(|source| StorageError::Decode {
        map: map.to_owned(),
        key: key.to_owned(),
        location: location.to_string(),
        source,
    })
}
