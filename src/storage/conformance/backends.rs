//! Runs the conformance cases against each backend, plus the cases that need
//! to know which backend they test (reopening, connection errors).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::FutureExt;
use rmpv::Value;

use crate::storage::{EmbeddedStorage, PostgresStorage, Storage};

/// Runs `$case` against each backend as `embedded::$case` and `postgres::$case`.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let storage = crate::storage::EmbeddedStorage::open(dir.path()).await.unwrap();

                    super::super::$case(&storage).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = super::TestDatabase::new(stringify!($case)) else {
                        return;
                    };
                    db.run(|storage, _| Box::pin(super::super::$case(storage))).await;
                }
            )*
        }
    };
}

suite!(
    empty_storage_loads_nothing,
    lww_upsert_is_loaded_back,
    last_written_record_replaces_the_earlier_one,
    lww_tombstone_is_kept,
    pruned_records_and_tags_are_deleted,
    or_records_and_tombstones_round_trip,
    bin_and_ext_values_survive_byte_exact,
    failed_batch_stores_nothing,
);

type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A PostgreSQL schema of its own for one test, dropped afterwards.
struct TestDatabase {
    url: String,
    schema: String,
}

impl TestDatabase {
    /// `None`, after saying so, when `TOPGUN_TEST_DATABASE_URL` is unset.
    fn new(case: &str) -> Option<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let Ok(url) = std::env::var("TOPGUN_TEST_DATABASE_URL") else {
            eprintln!("skipped: PostgreSQL {case}, TOPGUN_TEST_DATABASE_URL is not set");
            return None;
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let schema = format!("topgun_test_{}_{n}", std::process::id());
        Some(Self { url, schema })
    }

    async fn open(&self) -> PostgresStorage {
        PostgresStorage::connect_in_schema(&self.url, &self.schema)
            .await
            .unwrap()
    }

    /// Runs `case` on a fresh schema (it may open more connections to it
    /// through the second argument) and drops the schema even if `case` panics.
    async fn run(&self, case: impl for<'a> FnOnce(&'a dyn Storage, &'a Self) -> CaseFuture<'a>) {
        let storage = self.open().await;

        let outcome = AssertUnwindSafe(case(&storage, self)).catch_unwind().await;

        storage.drop_schema().await.unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

#[tokio::test]
async fn embedded_store_reopened_after_drop_sees_every_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(dir.path()).await.unwrap();
    let written = super::write_records_for_reopen(&storage).await;
    drop(storage);

    let reopened = EmbeddedStorage::open(dir.path()).await.unwrap();

    assert_eq!(reopened.load().await.unwrap(), written);
    assert_eq!(written.lww["m"]["a"].value, Value::from("a2"));
}

#[tokio::test]
async fn postgres_reconnect_sees_every_committed_record() {
    let Some(db) = TestDatabase::new("reconnect") else {
        return;
    };
    db.run(|first, db| {
        Box::pin(async move {
            let written = super::write_records_for_reopen(first).await;

            let second = db.open().await;

            assert_eq!(second.load().await.unwrap(), written);
        })
    })
    .await;
}

#[tokio::test]
async fn postgres_connect_error_names_the_server_but_not_the_password() {
    let url = "postgres://topgun:hunter2@127.0.0.1:1/app?sslmode=disable&connect_timeout=2";

    let err = PostgresStorage::connect(url).await.err().unwrap();

    let text = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
    assert!(text.contains("127.0.0.1:1/app"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
