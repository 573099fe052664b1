//! An in-process store: sharded, bounded, expiring.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use crate::{
    Error,
    clock::{Clock, SystemClock},
    codec::FieldRecord,
    id::StoreKey,
    session::SessionMeta,
    store::{QueryStore, Record, Rename, ScanPage, SessionStore},
};

const SHARDS: usize = 32;
/// How many entries an eviction looks at, like Redis's `volatile-ttl` sampling.
const EVICTION_SAMPLE: usize = 8;

struct Entry {
    meta: SessionMeta,
    fields: Box<[u8]>,
}

impl Entry {
    fn record(&self) -> Record {
        Record {
            meta: self.meta,
            fields: FieldRecord::from_bytes(self.fields.to_vec()),
        }
    }
}

type Shard = HashMap<StoreKey, Entry>;

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    clock: Arc<dyn Clock>,
}

/// A concurrent in-memory store for one process: for development, tests, and
/// single-node deployments that accept losing sessions on restart.
///
/// Records are keyed by the ID digest and sharded across locks. Expired records are never
/// returned and are swept in the background (when created inside a Tokio runtime) and
/// whenever a full shard needs room. At capacity, a new session evicts the sampled
/// record closest to expiry.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session::MemoryStore;
///
/// let store = MemoryStore::builder().capacity(10_000).sweep_interval(Duration::from_secs(30)).build();
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &(self.inner.shard_capacity * SHARDS))
            .finish_non_exhaustive()
    }
}

/// Configures a [`MemoryStore`].
#[must_use = "call .build() to get a MemoryStore"]
pub struct MemoryStoreBuilder {
    capacity: usize,
    sweep_interval: Duration,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store for up to 1,000,000 sessions, swept every 60 seconds.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures a store.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity: 1_000_000,
            sweep_interval: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }

    /// Removes every expired record now; returns how many.
    pub fn sweep(&self) -> usize {
        self.inner.sweep()
    }

    /// How many records are held, expired or not (a cheap estimate of memory use).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most records the store holds.
    pub fn capacity(&self) -> usize {
        self.inner.shard_capacity * SHARDS
    }
}

impl MemoryStoreBuilder {
    /// The most sessions held at once (at least one per shard).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How often the background task removes expired records.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The clock that decides expiry; share it with the provider's configuration.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the store, and starts its sweeper when called inside a Tokio runtime.
    pub fn build(self) -> MemoryStore {
        let inner = Arc::new(Inner {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_capacity: self.capacity.div_ceil(SHARDS).max(1),
            clock: self.clock,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current()
            && !self.sweep_interval.is_zero()
        {
            runtime.spawn(sweep_forever(Arc::downgrade(&inner), self.sweep_interval));
        }
        MemoryStore { inner }
    }
}

async fn sweep_forever(inner: Weak<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let swept = inner.sweep();
        if swept > 0 {
            tracing::debug!(swept, "memory store removed expired sessions");
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic elsewhere while holding the lock cannot leave a half-written entry: every
    // mutation below is a single map operation.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn shard_of(&self, key: &StoreKey) -> usize {
        usize::from(key.as_bytes()[0]) % SHARDS
    }

    fn shard(&self, key: &StoreKey) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.shard_of(key)])
    }

    fn sweep(&self) -> usize {
        let now = self.clock.now_ms();
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = lock(shard);
                let before = shard.len();
                shard.retain(|_, entry| !entry.meta.is_expired(now));
                before - shard.len()
            })
            .sum()
    }

    /// Makes room for one more entry in a full shard.
    fn make_room(&self, shard: &mut Shard, now: u64) {
        if shard.len() < self.shard_capacity {
            return;
        }
        shard.retain(|_, entry| !entry.meta.is_expired(now));
        while shard.len() >= self.shard_capacity {
            let victim = shard
                .iter()
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, entry)| entry.meta.expires_ms())
                .map(|(key, _)| *key);
            let Some(victim) = victim else { return };
            shard.remove(&victim);
            tracing::debug!("memory store at capacity: evicted the sampled session closest to expiry");
        }
    }
}

fn live<'a>(shard: &'a mut Shard, key: &StoreKey, now: u64) -> Option<&'a mut Entry> {
    if shard.get(key).is_some_and(|entry| entry.meta.is_expired(now)) {
        shard.remove(key);
    }
    shard.get_mut(key)
}

/// Moves `from` to `to`; `target` is `None` when both keys live in `source`.
fn rename_in(
    source: &mut Shard,
    target: Option<&mut Shard>,
    from: &StoreKey,
    to: &StoreKey,
    update: &Record,
    now: u64,
) -> Result<Rename, Error> {
    let target_taken = match &target {
        Some(_) => target
            .as_ref()
            .and_then(|shard| shard.get(to))
            .is_some_and(|entry| !entry.meta.is_expired(now)),
        None => live(source, to, now).is_some(),
    };
    if target_taken {
        return Ok(Rename::TargetExists);
    }
    let Some(entry) = live(source, from, now) else {
        return Ok(Rename::SourceMissing);
    };
    // Apply first: it is the only step that can fail, and it leaves the entry intact if so.
    apply(entry, update)?;
    let Some(entry) = source.remove(from) else {
        return Ok(Rename::SourceMissing);
    };
    target.unwrap_or(source).insert(*to, entry);
    Ok(Rename::Renamed)
}

fn apply(entry: &mut Entry, update: &Record) -> Result<(), Error> {
    let mut fields = FieldRecord::from_bytes(std::mem::take(&mut entry.fields).into_vec());
    let merged = fields.merge(&update.fields);
    entry.fields = fields.into_bytes().into_boxed_slice();
    merged.map_err(|error| Error::Store(Box::new(error)))?;
    entry.meta = update.meta;
    Ok(())
}

impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        let now = self.inner.clock.now_ms();
        Ok(live(&mut self.inner.shard(key), key, now).map(|entry| entry.record()))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        let now = self.inner.clock.now_ms();
        let mut shard = self.inner.shard(key);
        if live(&mut shard, key, now).is_some() {
            return Ok(false);
        }
        self.inner.make_room(&mut shard, now);
        shard.insert(
            *key,
            Entry {
                meta: record.meta,
                fields: record.fields.as_bytes().into(),
            },
        );
        Ok(true)
    }

    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        let now = self.inner.clock.now_ms();
        let mut shard = self.inner.shard(key);
        let Some(entry) = live(&mut shard, key, now) else {
            return Ok(false);
        };
        apply(entry, update)?;
        Ok(true)
    }

    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        let now = self.inner.clock.now_ms();
        let (a, b) = (self.inner.shard_of(from), self.inner.shard_of(to));
        if a == b {
            return rename_in(&mut lock(&self.inner.shards[a]), None, from, to, update, now);
        }
        // Lock in shard order so two concurrent renames cannot deadlock.
        let mut low = lock(&self.inner.shards[a.min(b)]);
        let mut high = lock(&self.inner.shards[a.max(b)]);
        let (source, target) = if a < b {
            (&mut *low, &mut *high)
        } else {
            (&mut *high, &mut *low)
        };
        rename_in(source, Some(target), from, to, update, now)
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        Ok(self.inner.shard(key).remove(key).is_some())
    }
}

impl QueryStore for MemoryStore {
    async fn scan(&self, cursor: u64, _batch: usize) -> Result<ScanPage, Error> {
        // One shard a page: a shard is the unit the lock makes consistent.
        let Some(shard) = usize::try_from(cursor)
            .ok()
            .and_then(|index| self.inner.shards.get(index))
        else {
            return Ok(ScanPage::default());
        };
        let now = self.inner.clock.now_ms();
        let records = lock(shard)
            .iter()
            .filter(|(_, entry)| !entry.meta.is_expired(now))
            .map(|(key, entry)| (*key, entry.record()))
            .collect();
        let next = cursor + 1;
        Ok(ScanPage {
            records,
            next: (next < SHARDS as u64).then_some(next),
        })
    }

    async fn count(&self) -> Result<usize, Error> {
        let now = self.inner.clock.now_ms();
        Ok(self
            .inner
            .shards
            .iter()
            .map(|shard| lock(shard).values().filter(|entry| !entry.meta.is_expired(now)).count())
            .sum())
    }

    async fn delete_many(&self, keys: &[StoreKey]) -> Result<usize, Error> {
        Ok(keys
            .iter()
            .filter(|key| self.inner.shard(key).remove(key).is_some())
            .count())
    }

    async fn clear(&self) -> Result<usize, Error> {
        let now = self.inner.clock.now_ms();
        Ok(self
            .inner
            .shards
            .iter()
            .map(|shard| {
                let mut shard = lock(shard);
                let live = shard.values().filter(|entry| !entry.meta.is_expired(now)).count();
                shard.clear();
                live
            })
            .sum())
    }
}
