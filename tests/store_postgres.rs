//! The PostgreSQL store: the shared contract and the SQL stores' concurrency cases on the
//! machine's server (a database of this process's own, see `common::sql`), the schema, the
//! expiry task; and outages of a server of the test's own (`initdb` + `postgres`), frozen
//! and killed.

mod common;

use std::time::Duration;

use common::sql::{self, Migrated as _, cases};
use session::{
    Clock, Error, ManualClock, PostgresStore, PostgresStoreBuilder, SessionMeta,
    resilience::{BreakerState, RetryPolicy},
    store::{FieldRecord, Record, SessionStore},
};
use session_test_support::PostgresServer;
use sqlx::PgPool;

async fn pool() -> PgPool {
    PgPool::connect(&sql::postgres_url().await).await.unwrap()
}

/// A builder on this process's database, on `table`.
async fn builder_on(table: &str, clock: &ManualClock) -> PostgresStoreBuilder {
    PostgresStore::builder(pool().await).table(table).clock(clock.clone())
}

/// A builder on this process's database, on a table of its own.
async fn builder(clock: &ManualClock) -> PostgresStoreBuilder {
    builder_on(&sql::table(), clock).await
}

async fn store(clock: &ManualClock) -> PostgresStore {
    builder(clock).await.migrated().await
}

session::store_contract!(contract, |clock| async move { store(&clock).await });
session::index_contract!(index, |clock| async move { store(&clock).await });

sql::concurrency_cases!(store);

#[tokio::test]
async fn migrate_is_idempotent_and_creates_the_documented_schema() {
    let clock = ManualClock::new();
    let table = sql::table();
    let store = builder_on(&format!("public.{table}"), &clock).await.migrated().await;
    store.migrate().await.unwrap();
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
    )
    .bind(&table)
    .fetch_all(store.pool())
    .await
    .unwrap();
    let columns: Vec<(&str, &str)> = columns.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    assert_eq!(
        columns,
        [
            ("id", "bytea"),
            ("expires_at", "bigint"),
            ("meta", "bytea"),
            ("fields", "jsonb"),
            ("index_key", "bytea"),
            ("expires_minute", "bigint")
        ]
    );
    assert_expiry_index(&store, &table).await;
    assert_index_key_index(&store, &table).await;

    // The documented SQL is what migrate runs, and runs on its own too.
    let other = sql::table();
    let schema = PostgresStore::schema(&other).unwrap();
    sqlx::raw_sql(&schema).execute(store.pool()).await.unwrap();
    sqlx::raw_sql(&schema).execute(store.pool()).await.unwrap();
    let store = PostgresStore::builder(store.pool().clone())
        .table(other)
        .build()
        .await
        .unwrap();
    assert_eq!(
        store
            .load(&session::SessionId::generate().unwrap().store_key())
            .await
            .unwrap(),
        None
    );
}

/// Expiry is indexed on `expires_minute` alone (the exact index of earlier versions is
/// gone), the expiry task's statement uses it, and a save that keeps the deadline's minute
/// is a HOT update (no index touched).
async fn assert_expiry_index(store: &PostgresStore, table: &str) {
    let indexes: Vec<String> = sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE tablename = $1")
        .bind(table)
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(
        indexes
            .iter()
            .any(|index| index.contains(&format!("{table}_expires_minute")) && index.ends_with("(expires_minute)")),
        "{indexes:?}"
    );
    assert!(!indexes.iter().any(|index| index.contains("expires_at")), "{indexes:?}");

    let mut transaction = store.pool().begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *transaction)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN SELECT id FROM \"{table}\" WHERE expires_minute <= $1 / 60000 AND expires_at <= $1 \
         ORDER BY expires_minute LIMIT 10"
    ))
    .bind(0i64)
    .fetch_all(&mut *transaction)
    .await
    .unwrap();
    assert!(plan.join("\n").contains(&format!("{table}_expires_minute")), "{plan:?}");
    let id = &[9u8; 32][..];
    sqlx::query(&format!(
        "INSERT INTO \"{table}\" (id, expires_at, meta, fields) VALUES ($1, 60000000, '', '{{}}')"
    ))
    .bind(id)
    .execute(&mut *transaction)
    .await
    .unwrap();
    sqlx::query(&format!(
        "UPDATE \"{table}\" SET expires_at = expires_at + 1000, meta = '\\x01' WHERE id = $1"
    ))
    .bind(id)
    .execute(&mut *transaction)
    .await
    .unwrap();
    let hot: i64 = sqlx::query_scalar("SELECT pg_stat_get_xact_tuples_hot_updated(to_regclass($1))")
        .bind(format!("\"{table}\""))
        .fetch_one(&mut *transaction)
        .await
        .unwrap();
    assert_eq!(hot, 1, "a save within the deadline's minute is a HOT update");
    transaction.rollback().await.unwrap();
}

/// The table has the partial index on `index_key`, and a lookup by index uses it.
async fn assert_index_key_index(store: &PostgresStore, table: &str) {
    let index: String = sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = $1")
        .bind(format!("{table}_index_key"))
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(index.ends_with("(index_key) WHERE (index_key IS NOT NULL)"), "{index}");
    // An empty table costs nothing to scan: rule out the scan to see the index is usable.
    let mut connection = store.pool().acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *connection)
        .await
        .unwrap();
    for statement in [
        format!("SELECT id FROM \"{table}\" WHERE index_key = $1 AND expires_at > $2"),
        format!("DELETE FROM \"{table}\" WHERE index_key = $1 AND expires_at > $2 RETURNING id"),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {statement}"))
            .bind(&[7u8; 32][..])
            .bind(0i64)
            .fetch_all(&mut *connection)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains(&format!("{table}_index_key")), "{plan}");
    }
    sqlx::query("RESET enable_seqscan")
        .execute(&mut *connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_upgrades_a_table_of_the_previous_version() {
    let clock = ManualClock::new();
    let (old_table, new_table) = (sql::table(), sql::table());
    let new = builder_on(&new_table, &clock).await.migrated().await;
    let old = builder_on(&format!("public.{old_table}"), &clock)
        .await
        .build()
        .await
        .unwrap();
    // The previous version's schema, as it created tables.
    let old_ddl = format!(
        "CREATE TABLE IF NOT EXISTS \"{old_table}\" (
            id         BYTEA  PRIMARY KEY,
            expires_at BIGINT NOT NULL,
            meta       BYTEA  NOT NULL,
            fields     JSONB  NOT NULL
        );
        CREATE INDEX IF NOT EXISTS \"{old_table}_expires_at\" ON \"{old_table}\" (expires_at);"
    );
    let copy = format!(
        "INSERT INTO \"{old_table}\" (id, expires_at, meta, fields) SELECT id, expires_at, meta, fields FROM \"{new_table}\""
    );
    cases::migrate_upgrades_a_table_of_the_previous_version(&old, &new, &clock, &old_ddl, &copy).await;
    assert_index_key_index(&old, &old_table).await;
    assert_expiry_index(&old, &old_table).await;
}

#[tokio::test]
async fn table_names_that_could_carry_sql_are_refused() {
    let names = ["sessions; DROP TABLE users", "x\"y", "a.b.c", "1st", ""];
    sql::table_names_are_refused(&names, |name| async move {
        assert!(PostgresStore::schema(&name).is_err());
        PostgresStore::builder(pool().await).table(name).build().await
    })
    .await;
}

#[tokio::test]
async fn rows_hold_the_digest_and_only_written_fields_change() {
    let clock = ManualClock::new();
    let table = sql::table();
    let store = builder_on(&table, &clock).await.migrated().await;
    let id = session::SessionId::generate().unwrap();
    let key = id.store_key();
    let mut fields = FieldRecord::new();
    fields.push(1, b"one");
    fields.push(2, b"two");
    let meta = SessionMeta::new(clock.now_ms(), 60_000, 600_000);
    store.create(&key, &Record { meta, fields }).await.unwrap();
    let (stored_id, expires_at, json): (Vec<u8>, i64, String) =
        sqlx::query_as(&format!("SELECT id, expires_at, fields::text FROM \"{table}\""))
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(stored_id, key.as_bytes().to_vec(), "the row is keyed by the digest");
    assert_ne!(stored_id, id.expose().into_bytes(), "never by the ID");
    assert_eq!(expires_at, i64::try_from(meta.expires_ms()).unwrap());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"00000001": "AG9uZQ==", "00000002": "AHR3bw=="})
    );

    let mut update = FieldRecord::new();
    update.push(2, b"TWO");
    store.update(&key, &Record { meta, fields: update }).await.unwrap();
    let json: String = sqlx::query_scalar(&format!("SELECT fields::text FROM \"{table}\""))
        .fetch_one(store.pool())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"00000001": "AG9uZQ==", "00000002": "AFRXTw=="})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_task_deletes_expired_rows_only_and_stops() {
    let clock = ManualClock::new();
    let table = sql::table();
    let store = builder_on(&table, &clock).await.migrated().await;
    let rows = format!("SELECT count(*) FROM \"{table}\"");
    cases::the_expiry_task_deletes_expired_rows_only_and_stops(&store, &clock, 5, 3, &rows).await;
}

// Outages, on a server of the test's own.

/// A store on `server` that fails fast.
async fn outage_store(server: &PostgresServer, clock: &ManualClock) -> PostgresStore {
    PostgresStore::builder_from_url(server.url("postgres"))
        .clock(clock.clone())
        .failing_fast()
        .migrated()
        .await
}

async fn private_server() -> PostgresServer {
    tokio::task::spawn_blocking(PostgresServer::start).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_times_out_opens_the_breaker_and_recovers_with_nothing_lost() {
    let server = private_server().await;
    let clock = ManualClock::new();
    let store = outage_store(&server, &clock).await;
    let provider = cases::provider(store.clone(), &clock);
    let mut session = provider.create().unwrap();
    session.set_f1(7);
    provider.save(&mut session).await.unwrap();
    let id = session.id().expose();

    server.freeze();
    let started = std::time::Instant::now();
    let error = provider.load(&id).await.unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by the timeout");
    session.set_f2(8);
    let error = provider.save(&mut session).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert_eq!(store.breaker_state(), BreakerState::Open);
    let error = provider.load(&id).await.unwrap_err();
    assert!(
        matches!(error, Error::CircuitOpen { .. }),
        "fails fast while open: {error}"
    );

    server.thaw();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let loaded = provider.load(&id).await.unwrap().expect("nothing lost");
    assert_eq!(*loaded.f1(), 7);
    assert_eq!(store.breaker_state(), BreakerState::Closed);
    let mut loaded = loaded;
    loaded.set_f2(9);
    provider.save(&mut loaded).await.unwrap();
    assert_eq!(*provider.load(&id).await.unwrap().unwrap().f2(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_is_unavailable_and_every_session_is_back_after_restart() {
    let mut server = private_server().await;
    let clock = ManualClock::new();
    let store = outage_store(&server, &clock).await;
    cases::an_outage_is_unavailable_and_every_session_is_back_after(store, &clock, async |back| {
        if back {
            tokio::task::block_in_place(|| server.start_again()).unwrap();
        } else {
            tokio::task::block_in_place(|| server.stop());
        }
    })
    .await;
}

// Encryption at rest and compression, as on Redis.

session::store_contract!(encrypted, |clock| async move {
    builder(&clock)
        .await
        .encryption(sql::ring())
        .compress_above(Some(16))
        .migrated()
        .await
});
session::index_contract!(encrypted_index, |clock| async move {
    builder(&clock).await.encryption(sql::ring()).migrated().await
});

#[tokio::test]
async fn values_are_sealed_at_rest_and_open_in_no_other_session() {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let clock = ManualClock::new();
    let table = sql::table();
    let store = builder_on(&table, &clock)
        .await
        .encryption(sql::ring())
        .migrated()
        .await;
    let record = |value: &[u8]| {
        let mut fields = FieldRecord::new();
        fields.push(1, value);
        let meta = SessionMeta::new(clock.now_ms(), 60_000, 600_000)
            .with_random_lineage()
            .unwrap();
        Record { meta, fields }
    };
    let (a, b) = (
        session::SessionId::generate().unwrap().store_key(),
        session::SessionId::generate().unwrap().store_key(),
    );
    store.create(&a, &record(b"the secret of a")).await.unwrap();
    store.create(&b, &record(b"the secret of b")).await.unwrap();
    let row = |key: session::store::StoreKey| {
        let (pool, table) = (store.pool().clone(), table.clone());
        async move {
            let (meta, fields): (Vec<u8>, String) =
                sqlx::query_as(&format!("SELECT meta, fields::text FROM \"{table}\" WHERE id = $1"))
                    .bind(&key.as_bytes()[..])
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            let fields: serde_json::Value = serde_json::from_str(&fields).unwrap();
            (meta, STANDARD.decode(fields["00000001"].as_str().unwrap()).unwrap())
        }
    };
    let (meta_a, value_a) = row(a).await;
    assert_eq!(meta_a[0], 2, "sealed metadata");
    assert_eq!(value_a[0], 2, "a sealed field");
    assert!(!value_a.windows(6).any(|w| w == b"secret"), "no plaintext at rest");
    assert_eq!(
        store.load(&a).await.unwrap().unwrap().fields.get(1).unwrap(),
        Some(&b"the secret of a"[..])
    );

    // A party that can write to the database moves a's sealed field into b: it does not open.
    sqlx::query(&format!(
        "UPDATE \"{table}\" SET fields = jsonb_build_object('00000001', $1::text) WHERE id = $2"
    ))
    .bind(STANDARD.encode(&value_a))
    .bind(&b.as_bytes()[..])
    .execute(store.pool())
    .await
    .unwrap();
    let loaded = store.load(&b).await.unwrap().expect("b is still a session");
    assert_eq!(
        loaded.fields.get(1).unwrap(),
        None,
        "another session's field does not open"
    );
    // And a's metadata into b: b is no session.
    sqlx::query(&format!("UPDATE \"{table}\" SET meta = $1 WHERE id = $2"))
        .bind(&meta_a)
        .bind(&b.as_bytes()[..])
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(store.load(&b).await.unwrap(), None);

    // Without the key ring (or with another), nothing opens.
    let same_table = || {
        PostgresStore::builder(store.pool().clone())
            .table(&table)
            .clock(clock.clone())
    };
    let plain = same_table().build().await.unwrap();
    assert_eq!(plain.load(&a).await.unwrap(), None);
    let foreign = same_table().encryption(sql::ring()).build().await.unwrap();
    assert_eq!(foreign.load(&a).await.unwrap(), None);
}

#[tokio::test]
async fn values_above_the_threshold_are_compressed() {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let clock = ManualClock::new();
    let table = sql::table();
    let store = builder_on(&table, &clock)
        .await
        .compress_above(Some(64))
        .migrated()
        .await;
    let large = b"abcdefgh".repeat(500);
    let key = session::SessionId::generate().unwrap().store_key();
    let mut fields = FieldRecord::new();
    fields.push(1, &large);
    fields.push(2, b"small");
    let meta = SessionMeta::new(clock.now_ms(), 60_000, 600_000);
    store.create(&key, &Record { meta, fields }).await.unwrap();
    let json: String = sqlx::query_scalar(&format!("SELECT fields::text FROM \"{table}\""))
        .fetch_one(store.pool())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let stored = STANDARD.decode(json["00000001"].as_str().unwrap()).unwrap();
    assert_eq!(stored[0], 1, "gzip");
    assert!(
        stored.len() < large.len() / 10,
        "{} bytes for {}",
        stored.len(),
        large.len()
    );
    assert_eq!(
        STANDARD.decode(json["00000002"].as_str().unwrap()).unwrap(),
        b"\0small",
        "small values stay plain"
    );
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.fields.get(1).unwrap(), Some(&large[..]));
}

/// Statements the server logged (`log_statement=all`) since `from` (a log length).
fn statements_since(server: &PostgresServer, from: usize) -> Vec<String> {
    server.log_text()[from..]
        .lines()
        .filter_map(|line| line.split_once("LOG:  ").map(|(_, rest)| rest))
        .filter(|rest| rest.starts_with("execute ") || rest.starts_with("statement: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_per_load_and_per_save_counted_by_the_server() {
    let server = tokio::task::spawn_blocking(|| PostgresServer::start_with(&["log_statement=all"]))
        .await
        .unwrap();
    let clock = ManualClock::new();
    // One connection: every statement's preparation is paid once, in the warm-up.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect(&server.url("postgres"))
        .await
        .unwrap();
    let store = PostgresStore::builder(pool).clock(clock.clone()).migrated().await;
    let provider = cases::provider(store, &clock);
    let mut counts = std::collections::BTreeMap::new();
    for round in 0..3 {
        let mut count = |op: &'static str, from: usize| {
            let logged = statements_since(&server, from);
            if round > 0 {
                counts.entry(op).or_insert_with(Vec::new).push(logged.len());
            }
            logged
        };
        let at = server.log_text().len();
        let mut session = provider.create().unwrap();
        session.set_f0(1);
        provider.save(&mut session).await.unwrap();
        count("create", at);
        let id = session.id().expose();

        let at = server.log_text().len();
        let mut session = provider.load(&id).await.unwrap().unwrap();
        count("load", at);
        let at = server.log_text().len();
        session.set_f1(2);
        provider.save(&mut session).await.unwrap();
        let update = count("update", at);
        assert!(update.iter().all(|statement| !statement.contains("f0")), "{update:?}");

        let at = server.log_text().len();
        provider.regenerate_id(&mut session).await.unwrap();
        count("regenerate", at);
        let at = server.log_text().len();
        provider.delete(&mut session).await.unwrap();
        count("delete", at);
    }
    eprintln!("PostgreSQL statements per operation (server log, rounds 2 and 3): {counts:?}");
    if counts.values().flatten().any(|&n| n != 1) {
        eprintln!("{}", server.log_text());
    }
    for (op, per_round) in &counts {
        assert!(per_round.iter().all(|&n| n == 1), "{op}: {per_round:?} statements");
    }
}

#[test]
fn expired_sessions_are_told_apart_within_the_retention() {
    session::test_util::run(session::test_util::cases::expired_sessions_are_told_apart(
        |clock| async move {
            builder(&clock)
                .await
                .expired_retention(std::time::Duration::from_secs(3600))
                .migrated()
                .await
        },
    ));
}

common::lifetimes::lifetime_cases!(|clock| async move { store(&clock).await });

// The connections the store keeps between its calls.

/// A record of one field, live for a minute on `clock`.
fn one_field(clock: &ManualClock, value: &[u8]) -> Record {
    let mut fields = FieldRecord::new();
    fields.push(1, value);
    Record {
        meta: SessionMeta::new(clock.now_ms(), 60_000, 600_000),
        fields,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_the_server_ended_is_replaced_and_the_write_lands() {
    let clock = ManualClock::new();
    let options: sqlx::postgres::PgConnectOptions = sql::postgres_url().await.parse().unwrap();
    let name = format!("kept-{}", std::process::id());
    let named = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.application_name(&name))
        .await
        .unwrap();
    // No retry: only the store's own replacement of the connection can save the write.
    let store = PostgresStore::builder(named)
        .table(sql::table())
        .clock(clock.clone())
        .retry(RetryPolicy::none())
        .migrated()
        .await;
    let key = session::SessionId::generate().unwrap().store_key();
    assert!(store.create(&key, &one_field(&clock, b"one")).await.unwrap());

    let ended: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_all(&pool().await)
            .await
            .unwrap();
    assert!(!ended.is_empty() && ended.iter().all(|&ended| ended), "{ended:?}");

    assert!(store.update(&key, &one_field(&clock, b"two")).await.unwrap());
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.fields.get(1).unwrap(), Some(&b"two"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_one_is_shared_with_the_application_and_serves_many_calls_at_once() {
    let clock = ManualClock::new();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&sql::postgres_url().await)
        .await
        .unwrap();
    let store = PostgresStore::builder(pool.clone())
        .table(sql::table())
        .clock(clock.clone())
        .command_timeout(Duration::from_secs(5))
        .migrated()
        .await;
    let keys: Vec<_> = (0..16)
        .map(|_| session::SessionId::generate().unwrap().store_key())
        .collect();
    let mut calls = tokio::task::JoinSet::new();
    for key in keys.clone() {
        let (store, record) = (store.clone(), one_field(&clock, b"one"));
        calls.spawn(async move { store.create(&key, &record).await });
    }
    for created in calls.join_all().await {
        assert!(created.unwrap(), "each call waits its turn for the one connection");
    }
    // The store gives the connection back to the pool once idle, so this gets it.
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(one, 1);
    let mut calls = tokio::task::JoinSet::new();
    for key in keys {
        let (store, record) = (store.clone(), one_field(&clock, b"two"));
        calls.spawn(async move { store.update(&key, &record).await });
    }
    for updated in calls.join_all().await {
        assert!(updated.unwrap());
    }
}
