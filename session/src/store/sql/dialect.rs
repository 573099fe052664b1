//! What differs from one database to the next, as one trait: each backend's file implements
//! [`Dialect`] (its statements, its schema, how it migrates and the few binds that differ),
//! and `store.rs` runs every store operation once, over it.

use std::borrow::Cow;

use sqlx::{Database, query::Query};

use super::table::{Quote, Table};
use crate::id::StoreKey;

/// A query on `DB` with the arguments bound so far.
pub(crate) type BoundQuery<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// One database's SQL and the behaviours that truly differ.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;
    /// `postgres`, `sqlite` or `mysql`: for spans and logs, and the encryption purpose.
    const BACKEND: &'static str;
    /// The database's name in error messages (`PostgreSQL`, …).
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    const NAME: &'static str;
    /// How it quotes identifiers.
    const QUOTE: Quote;
    /// How [`migrate`](super::store::SqlStore::migrate) runs the schema.
    const MIGRATION: Migration;
    /// Whether the store keeps connections between its calls (see `lease.rs`).
    const KEEP_CONNECTIONS: bool;
    /// Whether the database takes one writer at a time: then the store's session writes
    /// queue for their turn in the process, first come first served, rather than in the
    /// database's busy handler, which polls with growing sleeps and lets a late writer
    /// overtake one that has waited past its timeout.
    const ONE_WRITER: bool;

    /// The schema, as idempotent statements: the table first, then what needs the
    /// [`Upgrade`]s' columns (their indexes).
    fn schema(table: &Table) -> Vec<String>;

    /// How [`migrate`](super::store::SqlStore::migrate) brings a table created by an
    /// earlier version up to the schema, in order, after the table statement.
    fn upgrades(table: &Table) -> Vec<Upgrade>;

    /// Every statement of a store on `table`.
    fn statements(table: &Table) -> Statements;

    /// How many rows a statement changed.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    /// The statement that deletes `keys` keys, from [`Statements::delete_many`]: by default
    /// that text followed by `(?, …)`, one placeholder per key.
    fn delete_many(statement: &str, keys: usize) -> Cow<'_, str> {
        let mut sql = String::with_capacity(statement.len() + 3 * keys + 2);
        sql.push_str(statement);
        sql.push('(');
        for i in 0..keys {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
        Cow::Owned(sql)
    }

    /// Binds the keys of a [`delete_many`](Self::delete_many) statement.
    fn bind_keys<'q>(query: BoundQuery<'q, Self::Db>, keys: &'q [StoreKey]) -> BoundQuery<'q, Self::Db>;
}

/// How the schema's statements run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Migration {
    /// In one transaction that first runs `lock`, if any, bound to the name
    /// `session-store:<table>`, so that concurrent migrations take turns.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    Transaction { lock: Option<&'static str> },
    /// One by one (MySQL commits each DDL statement on its own anyway).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    OneByOne,
}

/// One change to a table created by an earlier version:
/// [`migrate`](super::store::SqlStore::migrate) runs the schema's first statement (the
/// table), then each upgrade's `apply` if its `done` finds no row, then the rest of the
/// schema.
pub(crate) struct Upgrade {
    /// Returns a row when the table needs nothing of this upgrade.
    pub(crate) done: String,
    /// Makes the change.
    pub(crate) apply: String,
    /// Whether the change adds the session index column, whose live rows are then
    /// backfilled from their metadata.
    pub(crate) adds_index_key: bool,
}

/// Every statement of a store, for one table.
///
/// Each statement takes its arguments in the order listed on its field: `?` placeholders
/// (MySQL) in the order they appear, numbered ones (`$n`, `?n`) numbered in that order. A
/// statement is given `now` (ms, by the store's clock) wherever liveness matters, and
/// treats a row whose `expires_at` is not after it as absent.
pub(crate) struct Statements {
    /// The live row of a key: `key, now`; returns `meta, fields` (as text).
    pub(crate) load: String,
    /// A new row, or one that replaces only an expired row.
    pub(crate) create: Create,
    /// Merges the fields it carries into a live row: `meta, fields, index, expires_at, key,
    /// now`.
    pub(crate) update: String,
    /// A sliding refresh of a live row, leaving `fields` alone: `meta, index, expires_at,
    /// key, now`.
    pub(crate) touch: String,
    /// Moves a live row to a new key, merging fields: `new key, meta, fields, index,
    /// expires_at, old key, now`.
    pub(crate) rename: String,
    /// Finds a key's row if it is expired: `key, now`; returns a row or none.
    pub(crate) expired: String,
    /// Deletes a key's row if it is expired: `key, now`.
    pub(crate) remove_dead: String,
    /// Deletes a key's row: `key`.
    pub(crate) delete: String,
    /// A page of live rows in `id` order, ending with every row of the last 8-byte prefix:
    /// `bound, now, bound, now, limit`; returns `id, meta, fields` (as text).
    pub(crate) scan: String,
    /// Counts the live rows: `now`.
    pub(crate) count: String,
    /// Deletes rows by key: see [`Dialect::delete_many`] and [`Dialect::bind_keys`].
    pub(crate) delete_many: String,
    /// Deletes the live rows: `now`.
    pub(crate) clear_live: String,
    /// Deletes the expired rows: `now, now` (twice, for MySQL's positional placeholders).
    pub(crate) clear_dead: String,
    /// Deletes at most `batch` expired rows: `now, now, batch`.
    pub(crate) delete_expired: String,
    /// The live rows of an index: `index, now`; returns `id, meta, fields` (as text).
    pub(crate) list_by_index: String,
    /// Deletes the rows of an index.
    pub(crate) delete_by_index: DeleteByIndex,
    /// Sets the index of a row written before the column existed, if its `meta` is still
    /// the one read: `index, key, meta`.
    pub(crate) backfill: String,
}

/// How a store deletes the rows of an index: the live ones, reported, and those expired
/// longer ago than the expired-session retention, not reported. Both take `index, keep
/// (or null), now, now - retention` and return `id, expires_at` of each row.
pub(crate) enum DeleteByIndex {
    /// One `DELETE … RETURNING`.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    Returning(String),
    /// A transaction begun right after `isolation` (which sets the transaction's isolation
    /// level): `select`, a `SELECT … FOR UPDATE`, then a
    /// [`delete_many`](Statements::delete_many) of the keys it returned.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    LockThenDelete { isolation: &'static str, select: String },
}

/// How a store creates a row without ever overwriting a live one.
pub(crate) enum Create {
    /// One statement that inserts, or replaces an expired row (one row affected if it
    /// wrote): `key, expires_at, meta, fields, index, now`.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    Upsert(String),
    /// An insert, `key, expires_at, meta, fields, index`; and only if the key is taken, an
    /// update of that row if it is expired, `meta, fields, index, expires_at, key, now`.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    InsertOrReplaceDead { insert: String, replace_dead: String },
}
