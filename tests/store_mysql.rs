//! The MySQL store, on the machine's MariaDB or MySQL server (a database of this process's
//! own, see `common::sql`): the shared contract, the SQL stores' concurrency cases, the
//! schema and the expiry task.

mod common;

use std::time::Duration;

use common::sql::{self, Migrated as _, cases};
use session::{
    Clock, ManualClock, MySqlStore, MySqlStoreBuilder, SessionMeta,
    store::{FieldRecord, Record, SessionStore},
};
use sqlx::MySqlPool;

async fn pool() -> MySqlPool {
    MySqlPool::connect(&sql::mysql_url().await).await.unwrap()
}

/// A builder on this process's database, on `table`.
async fn builder_on(table: &str, clock: &ManualClock) -> MySqlStoreBuilder {
    MySqlStore::builder(pool().await).table(table).clock(clock.clone())
}

async fn store_on(table: &str, clock: &ManualClock) -> MySqlStore {
    builder_on(table, clock).await.migrated().await
}

async fn store(clock: &ManualClock) -> MySqlStore {
    store_on(&sql::table(), clock).await
}

session::store_contract!(contract, |clock| async move { store(&clock).await });

sql::concurrency_cases!(store);

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
    sql::create_empty(&other, &clock, 60_000).await;
}

#[tokio::test]
async fn table_names_that_could_carry_sql_are_refused() {
    let names = ["sessions; DROP TABLE users", "x`y", "a.b.c", "1st", ""];
    sql::table_names_are_refused(&names, |name| async move {
        MySqlStore::builder(pool().await).table(name).build().await
    })
    .await;
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
    let rows = format!("SELECT COUNT(*) FROM `{table}`");
    cases::the_expiry_task_deletes_expired_rows_only_and_stops(&store, &clock, 5, 1, &rows).await;
}

session::store_contract!(encrypted, |clock| async move {
    builder_on(&sql::table(), &clock)
        .await
        .encryption(sql::ring())
        .compress_above(Some(16))
        .migrated()
        .await
});

#[test]
fn expired_sessions_are_told_apart_within_the_retention() {
    session::test_util::run(session::test_util::cases::expired_sessions_are_told_apart(
        |clock| async move {
            builder_on(&sql::table(), &clock)
                .await
                .expired_retention(std::time::Duration::from_secs(3600))
                .migrated()
                .await
        },
    ));
}

common::lifetimes::lifetime_cases!(|clock| async move { store(&clock).await });
