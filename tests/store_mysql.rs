//! The MySQL store, on the machine's MariaDB or MySQL server (a database of this process's
//! own, see `common::sql`): the shared contract, the SQL stores' concurrency cases, the
//! schema, the expiry task and an outage (through a forwarder of the test's own).

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
session::index_contract!(index, |clock| async move { store(&clock).await });
// Deleting by index sets its own isolation level: a pool whose sessions default to
// `READ COMMITTED` (a common server setting) keeps the race rule too.
session::index_contract!(index_read_committed, |clock| async move {
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .after_connect(|connection, _| {
            Box::pin(async move {
                sqlx::Executor::execute(connection, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await
                    .map(drop)
            })
        })
        .connect(&sql::mysql_url().await)
        .await
        .unwrap();
    MySqlStore::builder(pool)
        .table(sql::table())
        .clock(clock.clone())
        .migrated()
        .await
});

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
    assert_eq!(
        names,
        ["id", "expires_at", "meta", "fields", "index_key", "expires_minute"]
    );
    assert_eq!(columns[0].1, "binary");
    assert_eq!(columns[1].1, "bigint");
    assert_eq!(columns[4].1, "varbinary");
    assert_expiry_index(&store, &table).await;
    assert_index_key_index(&store, &table).await;

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

/// Expiry is indexed on `expires_minute` alone (the exact index of earlier versions is
/// gone), and the expiry task's statement can use it.
async fn assert_expiry_index(store: &MySqlStore, table: &str) {
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(index_name AS CHAR), CAST(column_name AS CHAR) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = ?",
    )
    .bind(table)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(
        indexes.contains(&(format!("{table}_expires_minute"), "expires_minute".to_owned())),
        "{indexes:?}"
    );
    assert!(!indexes.iter().any(|(_, column)| column == "expires_at"), "{indexes:?}");
    let plan = sqlx::query(&format!(
        "EXPLAIN SELECT id FROM `{table}` WHERE expires_minute <= ? DIV 60000 AND expires_at <= ? \
         ORDER BY expires_minute LIMIT 10"
    ))
    .bind(0i64)
    .bind(0i64)
    .fetch_one(store.pool())
    .await
    .unwrap();
    let keys: Option<String> = sqlx::Row::try_get(&plan, "possible_keys").unwrap();
    assert_eq!(keys, Some(format!("{table}_expires_minute")));
}

/// The table has the index on `index_key`, and a lookup by index uses it.
async fn assert_index_key_index(store: &MySqlStore, table: &str) {
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(index_name AS CHAR) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'index_key'",
    )
    .bind(table)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(indexes, [format!("{table}_index_key")]);
    let plan = sqlx::query(&format!(
        "EXPLAIN SELECT id FROM `{table}` WHERE index_key = ? AND expires_at > ? FOR UPDATE"
    ))
    .bind(&[7u8; 32][..])
    .bind(0i64)
    .fetch_one(store.pool())
    .await
    .unwrap();
    let key: Option<String> = sqlx::Row::try_get(&plan, "key").unwrap();
    assert_eq!(key, Some(format!("{table}_index_key")));
}

#[tokio::test]
async fn migrate_upgrades_a_table_of_the_previous_version() {
    let clock = ManualClock::new();
    let (old_table, new_table) = (sql::table(), sql::table());
    let new = store_on(&new_table, &clock).await;
    let old = builder_on(&old_table, &clock).await.build().await.unwrap();
    // The previous version's schema, as it created tables.
    let old_ddl = format!(
        "CREATE TABLE IF NOT EXISTS `{old_table}` (
            id         BINARY(32) NOT NULL PRIMARY KEY,
            expires_at BIGINT     NOT NULL,
            meta       BLOB       NOT NULL,
            fields     JSON       NOT NULL,
            INDEX `{old_table}_expires_at` (expires_at)
        ) ENGINE = InnoDB"
    );
    let copy = format!(
        "INSERT INTO `{old_table}` (id, expires_at, meta, fields) SELECT id, expires_at, meta, fields FROM `{new_table}`"
    );
    cases::migrate_upgrades_a_table_of_the_previous_version(&old, &new, &clock, &old_ddl, &copy).await;
    assert_index_key_index(&old, &old_table).await;
    assert_expiry_index(&old, &old_table).await;
}

#[tokio::test]
async fn migrations_racing_to_add_the_column_all_succeed() {
    let clock = ManualClock::new();
    let table = sql::table();
    let old = builder_on(&table, &clock).await.build().await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE `{table}` (id BINARY(32) NOT NULL PRIMARY KEY, expires_at BIGINT NOT NULL, \
         meta BLOB NOT NULL, fields JSON NOT NULL, INDEX `{table}_expires_at` (expires_at)) ENGINE = InnoDB"
    ))
    .execute(old.pool())
    .await
    .unwrap();
    let migrations: Vec<_> = (0..4)
        .map(|_| {
            let store = old.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for migration in migrations {
        migration.await.unwrap().unwrap();
    }
    assert_index_key_index(&old, &table).await;
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
session::index_contract!(encrypted_index, |clock| async move {
    builder_on(&sql::table(), &clock)
        .await
        .encryption(sql::ring())
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

// An outage, without touching the machine's shared server: the store reaches it through
// a forwarder of the test's own, which the test stops and starts again.

/// Forwards a loopback port to the server while it runs; stopped, it closes every
/// connection through it and refuses new ones.
struct Forwarder {
    port: u16,
    target: std::net::SocketAddr,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Forwarder {
    async fn to(host: &str, port: u16) -> Self {
        let target = tokio::net::lookup_host((host, port)).await.unwrap().next().unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut forwarder = Self {
            port: free.local_addr().unwrap().port(),
            target,
            running: None,
        };
        drop(free);
        forwarder.start().await;
        forwarder
    }

    async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let target = self.target;
        self.running = Some(tokio::spawn(async move {
            // Dropped with this task when it is stopped, which closes every connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
            let _ = running.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable_and_every_session_is_back_after() {
    use std::str::FromStr as _;

    use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

    let options = MySqlConnectOptions::from_str(&sql::mysql_url().await).unwrap();
    let mut forwarder = Forwarder::to(options.get_host(), options.get_port()).await;
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .connect_with(options.clone().host("127.0.0.1").port(forwarder.port))
        .await
        .unwrap();
    let clock = ManualClock::new();
    let store = MySqlStore::builder(pool)
        .table(sql::table())
        .clock(clock.clone())
        .failing_fast()
        .migrated()
        .await;
    cases::an_outage_is_unavailable_and_every_session_is_back_after(store, &clock, async |back| {
        if back {
            forwarder.start().await;
        } else {
            forwarder.stop().await;
        }
    })
    .await;
}
