//! The SQL stores side by side with `tower-sessions-sqlx-store`: each library's store over
//! its own pool of the same size, on the same database server, set up as its documentation
//! shows.

use std::{fmt, str::FromStr};

use axum::Router;
use session::{MySqlStore, PostgresStore, SessionConfig, SessionProvider, SqliteStore, http::SessionLayer};
use sqlx::{mysql::MySqlPoolOptions, postgres::PgPoolOptions, sqlite::SqlitePoolOptions};
use tower_sessions::SessionManagerLayer;

use crate::{
    apps::{BoxError, ours, routes, tower},
    content::Profile,
};

/// Connections in each library's pool.
pub const POOL_SIZE: u32 = 8;

/// This crate's command timeout in the benchmarks: the peer has none, and a disk that
/// stalls a commit for over a second (seen on shared machines) would otherwise fail
/// requests of ours alone. 5 s is sqlx's default wait for SQLite's lock, the peer's bound
/// there.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A database kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Db {
    /// PostgreSQL.
    Postgres,
    /// SQLite, on a file.
    Sqlite,
    /// MySQL or MariaDB.
    MySql,
}

impl Db {
    /// Every kind, in report order.
    pub const ALL: [Db; 3] = [Db::Postgres, Db::Sqlite, Db::MySql];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Db::Postgres => "postgres",
            Db::Sqlite => "sqlite",
            Db::MySql => "mysql",
        }
    }
}

impl fmt::Display for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Db {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Db::ALL
            .into_iter()
            .find(|db| db.name() == text)
            .ok_or_else(|| format!("unknown database {text:?}"))
    }
}

/// This crate's store on `url` (its table created).
///
/// # Errors
///
/// When the database cannot be reached.
pub async fn ours_router(db: Db, url: &str) -> Result<Router, BoxError> {
    let config = SessionConfig::development().build()?;
    let app = routes(ours::init, ours::read, ours::rmw);
    Ok(match db {
        Db::Postgres => {
            let pool = PgPoolOptions::new().max_connections(POOL_SIZE).connect(url).await?;
            let store = PostgresStore::builder(pool)
                .command_timeout(COMMAND_TIMEOUT)
                .build()
                .await?;
            store.migrate().await?;
            app.layer(SessionLayer::new(SessionProvider::<Profile, _>::new(store, config)))
        }
        Db::Sqlite => {
            let pool = SqlitePoolOptions::new().max_connections(POOL_SIZE).connect(url).await?;
            let store = SqliteStore::builder(pool)
                .command_timeout(COMMAND_TIMEOUT)
                .build()
                .await?;
            store.migrate().await?;
            app.layer(SessionLayer::new(SessionProvider::<Profile, _>::new(store, config)))
        }
        Db::MySql => {
            let pool = MySqlPoolOptions::new().max_connections(POOL_SIZE).connect(url).await?;
            let store = MySqlStore::builder(pool)
                .command_timeout(COMMAND_TIMEOUT)
                .build()
                .await?;
            store.migrate().await?;
            app.layer(SessionLayer::new(SessionProvider::<Profile, _>::new(store, config)))
        }
    })
}

/// tower-sessions with `tower-sessions-sqlx-store` on `url` (its table created).
///
/// # Errors
///
/// When the database cannot be reached.
pub async fn tower_router(db: Db, url: &str) -> Result<Router, BoxError> {
    let app = routes(tower::init, tower::read, tower::rmw);
    Ok(match db {
        Db::Postgres => {
            let pool = PgPoolOptions::new().max_connections(POOL_SIZE).connect(url).await?;
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool);
            store.migrate().await?;
            app.layer(SessionManagerLayer::new(store).with_secure(false))
        }
        Db::Sqlite => {
            let pool = SqlitePoolOptions::new().max_connections(POOL_SIZE).connect(url).await?;
            let store = tower_sessions_sqlx_store::SqliteStore::new(pool);
            store.migrate().await?;
            app.layer(SessionManagerLayer::new(store).with_secure(false))
        }
        Db::MySql => {
            let pool = MySqlPoolOptions::new().max_connections(POOL_SIZE).connect(url).await?;
            let store = tower_sessions_sqlx_store::MySqlStore::new(pool);
            store.migrate().await?;
            app.layer(SessionManagerLayer::new(store).with_secure(false))
        }
    })
}
