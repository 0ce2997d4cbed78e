//! The PostgreSQL backend, used when `DATABASE_URL` is set.
//!
//! One connection, TLS through OpenSSL (see `postgres_tls`), schema created on
//! first start. Reconnecting after the connection drops is not handled yet:
//! every later call fails and the node must be restarted.

use rmpv::Value;
use tokio::sync::Mutex;
use tokio_postgres::{Client, IsolationLevel, Row, Statement};
use tracing::warn;

use super::postgres_sql as sql;
use super::{decode, encode, postgres_tls, to_i64, Batch, Mutation, Snapshot, Storage};
use super::{StorageError, StorageFuture};
use crate::crdt::{LwwRecord, OrRecord, Timestamp};

/// Map, key, value, timestamp and TTL as read from a record row.
type RecordFields = (String, String, Value, Timestamp, Option<u64>);

/// Durable storage in PostgreSQL, in three tables of its own (`topgun_lww`,
/// `topgun_or_records`, `topgun_or_tombstones`; layout and why not upstream's
/// `topgun_maps` in `postgres_sql.rs`): values as MessagePack in `BYTEA`,
/// `ttl_ms` kept, one row per OR record and per tombstoned tag.
///
/// A batch is one transaction. The session runs with `synchronous_commit` at
/// least `local` (raised from `off` if the server defaults to it), so `COMMIT`
/// returns only after the WAL is flushed; durability then rests on the
/// server's `fsync` setting, which is the operator's. Errors name host, port
/// and database, never the password.
pub struct PostgresStorage {
    client: Mutex<Client>,
    writes: Vec<Statement>,
    prefix: String,
    target: String,
}

impl PostgresStorage {
    /// Connects to `DATABASE_URL` and creates the tables in the search path.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        Self::open(url, None).await
    }

    /// Connects and keeps the tables in `schema`, created if missing.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StorageError> {
        Self::open(url, Some(schema)).await
    }

    async fn open(url: &str, schema: Option<&str>) -> Result<Self, StorageError> {
        let dial = postgres_tls::dial(url)?;
        let target = dial.target;
        let pg = |op| pg_error(op, &target);
        let (mut client, connection) = dial
            .config
            .connect(dial.tls)
            .await
            .map_err(pg("connecting"))?;
        let log_target = target.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                warn!(db = %log_target, %error, "PostgreSQL connection closed");
            }
        });

        let (prefix, ddl) = sql::schema(schema);
        let txn = client.transaction().await.map_err(pg("creating schema"))?;
        txn.batch_execute(&ddl)
            .await
            .map_err(pg("creating schema"))?;
        txn.commit().await.map_err(pg("creating schema"))?;

        let sync = client.query_one("SHOW synchronous_commit", &[]).await;
        let sync: String = sync
            .and_then(|row| row.try_get(0))
            .map_err(pg("checking synchronous_commit"))?;
        if sync == "off" {
            client
                .batch_execute("SET synchronous_commit = local")
                .await
                .map_err(pg("setting synchronous_commit"))?;
        }

        let mut writes = Vec::with_capacity(sql::WRITES.len());
        for sql in sql::WRITES {
            let sql = sql.replace("{p}", &prefix);
            writes.push(
                client
                    .prepare(&sql)
                    .await
                    .map_err(pg("preparing statements"))?,
            );
        }

        Ok(Self {
            client: Mutex::new(client),
            writes,
            prefix,
            target,
        })
    }

    /// Drops the schema of [`connect_in_schema`](Self::connect_in_schema) and its tables.
    #[cfg(test)]
    pub(super) async fn drop_schema(&self) -> Result<(), StorageError> {
        let sql = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            self.prefix.trim_end_matches('.')
        );
        let client = self.client.lock().await;
        client
            .batch_execute(&sql)
            .await
            .map_err(pg_error("dropping schema", &self.target))
    }

    async fn load_rows(&self) -> Result<Snapshot, StorageError> {
        let pg = |op| pg_error(op, &self.target);
        let mut client = self.client.lock().await;
        let txn = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg("starting load"))?;
        let p = &self.prefix;
        let mut snapshot = Snapshot::default();

        let sql = format!("SELECT map_name, key, value, ts_millis, ts_counter, ts_node_id, ttl_ms FROM {p}topgun_lww");
        for row in txn
            .query(&sql, &[])
            .await
            .map_err(pg("reading LWW records"))?
        {
            let (map, key, value, timestamp, ttl_ms) = self.fields(&row)?;
            let record = LwwRecord {
                value,
                timestamp,
                ttl_ms,
            };
            snapshot.lww.entry(map).or_default().insert(key, record);
        }

        let sql = format!("SELECT map_name, key, value, ts_millis, ts_counter, ts_node_id, ttl_ms, tag FROM {p}topgun_or_records");
        for row in txn
            .query(&sql, &[])
            .await
            .map_err(pg("reading OR records"))?
        {
            let (map, key, value, timestamp, ttl_ms) = self.fields(&row)?;
            let tag: String = row.try_get(7).map_err(pg("reading OR records"))?;
            let record = OrRecord {
                value,
                timestamp,
                tag: tag.clone(),
                ttl_ms,
            };
            let keys = snapshot.or.entry(map).or_default();
            keys.entry(key).or_default().insert(tag, record);
        }

        let sql = format!("SELECT map_name, tag FROM {p}topgun_or_tombstones");
        for row in txn
            .query(&sql, &[])
            .await
            .map_err(pg("reading OR tombstones"))?
        {
            let map: String = row.try_get(0).map_err(pg("reading OR tombstones"))?;
            let tag: String = row.try_get(1).map_err(pg("reading OR tombstones"))?;
            snapshot.or_tombstones.entry(map).or_default().insert(tag);
        }

        txn.commit().await.map_err(pg("finishing load"))?;
        Ok(snapshot)
    }

    /// Map, key, value, timestamp and TTL of a record row (the first seven columns).
    fn fields(&self, row: &Row) -> Result<RecordFields, StorageError> {
        let pg = |op| pg_error(op, &self.target);
        let map: String = row.try_get(0).map_err(pg("reading a record"))?;
        let key: String = row.try_get(1).map_err(pg("reading a record"))?;
        let bytes: Vec<u8> = row.try_get(2).map_err(pg("reading a record"))?;
        let millis: i64 = row.try_get(3).map_err(pg("reading a record"))?;
        let counter: i64 = row.try_get(4).map_err(pg("reading a record"))?;
        let node_id: String = row.try_get(5).map_err(pg("reading a record"))?;
        let ttl_ms: Option<i64> = row.try_get(6).map_err(pg("reading a record"))?;

        let unsigned = |field, value: i64| {
            u64::try_from(value).map_err(|_| StorageError::Negative {
                map: map.clone(),
                key: key.clone(),
                location: self.target.clone(),
                field,
            })
        };
        let timestamp = Timestamp::new(
            unsigned("ts_millis", millis)?,
            unsigned("ts_counter", counter)?,
            node_id,
        );
        let ttl_ms = ttl_ms.map(|ttl| unsigned("ttl_ms", ttl)).transpose()?;
        let value = decode(&map, &key, &bytes, &self.target)?;
        Ok((map, key, value, timestamp, ttl_ms))
    }

    async fn commit_batch(&self, batch: Batch) -> Result<(), StorageError> {
        let pg = |op| pg_error(op, &self.target);
        let mut client = self.client.lock().await;
        let txn = client.transaction().await.map_err(pg("starting batch"))?;

        for mutation in &batch.mutations {
            let w = &self.writes;
            let done = match mutation {
                Mutation::PutLww { map, key, record } => {
                    let (value, millis, counter, ttl) =
                        columns(map, key, &record.value, &record.timestamp, record.ttl_ms)?;
                    let deleted = record.is_tombstone();
                    let node = &record.timestamp.node_id;
                    txn.execute(
                        &w[0],
                        &[map, key, &value, &millis, &counter, node, &ttl, &deleted],
                    )
                    .await
                }
                Mutation::PutOr { map, key, record } => {
                    let (value, millis, counter, ttl) =
                        columns(map, key, &record.value, &record.timestamp, record.ttl_ms)?;
                    let node = &record.timestamp.node_id;
                    txn.execute(
                        &w[1],
                        &[map, key, &record.tag, &value, &millis, &counter, node, &ttl],
                    )
                    .await
                }
                Mutation::TombstoneOr { map, tag } => txn.execute(&w[2], &[map, tag]).await,
                Mutation::DeleteLww { map, key } => txn.execute(&w[3], &[map, key]).await,
                Mutation::DeleteOr { map, key, tag } => txn.execute(&w[4], &[map, key, tag]).await,
                Mutation::DeleteOrTombstone { map, tag } => txn.execute(&w[5], &[map, tag]).await,
            };
            done.map_err(pg("writing batch"))?;
        }

        // Dropping `txn` on any error above rolls the whole batch back.
        txn.commit().await.map_err(pg("committing batch"))
    }
}

impl Storage for PostgresStorage {
    fn load(&self) -> StorageFuture<'_, Snapshot> {
        Box::pin(self.load_rows())
    }

    fn commit(&self, batch: Batch) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            self.commit_batch(batch).await
        })
    }
}

/// The encoded value and the numeric columns of a record.
fn columns(
    map: &str,
    key: &str,
    value: &Value,
    timestamp: &Timestamp,
    ttl_ms: Option<u64>,
) -> Result<(Vec<u8>, i64, i64, Option<i64>), StorageError> {
    let millis = to_i64(map, key, "timestamp millis", timestamp.millis)?;
    let counter = to_i64(map, key, "timestamp counter", timestamp.counter)?;
    let ttl = ttl_ms
        .map(|ttl| to_i64(map, key, "ttlMs", ttl))
        .transpose()?;
    Ok((encode(map, key, value)?, millis, counter, ttl))
}

fn pg_error<'a>(
    op: &'static str,
    target: &'a str,
) -> impl Fn(tokio_postgres::Error) -> StorageError + 'a {
    move |source| StorageError::Postgres {
        op,
        target: target.to_owned(),
        source,
    }
}
