//! The embedded backend: one redb file, `topgun.redb`, in the data directory.
//!
//! Records are MessagePack maps (`rmp_serde::to_vec_named`) so user values,
//! `bin` and `ext` included, come back byte-exact. redb calls block: reads run on
//! tokio's blocking pool, writes on one writer thread that group-commits them.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

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

/// Most batches written in one group commit, which bounds how long the first of
/// them waits for the others to be applied.
const MAX_GROUP: usize = 256;

/// Durable storage in a redb file.
///
/// Commits go to one writer thread, which applies every batch waiting for it in one
/// redb write transaction with redb's default durability (`Immediate`): the new pages
/// and then the new root are fsync'd before any of those commits returns, and a crash
/// at any point leaves either the old or the new root. This is group commit: under
/// concurrent writers many batches share one pair of fsyncs. Each batch is still all
/// or nothing: batches are validated and encoded before the transaction, a batch that
/// fails there is refused alone, and if the transaction fails every batch in it fails.
#[derive(Clone)]
pub struct EmbeddedStorage {
    inner: Arc<Inner>,
    path: PathBuf,
}

/// The database and its writer thread; dropping the last handle stops the thread
/// and closes the file before returning, so the store can be opened again at once.
struct Inner {
    db: Arc<Database>,
    queue: Option<mpsc::Sender<Pending>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// A batch waiting for the writer thread, and where to send its outcome.
struct Pending {
    batch: Batch,
    done: oneshot::Sender<Result<(), StorageError>>,
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
        let db = Arc::new(joined(task.await, &path)?);

        let (queue, pending) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer_path = path.clone();
        let writer = std::thread::Builder::new()
            .name("topgun-storage".into())
            .spawn(move || write_groups(&writer_db, &writer_path, pending))
            .map_err(|source| embedded_error("starting the writer thread", &path, source))?;

        Ok(Self {
            inner: Arc::new(Inner {
                db,
                queue: Some(queue),
                writer: Some(writer),
            }),
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
        let db = Arc::clone(&self.inner.db);
        let path = self.path.clone();
        Box::pin(async move {
            let worker_path = path.clone();
            let task = tokio::task::spawn_blocking(move || load_blocking(&db, &worker_path));
            joined(task.await, &path)
        })
    }

    /// Queues `batch` for the writer thread at once, so batches are written in the
    /// order of the calls (see [`Storage::orders_at_call`]).
    fn commit(&self, batch: Batch) -> StorageFuture<'_, ()> {
        if batch.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let (done, outcome) = oneshot::channel();
        let queued = match &self.inner.queue {
            Some(queue) => queue.send(Pending { batch, done }).is_ok(),
            None => false,
        };
        Box::pin(async move {
            if !queued {
                return Err(writer_stopped(&self.path));
            }
            outcome.await.map_err(|_| writer_stopped(&self.path))?
        })
    }

    fn orders_at_call(&self) -> bool {
        true
    }
}

/// The writer thread: takes the first waiting batch and every other one already
/// queued (up to [`MAX_GROUP`]), writes them in one transaction, answers each, and
/// starts over until every handle is gone.
fn write_groups(db: &Database, path: &Path, pending: mpsc::Receiver<Pending>) {
    while let Ok(first) = pending.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match pending.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        commit_group(db, path, group);
    }
}

fn commit_group(db: &Database, path: &Path, group: Vec<Pending>) {
    let mut ready = Vec::with_capacity(group.len());
    for waiting in group {
        match prepare(&waiting.batch) {
            Ok(encoded) => ready.push((waiting, encoded)),
            Err(error) => {
                let _ = waiting.done.send(Err(error));
            }
        }
    }
    if ready.is_empty() {
        return;
    }
    let batches: Vec<(&Batch, &[Option<Vec<u8>>])> = ready
        .iter()
        .map(|(waiting, encoded)| (&waiting.batch, encoded.as_slice()))
        .collect();
    match commit_blocking(db, path, &batches) {
        Ok(()) => {
            for (waiting, _) in ready {
                let _ = waiting.done.send(Ok(()));
            }
        }
        Err(error) => {
            let text = error_chain(&error);
            let mut first = Some(error);
            for (waiting, _) in ready {
                let error = first.take().unwrap_or_else(|| StorageError::Embedded {
                    op: "writing batch",
                    path: path.to_owned(),
                    source: Box::new(redb::Error::Io(std::io::Error::other(text.clone()))),
                });
                let _ = waiting.done.send(Err(error));
            }
        }
    }
}

/// Checks and encodes the records of `batch` (the only per-batch failures), so a
/// batch that cannot be written never aborts the others of its group.
fn prepare(batch: &Batch) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
    batch
        .mutations
        .iter()
        .map(|mutation| match mutation {
            Mutation::PutLww { map, key, record } => {
                check_ranges(map, key, &record.timestamp, record.ttl_ms)?;
                encode(map, key, record).map(Some)
            }
            Mutation::PutOr { map, key, record } => {
                check_ranges(map, key, &record.timestamp, record.ttl_ms)?;
                encode(map, key, record).map(Some)
            }
            _ => Ok(None),
        })
        .collect()
}

fn writer_stopped(path: &Path) -> StorageError {
    let stopped = std::io::Error::other("the storage writer thread stopped");
    embedded_error("writing batch", path, redb::Error::Io(stopped))
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

/// Applies `batches` (with their records encoded by [`prepare`]) in one write
/// transaction. Any error drops the transaction before `commit`, which aborts it:
/// nothing of any of them is written.
fn commit_blocking(
    db: &Database,
    path: &Path,
    batches: &[(&Batch, &[Option<Vec<u8>>])],
) -> Result<(), StorageError> {
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

        for (batch, encoded) in batches {
            for (mutation, bytes) in batch.mutations.iter().zip(encoded.iter()) {
                let bytes = bytes.as_deref().unwrap_or_default();
                let written = match mutation {
                    Mutation::PutLww { map, key, .. } => {
                        lww.insert((map.as_str(), key.as_str()), bytes).map(drop)
                    }
                    Mutation::PutOr { map, key, record } => {
                        let id = (map.as_str(), key.as_str(), record.tag.as_str());
                        or_records.insert(id, bytes).map(drop)
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

/// `error` and its sources, for the batches that share a failed transaction.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
