//! The PostgreSQL store: its statements and schema (its [`Dialect`]), the public store and
//! its builder. The store operations are in `store.rs`, shared with the other databases.

use std::{borrow::Cow, sync::Arc};

use sqlx::{PgPool, postgres::PgQueryResult};

use super::{
    Options, Source, builder_options,
    dialect::{BoundQuery, Create, DeleteByIndex, Dialect, Migration, Statements, Upgrade},
    store::{SqlStore, sql_store},
    table::{Quote, Table},
};
#[cfg(doc)]
use crate::store::Rename;
use crate::{Error, id::StoreKey};

/// PostgreSQL's statements and schema.
pub(crate) struct PgDialect;

/// Adds the session index column to a table created before it existed.
fn index_key_column(table: &Table) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS index_key BYTEA",
        table.quoted()
    )
}

/// The indexed copy of the deadline, to the minute (`expires_at` is ms, never negative).
const MINUTE_COLUMN: &str = "expires_minute BIGINT GENERATED ALWAYS AS (expires_at / 60000) STORED";

impl Dialect for PgDialect {
    type Db = sqlx::Postgres;
    const BACKEND: &'static str = "postgres";
    const NAME: &'static str = "PostgreSQL";
    const QUOTE: Quote = Quote::Double;
    const KEEP_CONNECTIONS: bool = true;
    const ONE_WRITER: bool = false;
    // Concurrent migrations take turns on an advisory lock.
    const MIGRATION: Migration = Migration::Transaction {
        lock: Some("SELECT pg_advisory_xact_lock(hashtext($1))"),
    };

    /// Only `expires_minute` is indexed for expiry, not `expires_at`: a save that moves the
    /// deadline within its minute changes no indexed column, so PostgreSQL updates the row
    /// in place (a HOT update) without touching any index.
    fn schema(table: &Table) -> Vec<String> {
        let (t, key_index) = (table.quoted(), table.key_index());
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (\n    \
                 id             BYTEA  PRIMARY KEY,\n    \
                 expires_at     BIGINT NOT NULL,\n    \
                 meta           BYTEA  NOT NULL,\n    \
                 fields         JSONB  NOT NULL,\n    \
                 index_key      BYTEA,\n    \
                 {MINUTE_COLUMN}\n)"
            ),
            // A table created before a column existed gets it here.
            index_key_column(table),
            format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {MINUTE_COLUMN}"),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} (expires_minute)",
                table.expiry_index()
            ),
            // The earlier exact expiry index, found through the table itself: by name alone,
            // the search path could lead to another schema's table of the same name.
            format!(
                "DO $$ DECLARE old regclass; BEGIN \
                 SELECT i.indexrelid::regclass INTO old FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = to_regclass({}) AND c.relname = {}; \
                 IF old IS NOT NULL THEN EXECUTE 'DROP INDEX ' || old; END IF; END $$",
                table.quoted_literal(),
                table.old_expiry_index_literal()
            ),
            format!("CREATE INDEX IF NOT EXISTS {key_index} ON {t} (index_key) WHERE index_key IS NOT NULL"),
        ]
    }

    /// The session index column; `expires_minute` and its index are in the schema itself
    /// (`ADD COLUMN IF NOT EXISTS`).
    fn upgrades(table: &Table) -> Vec<Upgrade> {
        // `to_regclass` resolves the name as the statements do (search path included).
        vec![Upgrade {
            done: format!(
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass({}) AND attname = 'index_key' \
                 AND NOT attisdropped",
                table.quoted_literal()
            ),
            apply: index_key_column(table),
            adds_index_key: true,
        }]
    }

    fn statements(table: &Table) -> Statements {
        let t = table.quoted();
        Statements {
            load: format!("SELECT meta, fields::text FROM {t} WHERE id = $1 AND expires_at > $2"),
            create: Create::Upsert(format!(
                "INSERT INTO {t} AS s (id, expires_at, meta, fields, index_key) VALUES ($1, $2, $3, $4::jsonb, $5) \
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, meta = excluded.meta, \
                 fields = excluded.fields, index_key = excluded.index_key WHERE s.expires_at <= $6"
            )),
            update: format!(
                "UPDATE {t} SET meta = $1, fields = jsonb_strip_nulls(fields || $2::jsonb), index_key = $3, expires_at = $4 \
                 WHERE id = $5 AND expires_at > $6"
            ),
            touch: format!(
                "UPDATE {t} SET meta = $1, index_key = $2, expires_at = $3 WHERE id = $4 AND expires_at > $5"
            ),
            rename: format!(
                "UPDATE {t} SET id = $1, meta = $2, fields = jsonb_strip_nulls(fields || $3::jsonb), index_key = $4, \
                 expires_at = $5 \
                 WHERE id = $6 AND expires_at > $7"
            ),
            expired: format!("SELECT 1 FROM {t} WHERE id = $1 AND expires_at <= $2"),
            remove_dead: format!("DELETE FROM {t} WHERE id = $1 AND expires_at <= $2"),
            delete: format!("DELETE FROM {t} WHERE id = $1"),
            scan: format!(
                "SELECT id, meta, fields::text FROM {t} WHERE id >= $1 AND expires_at > $2 \
                 AND substring(id FROM 1 FOR 8) <= (SELECT substring(id FROM 1 FOR 8) FROM \
                 (SELECT id FROM {t} WHERE id >= $3 AND expires_at > $4 ORDER BY id LIMIT $5) AS page \
                 ORDER BY id DESC LIMIT 1) \
                 ORDER BY id"
            ),
            count: format!("SELECT count(*) FROM {t} WHERE expires_at > $1"),
            delete_many: format!("DELETE FROM {t} WHERE id = ANY($1)"),
            clear_live: format!("DELETE FROM {t} WHERE expires_at > $1"),
            clear_dead: format!("DELETE FROM {t} WHERE expires_minute <= $1 / 60000 AND expires_at <= $2"),
            // The outer condition is checked again on the row it deletes, so a row made
            // live again meanwhile (a create over an expired row) is kept. SKIP LOCKED: the
            // expiry tasks of several nodes share the work instead of queueing.
            delete_expired: format!(
                "DELETE FROM {t} WHERE expires_at <= $1 AND id IN \
                 (SELECT id FROM {t} WHERE expires_minute <= $2 / 60000 AND expires_at <= $2 \
                 ORDER BY expires_minute LIMIT $3 FOR UPDATE SKIP LOCKED)"
            ),
            list_by_index: format!("SELECT id, meta, fields::text FROM {t} WHERE index_key = $1 AND expires_at > $2"),
            // A row renamed or updated by a statement that commits while this one waits for
            // its lock is checked again in its new version (and deleted under its new key).
            delete_by_index: DeleteByIndex::Returning(format!(
                "DELETE FROM {t} WHERE index_key = $1 AND id IS DISTINCT FROM $2 \
                 AND (expires_at > $3 OR expires_at <= $4) RETURNING id, expires_at"
            )),
            backfill: format!("UPDATE {t} SET index_key = $1 WHERE id = $2 AND meta = $3 AND index_key IS NULL"),
        }
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    /// One statement for any number of keys: they are bound as one array.
    fn delete_many(statement: &str, _keys: usize) -> Cow<'_, str> {
        Cow::Borrowed(statement)
    }

    fn bind_keys<'q>(query: BoundQuery<'q, sqlx::Postgres>, keys: &'q [StoreKey]) -> BoundQuery<'q, sqlx::Postgres> {
        query.bind(keys.iter().map(|key| &key.as_bytes()[..]).collect::<Vec<_>>())
    }
}

/// A session store in PostgreSQL (feature `postgres`): one row per session, one statement
/// per load and per save, with a per-call timeout, retry and a circuit breaker.
///
/// Cheap to clone; clones share the pool.
///
/// # Schema
///
/// [`migrate`](Self::migrate) creates the table and its indexes if they do not exist; teams
/// that run their own migrations use the same SQL ([`schema`](Self::schema) prints it for
/// another table name):
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS "sessions" (
///     id             BYTEA  PRIMARY KEY,   -- SHA-256 of the session ID, never the ID
///     expires_at     BIGINT NOT NULL,      -- ms since the Unix epoch: the earlier deadline
///     meta           BYTEA  NOT NULL,      -- the lifetimes and lineage (48 bytes), or sealed
///     fields         JSONB  NOT NULL,      -- {"<tag, 8 hex digits>": "<base64 of the value>"}
///     index_key      BYTEA,                -- the session's index digest, or null
///     expires_minute BIGINT GENERATED ALWAYS AS (expires_at / 60000) STORED
/// );
/// -- A table created by an earlier version gets what it lacks here.
/// ALTER TABLE "sessions" ADD COLUMN IF NOT EXISTS index_key BYTEA;
/// ALTER TABLE "sessions" ADD COLUMN IF NOT EXISTS
///     expires_minute BIGINT GENERATED ALWAYS AS (expires_at / 60000) STORED;
/// CREATE INDEX IF NOT EXISTS "sessions_expires_minute" ON "sessions" (expires_minute);
/// DO $$ DECLARE old regclass; BEGIN
///     SELECT i.indexrelid::regclass INTO old FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
///     WHERE i.indrelid = to_regclass('"sessions"') AND c.relname = 'sessions_expires_at';
///     IF old IS NOT NULL THEN EXECUTE 'DROP INDEX ' || old; END IF; END $$;
/// CREATE INDEX IF NOT EXISTS "sessions_index_key" ON "sessions" (index_key) WHERE index_key IS NOT NULL;
/// ```
///
/// `expires_minute` is `expires_at` to the minute, and the only expiry index: the expiry
/// task needs an index to find expired rows, but one on `expires_at`, which nearly every
/// save moves, would make nearly every save write an index entry. Indexed to the minute, a
/// save usually leaves every indexed column as it was, so PostgreSQL updates the row in
/// place (a HOT update) and writes no index at all. The expiry statement finds rows by
/// their minute and checks the exact `expires_at`. On a table of an earlier version, adding
/// the stored column rewrites the table under an exclusive lock: on a large table, run
/// `migrate` at a quiet time.
///
/// `meta` holds the session's metadata (see
/// [`store`](crate::store#the-metadata-format)); each `fields` member is one session
/// field, keyed by its tag (see [`store`](crate::store#the-record-format)), its value the
/// base64 of a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's bytes.
/// `index_key` is the [`IndexKey`](crate::store::IndexKey) digest the metadata holds (of the
/// `#[session(index)]` field: never the value), for "log out everywhere"
/// ([`IndexStore`](crate::store::IndexStore)). When `migrate` adds it to an existing table,
/// it also sets it on the live rows from their metadata; the SQL above does not, so a team
/// that upgrades by hand leaves each older session out of its index until its next write.
///
/// # Statements
///
/// Liveness is judged by the store's clock: every statement is given `now` (ms) and treats
/// a row whose `expires_at` is not after it as absent. Each operation is one statement,
/// atomic on its own, one round trip (sqlx prepares each once per connection):
///
/// Every statement that writes `meta` (create, update, refresh, regenerate) writes
/// `index_key` with it.
///
/// - load: `SELECT meta, fields FROM sessions WHERE id = $1 AND expires_at > $now`;
/// - create: `INSERT … ON CONFLICT (id) DO UPDATE … WHERE sessions.expires_at <= $now`: a
///   new row, or one that replaces an expired row, never a live one;
/// - update: `UPDATE sessions SET expires_at, meta, fields = jsonb_strip_nulls(fields ||
///   $fields) WHERE id = $1 AND expires_at > $now`. The row lock serializes overlapping
///   updates and each merges only the fields it carries into the object it finds, so two
///   overlapping requests that change different fields both keep their change; a field
///   set back to its default is a `null` member, which drops the stored one (stored members
///   are never `null`); a deleted or expired row matches nothing and is never resurrected.
///   A sliding refresh sets `expires_at` and `meta` only;
/// - regenerate: `UPDATE sessions SET id = $new, expires_at, meta, fields =
///   jsonb_strip_nulls(fields || $fields) WHERE id = $old AND expires_at > $now`: the session moves and the old ID is
///   dead in one statement; an update of the old ID racing it lands before it (and moves
///   with it) or finds nothing. A row already under the new key fails the primary key: an
///   expired one is deleted and the move tried once more, a live one is kept
///   ([`Rename::TargetExists`]);
/// - delete: `DELETE FROM sessions WHERE id = $1`;
/// - scan: pages in `id` order, a cursor being the next 8-byte digest prefix; count:
///   `count(*)` of live rows; delete_many: `DELETE … WHERE id = ANY($1)` per 500 keys;
///   clear: the live rows (counted), then the expired ones;
/// - list by index: `SELECT id, meta, fields FROM sessions WHERE index_key = $1 AND
///   expires_at > $now`, on the partial index: as costly as that user's sessions;
/// - delete by index: `DELETE FROM sessions WHERE index_key = $1 AND id IS DISTINCT FROM
///   $keep AND (expires_at > $now OR expires_at <= $now - retention) RETURNING id,
///   expires_at`: the live rows are reported, the rows expired past the expired-session
///   retention go unreported. A regenerate or update of one of them that commits while the
///   `DELETE` waits for its row lock is checked again in its new version, and deleted under
///   its new ID; one that waits for the `DELETE` finds no row. So no session of the index
///   survives by changing its ID meanwhile.
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
/// (`… WHERE expires_minute <= $now / 60000 AND expires_at <= $now ORDER BY
/// expires_minute …`, on its index) deletes at most 1000 rows (`FOR UPDATE SKIP LOCKED`, so the tasks of several nodes share
/// the work), so requests are not held up behind it.
///
/// # Connections
///
/// sqlx's pool checks a connection with a round trip each time it hands one out (by
/// default) and each time one comes back: two more round trips per statement. So the store
/// keeps the connections its session operations used and hands each straight to its next
/// call; one idle for 50 ms, or out of the pool for a second, goes back to the pool, so the
/// application's other users of a shared pool get their turn. A kept connection the server
/// ended meanwhile (what the pool's check would have caught) is replaced by a checked one
/// and the statement run once more. Size a shared pool for both.
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
pub struct PostgresStore(Arc<SqlStore<PgDialect>>);

sql_store!(PostgresStore, PgPool);

/// Configures a [`PostgresStore`]; see [`PostgresStore::builder`].
#[must_use = "call .build().await to get a PostgresStore"]
pub struct PostgresStoreBuilder {
    source: Source<PgPool>,
    options: Options,
}

impl std::fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let own_pool = matches!(self.source, Source::Url(_));
        self.options.debug_builder(f, "PostgresStoreBuilder", own_pool)
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
        SqlStore::<PgDialect>::schema(table)
    }

    /// Creates the table and its indexes if they do not exist, and brings a table of an
    /// earlier version up to date: adds `index_key` (with its index) and sets it on the live
    /// rows from their metadata, adds `expires_minute` (with its index) and drops the index
    /// on `expires_at`; safe to run on every start, from several processes at once (they
    /// take turns on an advisory lock).
    ///
    /// It runs under a limit of 10 minutes instead of the command timeout, and is not
    /// retried: on a large table of an earlier version, adding a column can rewrite the
    /// table, which the database finishes even after a client gives up.
    ///
    /// # Errors
    ///
    /// As any call; [`Error::Store`] when the database refuses (e.g. no `CREATE` right).
    pub async fn migrate(&self) -> Result<(), Error> {
        self.0.migrate().await
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
        Ok(PostgresStore(Arc::new(
            SqlStore::open(self.source, self.options).await?,
        )))
    }
}
