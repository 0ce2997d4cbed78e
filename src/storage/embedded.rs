//! The embedded backend: one redb file, `topgun.redb`, in the data directory.
//!
//! Records are MessagePack maps (`rmp_serde::to_vec_named`) so user values,
//! `bin` and `ext` included, come back byte-exact. redb calls block, so each
//! runs on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};

use super::StorageFuture;
use super::{check_ranges, decode, encode, Batch, Mutation, Snapshot, Storage, StorageError};

/// LWW records by (map, key).
const LWW: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("lww");
/// OR records by (map, key, tag).
const OR_RECORDS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("or_records");
/// Tombstoned OR tags by (map, tag).
const OR_TOMBSTONES: TableDefinition<(&str, &str), ()> = TableDefinition::new("or_tombstones");

/// File name of the database inside the data directory.
pub const FILE_NAME: &str = "topgun.redb";

/// Durable storage in a redb file.
///
/// Each [`Storage::commit`] is one redb write transaction with redb's default
/// durability (`Immediate`): the commit returns after the new pages and then
/// the new root are fsync'd, and a crash at any point leaves either the old or
/// the new root, so a batch is all-or-nothing even across `kill -9`. Write
/// transactions are serialized by redb; there is no group commit yet.
#[derive(Clone)]
pub struct EmbeddedStorage {
    db: Arc<Database>,
    path: PathBuf,
}

impl EmbeddedStorage {
    /// Opens `data_dir/topgun.redb`, creating the directory and the file if
    /// missing. Fails if another process (or another `EmbeddedStorage` in
    /// this one) holds the file open.
    pub async fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let data_dir = data_dir.to_owned();
        let path = data_dir.join(FILE_NAME);
        let worker_path = path.clone();

        let task = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&data_dir).map_err(|source| StorageError::DataDir {
                path: data_dir.clone(),
                source,
            })?;
            let db = Database::create(&worker_path)
                .map_err(|source| embedded_error("opening", &worker_path, source))?;
            create_tables(&db, &worker_path)?;
            Ok(db)
        });
        let db = joined(task.await, &path)?;

        Ok(Self {
            db: Arc::new(db),
            path,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Storage for EmbeddedStorage {
    fn load(&self) -> StorageFuture<'_, Snapshot> {
        let db = Arc::clone(&self.db);
        let path = self.path.clone();
        Box::pin(async move {
            let worker_path = path.clone();
            let task = tokio::task::spawn_blocking(move || load_blocking(&db, &worker_path));
            joined(task.await, &path)
        })
    }

    fn commit(&self, batch: Batch) -> StorageFuture<'_, ()> {
        let db = Arc::clone(&self.db);
        let path = self.path.clone();
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let worker_path = path.clone();
            let task =
                tokio::task::spawn_blocking(move || commit_blocking(&db, &worker_path, batch));
            joined(task.await, &path)
        })
    }
}

/// Creates the three tables so that read transactions can always open them.
fn create_tables(db: &Database, path: &Path) -> Result<(), StorageError> {
    let txn = db
        .begin_write()
        .map_err(|source| embedded_error("starting schema transaction", path, source))?;
    let created = || -> Result<(), redb::TableError> {
        txn.open_table(LWW)?;
        txn.open_table(OR_RECORDS)?;
        txn.open_table(OR_TOMBSTONES)?;
        Ok(())
    };
    created().map_err(|source| embedded_error("creating tables", path, source))?;
    txn.commit()
        .map_err(|source| embedded_error("committing schema", path, source))
}

fn load_blocking(db: &Database, path: &Path) -> Result<Snapshot, StorageError> {
    let read_error = |source: redb::Error| StorageError::Embedded {
        op: "reading records",
        path: path.to_owned(),
        source: Box::new(source),
    };
    let txn = db.begin_read().map_err(|e| read_error(e.into()))?;
    let mut snapshot = Snapshot::default();

    let table = txn.open_table(LWW).map_err(|e| read_error(e.into()))?;
    for row in table.iter().map_err(|e| read_error(e.into()))? {
        let (id, bytes) = row.map_err(|e| read_error(e.into()))?;
        let (map, key) = id.value();
        let record = decode(map, key, bytes.value(), &path.display())?;
        let keys = snapshot.lww.entry(map.to_owned()).or_default();
        keys.insert(key.to_owned(), record);
    }

    let table = txn
        .open_table(OR_RECORDS)
        .map_err(|e| read_error(e.into()))?;
    for row in table.iter().map_err(|e| read_error(e.into()))? {
        let (id, bytes) = row.map_err(|e| read_error(e.into()))?;
        let (map, key, tag) = id.value();
        let record = decode(map, key, bytes.value(), &path.display())?;
        let keys = snapshot.or.entry(map.to_owned()).or_default();
        keys.entry(key.to_owned())
            .or_default()
            .insert(tag.to_owned(), record);
    }

    let table = txn
        .open_table(OR_TOMBSTONES)
        .map_err(|e| read_error(e.into()))?;
    for row in table.iter().map_err(|e| read_error(e.into()))? {
        let (id, _) = row.map_err(|e| read_error(e.into()))?;
        let (map, tag) = id.value();
        let tags = snapshot.or_tombstones.entry(map.to_owned()).or_default();
        tags.insert(tag.to_owned());
    }

    Ok(snapshot)
}

/// Applies `batch` in one write transaction. Any error drops the transaction
/// before `commit`, which aborts it: nothing of the batch is written.
fn commit_blocking(db: &Database, path: &Path, batch: Batch) -> Result<(), StorageError> {
    let write_error = |source: redb::Error| StorageError::Embedded {
        op: "writing batch",
        path: path.to_owned(),
        source: Box::new(source),
    };
    let txn = db.begin_write().map_err(|e| write_error(e.into()))?;

    {
        let mut lww = txn.open_table(LWW).map_err(|e| write_error(e.into()))?;
        let mut or_records = txn
            .open_table(OR_RECORDS)
            .map_err(|e| write_error(e.into()))?;
        let mut or_tombstones = txn
            .open_table(OR_TOMBSTONES)
            .map_err(|e| write_error(e.into()))?;

        for mutation in &batch.mutations {
            let written = match mutation {
                Mutation::PutLww { map, key, record } => {
                    check_ranges(map, key, &record.timestamp, record.ttl_ms)?;
                    let bytes = encode(map, key, record)?;
                    lww.insert((map.as_str(), key.as_str()), bytes.as_slice())
                        .map(drop)
                }
                Mutation::PutOr { map, key, record } => {
                    check_ranges(map, key, &record.timestamp, record.ttl_ms)?;
                    let bytes = encode(map, key, record)?;
                    let id = (map.as_str(), key.as_str(), record.tag.as_str());
                    or_records.insert(id, bytes.as_slice()).map(drop)
                }
                Mutation::TombstoneOr { map, tag } => or_tombstones
                    .insert((map.as_str(), tag.as_str()), ())
                    .map(drop),
                Mutation::DeleteLww { map, key } => {
                    lww.remove((map.as_str(), key.as_str())).map(drop)
                }
                Mutation::DeleteOr { map, key, tag } => or_records
                    .remove((map.as_str(), key.as_str(), tag.as_str()))
                    .map(drop),
                Mutation::DeleteOrTombstone { map, tag } => {
                    or_tombstones.remove((map.as_str(), tag.as_str())).map(drop)
                }
            };
            written.map_err(|e| write_error(e.into()))?;
        }
    }

    txn.commit().map_err(|e| write_error(e.into()))
}

fn embedded_error(op: &'static str, path: &Path, source: impl Into<redb::Error>) -> StorageError {
    StorageError::Embedded {
        op,
        path: path.to_owned(),
        source: Box::new(source.into()),
    }
}

/// The result of a blocking task, or why the task itself failed.
fn joined<T>(
    result: Result<Result<T, StorageError>, tokio::task::JoinError>,
    path: &Path,
) -> Result<T, StorageError> {
    result.map_err(|source| StorageError::Worker {
        path: path.to_owned(),
        source,
    })?
}
