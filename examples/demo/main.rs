//! The demo application: `cargo run --example demo`, then open <http://127.0.0.1:3000>.
//! It is the project's living documentation and the target of its end-to-end tests
//! (`tests/http_demo.rs`).
//!
//! Routes (JSON in and out, except `/`):
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | an HTML page: the user, the visit count, the flash notice, login and logout forms |
//! | `GET /api/visit` | increments `visits`; answers `{"visits":N,"user":U\|null,"notice":F\|null}`, `notice` being the flash visible in this request |
//! | `GET /api/peek` | the same fields, read only: never changes the session, never sets a cookie |
//! | `POST /api/login` `{"user":"alice"}` | sets the user, regenerates the ID, sets the flash notice `"Welcome alice"` for the next request; answers `{"user":"alice"}` |
//! | `POST /api/logout` | deletes the session and expires the cookie; answers `{}` |
//! | `POST /api/flash` `{"notice":"..."}` | sets the flash notice for the next request; answers `{}` |
//! | `GET /api/private` | 401 without a logged-in session, else `{"user":U}` |
//! | `PUT /api/prefs/{name}` `{"value":"..."}` | sets one of eight preferences (theme, language, timezone, currency, font_size, density, sidebar, notifications), each its own typed field; answers `{}`; an unknown name is 404 |
//! | `GET /api/prefs` | all eight preferences (null when unset) |
//!
//!
//! Environment:
//!
//! - `SESSION_DEMO_ADDR`: where to listen (default `127.0.0.1:3000`);
//! - `SESSION_DEMO_STORE`: `memory` (the default), `cookie`, `redis`, `clustered` (a
//!   local cache per demo process in front of Redis, kept coherent across processes: run
//!   several on different `SESSION_DEMO_ADDR`s behind one load balancer), `postgres`,
//!   `sqlite` or `mysql` (the SQL stores: the table `sessions` is created if missing, and
//!   expired rows are deleted every 5 minutes);
//! - `DATABASE_URL`: for `postgres` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//!   and `mysql` (default `mysql://root@127.0.0.1:3306/test`; MariaDB works too);
//! - `SESSION_DEMO_SQLITE_PATH`: for `sqlite`, the database file, created if missing
//!   (default `session-demo.db` in the working directory);
//! - `REDIS_URL`: for `redis` and `clustered` (default `redis://127.0.0.1:6379`;
//!   `rediss://` and passwords in the URL work for `redis`);
//! - `REDIS_CLUSTER_URLS`: for `redis` and `clustered` on a Redis Cluster instead, a
//!   comma-separated list of node URLs (e.g.
//!   `redis://127.0.0.1:7000,redis://127.0.0.1:7001`); it takes precedence over `REDIS_URL`;
//! - `SESSION_SECRET`: the cookie store's key material, base64 or text of at least 32
//!   bytes (unset: a random secret per process, with a warning);
//! - `SESSION_IDLE_TIMEOUT_SECS` (default 1800), `SESSION_ABSOLUTE_TIMEOUT_SECS` (default
//!   86400);
//! - `SESSION_MAX_BYTES`: the largest a session may be in a server-side store (default
//!   65536); a change past it, or past the 4096-byte cookie, answers 413 with a JSON error
//!   and leaves the stored session as it was;
//! - `SESSION_DEMO_SECURE=1`: the production cookie preset (`__Host-`, `Secure`: needs
//!   HTTPS in front).

mod app;

use std::{net::SocketAddr, time::Duration};

use session::{
    ClusteredStore, CookieSessions, ExpiryTask, MemoryStore, MySqlStore, PostgresStore, RedisStore, RedisStoreBuilder,
    SessionConfig, SessionConfigBuilder, SessionProvider, SqliteStore,
    crypto::{KeyId, KeyRing, Secret},
    http::OutagePolicy,
};

/// The SQL stores' defaults: the servers of a development machine.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// How often the SQL stores delete expired rows.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(300);

fn env_secs(name: &str, default: u64) -> Result<Duration, String> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{name}={text:?} is not a number of seconds")),
        Err(_) => Ok(Duration::from_secs(default)),
    }
}

fn config() -> Result<SessionConfigBuilder, String> {
    let preset = if std::env::var("SESSION_DEMO_SECURE").as_deref() == Ok("1") {
        SessionConfig::production()
    } else {
        SessionConfig::development()
    };
    let max_bytes = match std::env::var("SESSION_MAX_BYTES") {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("SESSION_MAX_BYTES={text:?} is not a number of bytes"))?,
        Err(_) => session::DEFAULT_MAX_RECORD_BYTES,
    };
    Ok(preset
        .idle_timeout(env_secs("SESSION_IDLE_TIMEOUT_SECS", 1800)?)
        .absolute_timeout(env_secs("SESSION_ABSOLUTE_TIMEOUT_SECS", 86_400)?)
        .max_record_bytes(max_bytes))
}

/// The Redis store: on the Redis Cluster of `REDIS_CLUSTER_URLS` if set, else on the
/// server of `REDIS_URL`; and a description of it for the start-up line.
fn redis() -> (RedisStoreBuilder, String) {
    if let Ok(list) = std::env::var("REDIS_CLUSTER_URLS") {
        let urls: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(String::from)
            .collect();
        let described = format!("Redis Cluster via {} seed node(s)", urls.len());
        return (RedisStore::cluster_builder(urls), described);
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    (RedisStore::builder(url), "one Redis server".to_owned())
}

/// The cookie store's key material: `SESSION_SECRET` as base64, or as raw text of at
/// least 32 bytes; unset, a random secret that lives as long as the process.
fn secret() -> Result<Secret, session::Error> {
    match std::env::var("SESSION_SECRET") {
        Ok(text) => Secret::from_base64(&text)
            .or_else(|_| Secret::from_bytes(text.into_bytes()))
            .map_err(Into::into),
        Err(_) => {
            tracing::warn!("SESSION_SECRET is unset: using a random secret, so cookies die with this process");
            Ok(Secret::generate()?)
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("session demo: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("SESSION_DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let store = std::env::var("SESSION_DEMO_STORE").unwrap_or_else(|_| "memory".to_owned());
    let mut label = format!("{store} store");
    let config = config()?.build()?;
    // The SQL stores' expiry task runs as long as this handle lives: until the server stops.
    let mut _expiry: Option<ExpiryTask> = None;
    let app = match store.as_str() {
        "memory" => app::router(
            SessionProvider::new(MemoryStore::new(), config),
            OutagePolicy::FailClosed,
        ),
        "cookie" => {
            let store = CookieSessions::new(KeyRing::new(KeyId(1), secret()?), config)?.compress_above(Some(512));
            app::router(store, OutagePolicy::FailClosed)
        }
        "redis" => {
            let (redis, described) = redis();
            label = format!("{label}, {described}");
            app::router(
                SessionProvider::new(redis.build().await?, config),
                OutagePolicy::FailClosed,
            )
        }
        "clustered" => {
            let (redis, described) = redis();
            label = format!("{label}: a local cache over {described}");
            let clustered = ClusteredStore::builder(redis).build().await?;
            app::router(SessionProvider::new(clustered, config), OutagePolicy::FailClosed)
        }
        "postgres" => {
            let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| POSTGRES_URL.to_owned());
            let store = PostgresStore::builder_from_url(url).build().await?;
            store.migrate().await?;
            _expiry = Some(store.spawn_expiry_task(EXPIRY_INTERVAL));
            app::router(SessionProvider::new(store, config), OutagePolicy::FailClosed)
        }
        "mysql" => {
            let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| MYSQL_URL.to_owned());
            let store = MySqlStore::builder_from_url(url).build().await?;
            store.migrate().await?;
            _expiry = Some(store.spawn_expiry_task(EXPIRY_INTERVAL));
            app::router(SessionProvider::new(store, config), OutagePolicy::FailClosed)
        }
        "sqlite" => {
            let path = std::env::var("SESSION_DEMO_SQLITE_PATH").unwrap_or_else(|_| "session-demo.db".to_owned());
            label = format!("{label} in {path}");
            let store = SqliteStore::builder_from_path(path).build().await?;
            store.migrate().await?;
            _expiry = Some(store.spawn_expiry_task(EXPIRY_INTERVAL));
            app::router(SessionProvider::new(store, config), OutagePolicy::FailClosed)
        }
        other => {
            return Err(format!(
                "SESSION_DEMO_STORE={other:?}: expected `memory`, `cookie`, `redis`, `clustered`, `postgres`, `sqlite` or `mysql`"
            )
            .into());
        }
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("session demo ({label}) on http://{}", listener.local_addr()?);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
