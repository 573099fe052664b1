//! The SQLite store, on a temporary file and in memory: the shared contract, the SQL
//! stores' concurrency cases, the schema and the expiry task.

mod common;

use std::time::Duration;

use common::sql::{self, cases};
use session::{
    Clock, Error, ManualClock, SessionMeta, SqliteStore,
    store::{FieldRecord, Record, SessionStore},
};

/// A store on a file of its own.
async fn file_store(clock: &ManualClock) -> SqliteStore {
    let store = SqliteStore::builder_from_path(sql::sqlite_path())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// A store in memory, on a table of its own name.
async fn memory_store(clock: &ManualClock) -> SqliteStore {
    let store = SqliteStore::builder_from_url("sqlite::memory:")
        .table(sql::table())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

session::store_contract!(on_a_file, |clock| async move { file_store(&clock).await });
session::store_contract!(in_memory, |clock| async move { memory_store(&clock).await });

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_overlapping_field_writes_all_survive() {
    let clock = ManualClock::new();
    cases::eight_overlapping_field_writes_all_survive(file_store(&clock).await, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regenerate_racing_updates_loses_nothing_acknowledged() {
    let clock = ManualClock::new();
    cases::regenerate_racing_updates_loses_nothing_acknowledged(file_store(&clock).await, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_eight_overlapping_field_writes_all_survive() {
    let clock = ManualClock::new();
    cases::eight_overlapping_field_writes_all_survive(memory_store(&clock).await, &clock).await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_the_documented_schema_works_on_its_own() {
    let clock = ManualClock::new();
    let path = sql::sqlite_path();
    let store = SqliteStore::builder_from_path(&path)
        .table("main.app_sessions")
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let columns: Vec<(String, String)> =
        sqlx::query_as("SELECT name, type FROM pragma_table_info('app_sessions') ORDER BY cid")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let columns: Vec<(&str, &str)> = columns.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    assert_eq!(
        columns,
        [
            ("id", "BLOB"),
            ("expires_at", "INTEGER"),
            ("meta", "BLOB"),
            ("fields", "TEXT")
        ]
    );
    let indexes: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_index_list('app_sessions')")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(indexes.contains(&"app_sessions_expires_at".to_owned()), "{indexes:?}");

    let schema = SqliteStore::schema("other").unwrap();
    sqlx::raw_sql(&schema).execute(store.pool()).await.unwrap();
    sqlx::raw_sql(&schema).execute(store.pool()).await.unwrap();
    let other = SqliteStore::builder(store.pool().clone())
        .table("other")
        .build()
        .await
        .unwrap();
    let key = session::SessionId::generate().unwrap().store_key();
    let meta = SessionMeta::new(clock.now_ms(), 60_000, 600_000);
    assert!(
        other
            .create(
                &key,
                &Record {
                    meta,
                    fields: FieldRecord::new()
                }
            )
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn table_names_that_could_carry_sql_are_refused() {
    for name in ["sessions; DROP TABLE users", "x\"y", "a.b.c", "1st", ""] {
        let error = SqliteStore::builder_from_url("sqlite::memory:")
            .table(name)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{name:?}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_task_deletes_expired_rows_only_and_stops() {
    let clock = ManualClock::new();
    let store = file_store(&clock).await;
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sessions")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    let create = |idle_ms: u64| {
        let (store, clock) = (store.clone(), clock.clone());
        async move {
            let key = session::SessionId::generate().unwrap().store_key();
            let meta = SessionMeta::new(clock.now_ms(), idle_ms, 10 * idle_ms);
            assert!(
                store
                    .create(
                        &key,
                        &Record {
                            meta,
                            fields: FieldRecord::new()
                        }
                    )
                    .await
                    .unwrap()
            );
            key
        }
    };
    // More than one statement's worth of expired rows.
    for _ in 0..1_500 {
        create(60_000).await;
    }
    let live = create(3_600_000).await;
    clock.advance(Duration::from_secs(120));
    assert_eq!(rows().await, 1_501, "expired rows stay until swept");

    let task = store.spawn_expiry_task(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rows().await != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the task did not sweep");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.load(&live).await.unwrap().is_some(), "the live session is kept");
    task.stop().await;

    create(60_000).await;
    clock.advance(Duration::from_secs(120));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rows().await, 2, "a stopped task deletes nothing");
    assert_eq!(store.delete_expired().await.unwrap(), 1);
}

#[tokio::test]
async fn a_missing_table_is_an_answered_error_not_an_outage() {
    let store = SqliteStore::builder_from_url("sqlite::memory:").build().await.unwrap();
    let error = store
        .load(&session::SessionId::generate().unwrap().store_key())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Store(_)), "{error:?}");
    assert!(!error.is_unavailable());
}

session::store_contract!(encrypted, |clock| async move {
    use session::crypto::{KeyId, KeyRing, Secret};
    let store = SqliteStore::builder_from_path(sql::sqlite_path())
        .clock(clock.clone())
        .encryption(KeyRing::new(KeyId(1), Secret::generate().unwrap()))
        .compress_above(Some(16))
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
});
