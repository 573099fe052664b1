//! Every store operation, written once over a [`Dialect`]: what `PostgresStore`,
//! `SqliteStore` and `MySqlStore` run. Each operation is one call of the call loop
//! (`call.rs`); see the module docs for the statements and their atomicity.

use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool, Row as _, Type, pool::PoolOptions,
};

use super::{
    DELETE_BATCH,
    call::{Core, db_ms, decode_error, unexpected},
    cursor_bound,
    dialect::{BoundQuery, Create, DeleteByIndex, Dialect, Migration, Statements},
    expiry::EXPIRY_BATCH,
    is_unique_violation,
    lease::Lease,
    next_cursor,
    row::Columns,
    store_key,
    table::Table,
};
use crate::{
    Error,
    id::StoreKey,
    index::IndexKey,
    store::{Record, Rename, ScanPage},
};

/// How long `migrate` may take, instead of the command timeout.
const MIGRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Rows one page of the index backfill reads.
const BACKFILL_BATCH: usize = 500;

/// A SQL store on dialect `D`: its pool, what every store holds, and its statements. The
/// public stores wrap it in an `Arc` (see [`sql_store!`](sql_store)).
pub(crate) struct SqlStore<D: Dialect> {
    pub(crate) pool: Pool<D::Db>,
    pub(crate) core: Core,
    sql: Statements,
    /// The connections the session operations run on.
    lease: Lease<D::Db>,
    /// The turn of the session writes, where the database takes one writer at a time.
    writer: tokio::sync::Mutex<()>,
}

/// The bytes a key is stored as in the `id` column.
fn id(key: &StoreKey) -> &[u8] {
    &key.as_bytes()[..]
}

impl<D: Dialect> SqlStore<D> {
    /// A store on `pool`, with its statements built for the validated table.
    pub(crate) fn new(pool: Pool<D::Db>, core: Core) -> Self {
        let sql = D::statements(&core.table);
        let lease = Lease::new(pool.clone(), D::KEEP_CONNECTIONS);
        Self {
            pool,
            core,
            sql,
            lease,
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// The schema of a store on `table`, as SQL statements separated by `;`.
    pub(crate) fn schema(table: &str) -> Result<String, Error> {
        Ok(D::schema(&Table::parse(table, D::QUOTE)?).join(";\n") + ";\n")
    }
}

/// Opens a pool that connects lazily, and one connection through it, so a wrong URL,
/// password or unreachable server is reported at start-up.
pub(crate) async fn connect<DB: Database>(
    pool: PoolOptions<DB>,
    options: <DB::Connection as Connection>::Options,
    core: &Core,
) -> Result<Pool<DB>, Error> {
    let pool = pool.acquire_timeout(core.timeout).connect_lazy_with(options);
    core.call("connect", true, || async { pool.acquire().await.map(drop) })
        .await?;
    Ok(pool)
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<D: Dialect> SqlStore<D> {
    /// Builds a store on the application's pool, or on one of its own opened from a URL
    /// with at most `max_connections` (see [`connect`]).
    pub(crate) async fn open(source: super::Source<Pool<D::Db>>, options: super::Options) -> Result<Self, Error> {
        let max_connections = options.max_connections.max(1);
        let core = options.core(D::BACKEND, D::QUOTE)?;
        let pool = match source {
            super::Source::Pool(pool) => pool,
            super::Source::Url(url) => {
                let options = url
                    .parse()
                    .map_err(|error| Error::Config(format!("invalid {} URL: {error}", D::NAME)))?;
                connect(PoolOptions::new().max_connections(max_connections), options, &core).await?
            }
        };
        Ok(Self::new(pool, core))
    }
}

// What every statement needs of the database: the pool runs statements, and keys, `meta`
// (bytes), `fields` (text) and ms (`BIGINT`) bind and decode; `index_key` binds as bytes or
// null.
impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q [u8]>: Encode<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    /// The store's turn to write, where the database takes one writer at a time (see
    /// [`Dialect::ONE_WRITER`]); taken before a connection, so waiting writers do not hold
    /// the readers' connections.
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if D::ONE_WRITER {
            Some(self.writer.lock().await)
        } else {
            None
        }
    }

    /// Runs the write `query` on the pool, in the store's turn; how many rows it changed.
    async fn run(&self, query: BoundQuery<'_, D::Db>) -> Result<u64, sqlx::Error> {
        let _turn = self.turn().await;
        Ok(D::rows_affected(&query.execute(&self.pool).await?))
    }

    /// Runs the write `query` builds on a connection of the store's (`lease.rs`), in the
    /// store's turn; how many rows it changed. A connection handed over unchecked that
    /// failed is replaced by one the pool checks, and the statement run once more.
    async fn execute<'q>(&self, query: impl Fn() -> BoundQuery<'q, D::Db>) -> Result<u64, sqlx::Error> {
        let _turn = self.turn().await;
        let mut held = self.lease.take().await?;
        let mut result = query().execute(held.connection()).await;
        if held.should_retry(&result) {
            held.finish(&result);
            held = self.lease.take_checked().await?;
            result = query().execute(held.connection()).await;
        }
        held.finish(&result);
        Ok(D::rows_affected(&result?))
    }

    /// As [`execute`](Self::execute), for a statement that returns at most one row.
    async fn fetch_optional<'q>(
        &self,
        query: impl Fn() -> BoundQuery<'q, D::Db>,
    ) -> Result<Option<<D::Db as Database>::Row>, sqlx::Error> {
        let mut held = self.lease.take().await?;
        let mut result = query().fetch_optional(held.connection()).await;
        if held.should_retry(&result) {
            held.finish(&result);
            held = self.lease.take_checked().await?;
            result = query().fetch_optional(held.connection()).await;
        }
        held.finish(&result);
        result
    }

    /// Creates the table and its indexes if they do not exist, as [`Dialect::MIGRATION`]
    /// says; adds the index column to a table created before it, then fills it in for the
    /// live rows (see [`backfill`](Self::backfill)).
    pub(crate) async fn migrate(&self) -> Result<(), Error> {
        let statements = D::schema(&self.core.table);
        let lock_name = format!("session-store:{}", self.core.table.display());
        // Set once this call added the column, whatever a retried attempt finds after.
        let added = std::sync::atomic::AtomicBool::new(false);
        // Bringing a large table of an earlier version up to date rewrites it, which takes
        // longer than a command; a timed-out DDL may still run on the server, so it is not
        // retried.
        self.core
            .call_within("migrate", false, MIGRATION_TIMEOUT, || async {
                match D::MIGRATION {
                    Migration::Transaction { lock } => {
                        let mut transaction = self.pool.begin().await?;
                        if let Some(lock) = lock {
                            sqlx::query(lock)
                                .bind(lock_name.as_str())
                                .execute(&mut *transaction)
                                .await?;
                        }
                        let added_now = self.run_schema(&mut transaction, &statements).await?;
                        transaction.commit().await?;
                        added.fetch_or(added_now, std::sync::atomic::Ordering::Relaxed);
                    }
                    Migration::OneByOne => {
                        let mut connection = self.pool.acquire().await?;
                        let added_now = self.run_schema(&mut connection, &statements).await?;
                        added.fetch_or(added_now, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Ok(())
            })
            .await?;
        if added.into_inner() {
            let filled = self.backfill().await?;
            tracing::info!(
                store = self.core.backend,
                filled,
                "added the session index column and indexed the live sessions"
            );
        }
        Ok(())
    }

    /// The schema's statements on `connection`, with the upgrades a table of an earlier
    /// version needs run between the table and the rest; whether one added the session
    /// index column.
    async fn run_schema(
        &self,
        connection: &mut <D::Db as Database>::Connection,
        statements: &[String],
    ) -> Result<bool, sqlx::Error> {
        let (table, rest) = statements.split_first().expect("a schema starts with its table");
        sqlx::query(table).execute(&mut *connection).await?;
        let mut added = false;
        for upgrade in D::upgrades(&self.core.table) {
            if sqlx::query(&upgrade.done)
                .fetch_optional(&mut *connection)
                .await?
                .is_some()
            {
                continue;
            }
            match sqlx::query(&upgrade.apply).execute(&mut *connection).await {
                Ok(_) => added |= upgrade.adds_index_key,
                // Another process's migration made it meanwhile (MySQL, which takes no lock).
                Err(error) => {
                    let there = sqlx::query(&upgrade.done).fetch_optional(&mut *connection).await;
                    if !matches!(there, Ok(Some(_))) {
                        return Err(error);
                    }
                }
            }
        }
        for statement in rest {
            sqlx::query(statement).execute(&mut *connection).await?;
        }
        Ok(added)
    }

    /// Sets `index_key` on the live rows written before the column existed, from the index
    /// their metadata holds; returns how many. Each row is set only if its `meta` is still
    /// the one read, so a write meanwhile (which sets the column itself) wins.
    async fn backfill(&self) -> Result<u64, Error> {
        let mut filled = 0;
        let mut cursor = Some(0);
        while let Some(at) = cursor {
            let now_ms = self.core.clock.now_ms();
            let rows = self.scan_rows("backfill", at, BACKFILL_BATCH, now_ms).await?;
            let mut last = None;
            for row in &rows {
                let id: &[u8] = row.try_get(0).map_err(decode_error)?;
                let meta: &[u8] = row.try_get(1).map_err(decode_error)?;
                last = Some(id);
                let Some(key) = store_key(id) else {
                    return Err(unexpected("a session row's id is not a 32-byte digest"));
                };
                // An unreadable row is no session: nothing to index.
                let Ok(Some(index)) = self.core.values.decode_meta(&key, meta, now_ms).map(|meta| meta.index) else {
                    continue;
                };
                filled += self
                    .core
                    .call("backfill", true, || async {
                        self.run(
                            sqlx::query(&self.sql.backfill)
                                .bind(&index.as_bytes()[..])
                                .bind(id)
                                .bind(meta),
                        )
                        .await
                    })
                    .await?;
            }
            cursor = next_cursor(last, rows.len(), BACKFILL_BATCH);
        }
        Ok(filled)
    }

    /// Deletes the rows expired longer ago than the retention, in statements of at most
    /// [`EXPIRY_BATCH`] rows.
    pub(crate) async fn delete_expired(&self) -> Result<u64, Error> {
        let mut deleted = 0;
        loop {
            // Rows expired within the retention stay, so a load can still tell "expired".
            let before = self
                .core
                .now()
                .saturating_sub(i64::try_from(self.core.retention_ms).unwrap_or(i64::MAX));
            let batch = self
                .core
                .call("delete_expired", true, || async {
                    self.run(
                        sqlx::query(&self.sql.delete_expired)
                            .bind(before)
                            .bind(before)
                            .bind(EXPIRY_BATCH),
                    )
                    .await
                })
                .await?;
            deleted += batch;
            if batch < EXPIRY_BATCH.unsigned_abs() {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }

    pub(crate) async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        let now_ms = self.core.clock.now_ms();
        let row = self
            .core
            .call("load", true, || {
                self.fetch_optional(|| sqlx::query(&self.sql.load).bind(id(key)).bind(db_ms(now_ms)))
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let meta: &[u8] = row.try_get(0).map_err(decode_error)?;
        let fields: &str = row.try_get(1).map_err(decode_error)?;
        Ok(self.core.record(key, meta, fields, now_ms))
    }

    /// Whether the key's row is there but expired (kept for the expired-session retention).
    pub(crate) async fn expired(&self, key: &StoreKey) -> Result<bool, Error> {
        let now = self.core.now();
        let row = self
            .core
            .call("expired", true, || {
                self.fetch_optional(|| sqlx::query(&self.sql.expired).bind(id(key)).bind(now))
            })
            .await?;
        Ok(row.is_some())
    }

    pub(crate) async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        let columns = self.core.columns(key, record, false)?;
        let now = self.core.now();
        self.core
            .call("create", false, || async {
                let (insert, replace_dead) = match &self.sql.create {
                    Create::Upsert(upsert) => {
                        return Ok(self.execute(|| Self::insert(upsert, key, &columns).bind(now)).await? == 1);
                    }
                    Create::InsertOrReplaceDead { insert, replace_dead } => (insert, replace_dead),
                };
                match self.execute(|| Self::insert(insert, key, &columns)).await {
                    Ok(_) => return Ok(true),
                    Err(error) if is_unique_violation(&error) => {}
                    Err(error) => return Err(error),
                }
                // The key is taken: replace the row only if it is expired.
                let replaced = || {
                    sqlx::query(replace_dead)
                        .bind(columns.meta.as_slice())
                        .bind(columns.fields.as_str())
                        .bind(columns.index())
                        .bind(columns.expires_at)
                        .bind(id(key))
                        .bind(now)
                };
                Ok(self.execute(replaced).await? == 1)
            })
            .await
    }

    /// `sql` with a new row's `key, expires_at, meta, fields, index` bound.
    fn insert<'q>(sql: &'q str, key: &'q StoreKey, columns: &'q Columns) -> BoundQuery<'q, D::Db> {
        sqlx::query(sql)
            .bind(id(key))
            .bind(columns.expires_at)
            .bind(columns.meta.as_slice())
            .bind(columns.fields.as_str())
            .bind(columns.index())
    }

    pub(crate) async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        let columns = self.core.columns(key, update, true)?;
        let now = self.core.now();
        self.core
            .call("update", false, || async {
                let query = || {
                    let query = if columns.has_fields() {
                        sqlx::query(&self.sql.update)
                            .bind(columns.meta.as_slice())
                            .bind(columns.fields.as_str())
                    } else {
                        sqlx::query(&self.sql.touch).bind(columns.meta.as_slice())
                    };
                    query
                        .bind(columns.index())
                        .bind(columns.expires_at)
                        .bind(id(key))
                        .bind(now)
                };
                Ok(self.execute(query).await? == 1)
            })
            .await
    }

    /// The rename statement; `Ok(None)` when a row holds the target key.
    async fn try_rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        columns: &Columns,
        now: i64,
    ) -> Result<Option<Rename>, sqlx::Error> {
        let moved = || {
            sqlx::query(&self.sql.rename)
                .bind(id(to))
                .bind(columns.meta.as_slice())
                .bind(columns.fields.as_str())
                .bind(columns.index())
                .bind(columns.expires_at)
                .bind(id(from))
                .bind(now)
        };
        match self.execute(moved).await {
            Ok(1) => Ok(Some(Rename::Renamed)),
            Ok(_) => Ok(Some(Rename::SourceMissing)),
            Err(error) if is_unique_violation(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub(crate) async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        let columns = self.core.columns(to, update, true)?;
        let now = self.core.now();
        self.core
            .call("regenerate", false, || async {
                if let Some(outcome) = self.try_rename(from, to, &columns, now).await? {
                    return Ok(outcome);
                }
                // A row holds the new key: make room if it is expired, else keep it.
                let removed = self
                    .execute(|| sqlx::query(&self.sql.remove_dead).bind(id(to)).bind(now))
                    .await?;
                if removed == 0 {
                    return Ok(Rename::TargetExists);
                }
                Ok(self
                    .try_rename(from, to, &columns, now)
                    .await?
                    .unwrap_or(Rename::TargetExists))
            })
            .await
    }

    pub(crate) async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        self.core
            .call("delete", true, || async {
                Ok(self.execute(|| sqlx::query(&self.sql.delete).bind(id(key))).await? > 0)
            })
            .await
    }

    /// One page of live rows from `cursor`: about `batch` of them (see [`Statements::scan`]).
    async fn scan_rows(
        &self,
        op: &'static str,
        cursor: u64,
        batch: usize,
        now_ms: u64,
    ) -> Result<Vec<<D::Db as sqlx::Database>::Row>, Error> {
        let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.core
            .call(op, true, || async {
                let (bound, now) = (cursor_bound(cursor), db_ms(now_ms));
                sqlx::query(&self.sql.scan)
                    .bind(&bound[..])
                    .bind(now)
                    .bind(&bound[..])
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            })
            .await
    }

    pub(crate) async fn scan(&self, cursor: u64, batch: usize) -> Result<ScanPage, Error> {
        let now_ms = self.core.clock.now_ms();
        let rows = self.scan_rows("scan", cursor, batch, now_ms).await?;
        let mut records = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let (key, record) = self.row_record(row, now_ms)?;
            last = Some(key);
            records.extend(record.map(|record| (key, record)));
        }
        Ok(ScanPage {
            records,
            next: next_cursor(last.as_ref().map(|key| &key.as_bytes()[..]), rows.len(), batch),
        })
    }

    /// On `connection`, a transaction at the `isolation` level that runs `select` (a
    /// locking read of `id, expires_at`) and deletes the rows it returned; those rows.
    async fn lock_then_delete(
        &self,
        connection: &mut <D::Db as Database>::Connection,
        isolation: &str,
        select: BoundQuery<'_, D::Db>,
    ) -> Result<Vec<(StoreKey, i64)>, sqlx::Error> {
        sqlx::query(isolation).execute(&mut *connection).await?;
        let mut transaction = connection.begin().await?;
        let rows = deleted_rows::<D>(&select.fetch_all(&mut *transaction).await?)?;
        let keys: Vec<StoreKey> = rows.iter().map(|(key, _)| *key).collect();
        for chunk in keys.chunks(DELETE_BATCH) {
            let sql = D::delete_many(&self.sql.delete_many, chunk.len());
            D::bind_keys(sqlx::query(&sql), chunk)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(rows)
    }

    /// A row of `id, meta, fields` as its key and, if it reads as a live session, record.
    fn row_record(&self, row: &<D::Db as Database>::Row, now_ms: u64) -> Result<(StoreKey, Option<Record>), Error> {
        let id: &[u8] = row.try_get(0).map_err(decode_error)?;
        let meta: &[u8] = row.try_get(1).map_err(decode_error)?;
        let fields: &str = row.try_get(2).map_err(decode_error)?;
        let Some(key) = store_key(id) else {
            return Err(unexpected("a session row's id is not a 32-byte digest"));
        };
        Ok((key, self.core.record(&key, meta, fields, now_ms)))
    }

    pub(crate) async fn list_by_index(&self, index: &IndexKey) -> Result<Vec<(StoreKey, Record)>, Error> {
        let now_ms = self.core.clock.now_ms();
        let rows = self
            .core
            .call("list_by_index", true, || async {
                sqlx::query(&self.sql.list_by_index)
                    .bind(&index.as_bytes()[..])
                    .bind(db_ms(now_ms))
                    .fetch_all(&self.pool)
                    .await
            })
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            if let (key, Some(record)) = self.row_record(row, now_ms)?
                && record.meta.index.as_ref() == Some(index)
            {
                records.push((key, record));
            }
        }
        Ok(records)
    }

    /// Deletes the live rows of `index` but `keep`'s, and those expired longer ago than the
    /// retention (rows expired within it stay, so a load can still tell "expired"); returns
    /// the live ones' keys. Not retried: a retry after a timeout would find them gone and
    /// report nothing.
    pub(crate) async fn delete_by_index(
        &self,
        index: &IndexKey,
        keep: Option<&StoreKey>,
    ) -> Result<Vec<StoreKey>, Error> {
        let now = self.core.now();
        let before = now.saturating_sub(i64::try_from(self.core.retention_ms).unwrap_or(i64::MAX));
        let (index, keep) = (&index.as_bytes()[..], keep.map(id));
        let query = |sql| sqlx::query(sql).bind(index).bind(keep).bind(now).bind(before);
        let rows = self
            .core
            .call("delete_by_index", false, || async {
                let (isolation, select) = match &self.sql.delete_by_index {
                    DeleteByIndex::Returning(delete) => {
                        let _turn = self.turn().await;
                        return deleted_rows::<D>(&query(delete).fetch_all(&self.pool).await?);
                    }
                    DeleteByIndex::LockThenDelete { isolation, select } => (isolation, select),
                };
                let mut connection = self.pool.acquire().await?;
                self.lock_then_delete(&mut connection, isolation, query(select)).await
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(key, _)| key)
            .collect())
    }

    pub(crate) async fn count(&self) -> Result<usize, Error> {
        let now = self.core.now();
        let count: i64 = self
            .core
            .call("count", true, || async {
                let row = sqlx::query(&self.sql.count).bind(now).fetch_one(&self.pool).await?;
                row.try_get(0)
            })
            .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    pub(crate) async fn delete_many(&self, keys: &[StoreKey]) -> Result<usize, Error> {
        let mut deleted = 0;
        for chunk in keys.chunks(DELETE_BATCH) {
            let sql = D::delete_many(&self.sql.delete_many, chunk.len());
            deleted += self
                .core
                .call("delete_many", true, || async {
                    self.run(D::bind_keys(sqlx::query(&sql), chunk)).await
                })
                .await?;
        }
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    pub(crate) async fn clear(&self) -> Result<usize, Error> {
        let now = self.core.now();
        let live = self
            .core
            .call("clear", false, || async {
                let live = self.run(sqlx::query(&self.sql.clear_live).bind(now)).await?;
                self.run(sqlx::query(&self.sql.clear_dead).bind(now).bind(now)).await?;
                Ok(live)
            })
            .await?;
        Ok(usize::try_from(live).unwrap_or(usize::MAX))
    }
}

/// The `id, expires_at` rows of a deletion by index.
fn deleted_rows<D: Dialect>(rows: &[<D::Db as Database>::Row]) -> Result<Vec<(StoreKey, i64)>, sqlx::Error>
where
    for<'q> &'q [u8]: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Decode<'q, D::Db> + Type<D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    rows.iter()
        .map(|row| {
            let key = store_key(row.try_get(0)?)
                .ok_or_else(|| sqlx::Error::Decode("a session row's id is not a 32-byte digest".into()))?;
            Ok((key, row.try_get(1)?))
        })
        .collect()
}

/// What every public SQL store is on top of its `Arc<SqlStore<D>>` (the tuple's field):
/// `Debug`, the methods documented alike on all three, and the store traits, each
/// forwarding to the [`SqlStore`].
macro_rules! sql_store {
    ($store:ident, $pool:ty) => {
        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($store)).field(&self.0.core).finish()
            }
        }

        impl $store {
            /// The pool the store uses.
            pub fn pool(&self) -> &$pool {
                &self.0.pool
            }

            /// The circuit breaker's state, e.g. for a health check.
            pub fn breaker_state(&self) -> crate::resilience::BreakerState {
                self.0.core.breaker.state()
            }

            /// Deletes the expired rows now (those expired longer ago than the expired-session
            /// retention), in statements of at most 1000 rows; returns how many.
            ///
            /// # Errors
            ///
            /// As any call; rows deleted before a failure stay deleted.
            pub async fn delete_expired(&self) -> Result<u64, crate::Error> {
                self.0.delete_expired().await
            }

            /// Starts a task that calls [`delete_expired`](Self::delete_expired) every `every`
            /// (the first time after one interval), until the handle is stopped or dropped.
            /// Failures are logged and tried again at the next interval.
            pub fn spawn_expiry_task(&self, every: std::time::Duration) -> crate::ExpiryTask {
                let store = self.clone();
                crate::ExpiryTask::spawn(self.0.core.backend, every, move || {
                    let store = store.clone();
                    async move { store.delete_expired().await }
                })
            }
        }

        impl crate::store::SessionStore for $store {
            async fn load(&self, key: &crate::id::StoreKey) -> Result<Option<crate::store::Record>, crate::Error> {
                self.0.load(key).await
            }

            async fn expired(&self, key: &crate::id::StoreKey) -> Result<bool, crate::Error> {
                self.0.expired(key).await
            }

            async fn create(
                &self,
                key: &crate::id::StoreKey,
                record: &crate::store::Record,
            ) -> Result<bool, crate::Error> {
                self.0.create(key, record).await
            }

            async fn update(
                &self,
                key: &crate::id::StoreKey,
                update: &crate::store::Record,
            ) -> Result<bool, crate::Error> {
                self.0.update(key, update).await
            }

            async fn rename(
                &self,
                from: &crate::id::StoreKey,
                to: &crate::id::StoreKey,
                update: &crate::store::Record,
            ) -> Result<crate::store::Rename, crate::Error> {
                self.0.rename(from, to, update).await
            }

            async fn delete(&self, key: &crate::id::StoreKey) -> Result<bool, crate::Error> {
                self.0.delete(key).await
            }
        }

        impl crate::store::IndexStore for $store {
            async fn list_by_index(
                &self,
                index: &crate::store::IndexKey,
            ) -> Result<Vec<(crate::id::StoreKey, crate::store::Record)>, crate::Error> {
                self.0.list_by_index(index).await
            }

            async fn delete_by_index(
                &self,
                index: &crate::store::IndexKey,
                keep: Option<&crate::id::StoreKey>,
            ) -> Result<Vec<crate::id::StoreKey>, crate::Error> {
                self.0.delete_by_index(index, keep).await
            }
        }

        impl crate::store::QueryStore for $store {
            async fn scan(&self, cursor: u64, batch: usize) -> Result<crate::store::ScanPage, crate::Error> {
                self.0.scan(cursor, batch).await
            }

            async fn count(&self) -> Result<usize, crate::Error> {
                self.0.count().await
            }

            async fn delete_many(&self, keys: &[crate::id::StoreKey]) -> Result<usize, crate::Error> {
                self.0.delete_many(keys).await
            }

            async fn clear(&self) -> Result<usize, crate::Error> {
                self.0.clear().await
            }
        }
    };
}
pub(crate) use sql_store;
