//! Databases for the SQL stores' tests: on the machine's PostgreSQL and MariaDB/MySQL
//! servers, one database per test process with a name of its own, created on first use and
//! dropped when the process exits (a watchdog runs `psql` or `mariadb` then); and SQLite
//! files in a directory of the process's own, removed the same way. Every store gets a
//! table of its own.
//!
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and `MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/mysql`) name the servers and a user that may
//! `CREATE DATABASE`. A server that is not there fails the test with how to start it: no
//! test is skipped.

use std::{
    future::Future,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use session::{
    Clock as _, Error, ExpiryTask, ManualClock, MySqlStore, MySqlStoreBuilder, PostgresStore, PostgresStoreBuilder,
    SessionMeta, SqliteStore, SqliteStoreBuilder,
    crypto::{KeyId, KeyRing, Secret},
    resilience::{BreakerConfig, BreakerState, RetryPolicy},
    store::{FieldRecord, Record, SessionStore, StoreKey},
};
use sqlx::Connection as _;
use tokio::sync::OnceCell;

pub const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const MYSQL_DEFAULT: &str = "mysql://root@127.0.0.1:3306/mysql";

/// A table name no other store of this process uses.
pub fn table() -> String {
    static TABLES: AtomicUsize = AtomicUsize::new(0);
    format!("sessions_{}", TABLES.fetch_add(1, Ordering::Relaxed))
}

fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("session_test_{}_{nanos}", std::process::id())
}

/// `url` with its database (path) replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, query) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.split_once('?').map(|(_, query)| query)),
        None => (rest, None),
    };
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// Runs `script` with `sh` once this process has exited.
fn after_exit(script: &str) {
    let parent = std::process::id();
    let script = format!("while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; {script}");
    // Its standard streams must not hold the test harness's pipes open. Never waited for:
    // it outlives this process by design.
    let watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the watchdog that cleans up the test databases (sh)");
    std::mem::forget(watchdog);
}

/// Single-quoted for `sh`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The URL of this process's PostgreSQL database, created on first use.
///
/// # Panics
///
/// When the server is not reachable or refuses, with how to start it.
pub async fn postgres_url() -> String {
    static DATABASE: OnceCell<String> = OnceCell::const_new();
    DATABASE
        .get_or_init(|| async {
            let admin = std::env::var("DATABASE_URL").unwrap_or_else(|_| POSTGRES_DEFAULT.to_owned());
            let mut connection = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&admin))
                .await
                .unwrap_or_else(|_| panic!("PostgreSQL at {admin} did not answer within 10 s"))
                .unwrap_or_else(|error| {
                    panic!(
                        "PostgreSQL is not reachable at {admin}: {error}. Start it (`service postgresql start`; \
                         `.ci/run` does) or set DATABASE_URL to a server and user that may CREATE DATABASE"
                    )
                });
            let name = unique_name();
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut connection)
                .await
                .unwrap_or_else(|error| panic!("CREATE DATABASE {name} on {admin}: {error}"));
            let _ = connection.close().await;
            after_exit(&format!(
                "psql {} -q -c {} >/dev/null 2>&1",
                sh_quote(&admin),
                sh_quote(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            ));
            with_database(&admin, &name)
        })
        .await
        .clone()
}

/// `mysql` client arguments for a `mysql://user:password@host:port/…` URL.
fn mysql_client_args(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let (credentials, host) = authority.rsplit_once('@').unwrap_or(("root", authority));
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let (host, port) = host.split_once(':').unwrap_or((host, "3306"));
    let mut args = format!("-h {} -P {} -u {}", sh_quote(host), sh_quote(port), sh_quote(user));
    if !password.is_empty() {
        args.push_str(&format!(" --password={}", sh_quote(password)));
    }
    args
}

/// The URL of this process's MySQL/MariaDB database, created on first use.
///
/// # Panics
///
/// When the server is not reachable or refuses, with how to start it.
pub async fn mysql_url() -> String {
    static DATABASE: OnceCell<String> = OnceCell::const_new();
    DATABASE
        .get_or_init(|| async {
            let admin = std::env::var("MYSQL_URL").unwrap_or_else(|_| MYSQL_DEFAULT.to_owned());
            let mut connection = tokio::time::timeout(Duration::from_secs(10), sqlx::MySqlConnection::connect(&admin))
                .await
                .unwrap_or_else(|_| panic!("MySQL/MariaDB at {admin} did not answer within 10 s"))
                .unwrap_or_else(|error| {
                    panic!(
                        "MySQL/MariaDB is not reachable at {admin}: {error}. Start it (`service mariadb start`; \
                             `.ci/run` does) or set MYSQL_URL to a server and user that may CREATE DATABASE"
                    )
                });
            let name = unique_name();
            sqlx::query(&format!("CREATE DATABASE `{name}`"))
                .execute(&mut connection)
                .await
                .unwrap_or_else(|error| panic!("CREATE DATABASE {name} on {admin}: {error}"));
            let _ = connection.close().await;
            after_exit(&format!(
                "(command -v mariadb >/dev/null && c=mariadb || c=mysql; $c {} -e {} >/dev/null 2>&1)",
                mysql_client_args(&admin),
                sh_quote(&format!("DROP DATABASE IF EXISTS `{name}`"))
            ));
            with_database(&admin, &name)
        })
        .await
        .clone()
}

/// A fresh path for a SQLite database file, in a directory of this process's own that is
/// removed when it exits.
pub fn sqlite_path() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(unique_name());
        std::fs::create_dir_all(&dir).expect("create the SQLite test directory");
        after_exit(&format!("rm -rf {}", sh_quote(&dir.to_string_lossy())));
        dir
    });
    dir.join(format!("store{}.db", FILES.fetch_add(1, Ordering::Relaxed)))
}

/// What the shared cases need of a SQL store beyond the store traits: the methods the
/// three stores have alike.
pub trait SqlStore: SessionStore + Clone {
    /// The store's `migrate`.
    fn migrate(&self) -> impl Future<Output = Result<(), Error>>;
    /// Runs `sql`, one or more statements without arguments, on the store's pool.
    fn execute(&self, sql: &str) -> impl Future<Output = ()>;
    /// The store's `spawn_expiry_task`.
    fn spawn_expiry_task(&self, every: Duration) -> ExpiryTask;
    /// The store's `delete_expired`.
    fn delete_expired(&self) -> impl Future<Output = Result<u64, Error>>;
    /// Runs `sql`, a `count(*)` on the store's pool.
    fn count(&self, sql: &str) -> impl Future<Output = i64>;
    /// The store's `breaker_state`.
    fn breaker_state(&self) -> BreakerState;
}

/// What the tests need of a SQL store's builder.
pub trait Migrated {
    /// The store it builds.
    type Store;
    /// Builds the store and runs its migration.
    fn migrated(self) -> impl Future<Output = Self::Store>;
    /// Fails fast, for outage tests: 300 ms per call, no retry, open after 2 failures for
    /// 500 ms.
    fn failing_fast(self) -> Self;
}

macro_rules! sql_store {
    ($store:ty, $builder:ty) => {
        impl SqlStore for $store {
            async fn migrate(&self) -> Result<(), Error> {
                <$store>::migrate(self).await
            }

            async fn execute(&self, sql: &str) {
                sqlx::raw_sql(sql).execute(self.pool()).await.unwrap();
            }
            fn spawn_expiry_task(&self, every: Duration) -> ExpiryTask {
                <$store>::spawn_expiry_task(self, every)
            }

            async fn delete_expired(&self) -> Result<u64, Error> {
                <$store>::delete_expired(self).await
            }

            async fn count(&self, sql: &str) -> i64 {
                sqlx::query_scalar(sql).fetch_one(self.pool()).await.unwrap()
            }

            fn breaker_state(&self) -> BreakerState {
                <$store>::breaker_state(self)
            }
        }

        impl Migrated for $builder {
            type Store = $store;

            async fn migrated(self) -> $store {
                let store = self.build().await.unwrap();
                store.migrate().await.unwrap();
                store
            }

            fn failing_fast(self) -> Self {
                self.command_timeout(Duration::from_millis(300))
                    .retry(RetryPolicy::none())
                    .circuit_breaker(BreakerConfig {
                        failure_threshold: 2,
                        reset_timeout: Duration::from_millis(500),
                    })
            }
        }
    };
}

sql_store!(PostgresStore, PostgresStoreBuilder);
sql_store!(SqliteStore, SqliteStoreBuilder);
sql_store!(MySqlStore, MySqlStoreBuilder);

/// A key ring of one new key.
pub fn ring() -> KeyRing {
    KeyRing::new(KeyId(1), Secret::generate().unwrap())
}

/// Creates a session without fields, live for `idle_ms` (and at most ten times that), under
/// a new key; asserts the store created it.
pub async fn create_empty<S: SessionStore>(store: &S, clock: &ManualClock, idle_ms: u64) -> StoreKey {
    let key = session::SessionId::generate().unwrap().store_key();
    let meta = SessionMeta::new(clock.now_ms(), idle_ms, 10 * idle_ms);
    let record = Record {
        meta,
        fields: FieldRecord::new(),
    };
    assert!(store.create(&key, &record).await.unwrap());
    key
}

/// Every name is refused by `build` with [`Error::Config`].
pub async fn table_names_are_refused<S, F, Fut>(names: &[&str], build: F)
where
    S: std::fmt::Debug,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<S, Error>>,
{
    for name in names {
        let error = build((*name).to_owned()).await.unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{name:?}: {error}");
    }
}

/// The SQL stores' concurrency cases ([`cases`]) as tests, each on a new store from `$store`
/// (an `async fn(&ManualClock) -> S` of the test file).
macro_rules! concurrency_cases {
    ($store:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn eight_overlapping_field_writes_all_survive() {
            let clock = session::ManualClock::new();
            let store = $store(&clock).await;
            crate::common::sql::cases::eight_overlapping_field_writes_all_survive(store, &clock).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn regenerate_racing_updates_loses_nothing_acknowledged() {
            let clock = session::ManualClock::new();
            let store = $store(&clock).await;
            crate::common::sql::cases::regenerate_racing_updates_loses_nothing_acknowledged(store, &clock).await;
        }
    };
}
pub(crate) use concurrency_cases;

pub mod cases {
    //! Cases every SQL store runs through the provider, beyond the store contract.

    use std::{sync::Arc, time::Duration};

    use session::{
        Clock as _, Error, ManualClock, SaveOutcome, SessionConfig, SessionData, SessionMeta, SessionProvider,
        store::{FieldRecord, IndexKey, IndexStore, Record, SessionStore, StoreKey},
    };
    use tokio::sync::Barrier;

    use super::{BreakerState, SqlStore, create_empty};

    /// The expiry task of `store` deletes `expired` expired rows (created first) and keeps
    /// `live` live ones, and a stopped task deletes nothing; `rows` counts the table's rows.
    pub async fn the_expiry_task_deletes_expired_rows_only_and_stops<S: SqlStore>(
        store: &S,
        clock: &ManualClock,
        expired: usize,
        live: usize,
        rows: &str,
    ) {
        let rows = || store.count(rows);
        for _ in 0..expired {
            create_empty(store, clock, 60_000).await;
        }
        let mut kept = Vec::new();
        for _ in 0..live {
            kept.push(create_empty(store, clock, 3_600_000).await);
        }
        let live = i64::try_from(live).unwrap();
        clock.advance(Duration::from_secs(120));
        assert_eq!(
            rows().await,
            i64::try_from(expired).unwrap() + live,
            "expired rows stay until swept"
        );

        let task = store.spawn_expiry_task(Duration::from_millis(50));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while rows().await != live {
            assert!(tokio::time::Instant::now() < deadline, "the task did not sweep");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for key in &kept {
            assert!(store.load(key).await.unwrap().is_some(), "live sessions are kept");
        }
        task.stop().await;

        create_empty(store, clock, 60_000).await;
        clock.advance(Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(rows().await, live + 1, "a stopped task deletes nothing");
        assert_eq!(store.delete_expired().await.unwrap(), 1);
        assert_eq!(rows().await, live);
    }

    fn indexed(clock: &ManualClock, user: Option<&str>, idle_ms: u64) -> Record {
        let mut fields = FieldRecord::new();
        fields.push(1, b"kept");
        let mut meta = SessionMeta::new(clock.now_ms(), idle_ms, 10 * idle_ms);
        meta.index = user.map(|user| IndexKey::of("user", user).unwrap());
        Record { meta, fields }
    }

    async fn listed<S: IndexStore>(store: &S, user: &str) -> Vec<StoreKey> {
        let mut keys: Vec<StoreKey> = store
            .list_by_index(&IndexKey::of("user", user).unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        keys.sort();
        keys
    }

    /// A table of the previous version, without the index column, is upgraded by `migrate`:
    /// the sessions it held are indexed (from their metadata), and the store then keeps the
    /// index. `old` is a store on that table, created by `old_ddl`, not migrated; `new` a
    /// migrated store on another table, whose rows `copy` (an `INSERT INTO <old table>
    /// (id, expires_at, meta, fields) SELECT … FROM <new table>`) moves over as the
    /// previous version wrote them.
    pub async fn migrate_upgrades_a_table_of_the_previous_version<S: SqlStore + IndexStore>(
        old: &S,
        new: &S,
        clock: &ManualClock,
        old_ddl: &str,
        copy: &str,
    ) {
        old.execute(old_ddl).await;
        let key = || session::SessionId::generate().unwrap().store_key();
        let (alice, other_alice, bob, anonymous, expired) = (key(), key(), key(), key(), key());
        for (k, user, idle_ms) in [
            (alice, Some("alice"), 3_600_000),
            (other_alice, Some("alice"), 3_600_000),
            (bob, Some("bob"), 3_600_000),
            (anonymous, None, 3_600_000),
            (expired, Some("alice"), 60_000),
        ] {
            assert!(new.create(&k, &indexed(clock, user, idle_ms)).await.unwrap());
        }
        clock.advance(Duration::from_secs(61));
        old.execute(copy).await;

        old.migrate().await.unwrap();
        old.migrate().await.unwrap();
        let mut alices = vec![alice, other_alice];
        alices.sort();
        assert_eq!(listed(old, "alice").await, alices, "the old live rows are indexed");
        assert_eq!(listed(old, "bob").await, vec![bob]);
        let loaded = old.load(&alice).await.unwrap().expect("an old row still loads");
        assert_eq!(loaded.fields.get(1).unwrap(), Some(&b"kept"[..]));

        let renamed = key();
        let update = indexed(clock, Some("alice"), 3_600_000);
        assert_eq!(
            old.rename(&alice, &renamed, &update).await.unwrap(),
            session::store::Rename::Renamed
        );
        let fresh = key();
        assert!(
            old.create(&fresh, &indexed(clock, Some("alice"), 3_600_000))
                .await
                .unwrap()
        );
        let mut deleted = old
            .delete_by_index(&IndexKey::of("user", "alice").unwrap(), None)
            .await
            .unwrap();
        deleted.sort();
        let mut expected = vec![renamed, other_alice, fresh];
        expected.sort();
        assert_eq!(deleted, expected, "the upgraded store keeps the index on every write");
        assert!(old.load(&anonymous).await.unwrap().is_some());
        assert_eq!(listed(old, "bob").await, vec![bob]);
    }

    /// Eight independent fields, one per overlapping writer.
    #[derive(SessionData, Debug, Clone, PartialEq)]
    pub struct Wide {
        pub f0: u64,
        pub f1: u64,
        pub f2: u64,
        pub f3: u64,
        pub f4: u64,
        pub f5: u64,
        pub f6: u64,
        pub f7: u64,
    }

    fn set(session: &mut session::Session<Wide>, field: usize, value: u64) {
        match field {
            0 => session.set_f0(value),
            1 => session.set_f1(value),
            2 => session.set_f2(value),
            3 => session.set_f3(value),
            4 => session.set_f4(value),
            5 => session.set_f5(value),
            6 => session.set_f6(value),
            _ => session.set_f7(value),
        }
    }

    fn fields(session: &session::Session<Wide>) -> [u64; 8] {
        [
            *session.f0(),
            *session.f1(),
            *session.f2(),
            *session.f3(),
            *session.f4(),
            *session.f5(),
            *session.f6(),
            *session.f7(),
        ]
    }

    pub fn provider<S: SessionStore>(store: S, clock: &ManualClock) -> Arc<SessionProvider<Wide, S>> {
        let config = SessionConfig::development().clock(clock.clone()).build().unwrap();
        Arc::new(SessionProvider::new(store, config))
    }

    /// Eight requests of one session overlap, each loading it and then saving a change to
    /// its own field: every change survives.
    pub async fn eight_overlapping_field_writes_all_survive<S: SessionStore>(store: S, clock: &ManualClock) {
        let provider = provider(store, clock);
        for round in 0..5u64 {
            let mut session = provider.create().unwrap();
            session.set_f0(0);
            provider.save(&mut session).await.unwrap();
            let id = session.id().expose();
            let barrier = Arc::new(Barrier::new(8));
            let writers: Vec<_> = (0..8usize)
                .map(|field| {
                    let (provider, id, barrier) = (provider.clone(), id.clone(), barrier.clone());
                    tokio::spawn(async move {
                        let mut session = provider.load(&id).await.unwrap().expect("live");
                        // Every request has loaded before any saves: all eight overlap.
                        barrier.wait().await;
                        set(&mut session, field, 100 * round + field as u64 + 1);
                        provider.save(&mut session).await.unwrap()
                    })
                })
                .collect();
            for writer in writers {
                assert_eq!(writer.await.unwrap(), SaveOutcome::Updated);
            }
            let loaded = provider.load(&id).await.unwrap().expect("live");
            let expected: Vec<u64> = (0..8).map(|field| 100 * round + field + 1).collect();
            assert_eq!(
                fields(&loaded).to_vec(),
                expected,
                "round {round}: every writer's field kept"
            );
        }
    }

    /// `outage(false)` takes the database away and `outage(true)` brings it back: while
    /// it is away, loads fail as an outage (`Unavailable` or `Timeout`) until the breaker
    /// opens and fails them fast, and creating a session in memory still works; once it is
    /// back, every session saved before is there and the breaker closes.
    pub async fn an_outage_is_unavailable_and_every_session_is_back_after<S: SqlStore>(
        store: S,
        clock: &ManualClock,
        mut outage: impl AsyncFnMut(bool),
    ) {
        let provider = provider(store.clone(), clock);
        let mut ids = Vec::new();
        for value in 0..5 {
            let mut session = provider.create().unwrap();
            session.set_f3(value);
            provider.save(&mut session).await.unwrap();
            ids.push(session.id().expose());
        }

        outage(false).await;
        for _ in 0..2 {
            let error = provider.load(&ids[0]).await.unwrap_err();
            assert!(
                matches!(error, Error::Unavailable(_) | Error::Timeout(_)),
                "an unreachable database: {error:?}"
            );
        }
        assert_eq!(store.breaker_state(), BreakerState::Open);
        let error = provider.load(&ids[0]).await.unwrap_err();
        assert!(
            matches!(error, Error::CircuitOpen { .. }),
            "fails fast while open: {error}"
        );
        assert!(provider.create().is_ok(), "creating in memory needs no database");

        outage(true).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        for (value, id) in ids.iter().enumerate() {
            let loaded = provider.load(id).await.unwrap().expect("every session is back");
            assert_eq!(*loaded.f3(), value as u64);
        }
        assert_eq!(store.breaker_state(), BreakerState::Closed);
    }

    /// A regeneration races seven updates of other fields: afterwards the old ID is dead,
    /// every update that was acknowledged is in the session under its new ID, and every
    /// update that was refused (`Gone`) left no trace anywhere.
    pub async fn regenerate_racing_updates_loses_nothing_acknowledged<S: SessionStore>(store: S, clock: &ManualClock) {
        let provider = provider(store, clock);
        let (mut landed, mut refused) = (0, 0);
        for round in 0..10 {
            let mut session = provider.create().unwrap();
            session.set_f0(1);
            provider.save(&mut session).await.unwrap();
            let old = session.id().expose();
            let barrier = Arc::new(Barrier::new(8));
            let updaters: Vec<_> = (1..8usize)
                .map(|field| {
                    let (provider, old, barrier) = (provider.clone(), old.clone(), barrier.clone());
                    tokio::spawn(async move {
                        let mut session = provider.load(&old).await.unwrap().expect("live");
                        barrier.wait().await;
                        set(&mut session, field, 1000 + field as u64);
                        match provider.save(&mut session).await {
                            Ok(outcome) => {
                                assert_eq!(outcome, SaveOutcome::Updated);
                                true
                            }
                            Err(Error::Gone) => false,
                            Err(other) => panic!("round {round}: field {field}: {other}"),
                        }
                    })
                })
                .collect();
            let regenerator = {
                let (provider, old, barrier) = (provider.clone(), old.clone(), barrier.clone());
                tokio::spawn(async move {
                    let mut session = provider.load(&old).await.unwrap().expect("live");
                    barrier.wait().await;
                    provider.regenerate_id(&mut session).await.unwrap();
                    session.id().expose()
                })
            };
            let mut acknowledged = Vec::new();
            for updater in updaters {
                acknowledged.push(updater.await.unwrap());
            }
            let new = regenerator.await.unwrap();
            assert!(
                provider.load(&old).await.unwrap().is_none(),
                "round {round}: the old ID is dead"
            );
            let moved = provider.load(&new).await.unwrap().expect("the new ID is live");
            let values = fields(&moved);
            assert_eq!(values[0], 1, "round {round}: the untouched field moved");
            for (i, &acknowledged) in acknowledged.iter().enumerate() {
                let field = i + 1;
                let expected = if acknowledged { 1000 + field as u64 } else { 0 };
                assert_eq!(
                    values[field], expected,
                    "round {round}: field {field} (acknowledged: {acknowledged})"
                );
                if acknowledged {
                    landed += 1;
                } else {
                    refused += 1;
                }
            }
        }
        eprintln!("updates racing a regeneration: {landed} acknowledged and moved, {refused} refused as gone");
    }
}
