//! The MySQL and MariaDB store: its statements, in one place, and the store operations
//! that run them.

use std::{fmt, sync::Arc, time::Duration};

use sqlx::{
    MySqlPool, Row as _,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
};

use super::{
    DELETE_BATCH, ExpiryTask, Options, Source, builder_options,
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

/// Every statement of the store, for one table. MySQL's placeholders are positional: the
/// binds follow each statement's `?`s in order.
struct Statements {
    load: String,
    insert: String,
    replace_dead: String,
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
        // In an UPDATE, MySQL applies the assignments left to right, each seeing the ones
        // before: `expires_at` is always assigned last, after everything that reads it.
        Self {
            load: format!("SELECT meta, CAST(fields AS CHAR) FROM {t} WHERE id = ? AND expires_at > ?"),
            insert: format!("INSERT INTO {t} (id, expires_at, meta, fields) VALUES (?, ?, ?, ?)"),
            replace_dead: format!(
                "UPDATE {t} SET meta = ?, fields = ?, expires_at = ? WHERE id = ? AND expires_at <= ?"
            ),
            update: format!(
                "UPDATE {t} SET meta = ?, fields = JSON_MERGE_PATCH(fields, ?), expires_at = ? \
                 WHERE id = ? AND expires_at > ?"
            ),
            touch: format!("UPDATE {t} SET meta = ?, expires_at = ? WHERE id = ? AND expires_at > ?"),
            rename: format!(
                "UPDATE {t} SET id = ?, meta = ?, fields = JSON_MERGE_PATCH(fields, ?), expires_at = ? \
                 WHERE id = ? AND expires_at > ?"
            ),
            remove_dead: format!("DELETE FROM {t} WHERE id = ? AND expires_at <= ?"),
            delete: format!("DELETE FROM {t} WHERE id = ?"),
            scan: format!(
                "SELECT id, meta, CAST(fields AS CHAR) FROM {t} WHERE id >= ? AND expires_at > ? \
                 AND SUBSTRING(id, 1, 8) <= (SELECT SUBSTRING(id, 1, 8) FROM \
                 (SELECT id FROM {t} WHERE id >= ? AND expires_at > ? ORDER BY id LIMIT ?) AS page \
                 ORDER BY id DESC LIMIT 1) \
                 ORDER BY id"
            ),
            count: format!("SELECT COUNT(*) FROM {t} WHERE expires_at > ?"),
            delete_many: format!("DELETE FROM {t} WHERE id IN "),
            clear_live: format!("DELETE FROM {t} WHERE expires_at > ?"),
            clear_dead: format!("DELETE FROM {t} WHERE expires_at <= ?"),
            delete_expired: format!("DELETE FROM {t} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"),
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

/// The schema: the table with its expiry index, idempotent (MySQL has no `CREATE INDEX IF
/// NOT EXISTS`, so the index is declared with the table).
fn schema(table: &Table) -> [String; 1] {
    let (t, index) = (table.quoted(), table.index());
    [format!(
        "CREATE TABLE IF NOT EXISTS {t} (\n    \
         id         BINARY(32) NOT NULL PRIMARY KEY,\n    \
         expires_at BIGINT     NOT NULL,\n    \
         meta       BLOB       NOT NULL,\n    \
         fields     JSON       NOT NULL,\n    \
         INDEX {index} (expires_at)\n) ENGINE = InnoDB"
    )]
}

/// A session store in MySQL 8 or MariaDB 10.5+ (feature `mysql`): one row per session, one
/// statement per load and per save, with a per-call timeout, retry and a circuit breaker.
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
/// CREATE TABLE IF NOT EXISTS `sessions` (
///     id         BINARY(32) NOT NULL PRIMARY KEY,  -- SHA-256 of the session ID, never the ID
///     expires_at BIGINT     NOT NULL,              -- ms since the Unix epoch: the earlier deadline
///     meta       BLOB       NOT NULL,              -- the lifetimes and lineage (48 bytes), or sealed
///     fields     JSON       NOT NULL,              -- {"<tag, 8 hex digits>": "<base64 of the value>"}
///     INDEX `sessions_expires_at` (expires_at)
/// ) ENGINE = InnoDB;
/// ```
///
/// `meta` holds created, accessed, idle deadline and absolute deadline (4 × u64,
/// big-endian) then the session's 16-byte lineage; each `fields` member is one session
/// field, keyed by its tag (see [`store`](crate::store#the-record-format)), its value the
/// base64 of a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's bytes. Why a
/// JSON object rather than a row per field: the merge is then one `UPDATE` of one row,
/// where a row per field would take a transaction of several statements (MySQL has no
/// data-modifying `WITH`). A later column (say, a user ID for "log out everywhere") can be
/// added with its own index without touching these.
///
/// # Statements
///
/// Every statement is given `now` by the store's clock and treats a row whose `expires_at`
/// is not after it as absent. Each is atomic on its own (InnoDB row locks):
///
/// - load: `SELECT meta, fields FROM sessions WHERE id = ? AND expires_at > ?now`;
/// - create: `INSERT`; only if the key is taken, `UPDATE … WHERE id = ? AND expires_at <=
///   ?now`, which replaces an expired row and leaves a live one alone. (One
///   `INSERT … ON DUPLICATE KEY UPDATE` cannot tell "inserted" from "kept" through sqlx,
///   which counts found rows; with 256-bit random IDs the second statement never runs in
///   practice);
/// - update: `UPDATE sessions SET meta, fields = JSON_MERGE_PATCH(fields, ?), expires_at
///   WHERE id = ? AND expires_at > ?now`: only the fields it carries are replaced, so
///   overlapping requests that change different fields both keep their change, and a
///   deleted or expired row is never resurrected (a sliding refresh leaves `fields` alone);
/// - regenerate: `UPDATE sessions SET id = ?new, meta, fields = JSON_MERGE_PATCH(fields,
///   ?), expires_at WHERE id = ?old AND expires_at > ?now`: the move and the old ID's death
///   are one statement; an update of the old ID racing it lands before it (and moves with
///   it) or finds nothing. A row already under the new key fails the primary key: an
///   expired one is deleted and the move tried once more, a live one is kept
///   ([`Rename::TargetExists`]);
/// - delete: `DELETE FROM sessions WHERE id = ?`; scan pages in `id` order (a cursor is the
///   next 8-byte digest prefix), count is `COUNT(*)` of live rows, delete_many is `DELETE …
///   WHERE id IN (?, …)` per 500 keys, clear deletes the live rows (counted), then the
///   expired ones.
///
/// # Expiry
///
/// Expired rows are never returned. [`spawn_expiry_task`](Self::spawn_expiry_task) deletes
/// them in the background, [`delete_expired`](Self::delete_expired) now, with `DELETE …
/// WHERE expires_at <= ?now ORDER BY expires_at LIMIT 1000` until none is left, so requests
/// are not held up behind it.
///
/// # Failures
///
/// Every call is bounded by the command timeout, waiting for a pooled connection included:
/// past it, [`Error::Timeout`]. A server that cannot be reached (refused, reset, I/O error,
/// shutting down, too many connections) gives [`Error::Unavailable`]; both count toward the
/// [circuit breaker](crate::resilience::BreakerConfig), which then fails calls at once with
/// [`Error::CircuitOpen`]. The HTTP layer answers all three with 503 (or degrades, as
/// configured). An error the server answers with is [`Error::Store`] (500) and does not
/// count. Loads, deletes and query operations are retried; writes are not. Nothing is
/// cached: once the server answers again, every session saved before the outage is there.
///
/// # Encryption at rest
///
/// With [`encryption`](MySqlStoreBuilder::encryption), `meta` and every field value are
/// sealed with the cookie envelope under the purpose `store:mysql`: the metadata bound to
/// the row's key, each field to its tag and the session's lineage, so no value can be moved
/// to another field or session, and every sealed value expires with the session's absolute
/// deadline. Left visible: the digests, `expires_at`, the field tags and value lengths.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use session::{MySqlStore, SessionConfig, SessionData, SessionProvider};
///
/// #[derive(SessionData)]
/// struct AppSession { user: Option<String> }
///
/// # async fn run() -> Result<(), session::Error> {
/// let store = MySqlStore::builder_from_url("mysql://app:secret@127.0.0.1:3306/app")  // or builder(pool)
///     .command_timeout(Duration::from_millis(500))
///     .build()
///     .await?;
/// store.migrate().await?;
/// let _expiry = store.spawn_expiry_task(Duration::from_secs(300));
/// let provider = SessionProvider::<AppSession, _>::new(store, SessionConfig::production().build()?);
/// # let _ = provider;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MySqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: MySqlPool,
    core: Core,
    sql: Statements,
}

impl fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MySqlStore").field(&self.inner.core).finish()
    }
}

/// Configures a [`MySqlStore`]; see [`MySqlStore::builder`].
#[must_use = "call .build().await to get a MySqlStore"]
pub struct MySqlStoreBuilder {
    source: Source<MySqlPool>,
    options: Options,
}

impl fmt::Debug for MySqlStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out: it may hold a password.
        f.debug_struct("MySqlStoreBuilder")
            .field("own_pool", &matches!(self.source, Source::Url(_)))
            .field("options", &self.options)
            .finish()
    }
}

impl MySqlStore {
    /// Configures a store on the application's own sqlx pool.
    ///
    /// Defaults: table `sessions`, command timeout 1 s,
    /// [`RetryPolicy::default`](crate::resilience::RetryPolicy::default),
    /// [`BreakerConfig::default`](crate::resilience::BreakerConfig::default), no
    /// compression, no encryption at rest, the system clock.
    pub fn builder(pool: MySqlPool) -> MySqlStoreBuilder {
        MySqlStoreBuilder {
            source: Source::Pool(pool),
            options: Options::default(),
        }
    }

    /// Configures a store with a pool of its own, opened by
    /// [`build`](MySqlStoreBuilder::build) from `url`
    /// (`mysql://user:password@host:port/database`), with the same defaults as
    /// [`builder`](Self::builder) and at most 10 connections.
    pub fn builder_from_url(url: impl Into<String>) -> MySqlStoreBuilder {
        MySqlStoreBuilder {
            source: Source::Url(url.into()),
            options: Options::default(),
        }
    }

    /// The schema of a store on `table`, as SQL: for teams that run their own migrations.
    /// [`migrate`](Self::migrate) runs the same.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid table name.
    ///
    /// # Examples
    ///
    /// ```
    /// let sql = session::MySqlStore::schema("app.sessions").unwrap();
    /// assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS `app`.`sessions`"));
    /// ```
    pub fn schema(table: &str) -> Result<String, Error> {
        Ok(schema(&Table::parse(table, Quote::Backtick)?).join(";\n") + ";\n")
    }

    /// Creates the table (with its index) if it does not exist; safe to run on every start.
    ///
    /// # Errors
    ///
    /// As any call; [`Error::Store`] when the server refuses (e.g. no `CREATE` right).
    pub async fn migrate(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let statements = schema(&inner.core.table);
        inner
            .core
            .call("migrate", true, || async {
                for statement in &statements {
                    sqlx::query(statement).execute(&inner.pool).await?;
                }
                Ok(())
            })
            .await
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &MySqlPool {
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
        ExpiryTask::spawn("mysql", every, move || {
            let store = store.clone();
            async move { store.delete_expired().await }
        })
    }
}

impl MySqlStoreBuilder {
    builder_options!("mysql", "MySqlStore");

    /// The most connections of the pool the store opens from a URL (default 10); ignored
    /// with the application's own pool.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.options.max_connections = connections;
        self
    }

    /// Builds the store. With a URL, opens its pool and one connection, so a wrong URL,
    /// password or unreachable server is reported at start-up; with the application's
    /// pool, touches nothing. Does not create the table: see [`MySqlStore::migrate`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid table name, URL or a zero timeout;
    /// [`Error::Timeout`] or [`Error::Unavailable`] when the server cannot be reached;
    /// [`Error::Store`] when it refuses the connection (e.g. a wrong password).
    pub async fn build(self) -> Result<MySqlStore, Error> {
        let max_connections = self.options.max_connections.max(1);
        let core = self.options.core("mysql", Quote::Backtick)?;
        let pool = match self.source {
            Source::Pool(pool) => pool,
            Source::Url(url) => {
                let options: MySqlConnectOptions = url
                    .parse()
                    .map_err(|error| Error::Config(format!("invalid MySQL URL: {error}")))?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(core.timeout)
                    .connect_lazy_with(options);
                core.call("connect", true, || async { pool.acquire().await.map(drop) })
                    .await?;
                pool
            }
        };
        let sql = Statements::new(&core.table);
        Ok(MySqlStore {
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
            .bind(&to.as_bytes()[..])
            .bind(&columns.meta)
            .bind(&columns.fields)
            .bind(columns.expires_at)
            .bind(&from.as_bytes()[..])
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

impl SessionStore for MySqlStore {
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
                let inserted = sqlx::query(&inner.sql.insert)
                    .bind(&key.as_bytes()[..])
                    .bind(columns.expires_at)
                    .bind(&columns.meta)
                    .bind(&columns.fields)
                    .execute(&inner.pool)
                    .await;
                match inserted {
                    Ok(_) => return Ok(true),
                    Err(error) if is_unique_violation(&error) => {}
                    Err(error) => return Err(error),
                }
                // The key is taken: replace the row only if it is expired.
                let replaced = sqlx::query(&inner.sql.replace_dead)
                    .bind(&columns.meta)
                    .bind(&columns.fields)
                    .bind(columns.expires_at)
                    .bind(&key.as_bytes()[..])
                    .bind(now)
                    .execute(&inner.pool)
                    .await?;
                Ok(replaced.rows_affected() == 1)
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
                    sqlx::query(&inner.sql.update).bind(&columns.meta).bind(&columns.fields)
                } else {
                    sqlx::query(&inner.sql.touch).bind(&columns.meta)
                };
                let done = query
                    .bind(columns.expires_at)
                    .bind(&key.as_bytes()[..])
                    .bind(now)
                    .execute(&inner.pool)
                    .await?;
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

impl QueryStore for MySqlStore {
    async fn scan(&self, cursor: u64, batch: usize) -> Result<ScanPage, Error> {
        let inner = &self.inner;
        let now_ms = inner.core.clock.now_ms();
        let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        let rows = inner
            .core
            .call("scan", true, || async {
                let (bound, now) = (cursor_bound(cursor), db_ms(now_ms));
                sqlx::query(&inner.sql.scan)
                    .bind(&bound[..])
                    .bind(now)
                    .bind(&bound[..])
                    .bind(now)
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
