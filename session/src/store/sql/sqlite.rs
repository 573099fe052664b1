//! The SQLite store: its statements, in one place, and the store operations that run
//! them.

use std::{fmt, path::PathBuf, str::FromStr as _, sync::Arc, time::Duration};

use sqlx::{
    Row as _, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};

use super::{
    DELETE_BATCH, ExpiryTask, Options, builder_options,
    call::{Core, db_ms, decode_error, unexpected},
    cursor_bound,
    expiry::EXPIRY_BATCH,
    is_unique_violation, next_cursor,
    row::Columns,
    store_key,
    table::{Quote, Table},
};
use crate::{
    Error,
    id::StoreKey,
    resilience::BreakerState,
    store::{QueryStore, Record, Rename, ScanPage, SessionStore},
};

/// Every statement of the store, for one table.
struct Statements {
    load: String,
    create: String,
    update: String,
    touch: String,
    rename: String,
    remove_dead: String,
    delete: String,
    scan: String,
    count: String,
    delete_many: String,
    clear_live: String,
    clear_dead: String,
    delete_expired: String,
}

impl Statements {
    fn new(table: &Table) -> Self {
        let t = table.quoted();
        Self {
            load: format!("SELECT meta, fields FROM {t} WHERE id = ?1 AND expires_at > ?2"),
            create: format!(
                "INSERT INTO {t} (id, expires_at, meta, fields) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, meta = excluded.meta, \
                 fields = excluded.fields WHERE expires_at <= ?5"
            ),
            update: format!(
                "UPDATE {t} SET expires_at = ?2, meta = ?3, fields = json_patch(fields, ?4) \
                 WHERE id = ?1 AND expires_at > ?5"
            ),
            touch: format!("UPDATE {t} SET expires_at = ?2, meta = ?3 WHERE id = ?1 AND expires_at > ?4"),
            rename: format!(
                "UPDATE {t} SET id = ?2, expires_at = ?3, meta = ?4, fields = json_patch(fields, ?5) \
                 WHERE id = ?1 AND expires_at > ?6"
            ),
            remove_dead: format!("DELETE FROM {t} WHERE id = ?1 AND expires_at <= ?2"),
            delete: format!("DELETE FROM {t} WHERE id = ?1"),
            scan: format!(
                "SELECT id, meta, fields FROM {t} WHERE id >= ?1 AND expires_at > ?2 \
                 AND substr(id, 1, 8) <= (SELECT substr(id, 1, 8) FROM \
                 (SELECT id FROM {t} WHERE id >= ?1 AND expires_at > ?2 ORDER BY id LIMIT ?3) \
                 ORDER BY id DESC LIMIT 1) \
                 ORDER BY id"
            ),
            count: format!("SELECT count(*) FROM {t} WHERE expires_at > ?1"),
            delete_many: format!("DELETE FROM {t} WHERE id IN "),
            clear_live: format!("DELETE FROM {t} WHERE expires_at > ?1"),
            clear_dead: format!("DELETE FROM {t} WHERE expires_at <= ?1"),
            // The outer condition is checked on the row it deletes, like on the other
            // backends (SQLite runs one writer at a time anyway).
            delete_expired: format!(
                "DELETE FROM {t} WHERE expires_at <= ?1 AND id IN \
                 (SELECT id FROM {t} WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)"
            ),
        }
    }
}

/// `DELETE … WHERE id IN (?, …)` for `n` keys.
fn delete_many(prefix: &str, n: usize) -> String {
    let mut sql = String::with_capacity(prefix.len() + 3 * n + 2);
    sql.push_str(prefix);
    sql.push('(');
    for i in 0..n {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
    }
    sql.push(')');
    sql
}

/// The schema, as statements: the table and its expiry index, both idempotent. SQLite
/// names an index's schema on the index, not on its table.
fn schema(table: &Table) -> [String; 2] {
    let t = table.quoted();
    let index = match table.schema() {
        Some(schema) => format!("{schema}.{}", table.index()),
        None => table.index(),
    };
    let bare = table.bare();
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n    \
             id         BLOB    NOT NULL PRIMARY KEY,\n    \
             expires_at INTEGER NOT NULL,\n    \
             meta       BLOB    NOT NULL,\n    \
             fields     TEXT    NOT NULL\n) WITHOUT ROWID"
        ),
        format!("CREATE INDEX IF NOT EXISTS {index} ON {bare} (expires_at)"),
    ]
}

/// A session store in SQLite (feature `sqlite`; SQLite is compiled in): one row per
/// session, one statement per load and per save, with a per-call timeout and a circuit
/// breaker. For a single application node, development and tests; in a file or in memory.
///
/// Cheap to clone; clones share the pool.
///
/// # Schema
///
/// [`migrate`](Self::migrate) creates the table and its index if they do not exist; teams
/// that run their own migrations use the same SQL ([`schema`](Self::schema) prints it for
/// another table name):
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS "sessions" (
///     id         BLOB    NOT NULL PRIMARY KEY,  -- SHA-256 of the session ID, never the ID
///     expires_at INTEGER NOT NULL,              -- ms since the Unix epoch: the earlier deadline
///     meta       BLOB    NOT NULL,              -- the lifetimes and lineage (48 bytes), or sealed
///     fields     TEXT    NOT NULL               -- {"<tag, 8 hex digits>": "<base64 of the value>"}
/// ) WITHOUT ROWID;
/// CREATE INDEX IF NOT EXISTS "sessions_expires_at" ON "sessions" (expires_at);
/// ```
///
/// `meta` holds created, accessed, idle deadline and absolute deadline (4 × u64,
/// big-endian) then the session's 16-byte lineage; each `fields` member is one session
/// field, keyed by its tag (see [`store`](crate::store#the-record-format)), its value the
/// base64 of a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's bytes. Why a
/// JSON object rather than a row per field: the merge is then one `UPDATE`, where a row per
/// field would take a transaction of several statements (SQLite has no data-modifying
/// `WITH`).
///
/// # Statements
///
/// As on PostgreSQL, every statement is given `now` by the store's clock, each operation is
/// one statement, and SQLite runs one writer at a time, so each is atomic:
///
/// - load: `SELECT meta, fields FROM sessions WHERE id = ?1 AND expires_at > ?now`;
/// - create: `INSERT … ON CONFLICT (id) DO UPDATE … WHERE expires_at <= ?now` (a new row, or
///   one replacing an expired row, never a live one);
/// - update: `UPDATE sessions SET expires_at, meta, fields = json_patch(fields, ?fields)
///   WHERE id = ?1 AND expires_at > ?now`: only the fields it carries are replaced, so
///   overlapping requests that change different fields both keep their change, and a
///   deleted or expired row is never resurrected (a sliding refresh leaves `fields` alone);
/// - regenerate: `UPDATE sessions SET id = ?new, …, fields = json_patch(fields, ?fields)
///   WHERE id = ?old AND expires_at > ?now`: the move and the old ID's death are one
///   statement. A row already under the new key fails the primary key: an expired one is
///   deleted and the move tried once more, a live one is kept ([`Rename::TargetExists`]);
/// - delete: `DELETE FROM sessions WHERE id = ?1`; query operations as on PostgreSQL
///   (`DELETE … WHERE id IN (?, …)` per 500 keys).
///
/// # Expiry
///
/// Expired rows are never returned. [`spawn_expiry_task`](Self::spawn_expiry_task) deletes
/// them in the background, [`delete_expired`](Self::delete_expired) now, in statements of at
/// most 1000 rows, so the database's write lock is held only briefly.
///
/// # Failures
///
/// Every call is bounded by the command timeout, waiting for a pooled connection included
/// ([`Error::Timeout`]). The pools this store opens wait for SQLite's write lock for that
/// long too (`busy_timeout`); `SQLITE_BUSY` or `SQLITE_LOCKED` after it, or an I/O error,
/// is [`Error::Unavailable`]. Both count toward the circuit breaker, as on the other stores;
/// errors SQLite answers with (a constraint, a missing table) are [`Error::Store`].
///
/// # Encryption at rest
///
/// With [`encryption`](SqliteStoreBuilder::encryption), `meta` and every field value are
/// sealed with the cookie envelope under the purpose `store:sqlite`: the metadata bound to
/// the row's key, each field to its tag and the session's lineage, so no value can be moved
/// to another field or session, and every sealed value expires with the session's absolute
/// deadline. Left visible: the digests, `expires_at`, the field tags and value lengths.
///
/// # In memory
///
/// `sqlite::memory:` gives each connection a database of its own: the store opened by
/// [`builder_from_url`](Self::builder_from_url) with it keeps one connection, never closed,
/// so the sessions live as long as the store. With a pool of your own, give it one
/// connection, without idle timeout or maximum lifetime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session::{SessionConfig, SessionData, SessionProvider, SqliteStore};
///
/// #[derive(SessionData)]
/// struct AppSession { user: Option<String> }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = SqliteStore::builder_from_url("sqlite::memory:")  // or builder_from_path, or builder(pool)
///     .command_timeout(Duration::from_millis(500))
///     .build()
///     .await?;
/// store.migrate().await?;
/// let _expiry = store.spawn_expiry_task(Duration::from_secs(300));
/// let provider = SessionProvider::<AppSession, _>::new(store, SessionConfig::development().build()?);
/// let mut session = provider.create()?;
/// session.set_user(Some("alice".into()));
/// provider.save(&mut session).await?;
/// # Ok::<(), session::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    core: Core,
    sql: Statements,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SqliteStore").field(&self.inner.core).finish()
    }
}

/// Where the pool comes from.
enum Source {
    Pool(SqlitePool),
    Url(String),
    Path(PathBuf),
}

/// Configures a [`SqliteStore`]; see [`SqliteStore::builder`].
#[must_use = "call .build().await to get a SqliteStore"]
pub struct SqliteStoreBuilder {
    source: Source,
    options: Options,
}

impl fmt::Debug for SqliteStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStoreBuilder")
            .field("own_pool", &!matches!(self.source, Source::Pool(_)))
            .field("options", &self.options)
            .finish()
    }
}

impl SqliteStore {
    /// Configures a store on the application's own sqlx pool.
    ///
    /// Defaults: table `sessions`, command timeout 1 s,
    /// [`RetryPolicy::default`](crate::resilience::RetryPolicy::default),
    /// [`BreakerConfig::default`](crate::resilience::BreakerConfig::default), no
    /// compression, no encryption at rest, the system clock.
    pub fn builder(pool: SqlitePool) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            source: Source::Pool(pool),
            options: Options::default(),
        }
    }

    /// Configures a store with a pool of its own on the database of `url`
    /// (`sqlite://path/to/file.db`, `sqlite::memory:`; see the type's
    /// [in memory](Self#in-memory) section), created if missing, in WAL mode, waiting up to
    /// the command timeout for the write lock; at most 10 connections (one in memory).
    pub fn builder_from_url(url: impl Into<String>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            source: Source::Url(url.into()),
            options: Options::default(),
        }
    }

    /// As [`builder_from_url`](Self::builder_from_url), on the database file at `path`.
    pub fn builder_from_path(path: impl Into<PathBuf>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            source: Source::Path(path.into()),
            options: Options::default(),
        }
    }

    /// The schema of a store on `table`, as SQL statements separated by `;`: for teams
    /// that run their own migrations. [`migrate`](Self::migrate) runs the same.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid table name.
    ///
    /// # Examples
    ///
    /// ```
    /// let sql = session::SqliteStore::schema("sessions").unwrap();
    /// assert!(sql.contains("WITHOUT ROWID"));
    /// ```
    pub fn schema(table: &str) -> Result<String, Error> {
        Ok(schema(&Table::parse(table, Quote::Double)?).join(";\n") + ";\n")
    }

    /// Creates the table and its index if they do not exist; safe to run on every start.
    ///
    /// # Errors
    ///
    /// As any call; [`Error::Store`] when SQLite refuses.
    pub async fn migrate(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let statements = schema(&inner.core.table);
        inner
            .core
            .call("migrate", true, || async {
                let mut transaction = inner.pool.begin().await?;
                for statement in &statements {
                    sqlx::query(statement).execute(&mut *transaction).await?;
                }
                transaction.commit().await
            })
            .await
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// The circuit breaker's state, e.g. for a health check.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.core.breaker.state()
    }

    /// Deletes the expired rows now, in statements of at most 1000 rows; returns how many.
    ///
    /// # Errors
    ///
    /// As any call; rows deleted before a failure stay deleted.
    pub async fn delete_expired(&self) -> Result<u64, Error> {
        let inner = &self.inner;
        let mut deleted = 0;
        loop {
            let now = inner.core.now();
            let batch = inner
                .core
                .call("delete_expired", true, || async {
                    let done = sqlx::query(&inner.sql.delete_expired)
                        .bind(now)
                        .bind(EXPIRY_BATCH)
                        .execute(&inner.pool)
                        .await?;
                    Ok(done.rows_affected())
                })
                .await?;
            deleted += batch;
            if batch < EXPIRY_BATCH.unsigned_abs() {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Starts a task that calls [`delete_expired`](Self::delete_expired) every `every`
    /// (the first time after one interval), until the handle is stopped or dropped.
    /// Failures are logged and tried again at the next interval.
    pub fn spawn_expiry_task(&self, every: Duration) -> ExpiryTask {
        let store = self.clone();
        ExpiryTask::spawn("sqlite", every, move || {
            let store = store.clone();
            async move { store.delete_expired().await }
        })
    }
}

impl SqliteStoreBuilder {
    builder_options!("sqlite", "SqliteStore");

    /// The most connections of the pool the store opens from a URL or path (default 10;
    /// always one in memory); ignored with the application's own pool.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.options.max_connections = connections;
        self
    }

    /// Builds the store. With a URL or path, opens its pool and one connection (creating
    /// the file if missing); with the application's pool, touches nothing. Does not create
    /// the table: see [`SqliteStore::migrate`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid table name, URL or a zero timeout;
    /// [`Error::Unavailable`] or [`Error::Timeout`] when the database cannot be opened.
    pub async fn build(self) -> Result<SqliteStore, Error> {
        let max_connections = self.options.max_connections.max(1);
        let core = self.options.core("sqlite", Quote::Double)?;
        let (options, in_memory) = match self.source {
            Source::Pool(pool) => {
                let sql = Statements::new(&core.table);
                return Ok(SqliteStore {
                    inner: Arc::new(Inner { pool, core, sql }),
                });
            }
            Source::Url(url) => {
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let options = SqliteConnectOptions::from_str(&url)
                    .map_err(|error| Error::Config(format!("invalid SQLite URL: {error}")))?;
                (options, in_memory)
            }
            Source::Path(path) => (SqliteConnectOptions::new().filename(path), false),
        };
        let options = options.create_if_missing(true).busy_timeout(core.timeout);
        let pool = if in_memory {
            // Each connection to `:memory:` is a database of its own: keep exactly one.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(max_connections)
        }
        .acquire_timeout(core.timeout)
        .connect_lazy_with(if in_memory {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        });
        core.call("connect", true, || async { pool.acquire().await.map(drop) })
            .await?;
        let sql = Statements::new(&core.table);
        Ok(SqliteStore {
            inner: Arc::new(Inner { pool, core, sql }),
        })
    }
}

impl Inner {
    /// The rename statement; `Ok(None)` when a row holds the target key.
    async fn try_rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        columns: &Columns,
        now: i64,
    ) -> Result<Option<Rename>, sqlx::Error> {
        let moved = sqlx::query(&self.sql.rename)
            .bind(&from.as_bytes()[..])
            .bind(&to.as_bytes()[..])
            .bind(columns.expires_at)
            .bind(&columns.meta)
            .bind(&columns.fields)
            .bind(now)
            .execute(&self.pool)
            .await;
        match moved {
            Ok(done) if done.rows_affected() == 1 => Ok(Some(Rename::Renamed)),
            Ok(_) => Ok(Some(Rename::SourceMissing)),
            Err(error) if is_unique_violation(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl SessionStore for SqliteStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        let inner = &self.inner;
        let now_ms = inner.core.clock.now_ms();
        let row = inner
            .core
            .call("load", true, || async {
                sqlx::query(&inner.sql.load)
                    .bind(&key.as_bytes()[..])
                    .bind(db_ms(now_ms))
                    .fetch_optional(&inner.pool)
                    .await
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let meta: &[u8] = row.try_get(0).map_err(decode_error)?;
        let fields: &str = row.try_get(1).map_err(decode_error)?;
        Ok(inner.core.record(key, meta, fields, now_ms))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        let inner = &self.inner;
        let columns = inner.core.columns(key, record)?;
        let now = inner.core.now();
        inner
            .core
            .call("create", false, || async {
                let done = sqlx::query(&inner.sql.create)
                    .bind(&key.as_bytes()[..])
                    .bind(columns.expires_at)
                    .bind(&columns.meta)
                    .bind(&columns.fields)
                    .bind(now)
                    .execute(&inner.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            })
            .await
    }

    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        let inner = &self.inner;
        let columns = inner.core.columns(key, update)?;
        let now = inner.core.now();
        inner
            .core
            .call("update", false, || async {
                let query = if columns.has_fields() {
                    sqlx::query(&inner.sql.update)
                        .bind(&key.as_bytes()[..])
                        .bind(columns.expires_at)
                        .bind(&columns.meta)
                        .bind(&columns.fields)
                } else {
                    sqlx::query(&inner.sql.touch)
                        .bind(&key.as_bytes()[..])
                        .bind(columns.expires_at)
                        .bind(&columns.meta)
                };
                let done = query.bind(now).execute(&inner.pool).await?;
                Ok(done.rows_affected() == 1)
            })
            .await
    }

    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        let inner = &self.inner;
        let columns = inner.core.columns(to, update)?;
        let now = inner.core.now();
        inner
            .core
            .call("regenerate", false, || async {
                if let Some(outcome) = inner.try_rename(from, to, &columns, now).await? {
                    return Ok(outcome);
                }
                // A row holds the new key: make room if it is expired, else keep it.
                let removed = sqlx::query(&inner.sql.remove_dead)
                    .bind(&to.as_bytes()[..])
                    .bind(now)
                    .execute(&inner.pool)
                    .await?;
                if removed.rows_affected() == 0 {
                    return Ok(Rename::TargetExists);
                }
                Ok(inner
                    .try_rename(from, to, &columns, now)
                    .await?
                    .unwrap_or(Rename::TargetExists))
            })
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .core
            .call("delete", true, || async {
                let done = sqlx::query(&inner.sql.delete)
                    .bind(&key.as_bytes()[..])
                    .execute(&inner.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            })
            .await
    }
}

impl QueryStore for SqliteStore {
    async fn scan(&self, cursor: u64, batch: usize) -> Result<ScanPage, Error> {
        let inner = &self.inner;
        let now_ms = inner.core.clock.now_ms();
        let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        let rows = inner
            .core
            .call("scan", true, || async {
                sqlx::query(&inner.sql.scan)
                    .bind(&cursor_bound(cursor)[..])
                    .bind(db_ms(now_ms))
                    .bind(limit)
                    .fetch_all(&inner.pool)
                    .await
            })
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let id: &[u8] = row.try_get(0).map_err(decode_error)?;
            let meta: &[u8] = row.try_get(1).map_err(decode_error)?;
            let fields: &str = row.try_get(2).map_err(decode_error)?;
            last = Some(id);
            let Some(key) = store_key(id) else {
                return Err(unexpected("a session row's id is not a 32-byte digest"));
            };
            if let Some(record) = inner.core.record(&key, meta, fields, now_ms) {
                records.push((key, record));
            }
        }
        Ok(ScanPage {
            records,
            next: next_cursor(last, rows.len(), batch),
        })
    }

    async fn count(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        let now = inner.core.now();
        let count: i64 = inner
            .core
            .call("count", true, || async {
                sqlx::query_scalar(&inner.sql.count)
                    .bind(now)
                    .fetch_one(&inner.pool)
                    .await
            })
            .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    async fn delete_many(&self, keys: &[StoreKey]) -> Result<usize, Error> {
        let inner = &self.inner;
        let mut deleted = 0;
        for chunk in keys.chunks(DELETE_BATCH) {
            let sql = delete_many(&inner.sql.delete_many, chunk.len());
            deleted += inner
                .core
                .call("delete_many", true, || async {
                    let mut query = sqlx::query(&sql);
                    for key in chunk {
                        query = query.bind(&key.as_bytes()[..]);
                    }
                    Ok(query.execute(&inner.pool).await?.rows_affected())
                })
                .await?;
        }
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn clear(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        let now = inner.core.now();
        let live = inner
            .core
            .call("clear", false, || async {
                let live = sqlx::query(&inner.sql.clear_live)
                    .bind(now)
                    .execute(&inner.pool)
                    .await?;
                sqlx::query(&inner.sql.clear_dead)
                    .bind(now)
                    .execute(&inner.pool)
                    .await?;
                Ok(live.rows_affected())
            })
            .await?;
        Ok(usize::try_from(live).unwrap_or(usize::MAX))
    }
}
