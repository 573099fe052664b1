//! The clustered store: a local cache per application node in front of the Redis store.
//! What it promises is told once, on [`ClusteredStore`] (its "Coherence" section);
//! `cache.rs` is the local cache, `tracker.rs` keeps the bookkeeping that the promises rest
//! on, and `listener.rs` the invalidation connections.

mod cache;
mod listener;
mod tracker;

use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError, atomic::Ordering::Relaxed},
    time::Duration,
};

use tokio::sync::Notify;

use self::{
    cache::LocalCache,
    tracker::{Basis, Snapshot, Tracker, Write},
};
use crate::{
    Error,
    id::StoreKey,
    store::{
        IndexKey, IndexStore, QueryStore, Record, Rename, Revision, ScanPage, SessionStore,
        redis::{RedisStore, RedisStoreBuilder, tracking::NodeSettings},
    },
};

/// Locks one of the store's mutexes, poisoned or not: each critical section of the cache and
/// the tracker is one map operation (or a few that a panic cannot interrupt), so a panic
/// elsewhere cannot leave it half done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A cached record, its revision, and the state its load started from.
struct Entry {
    record: Record,
    revision: Revision,
    snapshot: Snapshot,
}

/// What the store, its listeners and its supervisor share.
struct Shared {
    /// The Redis store this node's writes go through, signed as this node's.
    store: RedisStore,
    /// The same store for [`ClusteredStore::redis`]: its writes are signed as another
    /// writer's, since this node does not track them.
    redis: RedisStore,
    cache: LocalCache<Entry>,
    /// How the invalidation connections reach each primary (TLS included), made once.
    nodes: NodeSettings,
    tracker: Tracker,
    /// Signalled when an installed invalidation connection ends.
    lost: Notify,
    /// The `CLIENT SETNAME` of this store's invalidation connections.
    name: String,
    /// Tests: drop every invalidation, as if each message were lost.
    #[cfg(test)]
    deaf: std::sync::atomic::AtomicBool,
    /// Tests: how many invalidations `deaf` has dropped.
    #[cfg(test)]
    dropped: std::sync::atomic::AtomicUsize,
}

/// A [`RedisStore`] (one server or a Redis Cluster) with a bounded local cache on each
/// application node, kept coherent by invalidations that Redis itself pushes (feature
/// `clustered`).
///
/// ```text
///   node A                              node B
///   ┌──────────────────────────┐        ┌──────────────────────────┐
///   │ ClusteredStore           │        │ ClusteredStore           │
///   │  local cache             │        │  local cache             │
///   │  hit: 0 round trips      │        │  hit: 0 round trips      │
///   └──┬────────────────▲──────┘        └──┬────────────────▲──────┘
///      │ loads (miss),  │ invalidations    │ loads (miss),  │ invalidations
///      │ every write    │ (RESP3 push)     │ every write    │ (RESP3 push)
///   ┌──▼────────────────┴──────────────────▼────────────────┴──────┐
///   │ Redis, or each primary of a Redis Cluster                    │
///   │  CLIENT TRACKING ON BCAST PREFIX <prefix>: any change of a   │
///   │  key under the prefix is pushed to every node's listener     │
///   └──────────────────────────────────────────────────────────────┘
/// ```
///
/// # What a request costs
///
/// - a load that finds a valid local entry: no round trip;
/// - a load that misses: the Redis store's one round trip, and the result is cached;
/// - every write goes to Redis as with [`RedisStore`]. A create, and an update (or sliding
///   refresh) of a session cached and valid when the write began, leave the written
///   record in the node's cache, so a read-modify-write request costs one round trip; a
///   regenerate or delete drops the entry. Query and bulk operations go to Redis.
///
/// # Coherence
///
/// The invariants, stated once here (the README, `tracker.rs` and `listener.rs` refer to
/// this list):
///
/// 1. **Only Redis invalidates.** Invalidations arrive on RESP3 connections in `CLIENT
///    TRACKING ON BCAST PREFIX <prefix>` mode, one per primary, which only Redis writes
///    to; only key names that parse as this store's keys are applied.
/// 2. **A write on node A is seen by node B as soon as A's save returns.** Redis writes
///    the invalidation to B before it replies to A, and B serves a hit only once its
///    invalidation connections have applied every byte Redis had written to them when the
///    load began (counted, without a round trip; it waits for them at most 50 ms, then
///    loads from Redis instead). Bytes that arrive later do not hold it up, so a busy
///    connection does not turn hits into misses. (This holds on one host, and on a
///    network that does not delay B's packets longer than A's reply plus A's response to
///    the user.)
/// 3. **A load that races an invalidation never caches what it read.**
/// 4. **A node's own write updates its cache only if nobody else's change can hide
///    behind it.** Every write signs its key with its store's name in the same script
///    (`<key>!<writer>`, set and deleted at once), so Redis's message for an event-loop
///    cycle names every writer of each key in it; an echo is skipped only when it names
///    this store alone while one of its writes of that key is in flight, or within 50 ms
///    of the reply to one whose result it cached (Redis sends the echo before the reply,
///    but the listener may apply it after: the write's request does not wait for it; an
///    echo applied later counts as another writer's, which costs a miss, never a stale
///    read). While a `clear` or a delete by index runs (their keys are not known
///    beforehand), and for one local TTL after a write, `clear` or delete by index that
///    failed or was abandoned, echoes count as another writer's. Writes through
///    [`ClusteredStore::redis`] count as another writer's.
/// 5. **A lost invalidation connection flushes the cache**, and nothing is cached until
///    every connection is back (reconnected with backoff, checked with `PING` every health
///    check interval; on a Redis Cluster, also when the primaries change).
/// 6. **No entry is served later than the local TTL after its load began**, even if every
///    invalidation were lost.
///
/// # Limits
///
/// Over `rediss://` (feature `redis-tls`) the invalidation connections use TLS with the
/// Redis store's trust (the builder's `tls_root_certificates`, else the system's roots).
/// Insecure TLS (`rediss://…#insecure`) and Unix sockets are not supported: building such
/// a store fails.
///
/// A change that no store signs (a key expired or evicted by Redis, a write by another
/// program, by a plain [`RedisStore`] on the same prefix, whose writes are not signed, or
/// by a node running a version of this crate from before signatures: upgrade every node
/// sharing a prefix together, or change the prefix) in the same event-loop
/// cycle as this node's own write of that session is not seen by this node, for at most
/// the local TTL; nor is a write of this node that failed and that Redis runs more than
/// one local TTL later. Redis's own `NOLOOP` option is not used
/// for the same reason in a wider form: it remembers one writer per key per cycle, so it
/// would hide any other node's write that shares a cycle with ours.
///
/// A primary that appears while its predecessor stays up (a manual failover, or slots
/// moved to a new node; a primary that dies instead ends its connection at once) is
/// listened to from the next health check on, so writes to the slots it took over may be
/// missed for up to one health check interval.
///
/// Metrics: [`ClusteredStore::stats`]; the Redis store's own metrics cover the round trips.
///
/// Cheap to clone; clones share the cache and the connections. The invalidation
/// connections are closed when the last clone is dropped.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use session::{ClusteredStore, RedisStore, SessionConfig, SessionData, SessionProvider};
///
/// #[derive(SessionData)]
/// struct AppSession {
///     user: Option<String>,
/// }
///
/// # async fn run() -> Result<(), session::Error> {
/// let redis = RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
/// let store = ClusteredStore::builder(redis)
///     .max_entries(50_000)
///     .local_ttl(Duration::from_secs(5))
///     .build()
///     .await?;
/// let provider = SessionProvider::<AppSession, _>::new(store, SessionConfig::production().build()?);
/// # let _ = provider;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClusteredStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for ClusteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusteredStore")
            .field("redis", &self.shared.redis)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Configures a [`ClusteredStore`]; see [`ClusteredStore::builder`].
#[derive(Debug)]
#[must_use = "call .build().await to get a ClusteredStore"]
pub struct ClusteredStoreBuilder {
    redis: RedisStoreBuilder,
    max_entries: u64,
    local_ttl: Duration,
    health_check_interval: Duration,
}

/// Counters of a [`ClusteredStore`] since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusteredStats {
    /// Loads served from the local cache (no round trip).
    pub hits: u64,
    /// Loads that went to Redis.
    pub misses: u64,
    /// Invalidations of this store's keys received from Redis.
    pub invalidations: u64,
    /// Times the whole local cache was dropped (lost connection, `FLUSHDB`, `clear`).
    pub flushes: u64,
    /// Entries held now, valid or not yet evicted.
    pub entries: u64,
    /// Whether every invalidation connection is up, so loads are cached.
    pub caching: bool,
}

impl ClusteredStats {
    /// `hits / (hits + misses)`, or 0 before any load.
    pub fn hit_ratio(&self) -> f64 {
        let loads = self.hits + self.misses;
        if loads == 0 {
            0.0
        } else {
            self.hits as f64 / loads as f64
        }
    }
}

impl ClusteredStore {
    /// Configures a clustered store over the Redis store that `redis` would build (one
    /// server with [`RedisStore::builder`], or a cluster with
    /// [`RedisStore::cluster_builder`]).
    ///
    /// Defaults: at most 100,000 cached sessions, a local TTL of 5 s (what a lost invalidation can cost at most), a health check of
    /// the invalidation connections every second.
    pub fn builder(redis: RedisStoreBuilder) -> ClusteredStoreBuilder {
        ClusteredStoreBuilder {
            redis,
            max_entries: 100_000,
            local_ttl: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(1),
        }
    }

    /// The Redis store behind the cache (its connections and breaker). Writes made through
    /// it count as another writer's: they invalidate this node's cache as any other node's
    /// would.
    pub fn redis(&self) -> &RedisStore {
        &self.shared.redis
    }

    /// The counters since the store was built.
    pub fn stats(&self) -> ClusteredStats {
        let counters = &self.shared.tracker.counters;
        ClusteredStats {
            hits: counters.hits.load(Relaxed),
            misses: counters.misses.load(Relaxed),
            invalidations: counters.invalidations.load(Relaxed),
            flushes: counters.flushes.load(Relaxed),
            entries: self.shared.cache.entry_count(),
            caching: self.shared.tracker.is_ready(),
        }
    }

    /// The client name (`CLIENT SETNAME`) of this store's invalidation connections, as
    /// `CLIENT LIST` shows them: `session-invalidation-` and 16 random hex digits.
    pub fn invalidation_client_name(&self) -> &str {
        &self.shared.name
    }

    /// Whether a load of `key` now would be served from the local cache.
    pub async fn is_cached(&self, key: &StoreKey) -> bool {
        self.shared.valid_entry(key).await.is_some()
    }
}

impl Shared {
    /// The state of a store over `redis`, whose writes it signs, before any listener.
    fn new(redis: RedisStore, nodes: NodeSettings, max_entries: u64, local_ttl: Duration) -> Result<Self, Error> {
        let cache = LocalCache::new(max_entries, local_ttl);
        Ok(Self {
            name: format!("session-invalidation-{}", redis.writer()),
            redis: redis.with_own_writer()?,
            store: redis,
            cache,
            nodes,
            tracker: Tracker::new(local_ttl, max_entries.try_into().unwrap_or(usize::MAX).max(100_000)),
            lost: Notify::new(),
            #[cfg(test)]
            deaf: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            dropped: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The cached record of `key`, if it may be served now.
    async fn valid_entry(&self, key: &StoreKey) -> Option<Arc<Entry>> {
        let entry = self.cache.get(key)?;
        let now = self.store.clock().now_ms();
        (self.tracker.serves(key, &entry.snapshot, CATCH_UP_WAIT).await && !entry.record.meta.is_expired(now))
            .then_some(entry)
    }

    /// Caches what this node's write of `key` left in Redis, if `snapshot` is still valid.
    fn cache_written(&self, key: &StoreKey, record: Record, revision: Revision, snapshot: Snapshot) {
        if self.tracker.still_valid(key, &snapshot) {
            self.cache.insert(
                *key,
                Arc::new(Entry {
                    record,
                    revision,
                    snapshot,
                }),
            );
        } else {
            self.cache.invalidate(key);
        }
    }

    /// Runs this node's bulk `write` (a `clear`, a delete by index; see
    /// [`Tracker::begin_bulk`]); `flush` drops everything when it ends (a `clear`).
    async fn run_bulk<T>(&self, flush: bool, write: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let mut bulk = Bulk::begin(&self.tracker, flush);
        let outcome = write.await;
        bulk.settled = settled(&outcome);
        outcome
    }

    /// Runs this node's `write` of `keys`, each with what it starts from, as writes in
    /// flight (see [`tracker`]). Returns the write's outcome and, when `succeeded` says the
    /// first key's result is in Redis and it may be cached, the snapshot to cache it under.
    async fn run_write<T, Fut>(
        &self,
        keys: &[(StoreKey, Basis<'_>)],
        write: impl FnOnce() -> Fut,
        succeeded: impl FnOnce(&T) -> bool,
    ) -> (Result<T, Error>, Option<Snapshot>)
    where
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut in_flight = InFlight::new(&self.tracker);
        for (key, basis) in keys {
            in_flight.begin(key, *basis);
        }
        // The write's future is made here, not passed in: an `async fn` keeps its arguments
        // for its whole run, so a future argument would take its room twice.
        let outcome = write().await;
        let cacheable = outcome.as_ref().is_ok_and(succeeded) && in_flight.first_cacheable();
        let snapshot = in_flight.end(settled(&outcome), cacheable);
        for (key, _) in keys.iter().skip(usize::from(snapshot.is_some())) {
            self.cache.invalidate(key);
        }
        (outcome, snapshot)
    }
}

/// Whether a write certainly cannot still run later, unseen. Only success says so: after
/// a timeout, a lost connection, or a retry that ended in any error, an earlier attempt
/// may still be on its way.
fn settled<T>(outcome: &Result<T, Error>) -> bool {
    outcome.is_ok()
}

/// A bulk write of this node in flight (see [`Tracker::begin_bulk`]); ended exactly once,
/// as unsettled if the future running it is dropped first.
struct Bulk<'a> {
    tracker: &'a Tracker,
    settled: bool,
    /// A `clear`: everything is dropped when it ends.
    flush: bool,
}

impl<'a> Bulk<'a> {
    fn begin(tracker: &'a Tracker, flush: bool) -> Self {
        tracker.begin_bulk();
        Self {
            tracker,
            settled: false,
            flush,
        }
    }
}

impl Drop for Bulk<'_> {
    fn drop(&mut self) {
        self.tracker.end_bulk(self.settled, self.flush);
    }
}

/// Writes of this node in flight; each is ended exactly once, as abandoned (it may still
/// run) if the future running it is dropped first.
struct InFlight<'a> {
    tracker: &'a Tracker,
    writes: Vec<Write>,
}

impl<'a> InFlight<'a> {
    fn new(tracker: &'a Tracker) -> Self {
        Self {
            tracker,
            writes: Vec::new(),
        }
    }

    fn begin(&mut self, key: &StoreKey, basis: Basis<'_>) {
        self.writes.push(self.tracker.begin_write(key, basis));
    }

    fn first_cacheable(&self) -> bool {
        self.writes.first().is_some_and(Write::cacheable)
    }

    /// Ends every write; when `cache` says the first one's result is to be cached, the
    /// snapshot to cache it under (and its echo counts as this node's a while longer).
    fn end(mut self, settled: bool, cache: bool) -> Option<Snapshot> {
        let mut writes = std::mem::take(&mut self.writes).into_iter();
        let first = writes.next().and_then(|write| {
            let echo_wait = cache.then_some(CATCH_UP_WAIT);
            self.tracker.end_write(write, settled, echo_wait).filter(|_| cache)
        });
        for write in writes {
            let _ = self.tracker.end_write(write, settled, None);
        }
        first
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        for write in self.writes.drain(..) {
            let _ = self.tracker.end_write(write, false, None);
        }
    }
}

/// The longest a load waits for the invalidation links to apply what Redis had sent them
/// before it serves a cached entry (past it, it loads from Redis), and how long after the
/// reply to a write whose result was cached its echo still counts as this node's (one
/// applied later counts as another writer's: the entry is dropped). A time bound, not a
/// scheduling one: on a loaded machine the listener may not run for milliseconds, and
/// then neither would the reply of a round trip.
const CATCH_UP_WAIT: Duration = Duration::from_millis(50);

impl ClusteredStoreBuilder {
    /// The most sessions cached on this node (default 100,000, rounded up to a multiple of
    /// 16; 0 caches nothing). The cache is split into 16 parts by key, each bounded alone;
    /// a full part evicts the least recently used of a few sampled entries. An entry holds
    /// the session twice, decoded and as stored in Redis (its revision, for the next save),
    /// so budget about twice the stored size per entry.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = entries;
        self
    }

    /// How long a cached session may be served after its load began (default 5 s), even if
    /// every invalidation were lost.
    pub fn local_ttl(mut self, ttl: Duration) -> Self {
        self.local_ttl = ttl;
        self
    }

    /// How often the invalidation connections are checked with `PING` and, on a cluster,
    /// against the current primaries (default 1 s).
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = interval;
        self
    }

    /// Builds the Redis store, opens the invalidation connections and starts the task that
    /// keeps them up.
    ///
    /// # Errors
    ///
    /// What [`RedisStoreBuilder::build`] reports; [`Error::Config`] for a zero TTL or
    /// interval, a Unix-socket Redis or insecure TLS; [`Error::Timeout`] or
    /// [`Error::Unavailable`] when an invalidation connection cannot be opened (a TLS
    /// handshake that fails included).
    pub async fn build(self) -> Result<ClusteredStore, Error> {
        if self.local_ttl.is_zero() || self.health_check_interval.is_zero() {
            return Err(Error::Config(
                "the clustered store's local TTL and health check interval must be greater than zero".into(),
            ));
        }
        // Before connecting: what the listeners cannot do is refused at once.
        let nodes = self.redis.node_settings()?;
        let redis = self.redis.signing_writes().build().await?;
        let shared = Arc::new(Shared::new(redis, nodes, self.max_entries, self.local_ttl)?);
        let listeners = listener::connect_all(&shared).await?;
        tokio::spawn(listener::supervise(
            Arc::downgrade(&shared),
            listeners,
            self.health_check_interval,
        ));
        Ok(ClusteredStore { shared })
    }
}

impl SessionStore for ClusteredStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        Ok(self.load_revision(key).await?.map(|(record, _)| record))
    }

    async fn load_revision(&self, key: &StoreKey) -> Result<Option<(Record, Revision)>, Error> {
        let shared = &self.shared;
        if let Some(entry) = shared.valid_entry(key).await {
            shared.tracker.counters.hits.fetch_add(1, Relaxed);
            return Ok(Some((entry.record.clone(), entry.revision.clone())));
        }
        shared.tracker.counters.misses.fetch_add(1, Relaxed);
        let snapshot = shared.tracker.snapshot();
        let loaded = shared.store.load_revision(key).await?;
        if let (Some((record, revision)), Some(snapshot)) = (&loaded, snapshot)
            && shared.tracker.still_valid(key, &snapshot)
        {
            let entry = Entry {
                record: record.clone(),
                revision: revision.clone(),
                snapshot,
            };
            shared.cache.insert(*key, Arc::new(entry));
        }
        Ok(loaded)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        Ok(self.create_revision(key, record).await?.is_some())
    }

    async fn create_revision(&self, key: &StoreKey, record: &Record) -> Result<Option<Revision>, Error> {
        let shared = &self.shared;
        let (created, snapshot) = shared
            .run_write(
                &[(*key, Basis::Whole)],
                || shared.store.create_revision(key, record),
                Option::is_some,
            )
            .await;
        if let (Some(snapshot), Ok(Some(revision))) = (snapshot, &created) {
            shared.cache_written(key, record.clone(), revision.clone(), snapshot);
        }
        created
    }

    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        // From the cached entry if there is one: a stale revision costs only a retry.
        let revision = self
            .shared
            .cache
            .get(key)
            .map_or_else(Revision::none, |entry| entry.revision.clone());
        Ok(self.update_revision(key, &revision, update).await?.is_some())
    }

    async fn update_revision(
        &self,
        key: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<Option<Revision>, Error> {
        let shared = &self.shared;
        // The write starts from the cached entry only if that is what the caller read.
        let base = shared.cache.get(key).filter(|base| base.revision == *revision);
        let basis = base
            .as_deref()
            .map_or(Basis::Unknown, |base| Basis::Cached(&base.snapshot));
        let (updated, snapshot) = shared
            .run_write(
                &[(*key, basis)],
                || shared.store.update_at(key, revision, update),
                |updated| updated.as_ref().is_some_and(|updated| updated.as_read),
            )
            .await;
        let updated = updated?.map(|updated| updated.revision);
        if let (Some(snapshot), Some(revision)) = (snapshot, &updated) {
            // A snapshot means the write applied to the cached `base` as read.
            let written = base.as_deref().and_then(|base| {
                let mut record = base.record.clone();
                record.fields.merge(&update.fields).ok()?;
                record.meta = update.meta;
                Some(record)
            });
            match written {
                Some(record) => shared.cache_written(key, record, revision.clone(), snapshot),
                None => shared.cache.invalidate(key),
            }
        }
        Ok(updated)
    }

    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        Ok(self.rename_revision(from, to, &Revision::none(), update).await?.0)
    }

    async fn rename_revision(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<(Rename, Revision), Error> {
        let shared = &self.shared;
        let keys = [(*from, Basis::Unknown), (*to, Basis::Unknown)];
        shared
            .run_write(
                &keys,
                || shared.store.rename_revision(from, to, revision, update),
                |_| false,
            )
            .await
            .0
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        let shared = &self.shared;
        let keys = [(*key, Basis::Unknown)];
        shared.run_write(&keys, || shared.store.delete(key), |_| false).await.0
    }

    async fn expired(&self, key: &StoreKey) -> Result<bool, Error> {
        // Not cached: it is asked only after a load found no live session.
        self.shared.store.expired(key).await
    }
}

/// The index is Redis's: listed from Redis, never from a cache. What "delete all" deletes
/// is dropped from this node's cache before it returns (and, should it fail part-way, as
/// Redis tells this node of each deletion), and from every other node's as Redis tells
/// them (as for any delete).
impl IndexStore for ClusteredStore {
    async fn list_by_index(&self, index: &IndexKey) -> Result<Vec<(StoreKey, Record)>, Error> {
        self.shared.store.list_by_index(index).await
    }

    async fn delete_by_index(&self, index: &IndexKey, keep: Option<&StoreKey>) -> Result<Vec<StoreKey>, Error> {
        // Its keys are not known until it returns, and it may fail part-way: a bulk write.
        let shared = &self.shared;
        shared
            .run_bulk(false, async {
                let deleted = shared.store.delete_by_index(index, keep).await?;
                for key in &deleted {
                    shared.tracker.invalidate(key);
                }
                Ok(deleted)
            })
            .await
    }
}

impl QueryStore for ClusteredStore {
    async fn scan(&self, cursor: u64, batch: usize) -> Result<ScanPage, Error> {
        self.shared.store.scan(cursor, batch).await
    }

    async fn count(&self) -> Result<usize, Error> {
        self.shared.store.count().await
    }

    async fn delete_many(&self, keys: &[StoreKey]) -> Result<usize, Error> {
        let shared = &self.shared;
        let writes: Vec<_> = keys.iter().map(|key| (*key, Basis::Unknown)).collect();
        shared
            .run_write(&writes, || shared.store.delete_many(keys), |_| false)
            .await
            .0
    }

    async fn clear(&self) -> Result<usize, Error> {
        let shared = &self.shared;
        let cleared = shared.run_bulk(true, shared.store.clear()).await;
        shared.cache.invalidate_all();
        cleared
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::Ordering, time::Instant};

    use session_test_support::RedisServer;

    use super::*;
    use crate::{SessionId, SessionMeta, SystemClock, clock::Clock as _, store::FieldRecord};

    fn record(value: &[u8]) -> Record {
        let mut fields = FieldRecord::new();
        fields.push(1, value);
        Record {
            meta: SessionMeta::new(SystemClock.now_ms(), 60_000, 600_000),
            fields,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_an_echo_of_a_write_in_flight_signed_by_this_store_alone_is_skipped() {
        let server = RedisServer::start();
        let redis = RedisStore::builder(server.url()).prefix("echo:");
        let node = ClusteredStore::builder(redis).build().await.unwrap();
        let mut raw = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let (key, marker) = (
            SessionId::generate().unwrap().store_key(),
            SessionId::generate().unwrap().store_key(),
        );
        let name = |key: &StoreKey| format!("echo:{{{}}}", key.to_hex());
        let own = format!("{}!{}", name(&key), node.shared.store.writer());
        let other = format!("{}!0123456789abcdef", name(&key));
        let tracker = &node.shared.tracker;
        let invalidations = || node.stats().invalidations;
        // One script, so Redis announces its keys in one message, as for writes of one cycle.
        let mut write = async |signatures: &[&str]| {
            let before = invalidations();
            let mut keys = vec![name(&key)];
            keys.extend(signatures.iter().map(|signature| signature.to_string()));
            let _: () = redis::Script::new(
                "redis.call('HSET', KEYS[1], 'f', '1') for i = 2, #KEYS do redis.call('SET', KEYS[i], '') redis.call('DEL', KEYS[i]) end",
            )
            .key(keys)
            .invoke_async(&mut raw)
            .await
            .unwrap();
            // An unsigned change of another key after it: once that one is applied, so is
            // the message before it.
            let snapshot = tracker.snapshot().unwrap();
            let _: () = redis::cmd("SET")
                .arg(name(&marker))
                .arg("")
                .query_async(&mut raw)
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while tracker.still_valid(&marker, &snapshot) {
                assert!(Instant::now() < deadline, "the invalidations never arrived");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            invalidations() - before - 1
        };

        assert_eq!(write(&[]).await, 1, "an unsigned change invalidates");
        assert_eq!(write(&[&other]).await, 1, "another store's write invalidates");
        assert_eq!(
            write(&[&own]).await,
            1,
            "an own echo with no write in flight invalidates"
        );

        let in_flight = tracker.begin_write(&key, Basis::Unknown);
        assert_eq!(write(&[&own]).await, 0, "the echo of the write in flight is skipped");
        assert_eq!(
            write(&[&own, &other]).await,
            1,
            "another store's write in the same cycle invalidates"
        );
        let _ = tracker.end_write(in_flight, true, None);
        assert_eq!(write(&[&own]).await, 1, "the write ended: echoes count again");

        let in_flight = tracker.begin_write(&key, Basis::Unknown);
        let via_handle = format!("{}!{}", name(&key), node.redis().writer());
        assert_eq!(
            write(&[&via_handle]).await,
            1,
            "writes through `redis()` are another writer's"
        );
        let _ = tracker.end_write(in_flight, true, None);

        let failed = tracker.begin_write(&key, Basis::Unknown);
        let _ = tracker.end_write(failed, false, None);
        let in_flight = tracker.begin_write(&key, Basis::Unknown);
        assert_eq!(
            write(&[&own]).await,
            1,
            "after a write that may still run unseen, own echoes count for a local TTL"
        );
        let _ = tracker.end_write(in_flight, true, None);
    }

    #[test]
    fn an_abandoned_write_leaves_its_key_doubtful() {
        let tracker = Tracker::new(Duration::from_secs(60), 100);
        let key = StoreKey::from_bytes([7; 32]);
        let mut abandoned = InFlight::new(&tracker);
        abandoned.begin(&key, Basis::Unknown);
        assert!(tracker.note_mention(&key));
        drop(abandoned);
        assert!(!tracker.note_mention(&key), "ended");
        let mut next = InFlight::new(&tracker);
        next.begin(&key, Basis::Unknown);
        assert!(!tracker.note_mention(&key), "the abandoned write may still run unseen");
        assert!(next.end(true, false).is_none());

        let other = StoreKey::from_bytes([8; 32]);
        let mut in_flight = InFlight::new(&tracker);
        in_flight.begin(&other, Basis::Unknown);
        assert!(tracker.note_mention(&other));
        let clearing = Bulk::begin(&tracker, true);
        assert!(!tracker.note_mention(&other), "while a clear runs, no echo is ours");
        drop(clearing);
        assert!(
            !tracker.note_mention(&other),
            "after an abandoned clear, no echo is ours"
        );
        assert!(in_flight.end(true, false).is_none());
    }

    #[test]
    fn a_written_records_echo_stays_ours_only_if_it_is_cached_and_no_bulk_write_runs() {
        let tracker = Tracker::new(Duration::from_secs(60), 100);
        tracker.install(Vec::new());
        let key = StoreKey::from_bytes([9; 32]);
        let write = |cache: bool| {
            let mut in_flight = InFlight::new(&tracker);
            in_flight.begin(&key, Basis::Whole);
            in_flight.end(true, cache)
        };
        assert!(write(false).is_none(), "not to be cached: no snapshot");
        assert!(!tracker.note_mention(&key), "nor a late echo taken for ours");
        assert!(write(true).is_some());
        assert!(
            tracker.note_mention(&key),
            "the echo of a cached write, after its reply"
        );

        // A delete by index may delete a key whose write's echo is awaited: none of its
        // echoes is ours, while it runs or, if it fails, for a local TTL.
        let mut deleting = Bulk::begin(&tracker, false);
        assert!(!tracker.note_mention(&key), "while a bulk write runs");
        deleting.settled = true;
        drop(deleting);
        assert!(tracker.note_mention(&key), "after it succeeded");
        drop(Bulk::begin(&tracker, false));
        assert!(!tracker.note_mention(&key), "after one that failed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lost_invalidations_are_bounded_by_the_local_ttl() {
        let server = RedisServer::start();
        let ttl = Duration::from_secs(2);
        let node = || {
            let redis = RedisStore::builder(server.url()).prefix("ttl:");
            ClusteredStore::builder(redis).local_ttl(ttl).build()
        };
        let (a, b) = (node().await.unwrap(), node().await.unwrap());
        let key = SessionId::generate().unwrap().store_key();
        assert!(a.create(&key, &record(b"old")).await.unwrap());
        let cached_at = loop {
            b.load(&key).await.unwrap();
            let at = Instant::now();
            if b.is_cached(&key).await {
                break at;
            }
        };

        b.shared.deaf.store(true, Ordering::SeqCst);
        assert!(a.update(&key, &record(b"new")).await.unwrap());
        // Until the listener has read (and dropped) the push, its unread bytes make `b`
        // go to Redis; the property under test starts once the message is truly lost.
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.shared.dropped.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the invalidation never reached the listener");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut stale_reads = 0;
        loop {
            // Taken before the read: a stale answer proves the entry was still young then.
            let age = cached_at.elapsed();
            let value = b
                .load(&key)
                .await
                .unwrap()
                .unwrap()
                .fields
                .get(1)
                .unwrap()
                .unwrap()
                .to_vec();
            if value == b"new" {
                break;
            }
            assert!(age < ttl, "a stale read after the local TTL");
            stale_reads += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            stale_reads > 0,
            "with every invalidation lost, the entry is served until its TTL"
        );
        assert!(cached_at.elapsed() >= ttl.mul_f32(0.5));
    }
}
