//! The MySQL store, on the machine's MariaDB or MySQL server (a database of this process's
//! own, see `common::sql`): the shared contract, the SQL stores' concurrency cases, the
//! schema and the expiry task.

mod common;

use std::time::Duration;

use common::sql::{self, cases};
use session::{
    Clock, Error, ManualClock, MySqlStore, SessionMeta,
    store::{FieldRecord, Record, SessionStore},
};
use sqlx::MySqlPool;

async fn pool() -> MySqlPool {
    MySqlPool::connect(&sql::mysql_url().await).await.unwrap()
}

async fn store_on(table: &str, clock: &ManualClock) -> MySqlStore {
    let store = MySqlStore::builder(pool().await)
        .table(table)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

async fn store(clock: &ManualClock) -> MySqlStore {
    store_on(&sql::table(), clock).await
}

session::store_contract!(contract, |clock| async move { store(&clock).await });

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_overlapping_field_writes_all_survive() {
    let clock = ManualClock::new();
    cases::eight_overlapping_field_writes_all_survive(store(&clock).await, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regenerate_racing_updates_loses_nothing_acknowledged() {
    let clock = ManualClock::new();
    cases::regenerate_racing_updates_loses_nothing_acknowledged(store(&clock).await, &clock).await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_the_documented_schema_works_on_its_own() {
    let clock = ManualClock::new();
    let table = sql::table();
    let store = store_on(&table, &clock).await;
    store.migrate().await.unwrap();
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
    )
    .bind(&table)
    .fetch_all(store.pool())
    .await
    .unwrap();
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["id", "expires_at", "meta", "fields"]);
    assert_eq!(columns[0].1, "binary");
    assert_eq!(columns[1].1, "bigint");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(index_name AS CHAR) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = ?",
    )
    .bind(&table)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(indexes.contains(&format!("{table}_expires_at")), "{indexes:?}");

    let other = sql::table();
    let schema = MySqlStore::schema(&other).unwrap();
    sqlx::raw_sql(&schema).execute(store.pool()).await.unwrap();
    sqlx::raw_sql(&schema).execute(store.pool()).await.unwrap();
    let other = MySqlStore::builder(store.pool().clone())
        .table(other)
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
    for name in ["sessions; DROP TABLE users", "x`y", "a.b.c", "1st", ""] {
        let error = MySqlStore::builder(pool().await).table(name).build().await.unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{name:?}: {error}");
    }
}

#[tokio::test]
async fn create_replaces_an_expired_row_but_never_a_live_one() {
    // The second statement of a MySQL create, which random IDs never reach otherwise.
    let clock = ManualClock::new();
    let store = store(&clock).await;
    let key = session::SessionId::generate().unwrap().store_key();
    let record = |value: &[u8]| {
        let mut fields = FieldRecord::new();
        fields.push(1, value);
        Record {
            meta: SessionMeta::new(clock.now_ms(), 60_000, 600_000),
            fields,
        }
    };
    assert!(store.create(&key, &record(b"first")).await.unwrap());
    assert!(!store.create(&key, &record(b"second")).await.unwrap());
    clock.advance(Duration::from_secs(61));
    assert!(store.create(&key, &record(b"third")).await.unwrap());
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.fields.get(1).unwrap(), Some(&b"third"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_task_deletes_expired_rows_only_and_stops() {
    let clock = ManualClock::new();
    let table = sql::table();
    let store = store_on(&table, &clock).await;
    let rows = || async {
        sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM `{table}`"))
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
    for _ in 0..5 {
        create(60_000).await;
    }
    let live = create(3_600_000).await;
    clock.advance(Duration::from_secs(120));
    assert_eq!(rows().await, 6, "expired rows stay until swept");

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

session::store_contract!(encrypted, |clock| async move {
    use session::crypto::{KeyId, KeyRing, Secret};
    let store = MySqlStore::builder(pool().await)
        .table(sql::table())
        .clock(clock.clone())
        .encryption(KeyRing::new(KeyId(1), Secret::generate().unwrap()))
        .compress_above(Some(16))
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
});
