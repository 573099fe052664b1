//! The PostgreSQL store: its statements, in one place, and the store operations that run
//! them.

use std::{fmt, sync::Arc, time::Duration};

use sqlx::{
    PgPool, Row as _,
    postgres::{PgConnectOptions, PgPoolOptions},
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
            load: format!("SELECT meta, fields::text FROM {t} WHERE id = $1 AND expires_at > $2"),
            create: format!(
                "INSERT INTO {t} AS s (id, expires_at, meta, fields) VALUES ($1, $2, $3, $4::jsonb) \
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, meta = excluded.meta, \
                 fields = excluded.fields WHERE s.expires_at <= $5"
            ),
            update: format!(
                "UPDATE {t} SET expires_at = $2, meta = $3, fields = fields || $4::jsonb \
                 WHERE id = $1 AND expires_at > $5"
            ),
            touch: format!("UPDATE {t} SET expires_at = $2, meta = $3 WHERE id = $1 AND expires_at > $4"),
            rename: format!(
                "UPDATE {t} SET id = $2, expires_at = $3, meta = $4, fields = fields || $5::jsonb \
                 WHERE id = $1 AND expires_at > $6"
            ),
            remove_dead: format!("DELETE FROM {t} WHERE id = $1 AND expires_at <= $2"),
            delete: format!("DELETE FROM {t} WHERE id = $1"),
            scan: format!(
                "SELECT id, meta, fields::text FROM {t} WHERE id >= $1 AND expires_at > $2 \
                 AND substring(id FROM 1 FOR 8) <= (SELECT substring(id FROM 1 FOR 8) FROM \
                 (SELECT id FROM {t} WHERE id >= $1 AND expires_at > $2 ORDER BY id LIMIT $3) AS page \
                 ORDER BY id DESC LIMIT 1) \
                 ORDER BY id"
            ),
            count: format!("SELECT count(*) FROM {t} WHERE expires_at > $1"),
            delete_many: format!("DELETE FROM {t} WHERE id = ANY($1)"),
            clear_live: format!("DELETE FROM {t} WHERE expires_at > $1"),
            clear_dead: format!("DELETE FROM {t} WHERE expires_at <= $1"),
            // The outer condition is checked again on the row it deletes, so a row made
            // live again meanwhile (a create over an expired row) is kept. SKIP LOCKED: the
            // expiry tasks of several nodes share the work instead of queueing.
            delete_expired: format!(
                "DELETE FROM {t} WHERE expires_at <= $1 AND id IN \
                 (SELECT id FROM {t} WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
        }
    }
}

/// The schema, as statements: the table and its expiry index, both idempotent.
fn schema(table: &Table) -> [String; 2] {
    let (t, index) = (table.quoted(), table.index());
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n    \
             id         BYTEA  PRIMARY KEY,\n    \
             expires_at BIGINT NOT NULL,\n    \
             meta       BYTEA  NOT NULL,\n    \
             fields     JSONB  NOT NULL\n)"
        ),
        format!("CREATE INDEX IF NOT EXISTS {index} ON {t} (expires_at)"),
    ]
}

/// A session store in PostgreSQL (feature `postgres`): one row per session, one statement
/// per load and per save, with a per-call timeout, retry and a circuit breaker.
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
///     id         BYTEA  PRIMARY KEY,   -- SHA-256 of the session ID, never the ID
///     expires_at BIGINT NOT NULL,      -- ms since the Unix epoch: the earlier deadline
///     meta       BYTEA  NOT NULL,      -- the lifetimes and lineage (48 bytes), or sealed
///     fields     JSONB  NOT NULL       -- {"<tag, 8 hex digits>": "<base64 of the value>"}
/// );
/// CREATE INDEX IF NOT EXISTS "sessions_expires_at" ON "sessions" (expires_at);
/// ```
///
/// `meta` holds created, accessed, idle deadline and absolute deadline (4 × u64,
/// big-endian) then the session's 16-byte lineage; each `fields` member is one session
/// field, keyed by its tag (see [`store`](crate::store#the-record-format)), its value the
/// base64 of a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's bytes. A later
/// column (say, a user ID for "log out everywhere") can be added with its own index without
/// touching these.
///
/// # Statements
///
/// Liveness is judged by the store's clock: every statement is given `now` (ms) and treats
/// a row whose `expires_at` is not after it as absent. Each operation is one statement,
/// atomic on its own, one round trip (sqlx prepares each once per connection):
///
/// - load: `SELECT meta, fields FROM sessions WHERE id = $1 AND expires_at > $now`;
/// - create: `INSERT … ON CONFLICT (id) DO UPDATE … WHERE sessions.expires_at <= $now`: a
///   new row, or one that replaces an expired row, never a live one;
/// - update: `UPDATE sessions SET expires_at, meta, fields = fields || $fields WHERE id =
///   $1 AND expires_at > $now`. The row lock serializes overlapping updates and each
///   merges only the fields it carries into the object it finds, so two overlapping
///   requests that change different fields both keep their change; a deleted or expired
///   row matches nothing and is never resurrected. A sliding refresh sets `expires_at` and
///   `meta` only;
/// - regenerate: `UPDATE sessions SET id = $new, expires_at, meta, fields = fields ||
///   $fields WHERE id = $old AND expires_at > $now`: the session moves and the old ID is
///   dead in one statement; an update of the old ID racing it lands before it (and moves
///   with it) or finds nothing. A row already under the new key fails the primary key: an
///   expired one is deleted and the move tried once more, a live one is kept
///   ([`Rename::TargetExists`]);
/// - delete: `DELETE FROM sessions WHERE id = $1`;
/// - scan: pages in `id` order, a cursor being the next 8-byte digest prefix; count:
///   `count(*)` of live rows; delete_many: `DELETE … WHERE id = ANY($1)` per 500 keys;
///   clear: the live rows (counted), then the expired ones.
///
/// Why a JSON object and not a table with a row per field: the merge is then one `UPDATE`
/// of one row on all three SQL stores; with a row per field, an update is a session row
/// update plus a field upsert, one statement here (a data-modifying `WITH`) but a
/// transaction of several on SQLite and MySQL.
///
/// # Expiry
///
/// Expired rows are never returned. [`spawn_expiry_task`](Self::spawn_expiry_task) deletes
/// them in the background, [`delete_expired`](Self::delete_expired) now; each statement
/// deletes at most 1000 rows (`FOR UPDATE SKIP LOCKED`, so the tasks of several nodes share
/// the work), so requests are not held up behind it.
///
/// # Failures
///
/// Every call is bounded by the command timeout, waiting for a pooled connection included:
/// past it, [`Error::Timeout`]. A database that cannot be reached (refused, reset, I/O
/// error, shutting down, too many connections) gives [`Error::Unavailable`]; both count
/// toward the [circuit breaker](crate::resilience::BreakerConfig), which then fails calls
/// at once with [`Error::CircuitOpen`]. The HTTP layer answers all three with 503 (or
/// degrades, as configured). An error the database answers with (a constraint, a syntax
/// error, a missing table) is [`Error::Store`] (500) and does not count. Loads, deletes and
/// query operations are retried ([`RetryPolicy`](crate::resilience::RetryPolicy)); writes
/// are not, as one that timed out may have been applied. Nothing is cached: once the
/// database answers again, every session saved before the outage is there.
///
/// # Encryption at rest
///
/// With [`encryption`](PostgresStoreBuilder::encryption), `meta` and every field value are
/// sealed with the cookie envelope under the purpose `store:postgres`: the metadata bound
/// to the row's key, each field to its tag and the session's lineage, so no value can be
/// moved to another field or session, and every sealed value expires with the session's
/// absolute deadline. Left visible: the digests, `expires_at`, the field tags and value
/// lengths.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use session::{PostgresStore, SessionConfig, SessionData, SessionProvider};
///
/// #[derive(SessionData)]
/// struct AppSession { user: Option<String> }
///
/// # async fn run(pool: sqlx::PgPool) -> Result<(), session::Error> {
/// let store = PostgresStore::builder(pool)          // the application's own sqlx pool
///     .table("app_sessions")
///     .command_timeout(Duration::from_millis(500))
///     .build()
///     .await?;
/// store.migrate().await?;                           // or run `PostgresStore::schema` yourself
/// let _expiry = store.spawn_expiry_task(Duration::from_secs(300));
/// let provider = SessionProvider::<AppSession, _>::new(store, SessionConfig::production().build()?);
/// # let _ = provider;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    core: Core,
    sql: Statements,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresStore").field(&self.inner.core).finish()
    }
}

/// Configures a [`PostgresStore`]; see [`PostgresStore::builder`].
#[must_use = "call .build().await to get a PostgresStore"]
pub struct PostgresStoreBuilder {
    source: Source<PgPool>,
    options: Options,
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out: it may hold a password.
        f.debug_struct("PostgresStoreBuilder")
            .field("own_pool", &matches!(self.source, Source::Url(_)))
            .field("options", &self.options)
            .finish()
    }
}

impl PostgresStore {
    /// Configures a store on the application's own sqlx pool.
    ///
    /// Defaults: table `sessions`, command timeout 1 s,
    /// [`RetryPolicy::default`](crate::resilience::RetryPolicy::default),
    /// [`BreakerConfig::default`](crate::resilience::BreakerConfig::default), no
    /// compression, no encryption at rest, the system clock.
    pub fn builder(pool: PgPool) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            source: Source::Pool(pool),
            options: Options::default(),
        }
    }

    /// Configures a store with a pool of its own, opened by
    /// [`build`](PostgresStoreBuilder::build) from `url`
    /// (`postgres://user:password@host:port/database`), with the same defaults as
    /// [`builder`](Self::builder) and at most 10 connections.
    pub fn builder_from_url(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            source: Source::Url(url.into()),
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
    /// let sql = session::PostgresStore::schema("sessions").unwrap();
    /// assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS \"sessions\""));
    /// ```
    pub fn schema(table: &str) -> Result<String, Error> {
        Ok(schema(&Table::parse(table, Quote::Double)?).join(";\n") + ";\n")
    }

    /// Creates the table and its index if they do not exist; safe to run on every start,
    /// from several processes at once (they take turns on an advisory lock).
    ///
    /// # Errors
    ///
    /// As any call; [`Error::Store`] when the database refuses (e.g. no `CREATE` right).
    pub async fn migrate(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let statements = schema(&inner.core.table);
        let name = inner.core.table.display();
        inner
            .core
            .call("migrate", true, || async {
                let mut transaction = inner.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("session-store:{name}"))
                    .execute(&mut *transaction)
                    .await?;
                for statement in &statements {
                    sqlx::query(statement).execute(&mut *transaction).await?;
                }
                transaction.commit().await
            })
            .await
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
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
        ExpiryTask::spawn("postgres", every, move || {
            let store = store.clone();
            async move { store.delete_expired().await }
        })
    }
}

impl PostgresStoreBuilder {
    builder_options!("postgres", "PostgresStore");

    /// The most connections of the pool the store opens from a URL (default 10); ignored
    /// with the application's own pool.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.options.max_connections = connections;
        self
    }

    /// Builds the store. With a URL, opens its pool and one connection, so a wrong URL,
    /// password or unreachable server is reported at start-up; with the application's
    /// pool, touches nothing. Does not create the table: see [`PostgresStore::migrate`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid table name, URL or a zero timeout;
    /// [`Error::Timeout`] or [`Error::Unavailable`] when the server cannot be reached;
    /// [`Error::Store`] when it refuses the connection (e.g. a wrong password).
    pub async fn build(self) -> Result<PostgresStore, Error> {
        let max_connections = self.options.max_connections.max(1);
        let core = self.options.core("postgres", Quote::Double)?;
        let pool = match self.source {
            Source::Pool(pool) => pool,
            Source::Url(url) => {
                let options: PgConnectOptions = url
                    .parse()
                    .map_err(|error| Error::Config(format!("invalid PostgreSQL URL: {error}")))?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(core.timeout)
                    .connect_lazy_with(options);
                core.call("connect", true, || async { pool.acquire().await.map(drop) })
                    .await?;
                pool
            }
        };
        let sql = Statements::new(&core.table);
        Ok(PostgresStore {
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

impl SessionStore for PostgresStore {
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

impl QueryStore for PostgresStore {
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
            let ids: Vec<&[u8]> = chunk.iter().map(|key| &key.as_bytes()[..]).collect();
            deleted += inner
                .core
                .call("delete_many", true, || async {
                    let done = sqlx::query(&inner.sql.delete_many)
                        .bind(&ids)
                        .execute(&inner.pool)
                        .await?;
                    Ok(done.rows_affected())
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
