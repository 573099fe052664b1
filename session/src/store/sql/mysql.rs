//! The MySQL and MariaDB store: its statements and schema (its [`Dialect`]), the public
//! store and its builder. The store operations are in `store.rs`, shared with the other
//! databases.

use std::sync::Arc;

use sqlx::{MySqlPool, mysql::MySqlQueryResult};

use super::{
    Options, Source, builder_options,
    dialect::{BoundQuery, Create, DeleteByIndex, Dialect, Migration, Statements, Upgrade},
    store::{SqlStore, sql_store},
    table::{Quote, Table},
};
#[cfg(doc)]
use crate::store::Rename;
use crate::{Error, id::StoreKey};

/// MySQL's statements and schema.
pub(crate) struct MySqlDialect;

/// The indexed copy of the deadline, to the minute (`expires_at` is ms, never negative).
const MINUTE_COLUMN: &str = "expires_minute BIGINT AS (expires_at DIV 60000) STORED";

impl Dialect for MySqlDialect {
    type Db = sqlx::MySql;
    const BACKEND: &'static str = "mysql";
    const NAME: &'static str = "MySQL";
    const QUOTE: Quote = Quote::Backtick;
    const KEEP_CONNECTIONS: bool = true;
    const ONE_WRITER: bool = false;
    // MySQL commits each DDL statement on its own: a transaction would not hold them.
    const MIGRATION: Migration = Migration::OneByOne;

    /// The table with its indexes, idempotent (MySQL has no `CREATE INDEX IF NOT EXISTS`,
    /// so the indexes are declared with the table). No partial index: the session index's
    /// also holds the null keys of sessions without one. Expiry is indexed on
    /// `expires_minute`, not `expires_at`: a save that moves the deadline within its minute
    /// leaves every secondary index alone.
    fn schema(table: &Table) -> Vec<String> {
        let (t, expiry_index, key_index) = (table.quoted(), table.expiry_index(), table.key_index());
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n    \
             id             BINARY(32)    NOT NULL PRIMARY KEY,\n    \
             expires_at     BIGINT        NOT NULL,\n    \
             meta           BLOB          NOT NULL,\n    \
             fields         JSON          NOT NULL,\n    \
             index_key      VARBINARY(32) NULL,\n    \
             {MINUTE_COLUMN},\n    \
             INDEX {expiry_index} (expires_minute),\n    \
             INDEX {key_index} (index_key)\n) ENGINE = InnoDB"
        )]
    }

    /// MySQL has no `ADD COLUMN IF NOT EXISTS` nor `DROP INDEX IF EXISTS` (MariaDB has):
    /// the table's columns and indexes are looked up first, and a migration that loses the
    /// race finds the change made.
    fn upgrades(table: &Table) -> Vec<Upgrade> {
        let schema = table.schema_literal().unwrap_or_else(|| "DATABASE()".to_owned());
        let (t, name) = (table.quoted(), table.name_literal());
        let has_column = |column: &str| {
            format!(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = {schema} \
                 AND table_name = {name} AND column_name = '{column}'"
            )
        };
        vec![
            Upgrade {
                done: has_column("index_key"),
                apply: format!(
                    "ALTER TABLE {t} ADD COLUMN index_key VARBINARY(32) NULL, ADD INDEX {} (index_key)",
                    table.key_index()
                ),
                adds_index_key: true,
            },
            Upgrade {
                done: has_column("expires_minute"),
                apply: format!(
                    "ALTER TABLE {t} ADD COLUMN {MINUTE_COLUMN}, ADD INDEX {} (expires_minute)",
                    table.expiry_index()
                ),
                adds_index_key: false,
            },
            Upgrade {
                done: format!(
                    "SELECT 1 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM information_schema.statistics \
                     WHERE table_schema = {schema} AND table_name = {name} AND index_name = {})",
                    table.old_expiry_index_literal()
                ),
                apply: format!("ALTER TABLE {t} DROP INDEX {}", table.old_expiry_index()),
                adds_index_key: false,
            },
        ]
    }

    /// MySQL's placeholders are positional: the arguments follow each statement's `?`s in
    /// order.
    fn statements(table: &Table) -> Statements {
        let t = table.quoted();
        // In an UPDATE, MySQL applies the assignments left to right, each seeing the ones
        // before: `expires_at` is always assigned last, after everything that reads it.
        Statements {
            load: format!("SELECT meta, CAST(fields AS CHAR) FROM {t} WHERE id = ? AND expires_at > ?"),
            // One `INSERT … ON DUPLICATE KEY UPDATE` cannot tell "inserted" from "kept"
            // through sqlx, which counts found rows.
            create: Create::InsertOrReplaceDead {
                insert: format!("INSERT INTO {t} (id, expires_at, meta, fields, index_key) VALUES (?, ?, ?, ?, ?)"),
                replace_dead: format!(
                    "UPDATE {t} SET meta = ?, fields = ?, index_key = ?, expires_at = ? \
                     WHERE id = ? AND expires_at <= ?"
                ),
            },
            update: format!(
                "UPDATE {t} SET meta = ?, fields = JSON_MERGE_PATCH(fields, ?), index_key = ?, expires_at = ? \
                 WHERE id = ? AND expires_at > ?"
            ),
            touch: format!("UPDATE {t} SET meta = ?, index_key = ?, expires_at = ? WHERE id = ? AND expires_at > ?"),
            rename: format!(
                "UPDATE {t} SET id = ?, meta = ?, fields = JSON_MERGE_PATCH(fields, ?), index_key = ?, \
                 expires_at = ? WHERE id = ? AND expires_at > ?"
            ),
            expired: format!("SELECT 1 FROM {t} WHERE id = ? AND expires_at <= ?"),
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
            clear_dead: format!("DELETE FROM {t} WHERE expires_minute <= ? DIV 60000 AND expires_at <= ?"),
            delete_expired: format!(
                "DELETE FROM {t} WHERE expires_minute <= ? DIV 60000 AND expires_at <= ? \
                 ORDER BY expires_minute LIMIT ?"
            ),
            list_by_index: format!(
                "SELECT id, meta, CAST(fields AS CHAR) FROM {t} WHERE index_key = ? AND expires_at > ?"
            ),
            // MySQL has no `DELETE … RETURNING` (MariaDB has, since 10.5). A locking read
            // reads the latest rows, not the transaction's snapshot, and its next-key locks
            // keep a concurrent rename from adding a row of this index behind it: those
            // need `REPEATABLE READ`, whatever the server's or the pool's default (under
            // `READ COMMITTED` the scan could pass a renamed row's new key before the rename
            // inserts it). A deadlock with a rename is rolled back and run again.
            delete_by_index: DeleteByIndex::LockThenDelete {
                isolation: "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                select: format!(
                    "SELECT id, expires_at FROM {t} WHERE index_key = ? AND NOT (id <=> ?) \
                     AND (expires_at > ? OR expires_at <= ?) FOR UPDATE"
                ),
            },
            backfill: format!("UPDATE {t} SET index_key = ? WHERE id = ? AND meta = ? AND index_key IS NULL"),
        }
    }

    fn rows_affected(done: &MySqlQueryResult) -> u64 {
        done.rows_affected()
    }

    fn bind_keys<'q>(query: BoundQuery<'q, sqlx::MySql>, keys: &'q [StoreKey]) -> BoundQuery<'q, sqlx::MySql> {
        keys.iter().fold(query, |query, key| query.bind(&key.as_bytes()[..]))
    }
}

/// A session store in MySQL 8 or MariaDB 10.5+ (feature `mysql`): one row per session, one
/// statement per load and per save, with a per-call timeout, retry and a circuit breaker.
///
/// Cheap to clone; clones share the pool.
///
/// # Schema
///
/// [`migrate`](Self::migrate) creates the table and its indexes if they do not exist;
/// teams that run their own migrations use the same SQL ([`schema`](Self::schema) prints it
/// for another table name):
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS `sessions` (
///     id             BINARY(32)    NOT NULL PRIMARY KEY,  -- SHA-256 of the session ID, never the ID
///     expires_at     BIGINT        NOT NULL,              -- ms since the Unix epoch: the earlier deadline
///     meta           BLOB          NOT NULL,              -- the lifetimes and lineage (48 bytes), or sealed
///     fields         JSON          NOT NULL,              -- {"<tag, 8 hex digits>": "<base64 of the value>"}
///     index_key      VARBINARY(32) NULL,                  -- the session's index digest, or null
///     expires_minute BIGINT AS (expires_at DIV 60000) STORED,
///     INDEX `sessions_expires_minute` (expires_minute),
///     INDEX `sessions_index_key` (index_key)
/// ) ENGINE = InnoDB;
/// ```
///
/// `expires_minute` is `expires_at` to the minute, and the only expiry index: the expiry
/// task needs an index to find expired rows, but one on `expires_at`, which nearly every
/// save moves, would make nearly every save write an index entry. Indexed to the minute, a
/// save usually leaves every indexed column as it was, and InnoDB then writes no secondary
/// index entry. The expiry statement finds rows by their minute and checks the exact
/// `expires_at`. On a table of an earlier version (no `expires_minute` in
/// `information_schema.columns`), `migrate` runs ``ALTER TABLE `sessions` ADD COLUMN
/// expires_minute BIGINT AS (expires_at DIV 60000) STORED, ADD INDEX
/// `sessions_expires_minute` (expires_minute)``, then ``ALTER TABLE `sessions` DROP INDEX
/// `sessions_expires_at` `` if it is there; adding a stored column copies the table, so on
/// a large table run `migrate` at a quiet time. [`schema`](Self::schema) prints only the
/// `CREATE TABLE`: a team that upgrades by hand runs these two statements too, or the
/// expiry statements fail on the missing column.
///
/// `index_key` is the [`IndexKey`](crate::store::IndexKey) digest the metadata holds (of the
/// `#[session(index)]` field: never the value), for "log out everywhere"
/// ([`IndexStore`](crate::store::IndexStore)). MySQL has no partial index, so its index
/// also holds the nulls of sessions without one, and no `ADD COLUMN IF NOT EXISTS` (MariaDB
/// has): on a table created before the column existed (none in
/// `information_schema.columns`), `migrate` runs ``ALTER TABLE `sessions` ADD COLUMN
/// index_key VARBINARY(32) NULL, ADD INDEX `sessions_index_key` (index_key)``, then sets the
/// column on the live rows from their metadata; a migration that loses the race to add it
/// finds it there. A team that upgrades by hand leaves each older session out of its index
/// until its next write.
///
/// `meta` holds the session's metadata (see
/// [`store`](crate::store#the-metadata-format)); each `fields` member is one session
/// field, keyed by its tag (see [`store`](crate::store#the-record-format)), its value the
/// base64 of a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's bytes. Why a
/// JSON object rather than a row per field: the merge is then one `UPDATE` of one row,
/// where a row per field would take a transaction of several statements (MySQL has no
/// data-modifying `WITH`).
///
/// # Statements
///
/// Every statement is given `now` by the store's clock and treats a row whose `expires_at`
/// is not after it as absent. Each is atomic on its own (InnoDB row locks). Every statement
/// that writes `meta` (create, update, refresh, regenerate) writes `index_key` with it:
///
/// - load: `SELECT meta, fields FROM sessions WHERE id = ? AND expires_at > ?now`;
/// - create: `INSERT`; only if the key is taken, `UPDATE … WHERE id = ? AND expires_at <=
///   ?now`, which replaces an expired row and leaves a live one alone. (One
///   `INSERT … ON DUPLICATE KEY UPDATE` cannot tell "inserted" from "kept" through sqlx,
///   which counts found rows; with 256-bit random IDs the second statement never runs in
///   practice);
/// - update: `UPDATE sessions SET meta, fields = JSON_MERGE_PATCH(fields, ?), expires_at
///   WHERE id = ? AND expires_at > ?now`: only the fields it carries are replaced, so
///   overlapping requests that change different fields both keep their change (a field set
///   back to its default is a `null` member, which `JSON_MERGE_PATCH` drops), and a deleted
///   or expired row is never resurrected (a sliding refresh leaves `fields` alone);
/// - regenerate: `UPDATE sessions SET id = ?new, meta, fields = JSON_MERGE_PATCH(fields,
///   ?), expires_at WHERE id = ?old AND expires_at > ?now`: the move and the old ID's death
///   are one statement; an update of the old ID racing it lands before it (and moves with
///   it) or finds nothing. A row already under the new key fails the primary key: an
///   expired one is deleted and the move tried once more, a live one is kept
///   ([`Rename::TargetExists`]);
/// - delete: `DELETE FROM sessions WHERE id = ?`; scan pages in `id` order (a cursor is the
///   next 8-byte digest prefix), count is `COUNT(*)` of live rows, delete_many is `DELETE …
///   WHERE id IN (?, …)` per 500 keys, clear deletes the live rows (counted), then the
///   expired ones;
/// - list by index: `SELECT id, meta, fields FROM sessions WHERE index_key = ? AND
///   expires_at > ?now`, on the index: as costly as that user's sessions;
/// - delete by index: MySQL has no `DELETE … RETURNING` (MariaDB has it since 10.5), so
///   that both work it is a transaction: `SELECT id, expires_at FROM sessions WHERE
///   index_key = ? AND NOT (id <=> ?keep) AND (expires_at > ?now OR expires_at <= ?now -
///   retention) FOR UPDATE`, then `DELETE … WHERE id IN (…)` of the keys it returned. The
///   live rows are reported, the rows expired past the expired-session retention go
///   unreported. The locking read waits for a regenerate under way and then reads the
///   latest rows (not the transaction's snapshot), so it finds the session under its new
///   ID; its next-key locks (the transaction is `REPEATABLE READ` whatever the server's
///   default) keep a regenerate from adding a row of this index behind it, and a
///   regenerate that waits for it finds no row. A deadlock between the two is rolled back
///   by InnoDB and run again.
///
/// # Expiry
///
/// Expired rows are never returned. [`spawn_expiry_task`](Self::spawn_expiry_task) deletes
/// them in the background, [`delete_expired`](Self::delete_expired) now, with `DELETE …
/// WHERE expires_minute <= ?now DIV 60000 AND expires_at <= ?now ORDER BY expires_minute
/// LIMIT 1000` (on its index) until none is left, so requests
/// are not held up behind it.
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
pub struct MySqlStore(Arc<SqlStore<MySqlDialect>>);

sql_store!(MySqlStore, MySqlPool);

/// Configures a [`MySqlStore`]; see [`MySqlStore::builder`].
#[must_use = "call .build().await to get a MySqlStore"]
pub struct MySqlStoreBuilder {
    source: Source<MySqlPool>,
    options: Options,
}

impl std::fmt::Debug for MySqlStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let own_pool = matches!(self.source, Source::Url(_));
        self.options.debug_builder(f, "MySqlStoreBuilder", own_pool)
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
        SqlStore::<MySqlDialect>::schema(table)
    }

    /// Creates the table (with its indexes) if it does not exist, and brings a table of an
    /// earlier version up to date: adds `index_key` (with its index) and sets it on the live
    /// rows from their metadata, adds `expires_minute` (with its index) and drops the index
    /// on `expires_at`; safe to run on every start, from several processes at once.
    ///
    /// It runs under a limit of 10 minutes instead of the command timeout, and is not
    /// retried: on a large table of an earlier version, adding a column can rewrite the
    /// table, which the database finishes even after a client gives up.
    ///
    /// # Errors
    ///
    /// As any call; [`Error::Store`] when the server refuses (e.g. no `CREATE` right).
    pub async fn migrate(&self) -> Result<(), Error> {
        self.0.migrate().await
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
        Ok(MySqlStore(Arc::new(SqlStore::open(self.source, self.options).await?)))
    }
}
