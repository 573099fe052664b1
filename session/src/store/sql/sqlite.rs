//! The SQLite store: its statements and schema (its [`Dialect`]), the public store and its
//! builder, and how it opens its database. The store operations are in `store.rs`, shared
//! with the other databases.

use std::{path::PathBuf, str::FromStr as _, sync::Arc};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult},
};

use super::{
    Options, builder_options,
    dialect::{BoundQuery, Create, DeleteByIndex, Dialect, Migration, Statements, Upgrade},
    store::{SqlStore, connect, sql_store},
    table::{Quote, Table},
};
#[cfg(doc)]
use crate::store::Rename;
use crate::{Error, id::StoreKey};

/// The indexed copy of the deadline, to the minute (`expires_at` is ms, never negative):
/// virtual, as SQLite can add only those to an existing table.
const MINUTE_COLUMN: &str = "expires_minute INTEGER GENERATED ALWAYS AS (expires_at / 60000) VIRTUAL";

/// SQLite's statements and schema.
pub(crate) struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Db = sqlx::Sqlite;
    const BACKEND: &'static str = "sqlite";
    const NAME: &'static str = "SQLite";
    const QUOTE: Quote = Quote::Double;
    const KEEP_CONNECTIONS: bool = false;
    const ONE_WRITER: bool = true;
    const MIGRATION: Migration = Migration::Transaction { lock: None };

    /// SQLite names an index's schema on the index, not on its table. Expiry is indexed
    /// on `expires_minute`, as on the other databases.
    fn schema(table: &Table) -> Vec<String> {
        let t = table.quoted();
        let qualified = |index: String| match table.schema() {
            Some(schema) => format!("{schema}.{index}"),
            None => index,
        };
        let bare = table.bare();
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (\n    \
                 id             BLOB    NOT NULL PRIMARY KEY,\n    \
                 expires_at     INTEGER NOT NULL,\n    \
                 meta           BLOB    NOT NULL,\n    \
                 fields         TEXT    NOT NULL,\n    \
                 index_key      BLOB,\n    \
                 {MINUTE_COLUMN}\n) WITHOUT ROWID"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {bare} (expires_minute)",
                qualified(table.expiry_index())
            ),
            format!("DROP INDEX IF EXISTS {}", qualified(table.old_expiry_index())),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {bare} (index_key) WHERE index_key IS NOT NULL",
                qualified(table.key_index())
            ),
        ]
    }

    /// SQLite has no `ADD COLUMN IF NOT EXISTS`: the table's columns are looked up first
    /// (`table_xinfo`, which lists generated columns too).
    fn upgrades(table: &Table) -> Vec<Upgrade> {
        let arguments = match table.schema_literal() {
            Some(schema) => format!("{}, {schema}", table.name_literal()),
            None => table.name_literal(),
        };
        let column = |name: &str, definition: &str, adds_index_key: bool| Upgrade {
            done: format!("SELECT 1 FROM pragma_table_xinfo({arguments}) WHERE name = '{name}'"),
            apply: format!("ALTER TABLE {} ADD COLUMN {definition}", table.quoted()),
            adds_index_key,
        };
        vec![
            column("index_key", "index_key BLOB", true),
            column("expires_minute", MINUTE_COLUMN, false),
        ]
    }

    fn statements(table: &Table) -> Statements {
        let t = table.quoted();
        Statements {
            load: format!("SELECT meta, fields FROM {t} WHERE id = ?1 AND expires_at > ?2"),
            create: Create::Upsert(format!(
                "INSERT INTO {t} (id, expires_at, meta, fields, index_key) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, meta = excluded.meta, \
                 fields = excluded.fields, index_key = excluded.index_key WHERE expires_at <= ?6"
            )),
            update: format!(
                "UPDATE {t} SET meta = ?1, fields = json_patch(fields, ?2), index_key = ?3, expires_at = ?4 \
                 WHERE id = ?5 AND expires_at > ?6"
            ),
            touch: format!(
                "UPDATE {t} SET meta = ?1, index_key = ?2, expires_at = ?3 WHERE id = ?4 AND expires_at > ?5"
            ),
            rename: format!(
                "UPDATE {t} SET id = ?1, meta = ?2, fields = json_patch(fields, ?3), index_key = ?4, expires_at = ?5 \
                 WHERE id = ?6 AND expires_at > ?7"
            ),
            expired: format!("SELECT 1 FROM {t} WHERE id = ?1 AND expires_at <= ?2"),
            remove_dead: format!("DELETE FROM {t} WHERE id = ?1 AND expires_at <= ?2"),
            delete: format!("DELETE FROM {t} WHERE id = ?1"),
            scan: format!(
                "SELECT id, meta, fields FROM {t} WHERE id >= ?1 AND expires_at > ?2 \
                 AND substr(id, 1, 8) <= (SELECT substr(id, 1, 8) FROM \
                 (SELECT id FROM {t} WHERE id >= ?3 AND expires_at > ?4 ORDER BY id LIMIT ?5) \
                 ORDER BY id DESC LIMIT 1) \
                 ORDER BY id"
            ),
            count: format!("SELECT count(*) FROM {t} WHERE expires_at > ?1"),
            delete_many: format!("DELETE FROM {t} WHERE id IN "),
            clear_live: format!("DELETE FROM {t} WHERE expires_at > ?1"),
            clear_dead: format!("DELETE FROM {t} WHERE expires_minute <= ?1 / 60000 AND expires_at <= ?2"),
            // The outer condition is checked on the row it deletes, like on the other
            // backends (SQLite runs one writer at a time anyway).
            delete_expired: format!(
                "DELETE FROM {t} WHERE expires_at <= ?1 AND id IN \
                 (SELECT id FROM {t} WHERE expires_minute <= ?2 / 60000 AND expires_at <= ?2 \
                 ORDER BY expires_minute LIMIT ?3)"
            ),
            list_by_index: format!("SELECT id, meta, fields FROM {t} WHERE index_key = ?1 AND expires_at > ?2"),
            // `RETURNING` since SQLite 3.35 (the bundled one is newer). One writer at a time:
            // a rename commits before this statement (and is deleted under its new key) or
            // runs after it and finds nothing to move.
            delete_by_index: DeleteByIndex::Returning(format!(
                "DELETE FROM {t} WHERE index_key = ?1 AND id IS NOT ?2 \
                 AND (expires_at > ?3 OR expires_at <= ?4) RETURNING id, expires_at"
            )),
            backfill: format!("UPDATE {t} SET index_key = ?1 WHERE id = ?2 AND meta = ?3 AND index_key IS NULL"),
        }
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn bind_keys<'q>(query: BoundQuery<'q, sqlx::Sqlite>, keys: &'q [StoreKey]) -> BoundQuery<'q, sqlx::Sqlite> {
        keys.iter().fold(query, |query, key| query.bind(&key.as_bytes()[..]))
    }
}

/// A session store in SQLite (feature `sqlite`; SQLite is compiled in): one row per
/// session, one statement per load and per save, with a per-call timeout and a circuit
/// breaker. For a single application node, development and tests; in a file or in memory.
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
///     id             BLOB    NOT NULL PRIMARY KEY,  -- SHA-256 of the session ID, never the ID
///     expires_at     INTEGER NOT NULL,              -- ms since the Unix epoch: the earlier deadline
///     meta           BLOB    NOT NULL,              -- the lifetimes and lineage (48 bytes), or sealed
///     fields         TEXT    NOT NULL,              -- {"<tag, 8 hex digits>": "<base64 of the value>"}
///     index_key      BLOB,                          -- the session's index digest, or null
///     expires_minute INTEGER GENERATED ALWAYS AS (expires_at / 60000) VIRTUAL
/// ) WITHOUT ROWID;
/// CREATE INDEX IF NOT EXISTS "sessions_expires_minute" ON "sessions" (expires_minute);
/// DROP INDEX IF EXISTS "sessions_expires_at";
/// CREATE INDEX IF NOT EXISTS "sessions_index_key" ON "sessions" (index_key) WHERE index_key IS NOT NULL;
/// ```
///
/// `expires_minute` is `expires_at` to the minute, the expiry index's column, as on the
/// other SQL stores (where it keeps saves from writing index entries; SQLite rewrites the
/// entry of any index whose columns a statement sets, so here it is for the same schema and
/// statements). It is virtual, as SQLite adds only those to an existing table: on a table of
/// an earlier version (no `expires_minute` in `pragma_table_xinfo`), `migrate` adds it
/// before the indexes, and drops `sessions_expires_at`.
///
/// `index_key` is the [`IndexKey`](crate::store::IndexKey) digest the metadata holds (of the
/// `#[session(index)]` field: never the value), for "log out everywhere"
/// ([`IndexStore`](crate::store::IndexStore)). SQLite has no `ADD COLUMN IF NOT EXISTS`: on
/// a table created before the column existed (no `index_key` in `pragma_table_info`),
/// `migrate` runs `ALTER TABLE "sessions" ADD COLUMN index_key BLOB` before the indexes, then
/// sets the column on the live rows from their metadata. A team that upgrades by hand
/// leaves each older session out of its index until its next write.
///
/// `meta` holds the session's metadata (see
/// [`store`](crate::store#the-metadata-format)); each `fields` member is one session
/// field, keyed by its tag (see [`store`](crate::store#the-record-format)), its value the
/// base64 of a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's bytes. Why a
/// JSON object rather than a row per field: the merge is then one `UPDATE`, where a row per
/// field would take a transaction of several statements (SQLite has no data-modifying
/// `WITH`).
///
/// # Statements
///
/// As on PostgreSQL, every statement is given `now` by the store's clock, each operation is
/// one statement, and SQLite runs one writer at a time, so each is atomic. Every statement
/// that writes `meta` (create, update, refresh, regenerate) writes `index_key` with it:
///
/// - load: `SELECT meta, fields FROM sessions WHERE id = ?1 AND expires_at > ?now`;
/// - create: `INSERT … ON CONFLICT (id) DO UPDATE … WHERE expires_at <= ?now` (a new row, or
///   one replacing an expired row, never a live one);
/// - update: `UPDATE sessions SET expires_at, meta, fields = json_patch(fields, ?fields)
///   WHERE id = ?1 AND expires_at > ?now`: only the fields it carries are replaced, so
///   overlapping requests that change different fields both keep their change (a field set
///   back to its default is a `null` member, which `json_patch` drops), and a deleted or
///   expired row is never resurrected (a sliding refresh leaves `fields` alone);
/// - regenerate: `UPDATE sessions SET id = ?new, …, fields = json_patch(fields, ?fields)
///   WHERE id = ?old AND expires_at > ?now`: the move and the old ID's death are one
///   statement. A row already under the new key fails the primary key: an expired one is
///   deleted and the move tried once more, a live one is kept ([`Rename::TargetExists`]);
/// - delete: `DELETE FROM sessions WHERE id = ?1`; query operations as on PostgreSQL
///   (`DELETE … WHERE id IN (?, …)` per 500 keys);
/// - list by index: `SELECT id, meta, fields FROM sessions WHERE index_key = ?1 AND
///   expires_at > ?now`, on the partial index: as costly as that user's sessions;
/// - delete by index: `DELETE FROM sessions WHERE index_key = ?1 AND id IS NOT ?keep AND
///   (expires_at > ?now OR expires_at <= ?now - retention) RETURNING id, expires_at`
///   (`RETURNING` needs SQLite 3.35; the compiled-in one is newer): the live rows are
///   reported, the rows expired past the expired-session retention go unreported. With one
///   writer at a time, a regenerate either ran before it (and its new ID is deleted) or
///   runs after it and finds no row to move.
///
/// # Expiry
///
/// Expired rows are never returned. [`spawn_expiry_task`](Self::spawn_expiry_task) deletes
/// them in the background, [`delete_expired`](Self::delete_expired) now, in statements of at
/// most 1000 rows found on the `expires_minute` index, so the database's write lock is held
/// only briefly.
///
/// # Failures
///
/// Every call is bounded by the command timeout, waiting for a pooled connection included:
/// past it, [`Error::Timeout`]. `SQLITE_BUSY` or `SQLITE_LOCKED` after the busy timeout, or
/// an I/O error, is [`Error::Unavailable`]. Both count toward the circuit breaker, as on the
/// other stores; errors SQLite answers with (a constraint, a missing table) are
/// [`Error::Store`].
///
/// SQLite takes one writer at a time, so a store's writes (saves, deletes, the expiry
/// task's batches; its clones share the queue) take turns in the process, first come first
/// served, each taking a connection only when its turn comes. A burst of writes then queues in
/// order and leaves the pool to the reads, instead of polling SQLite's lock with growing
/// sleeps, where a write that came late can overtake one about to time out. The time in the
/// queue counts toward the command timeout. A write whose turn has come can still find the
/// lock held: by another process or another store on the same file, by the application's
/// own statements, or by a write whose call timed out but whose statement SQLite is still
/// running. It waits for it up to the connection's busy timeout, which the pools this store
/// opens set to the command timeout.
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
pub struct SqliteStore(Arc<SqlStore<SqliteDialect>>);

sql_store!(SqliteStore, SqlitePool);

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

impl std::fmt::Debug for SqliteStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let own_pool = !matches!(self.source, Source::Pool(_));
        self.options.debug_builder(f, "SqliteStoreBuilder", own_pool)
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
        SqlStore::<SqliteDialect>::schema(table)
    }

    /// Creates the table and its indexes if they do not exist, and brings a table of an
    /// earlier version up to date: adds `index_key` (with its index) and sets it on the live
    /// rows from their metadata, adds `expires_minute` (with its index) and drops the index
    /// on `expires_at`; safe to run on every start.
    ///
    /// It runs under a limit of 10 minutes instead of the command timeout, and is not
    /// retried: on a large table of an earlier version, adding a column can rewrite the
    /// table, which the database finishes even after a client gives up.
    ///
    /// # Errors
    ///
    /// As any call; [`Error::Store`] when SQLite refuses.
    pub async fn migrate(&self) -> Result<(), Error> {
        self.0.migrate().await
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
        let core = self.options.core(SqliteDialect::BACKEND, SqliteDialect::QUOTE)?;
        let (options, in_memory) = match self.source {
            Source::Pool(pool) => return Ok(SqliteStore(Arc::new(SqlStore::new(pool, core)))),
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
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            connect(pool, options, &core).await?
        } else {
            let pool = SqlitePoolOptions::new().max_connections(max_connections);
            connect(pool, options.journal_mode(SqliteJournalMode::Wal), &core).await?
        };
        Ok(SqliteStore(Arc::new(SqlStore::new(pool, core))))
    }
}
