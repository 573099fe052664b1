//! The SQLite store, on a temporary file and in memory: the shared contract, the SQL
//! stores' concurrency cases, the schema and the expiry task.

mod common;

use common::sql::{self, Migrated as _, cases};
use session::{Error, ManualClock, SqliteStore, store::SessionStore};

/// A store on a file of its own.
async fn file_store(clock: &ManualClock) -> SqliteStore {
    SqliteStore::builder_from_path(sql::sqlite_path())
        .clock(clock.clone())
        .migrated()
        .await
}

/// A store in memory, on a table of its own name.
async fn memory_store(clock: &ManualClock) -> SqliteStore {
    SqliteStore::builder_from_url("sqlite::memory:")
        .table(sql::table())
        .clock(clock.clone())
        .migrated()
        .await
}

session::store_contract!(on_a_file, |clock| async move { file_store(&clock).await });
session::store_contract!(in_memory, |clock| async move { memory_store(&clock).await });
session::index_contract!(index_on_a_file, |clock| async move { file_store(&clock).await });
session::index_contract!(index_in_memory, |clock| async move { memory_store(&clock).await });

sql::concurrency_cases!(file_store);

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
        .migrated()
        .await;
    store.migrate().await.unwrap();
    let columns: Vec<(String, String)> =
        sqlx::query_as("SELECT name, type FROM pragma_table_xinfo('app_sessions') ORDER BY cid")
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
            ("fields", "TEXT"),
            ("index_key", "BLOB"),
            ("expires_minute", "INTEGER")
        ]
    );
    assert_expiry_index(&store, "app_sessions").await;
    assert_index_key_index(&store, "app_sessions").await;

    let schema = SqliteStore::schema("other").unwrap();
    sqlx::raw_sql(&schema).execute(store.pool()).await.unwrap();
    sqlx::raw_sql(&schema).execute(store.pool()).await.unwrap();
    let other = SqliteStore::builder(store.pool().clone())
        .table("other")
        .build()
        .await
        .unwrap();
    sql::create_empty(&other, &clock, 60_000).await;
}

/// Expiry is indexed on `expires_minute` alone (the exact index of earlier versions is
/// gone), and the expiry task's statement uses it.
async fn assert_expiry_index(store: &SqliteStore, table: &str) {
    let indexes: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_index_list('{table}')"))
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(indexes.contains(&format!("{table}_expires_minute")), "{indexes:?}");
    assert!(!indexes.contains(&format!("{table}_expires_at")), "{indexes:?}");
    let statement = format!(
        "SELECT id FROM \"{table}\" WHERE expires_minute <= ?2 / 60000 AND expires_at <= ?2 \
         ORDER BY expires_minute LIMIT 10"
    );
    assert_plan_uses(store, &statement, &format!("{table}_expires_minute")).await;
}

/// SQLite's plan for `statement` (`?1` an index digest, `?2` 0, `?3` null) uses `index`.
async fn assert_plan_uses(store: &SqliteStore, statement: &str, index: &str) {
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {statement}"))
        .bind(&[7u8; 32][..])
        .bind(0i64)
        .bind(None::<&[u8]>)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let details: Vec<&str> = plan.iter().map(|(.., detail)| detail.as_str()).collect();
    assert!(
        details.iter().any(|detail| detail.contains(&format!("INDEX {index}"))),
        "{details:?}"
    );
}

/// The table has the partial index on `index_key`, and a lookup or deletion by index uses it.
async fn assert_index_key_index(store: &SqliteStore, table: &str) {
    let partial: i64 = sqlx::query_scalar(&format!(
        "SELECT partial FROM pragma_index_list('{table}') WHERE name = '{table}_index_key'"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(partial, 1, "a partial index");
    for statement in [
        format!("SELECT id FROM \"{table}\" WHERE index_key = ?1 AND expires_at > ?2"),
        format!(
            "DELETE FROM \"{table}\" WHERE index_key = ?1 AND id IS NOT ?3 \
             AND (expires_at > ?2 OR expires_at <= ?2) RETURNING id"
        ),
    ] {
        assert_plan_uses(store, &statement, &format!("{table}_index_key")).await;
    }
}

#[tokio::test]
async fn migrate_upgrades_a_table_of_the_previous_version() {
    let clock = ManualClock::new();
    let path = sql::sqlite_path();
    let new = SqliteStore::builder_from_path(&path)
        .clock(clock.clone())
        .migrated()
        .await;
    // Qualified, so the column lookup names the schema too.
    let old = SqliteStore::builder(new.pool().clone())
        .table("main.old_sessions")
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    // The previous version's schema, as it created tables.
    let old_ddl = r#"CREATE TABLE IF NOT EXISTS "old_sessions" (
            id         BLOB    NOT NULL PRIMARY KEY,
            expires_at INTEGER NOT NULL,
            meta       BLOB    NOT NULL,
            fields     TEXT    NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS "old_sessions_expires_at" ON "old_sessions" (expires_at);"#;
    let copy =
        "INSERT INTO old_sessions (id, expires_at, meta, fields) SELECT id, expires_at, meta, fields FROM sessions";
    cases::migrate_upgrades_a_table_of_the_previous_version(&old, &new, &clock, old_ddl, copy).await;
    assert_index_key_index(&old, "old_sessions").await;
    assert_expiry_index(&old, "old_sessions").await;
}

#[tokio::test]
async fn table_names_that_could_carry_sql_are_refused() {
    let names = ["sessions; DROP TABLE users", "x\"y", "a.b.c", "1st", ""];
    sql::table_names_are_refused(&names, |name| {
        SqliteStore::builder_from_url("sqlite::memory:").table(name).build()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_task_deletes_expired_rows_only_and_stops() {
    let clock = ManualClock::new();
    let store = file_store(&clock).await;
    // More than one statement's worth of expired rows.
    let rows = "SELECT count(*) FROM sessions";
    cases::the_expiry_task_deletes_expired_rows_only_and_stops(&store, &clock, 1_500, 1, rows).await;
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
    SqliteStore::builder_from_path(sql::sqlite_path())
        .clock(clock.clone())
        .encryption(sql::ring())
        .compress_above(Some(16))
        .migrated()
        .await
});
session::index_contract!(encrypted_index, |clock| async move {
    SqliteStore::builder_from_path(sql::sqlite_path())
        .clock(clock.clone())
        .encryption(sql::ring())
        .migrated()
        .await
});

#[test]
fn expired_sessions_are_told_apart_within_the_retention() {
    session::test_util::run(session::test_util::cases::expired_sessions_are_told_apart(
        |clock| async move {
            SqliteStore::builder_from_path(sql::sqlite_path())
                .clock(clock.clone())
                .expired_retention(std::time::Duration::from_secs(3600))
                .migrated()
                .await
        },
    ));
}

#[tokio::test]
async fn the_expiry_task_keeps_rows_within_the_retention() {
    use session::store::SessionStore as _;
    let clock = ManualClock::new();
    let store = SqliteStore::builder_from_path(sql::sqlite_path())
        .clock(clock.clone())
        .expired_retention(std::time::Duration::from_secs(60))
        .migrated()
        .await;
    let key = sql::create_empty(&store, &clock, 1000).await;
    clock.advance(std::time::Duration::from_millis(1000));
    assert_eq!(store.delete_expired().await.unwrap(), 0, "kept within the retention");
    assert!(store.expired(&key).await.unwrap());
    clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(store.delete_expired().await.unwrap(), 1, "deleted after it");
    assert!(!store.expired(&key).await.unwrap());
}

common::lifetimes::lifetime_cases!(|clock| async move { file_store(&clock).await });

/// The store's own writes take turns in the process: while SQLite's write lock is held
/// elsewhere, one of them waits for it in SQLite on a connection, and the others wait for
/// their turn without one (in order, rather than polling SQLite's lock with growing
/// sleeps), so the pool stays free for reads; every write lands once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_wait_for_the_lock_in_turn_not_on_a_connection_each() {
    use std::time::{Duration, Instant};

    use session::SaveOutcome;
    use sqlx::{
        ConnectOptions as _,
        sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    };

    let clock = ManualClock::new();
    let options = SqliteConnectOptions::new()
        .filename(sql::sqlite_path())
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(20));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options.clone())
        .await
        .unwrap();
    let store = SqliteStore::builder(pool.clone())
        .command_timeout(Duration::from_secs(20))
        .clock(clock.clone())
        .migrated()
        .await;
    let provider = cases::provider(store, &clock);
    let mut sessions = Vec::new();
    for _ in 0..6 {
        let mut session = provider.create().unwrap();
        session.set_f0(1);
        provider.save(&mut session).await.unwrap();
        sessions.push(provider.load(&session.id().expose()).await.unwrap().expect("live"));
    }
    let ids: Vec<_> = sessions.iter().map(|session| session.id().expose()).collect();
    let busy = || (pool.size() as usize).saturating_sub(pool.num_idle());

    let mut lock = options.connect().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut lock).await.unwrap();
    let writers: Vec<_> = sessions
        .into_iter()
        .map(|mut session| {
            let provider = provider.clone();
            tokio::spawn(async move {
                session.set_f1(2);
                provider.save(&mut session).await
            })
        })
        .collect();
    let waited = Instant::now();
    while busy() != 1 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the writes never came to one on a connection: {} busy",
            busy()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            busy(),
            1,
            "one write waits for the lock on a connection, the others without one"
        );
    }
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();

    for writer in writers {
        assert_eq!(writer.await.unwrap().unwrap(), SaveOutcome::Updated);
    }
    for id in ids {
        assert_eq!(*provider.load(&id).await.unwrap().expect("live").f1(), 2);
    }
}
