//! The SQL stores: [`PostgresStore`](crate::PostgresStore) (feature `postgres`),
//! [`SqliteStore`](crate::SqliteStore) (feature `sqlite`) and
//! [`MySqlStore`](crate::MySqlStore) (feature `mysql`, MySQL 8 or MariaDB 10.5+), on
//! sqlx. What they share is here, one job per file:
//!
//! - `dialect.rs`: what differs between the databases, as the `Dialect` trait: the
//!   statements (and the order of their arguments), the schema, how to migrate;
//! - `store.rs`: every store operation, written once over a `Dialect` (`SqlStore<D>`), and
//!   the `sql_store!` macro that gives each public store its shared methods and traits;
//! - `table.rs`: table names, validated and quoted;
//! - `call.rs`: the call loop (timeout with pool acquire included, circuit breaker, retry
//!   of idempotent calls) and the mapping of sqlx's errors;
//! - `lease.rs`: the connections a store keeps between its calls, so that sqlx's pool does
//!   not check each one with a round trip when it hands it out and when it takes it back;
//! - `row.rs`: a [`Record`] as columns, and a row back as a record;
//! - `expiry.rs`: the background task that deletes expired rows;
//!
//! and each backend's file (`postgres.rs`, `sqlite.rs`, `mysql.rs`) holds only what is its
//! own: its `Dialect` (statements, schema), its public store, builder and docs, and how it
//! opens its pool.
//!
//! # Layout
//!
//! One row per session:
//!
//! | column | type | value |
//! |---|---|---|
//! | `id` | `BYTEA` / `BLOB` / `BINARY(32)`, primary key | the [`StoreKey`] (SHA-256 of the session ID, never the ID itself) |
//! | `expires_at` | `BIGINT` | the expiry (the earlier of the two deadlines) in ms since the Unix epoch |
//! | `meta` | bytes | the session's metadata in the [metadata format](crate::store#the-metadata-format); sealed with encryption at rest |
//! | `fields` | `JSONB` / `TEXT` / `JSON` | `{"<tag>": "<value>", …}`: one member per session field, `<tag>` its field tag (see [`store`](crate::store#the-record-format)) in 8 hex digits, `<value>` the base64 of a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's bytes |
//! | `index_key` | `BYTEA` / `BLOB` / `VARBINARY(32)`, nullable, indexed (partial, `WHERE index_key IS NOT NULL`, on PostgreSQL and SQLite) | the session's [`IndexKey`](crate::store::IndexKey) digest (never the value it hashes), null when it has none; written with `meta` by every statement that writes `meta`, so it is always the digest `meta` holds |
//! | `expires_minute` | `BIGINT`, generated from `expires_at / 60000`, indexed | the expiry to the minute, for the expiry task: a save that keeps the minute writes no index entry (PostgreSQL updates the row in place, InnoDB leaves its secondary indexes alone) |
//!
//! # Atomicity
//!
//! Liveness is judged by the store's clock: every statement is given `now` (ms) and
//! treats a row whose `expires_at` is not after it as absent, so a manual clock works and
//! skew between application servers and the database does not matter. Each operation is
//! one statement, atomic on its own:
//!
//! - **load**: `SELECT … WHERE id = ? AND expires_at > now`;
//! - **update** (a save, or a sliding refresh, which leaves `fields` alone):
//!   `UPDATE … SET expires_at, meta, fields = <merge>(fields, ?) WHERE id = ? AND
//!   expires_at > now`. The row lock serializes overlapping updates, and each merges only
//!   the members it carries into the object it finds, so two overlapping requests that
//!   change different fields both keep their change; a field set back to its default (a
//!   removal: an empty value) is a `null` member, which the merge drops (PostgreSQL:
//!   `jsonb_strip_nulls(fields || ?)`; SQLite's `json_patch` and MySQL's
//!   `JSON_MERGE_PATCH` drop `null` members themselves), and a create leaves it out; a
//!   deleted or expired row matches nothing and is not resurrected;
//! - **create**: an insert that replaces only an expired row (PostgreSQL and SQLite: one
//!   `INSERT … ON CONFLICT (id) DO UPDATE … WHERE expires_at <= now`; MySQL: an `INSERT`,
//!   and only if the key is taken, an `UPDATE … WHERE expires_at <= now` of that row), so a
//!   live session is never overwritten;
//! - **regenerate** (rename): one `UPDATE … SET id = <new>, expires_at, meta, fields =
//!   <merge> WHERE id = <old> AND expires_at > now`: the session moves and the old ID is
//!   dead in the same statement, and an update of the old ID racing it either lands before
//!   (and moves with it) or finds nothing. If a row holds the new key (a unique violation;
//!   with 256-bit random IDs, only ever an expired one in practice), an expired one is
//!   deleted and the move tried once more; a live one is left alone ([`Rename::TargetExists`]);
//! - **delete**: `DELETE … WHERE id = ?`;
//! - **list by index**: `SELECT … WHERE index_key = ? AND expires_at > now`, through the
//!   index on `index_key`: a cost proportional to that user's sessions;
//! - **delete by index**: PostgreSQL and SQLite: one `DELETE … WHERE index_key = ? [AND id
//!   <> keep] RETURNING id, expires_at`; MySQL, which has no `DELETE … RETURNING`: a
//!   transaction of `SELECT id, expires_at … FOR UPDATE` and a `DELETE` of the keys it
//!   returned. The live rows are deleted and reported, and so are deleted (unreported) the
//!   rows expired longer ago than the expired-session retention. The race rule of
//!   [`IndexStore`](crate::store::IndexStore) holds because a rename is one `UPDATE` of the
//!   row: the deletion waits for the row lock of a rename under way and then deletes the
//!   row under its new key (PostgreSQL checks the condition again on the row's new version;
//!   MySQL's locking read reads the latest rows, and its next-key locks keep a rename from
//!   adding a row of this index behind it), or the rename waits for the deletion and finds
//!   no source; SQLite runs one writer at a time.
//!
//! [`migrate`](crate::PostgresStore::migrate) adds `index_key` and its index to a table
//! created before it, then sets it on the live rows from their metadata (only where
//! `meta` is still the one read, so a write meanwhile wins): every session is in its index
//! from then on.
//!
//! Query operations page through the primary key (a cursor is the first 8 bytes of the
//! next digest), count with `count(*)`, and delete with `DELETE … WHERE id IN (…)`.
//!
//! Why a JSON object rather than a second table with a row per field: the merge is then one
//! `UPDATE` of one row on all three databases. With a row per field, an update is an update
//! of the session row plus an upsert of each field: one statement on PostgreSQL (a
//! data-modifying `WITH`), but a transaction of several on SQLite and MySQL, which have no
//! data-modifying `WITH`. The cost is base64 (a third more bytes per value) and a JSON merge
//! of a few hundred bytes per write, inside the database.

mod call;
mod dialect;
mod expiry;
mod lease;
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod row;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod store;
mod table;

use std::{sync::Arc, time::Duration};

pub use self::expiry::ExpiryTask;
use self::{
    call::Core,
    table::{Quote, Table},
};
#[cfg(doc)]
use crate::store::{Record, Rename, StoreKey};
use crate::{
    Error,
    clock::{Clock, SystemClock},
    crypto::{KeyRing, Purpose},
    resilience::{BreakerConfig, CircuitBreaker, RetryPolicy},
    store::value::{Sealing, ValueCodec},
};

/// Keys one `DELETE … WHERE id IN (…)` names at most.
const DELETE_BATCH: usize = 500;

/// Where a store's pool comes from.
#[cfg(any(feature = "postgres", feature = "mysql"))]
enum Source<P> {
    /// The application's own pool.
    Pool(P),
    /// A URL: the store opens a pool of its own.
    Url(String),
}

/// What every SQL store builder holds.
struct Options {
    table: String,
    timeout: Duration,
    retry: RetryPolicy,
    breaker: BreakerConfig,
    compress_above: Option<usize>,
    encryption: Option<KeyRing>,
    expired_retention: Duration,
    clock: Arc<dyn Clock>,
    max_connections: u32,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("compress_above", &self.compress_above)
            .field("encrypted", &self.encryption.is_some())
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// A builder's `Debug`: whether the store opens a pool of its own, and the options;
    /// never a URL, which may hold a password.
    fn debug_builder(&self, f: &mut std::fmt::Formatter<'_>, builder: &str, own_pool: bool) -> std::fmt::Result {
        f.debug_struct(builder)
            .field("own_pool", &own_pool)
            .field("options", self)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            table: "sessions".to_owned(),
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            compress_above: None,
            encryption: None,
            expired_retention: Duration::ZERO,
            clock: Arc::new(SystemClock),
            max_connections: 10,
        }
    }
}

impl Options {
    /// Validates the options into what the store keeps.
    fn core(self, backend: &'static str, quote: Quote) -> Result<Core, Error> {
        if self.timeout.is_zero() {
            return Err(Error::Config(
                "the SQL store's command timeout must be greater than zero".into(),
            ));
        }
        let table = Table::parse(&self.table, quote)?;
        let purpose = Purpose::store(backend).map_err(|error| Error::Config(error.to_string()))?;
        Ok(Core {
            backend,
            table,
            clock: self.clock,
            retention_ms: crate::clock::duration_ms(self.expired_retention),
            timeout: self.timeout,
            retry: self.retry,
            breaker: CircuitBreaker::new(self.breaker, call::breaker_changed(backend)),
            values: ValueCodec {
                compress_above: self.compress_above,
                sealing: self.encryption.map(|ring| Sealing { ring, purpose }),
            },
        })
    }
}

/// The setters every SQL store builder shares, documented once.
macro_rules! builder_options {
    ($backend:literal, $store:literal) => {
        /// The session table (default `sessions`): `table` or `schema.table`, each part an
        /// ASCII letter or `_` followed by letters, digits or `_`, at most 48 characters.
        /// Any other name is refused by [`build`](Self::build), so no name can carry SQL.
        /// Stores with different tables share a database without seeing each other's
        /// sessions.
        pub fn table(mut self, name: impl Into<String>) -> Self {
            self.options.table = name.into();
            self
        }

        /// The longest one call may take, waiting for a pooled connection included
        /// (default 1 s); past it the call fails with [`Error::Timeout`](crate::Error::Timeout).
        pub fn command_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.timeout = timeout;
            self
        }

        /// How loads, deletes and query operations are retried after a backend failure
        /// (default [`RetryPolicy::default`](crate::resilience::RetryPolicy::default)).
        /// Writes are not retried: one that timed out may have been applied.
        pub fn retry(mut self, policy: crate::resilience::RetryPolicy) -> Self {
            self.options.retry = policy;
            self
        }

        /// When the circuit breaker opens and how long it stays open (default
        /// [`BreakerConfig::default`](crate::resilience::BreakerConfig::default)).
        pub fn circuit_breaker(mut self, config: crate::resilience::BreakerConfig) -> Self {
            self.options.breaker = config;
            self
        }

        /// Gzip field values longer than this many bytes (default `None`: never). With
        /// encryption, values are compressed before sealing; then compressing a value that
        /// mixes attacker-chosen data with secrets can leak them through its length.
        pub fn compress_above(mut self, bytes: Option<usize>) -> Self {
            self.options.compress_above = bytes;
            self
        }

        #[doc = concat!("Seals every stored value with this key ring, under the purpose `store:", $backend, "` (see")]
        #[doc = concat!("[encryption at rest](crate::", $store, "#encryption-at-rest)). Default: none.")]
        /// Turning encryption on (or off) makes existing sessions unreadable.
        pub fn encryption(mut self, ring: crate::crypto::KeyRing) -> Self {
            self.options.encryption = Some(ring);
            self
        }

        /// How long an expired row is kept past its deadline (default zero): the expiry
        /// task leaves it until then, so that
        /// [`SessionProvider::load_outcome`](crate::SessionProvider::load_outcome) can tell
        /// "expired" from "unknown". It is never loaded, updated or counted meanwhile.
        pub fn expired_retention(mut self, retention: std::time::Duration) -> Self {
            self.options.expired_retention = retention;
            self
        }

        /// The clock that decides expiry; share it with the provider's configuration.
        pub fn clock(mut self, clock: impl crate::Clock) -> Self {
            self.options.clock = std::sync::Arc::new(clock);
            self
        }
    };
}
use builder_options;

/// The scan cursor's lower bound on the digest: its 8 bytes, then zeros.
fn cursor_bound(cursor: u64) -> [u8; 32] {
    let mut bound = [0u8; 32];
    bound[..8].copy_from_slice(&cursor.to_be_bytes());
    bound
}

/// The cursor after a page whose last digest is `last`, if the page was full; `None`
/// when the scan is complete. A page ends with every row of its last 8-byte prefix.
fn next_cursor(last: Option<&[u8]>, rows: usize, batch: usize) -> Option<u64> {
    if rows < batch.max(1) {
        return None;
    }
    let prefix: [u8; 8] = last?.get(..8)?.try_into().ok()?;
    u64::from_be_bytes(prefix).checked_add(1)
}

/// A digest read back from the `id` column.
fn store_key(id: &[u8]) -> Option<crate::id::StoreKey> {
    Some(crate::id::StoreKey::from_bytes(id.try_into().ok()?))
}

/// Whether an error is the database refusing a duplicate key.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_page_through_digest_prefixes() {
        assert_eq!(cursor_bound(0), [0; 32]);
        assert_eq!(&cursor_bound(0x0102_0304_0506_0708)[..9], &[1, 2, 3, 4, 5, 6, 7, 8, 0]);
        let last = [0xab; 32];
        assert_eq!(next_cursor(Some(&last), 10, 10), Some(0xabab_abab_abab_abac));
        assert_eq!(next_cursor(Some(&last), 9, 10), None, "a short page is the last");
        assert_eq!(next_cursor(Some(&[0xff; 32]), 10, 10), None, "nothing after the top");
        assert_eq!(next_cursor(None, 0, 0), None);
    }
}
