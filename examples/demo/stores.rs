//! The demo's store, chosen and configured from the environment (the variables are listed
//! in `main.rs`); shared by the axum demo and the actix-web demo.

use std::{sync::Arc, time::Duration};

use super::routes::{Accounts, Context, DEFAULT_CODE_TTL, DEFAULT_SUDO_TTL, DemoSession, DemoStore, SudoSession};
use session::{
    ClientInfo, ClusteredStore, CookieSessions, Error, ExpiryTask, MemoryRevocationStore, MemoryStore, MySqlStore,
    PostgresStore, RedisRevocationStore, RedisStore, RedisStoreBuilder, Session, SessionConfig, SessionConfigBuilder,
    SessionData, SessionProvider, SqliteStore,
    crypto::{KeyId, KeyRing, Secret},
    http::{CookieUpdate, RequestOutcome, SessionBackend},
};

/// The SQL stores' defaults: the servers of a development machine.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// How often the SQL stores delete expired rows.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(300);

/// Any of the demo's stores, as one session backend.
// One value per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum DemoBackend<T: SessionData> {
    Memory(SessionProvider<T, MemoryStore>),
    Cookie(CookieSessions),
    Redis(SessionProvider<T, RedisStore>),
    Clustered(SessionProvider<T, ClusteredStore>),
    Postgres(SessionProvider<T, PostgresStore>),
    MySql(SessionProvider<T, MySqlStore>),
    Sqlite(SessionProvider<T, SqliteStore>),
}

/// `$body` with `$backend` bound to whichever store `$self` holds.
macro_rules! each {
    ($self:ident, $backend:ident => $body:expr) => {
        match $self {
            DemoBackend::Memory($backend) => $body,
            DemoBackend::Cookie($backend) => $body,
            DemoBackend::Redis($backend) => $body,
            DemoBackend::Clustered($backend) => $body,
            DemoBackend::Postgres($backend) => $body,
            DemoBackend::MySql($backend) => $body,
            DemoBackend::Sqlite($backend) => $body,
        }
    };
}

impl<T: SessionData> SessionBackend<T> for DemoBackend<T> {
    fn config(&self) -> &SessionConfig {
        each!(self, backend => SessionBackend::<T>::config(backend))
    }

    fn create(&self) -> Result<Session<T>, Error> {
        each!(self, backend => SessionBackend::<T>::create(backend))
    }

    async fn load(&self, cookie: &str, client: &ClientInfo) -> Result<Option<Session<T>>, Error> {
        each!(self, backend => SessionBackend::<T>::load(backend, cookie, client).await)
    }

    async fn commit(
        &self,
        session: &mut Session<T>,
        client: &ClientInfo,
        outcome: RequestOutcome,
    ) -> Result<CookieUpdate, Error> {
        each!(self, backend => SessionBackend::<T>::commit(backend, session, client, outcome).await)
    }
}

impl DemoStore for DemoBackend<DemoSession> {
    type Sudo = DemoBackend<SudoSession>;

    fn sudo(&self, lifetime: Duration) -> Result<Self::Sudo, Error> {
        Ok(match self {
            DemoBackend::Memory(backend) => DemoBackend::Memory(backend.sudo(lifetime)?),
            DemoBackend::Cookie(backend) => DemoBackend::Cookie(backend.sudo(lifetime)?),
            DemoBackend::Redis(backend) => DemoBackend::Redis(backend.sudo(lifetime)?),
            DemoBackend::Clustered(backend) => DemoBackend::Clustered(backend.sudo(lifetime)?),
            DemoBackend::Postgres(backend) => DemoBackend::Postgres(backend.sudo(lifetime)?),
            DemoBackend::MySql(backend) => DemoBackend::MySql(backend.sudo(lifetime)?),
            DemoBackend::Sqlite(backend) => DemoBackend::Sqlite(backend.sudo(lifetime)?),
        })
    }

    fn accounts(&self) -> Arc<dyn Accounts> {
        each!(self, backend => backend.accounts())
    }
}

/// The store the environment asks for, ready to serve.
pub struct Demo {
    /// `SESSION_DEMO_ADDR`.
    pub addr: String,
    pub backend: DemoBackend<DemoSession>,
    /// What the routes know besides the session: the store's name (also for the start-up
    /// line), `SESSION_DEMO_CODE_TTL_SECS` and `SESSION_DEMO_SUDO_SECS`.
    pub context: Context,
    /// The SQL stores' expiry task: it runs as long as this handle lives.
    pub expiry: Option<ExpiryTask>,
}

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
    let remember = env_secs("SESSION_DEMO_REMEMBER_SECS", 30 * 24 * 3600)?;
    Ok(preset
        .idle_timeout(env_secs("SESSION_IDLE_TIMEOUT_SECS", 1800)?)
        .absolute_timeout(env_secs("SESSION_ABSOLUTE_TIMEOUT_SECS", 86_400)?)
        // A remembered login keeps its session (and cookie) this long: both caps, which
        // `POST /api/login` with `"remember": true` asks for in full.
        .max_persistent_idle(remember)
        .max_persistent_lifetime(remember)
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
fn secret() -> Result<Secret, Error> {
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

/// Reads the environment and builds the store it names (connecting, migrating and
/// starting the expiry task of an SQL store).
pub async fn from_env() -> Result<Demo, Box<dyn std::error::Error>> {
    let addr = std::env::var("SESSION_DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let store = std::env::var("SESSION_DEMO_STORE").unwrap_or_else(|_| "memory".to_owned());
    let mut label = format!("{store} store");
    let sudo_ttl = env_secs("SESSION_DEMO_SUDO_SECS", DEFAULT_SUDO_TTL.as_secs())?;
    let code_ttl = env_secs("SESSION_DEMO_CODE_TTL_SECS", DEFAULT_CODE_TTL.as_secs())?;
    let config = config()?.build()?;
    let mut expiry = None;
    let backend = match store.as_str() {
        "memory" => DemoBackend::Memory(SessionProvider::new(MemoryStore::new(), config)),
        "cookie" => {
            let cookies = CookieSessions::new(KeyRing::new(KeyId(1), secret()?), config)?.compress_above(Some(512));
            // Log out everywhere revokes by user: the generations live in this process, or
            // in Redis when a Redis is named, so that several demo processes share them.
            let cookies = if std::env::var_os("REDIS_URL").is_some() || std::env::var_os("REDIS_CLUSTER_URLS").is_some()
            {
                let (redis, described) = redis();
                label = format!("{label}, revocation in {described}");
                cookies.with_revocation(RedisRevocationStore::new(&redis.build().await?))
            } else {
                cookies.with_revocation(MemoryRevocationStore::new())
            };
            DemoBackend::Cookie(cookies)
        }
        "redis" => {
            let (redis, described) = redis();
            label = format!("{label}, {described}");
            DemoBackend::Redis(SessionProvider::new(redis.build().await?, config))
        }
        "clustered" => {
            let (redis, described) = redis();
            label = format!("{label}: a local cache over {described}");
            let clustered = ClusteredStore::builder(redis).build().await?;
            DemoBackend::Clustered(SessionProvider::new(clustered, config))
        }
        "postgres" => {
            let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| POSTGRES_URL.to_owned());
            let store = PostgresStore::builder_from_url(url).build().await?;
            store.migrate().await?;
            expiry = Some(store.spawn_expiry_task(EXPIRY_INTERVAL));
            DemoBackend::Postgres(SessionProvider::new(store, config))
        }
        "mysql" => {
            let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| MYSQL_URL.to_owned());
            let store = MySqlStore::builder_from_url(url).build().await?;
            store.migrate().await?;
            expiry = Some(store.spawn_expiry_task(EXPIRY_INTERVAL));
            DemoBackend::MySql(SessionProvider::new(store, config))
        }
        "sqlite" => {
            let path = std::env::var("SESSION_DEMO_SQLITE_PATH").unwrap_or_else(|_| "session-demo.db".to_owned());
            label = format!("{label} in {path}");
            let store = SqliteStore::builder_from_path(path).build().await?;
            store.migrate().await?;
            expiry = Some(store.spawn_expiry_task(EXPIRY_INTERVAL));
            DemoBackend::Sqlite(SessionProvider::new(store, config))
        }
        other => {
            return Err(format!(
                "SESSION_DEMO_STORE={other:?}: expected `memory`, `cookie`, `redis`, `clustered`, `postgres`, `sqlite` or `mysql`"
            )
            .into());
        }
    };
    let context = Context {
        code_ttl,
        sudo_ttl,
        ..Context::new(label, &backend)
    };
    Ok(Demo {
        addr,
        backend,
        context,
        expiry,
    })
}

/// What both demos' `main` does: logging from `RUST_LOG`, then `run`; a failure is printed
/// with its advice and the process exits with failure.
pub async fn main(run: impl Future<Output = Result<(), Box<dyn std::error::Error>>>) -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match run.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("session demo: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
