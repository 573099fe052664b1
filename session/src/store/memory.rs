//! An in-process store: sharded, bounded, expiring.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use crate::{
    Error,
    clock::{Clock, SystemClock},
    codec::{self, FieldRecord},
    id::{KeyHash, KeyMap, StoreKey},
    index::IndexKey,
    session::SessionMeta,
    store::{IndexStore, QueryStore, Record, Rename, ScanPage, SessionStore, store_error},
};

const SHARDS: usize = 32;
/// What an entry costs besides its field bytes: key, metadata, map slot and queue slot.
const ENTRY_OVERHEAD: usize = 160;

struct Entry {
    meta: SessionMeta,
    fields: Box<[u8]>,
    /// Written again since it was created (updated, refreshed or given a new ID): a session
    /// somebody came back to, evicted only after every probationary one.
    established: bool,
}

impl Entry {
    fn record(&self) -> Record {
        Record {
            meta: self.meta,
            fields: FieldRecord::from_bytes(self.fields.to_vec()),
        }
    }

    fn cost(&self) -> usize {
        ENTRY_OVERHEAD + self.fields.len()
    }

    /// How many bytes merging `update` in would add (0 when it shrinks or keeps the size).
    fn growth(&self, update: &Record) -> Result<usize, Error> {
        let merged = codec::merged_len(&self.fields, &update.fields).map_err(store_error)?;
        Ok(merged.saturating_sub(self.fields.len()))
    }

    /// Writes `update`'s fields over the stored values of the same length, where they are;
    /// `false`, changing nothing, when a value changes length (see
    /// [`codec::overwrite_in_place`]).
    fn overwrite_in_place(&mut self, update: &Record) -> Result<bool, Error> {
        codec::overwrite_in_place(&mut self.fields, &update.fields).map_err(store_error)
    }

    /// Merges `update` in, in place (no copy unless a value changes length), established;
    /// `fields_written` when [`overwrite_in_place`](Self::overwrite_in_place) already wrote
    /// its fields.
    fn apply(&mut self, update: &Record, fields_written: bool) -> Result<(), Error> {
        if !fields_written {
            let mut fields = FieldRecord::from_bytes(std::mem::take(&mut self.fields).into_vec());
            let merged = fields.merge(&update.fields);
            self.fields = fields.into_bytes().into_boxed_slice();
            merged.map_err(store_error)?;
        }
        self.meta = update.meta;
        self.established = true;
        Ok(())
    }
}

/// One lock's worth of sessions, with its accounting.
#[derive(Default)]
struct Shard {
    entries: KeyMap<Entry>,
    /// Keys in creation order of the sessions not yet established; may hold keys since
    /// established, deleted or re-created, skipped when reached (each is pushed once per
    /// create, so skipping is paid for by the create that pushed it).
    probation: VecDeque<StoreKey>,
    /// The sum of the entries' [`Entry::cost`].
    bytes: usize,
    /// Keys of sessions that expired, with their deadline, kept for the retention so a
    /// load can tell "expired" from "unknown"; at most as many as the shard holds entries.
    expired: KeyMap<u64>,
    /// How long expired keys are remembered, in ms (0: not at all).
    retention_ms: u64,
    /// The most expired keys remembered.
    expired_capacity: usize,
    /// The keys of this shard's entries by their metadata index: every entry with an index
    /// is here under it, and nothing else. Kept by `insert` and `remove`, the only ways in
    /// and out of `entries`, and by `apply`, the only way an entry's metadata changes.
    index: HashMap<IndexKey, HashSet<StoreKey, KeyHash>>,
}

impl Shard {
    fn empty(retention_ms: u64, expired_capacity: usize) -> Self {
        Self {
            retention_ms,
            expired_capacity,
            ..Self::default()
        }
    }

    fn insert(&mut self, key: StoreKey, entry: Entry) {
        self.expired.remove(&key);
        self.bytes += entry.cost();
        if !entry.established {
            self.probation.push_back(key);
        }
        let index = entry.meta.index;
        if let Some(old) = self.entries.insert(key, entry) {
            self.bytes -= old.cost();
            self.unindex(old.meta.index, &key);
        }
        self.reindex(index, &key);
    }

    /// Merges `update` into the live entry under `key`, keeping the byte count and the index
    /// (`fields_written` as in [`Entry::apply`]).
    fn apply(&mut self, key: &StoreKey, update: &Record, fields_written: bool) -> Result<(), Error> {
        let Some(entry) = self.entries.get_mut(key) else {
            return Ok(());
        };
        let (old, old_index) = (entry.cost(), entry.meta.index);
        let applied = entry.apply(update, fields_written);
        let new_index = entry.meta.index;
        self.bytes = self.bytes - old + entry.cost();
        if old_index != new_index {
            self.unindex(old_index, key);
            self.reindex(new_index, key);
        }
        applied
    }

    fn remove(&mut self, key: &StoreKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.bytes -= entry.cost();
        self.unindex(entry.meta.index, key);
        Some(entry)
    }

    fn reindex(&mut self, index: Option<IndexKey>, key: &StoreKey) {
        if let Some(index) = index {
            self.index.entry(index).or_default().insert(*key);
        }
    }

    fn unindex(&mut self, index: Option<IndexKey>, key: &StoreKey) {
        if let Some(index) = index
            && let Some(keys) = self.index.get_mut(&index)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.index.remove(&index);
            }
        }
    }

    /// The keys of the entries indexed under `index`, expired or not.
    fn indexed(&self, index: &IndexKey) -> Vec<StoreKey> {
        self.index
            .get(index)
            .map(|keys| keys.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Removes the expired entry under `key`, remembering its key for the retention.
    fn remove_expired(&mut self, key: &StoreKey) {
        if let Some(entry) = self.remove(key)
            && self.retention_ms > 0
            && self.expired.len() < self.expired_capacity
        {
            self.expired.insert(*key, entry.meta.expires_ms());
        }
    }

    /// Whether the session under `key` expired within the retention.
    fn has_expired(&self, key: &StoreKey, now: u64) -> bool {
        match self.entries.get(key) {
            Some(entry) => entry.meta.is_expired(now),
            None => self
                .expired
                .get(key)
                .is_some_and(|&deadline| deadline.saturating_add(self.retention_ms) > now),
        }
    }

    /// Evicts the oldest probationary session; `false` when there is none.
    fn evict_probationary(&mut self) -> bool {
        while let Some(key) = self.probation.pop_front() {
            if self.entries.get(&key).is_some_and(|entry| !entry.established) {
                self.remove(&key);
                return true;
            }
        }
        false
    }

    /// Drops queued keys that no longer name a probationary session, once they outnumber
    /// the live ones (sessions established or deleted without being evicted).
    fn compact_probation(&mut self) {
        if self.probation.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.probation
                .retain(|key| entries.get(key).is_some_and(|entry| !entry.established));
        }
    }
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    shard_bytes: usize,
    retention_ms: u64,
    clock: Arc<dyn Clock>,
}

/// A concurrent in-memory store for one process: for development, tests, and
/// single-node deployments that accept losing sessions on restart.
///
/// Records are keyed by the ID digest and sharded across locks. Expired records are never
/// returned and are swept in the background (when created inside a Tokio runtime).
///
/// It implements [`QueryStore`] and [`IndexStore`]: each shard keeps its sessions by their
/// metadata index too, so the sessions of one user are listed and deleted without a scan.
///
/// # Bounds
///
/// The store holds at most [`capacity`](MemoryStoreBuilder::capacity) sessions and
/// [`max_bytes`](MemoryStoreBuilder::max_bytes) bytes (field bytes plus a fixed overhead
/// per session). When a write needs room, it evicts, in creation order, sessions that were
/// never written again after they were created (*probationary*: a visitor who came once).
/// A session written again (a change, a sliding refresh, a login's new ID) is
/// *established* and is never evicted for room: when only established sessions are left,
/// a new session is refused with [`Error::Unavailable`] (the HTTP layer answers 503), and a
/// write that would grow past the byte budget too. So a flood of new anonymous sessions
/// pushes out only other newcomers, never the users who are using the site. Each write
/// does a constant amount of eviction work on average.
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
    max_bytes: usize,
    sweep_interval: Duration,
    expired_retention: Duration,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store for up to 1,000,000 sessions and 1 GiB, swept every 60 seconds.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures a store.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity: 1_000_000,
            max_bytes: 1 << 30,
            sweep_interval: Duration::from_secs(60),
            expired_retention: Duration::ZERO,
            clock: Arc::new(SystemClock),
        }
    }

    /// Removes every expired record now; returns how many.
    pub fn sweep(&self) -> usize {
        self.inner.sweep()
    }

    /// How many records are held, expired or not.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|shard| lock(shard).entries.len()).sum()
    }

    /// The bytes the held records account for (field bytes plus a fixed overhead each),
    /// which [`max_bytes`](MemoryStoreBuilder::max_bytes) bounds.
    pub fn bytes(&self) -> usize {
        self.inner.shards.iter().map(|shard| lock(shard).bytes).sum()
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

    /// The most bytes the records may account for (default 1 GiB): field bytes plus a
    /// fixed overhead per session. See [`MemoryStore`]'s bounds.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How often the background task removes expired records.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// How long the store remembers that a session expired (its key digest and deadline,
    /// not its data), so that [`SessionProvider::load_outcome`](crate::SessionProvider::load_outcome)
    /// can tell "expired" from "unknown". Default zero: forgotten at once.
    pub fn expired_retention(mut self, retention: Duration) -> Self {
        self.expired_retention = retention;
        self
    }

    /// The clock that decides expiry; share it with the provider's configuration.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the store, and starts its sweeper when called inside a Tokio runtime.
    pub fn build(self) -> MemoryStore {
        let shard_capacity = self.capacity.div_ceil(SHARDS).max(1);
        let retention_ms = crate::clock::duration_ms(self.expired_retention);
        let inner = Arc::new(Inner {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::empty(retention_ms, shard_capacity)))
                .collect(),
            shard_capacity,
            shard_bytes: (self.max_bytes / SHARDS).max(ENTRY_OVERHEAD),
            retention_ms,
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
                let expired: Vec<StoreKey> = shard
                    .entries
                    .iter()
                    .filter(|(_, entry)| entry.meta.is_expired(now))
                    .map(|(key, _)| *key)
                    .collect();
                for key in &expired {
                    shard.remove_expired(key);
                }
                let retention = shard.retention_ms;
                shard
                    .expired
                    .retain(|_, deadline| deadline.saturating_add(retention) > now);
                shard.compact_probation();
                expired.len()
            })
            .sum()
    }

    /// Makes room in `shard` for `more` entries and `bytes` more bytes, evicting
    /// probationary sessions, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when only established sessions are left to evict.
    fn make_room(&self, shard: &mut Shard, more: usize, bytes: usize) -> Result<(), Error> {
        while shard.entries.len() + more > self.shard_capacity || shard.bytes + bytes > self.shard_bytes {
            if !shard.evict_probationary() {
                return Err(Error::Unavailable(
                    "the memory store is full of established sessions; raise its capacity or max_bytes".into(),
                ));
            }
            tracing::debug!("memory store at capacity: evicted the oldest probationary session");
        }
        shard.compact_probation();
        Ok(())
    }
}

fn live<'a>(shard: &'a mut Shard, key: &StoreKey, now: u64) -> Option<&'a mut Entry> {
    if shard.entries.get(key).is_some_and(|entry| entry.meta.is_expired(now)) {
        shard.remove_expired(key);
    }
    shard.entries.get_mut(key)
}

/// Moves `from` to `to` with `update` applied; `target` is `None` when both keys live in
/// `source`.
fn rename_in(
    inner: &Inner,
    source: &mut Shard,
    mut target: Option<&mut Shard>,
    from: &StoreKey,
    to: &StoreKey,
    update: &Record,
    now: u64,
) -> Result<Rename, Error> {
    let target_taken = match &target {
        Some(shard) => shard.entries.get(to).is_some_and(|entry| !entry.meta.is_expired(now)),
        None => live(source, to, now).is_some(),
    };
    if target_taken {
        return Ok(Rename::TargetExists);
    }
    let Some(entry) = live(source, from, now) else {
        return Ok(Rename::SourceMissing);
    };
    // Checked first: it is the step that can fail, and it leaves the source intact if so.
    let (growth, cost) = (entry.growth(update)?, entry.cost());
    // Written again: from now on never evicted for room, not even for its own move.
    entry.established = true;
    match target.as_deref_mut() {
        Some(target) => inner.make_room(target, 1, cost + growth)?,
        None => inner.make_room(source, 0, growth)?,
    }
    let Some(mut moved) = source.remove(from) else {
        return Ok(Rename::SourceMissing);
    };
    moved.apply(update, false)?;
    target.unwrap_or(source).insert(*to, moved);
    Ok(Rename::Renamed)
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
        let entry = Entry {
            meta: record.meta,
            fields: record.fields.as_bytes().into(),
            established: false,
        };
        self.inner.make_room(&mut shard, 1, entry.cost())?;
        shard.insert(*key, entry);
        Ok(true)
    }

    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        let now = self.inner.clock.now_ms();
        let mut shard = self.inner.shard(key);
        let Some(entry) = live(&mut shard, key, now) else {
            return Ok(false);
        };
        // Written again: from now on never evicted for room, not even for its own growth.
        entry.established = true;
        // The common save grows nothing: no room to make, and no merged length to measure.
        let written = entry.overwrite_in_place(update)?;
        if !written {
            let growth = entry.growth(update)?;
            self.inner.make_room(&mut shard, 0, growth)?;
        }
        shard.apply(key, update, written)?;
        Ok(true)
    }

    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        let now = self.inner.clock.now_ms();
        let (a, b) = (self.inner.shard_of(from), self.inner.shard_of(to));
        if a == b {
            return rename_in(
                &self.inner,
                &mut lock(&self.inner.shards[a]),
                None,
                from,
                to,
                update,
                now,
            );
        }
        // Lock in shard order so two concurrent renames cannot deadlock.
        let mut low = lock(&self.inner.shards[a.min(b)]);
        let mut high = lock(&self.inner.shards[a.max(b)]);
        let (source, target) = if a < b {
            (&mut *low, &mut *high)
        } else {
            (&mut *high, &mut *low)
        };
        rename_in(&self.inner, source, Some(target), from, to, update, now)
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        Ok(self.inner.shard(key).remove(key).is_some())
    }

    async fn expired(&self, key: &StoreKey) -> Result<bool, Error> {
        Ok(self.inner.shard(key).has_expired(key, self.inner.clock.now_ms()))
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
            .entries
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
            .map(|shard| {
                lock(shard)
                    .entries
                    .values()
                    .filter(|entry| !entry.meta.is_expired(now))
                    .count()
            })
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
                let live = shard
                    .entries
                    .values()
                    .filter(|entry| !entry.meta.is_expired(now))
                    .count();
                *shard = Shard::empty(self.inner.retention_ms, self.inner.shard_capacity);
                live
            })
            .sum())
    }
}

impl MemoryStore {
    /// Every shard, locked in shard order (the order a rename takes its two in): while they
    /// are held no write is under way, so no session can move between shards unseen.
    fn lock_all(&self) -> Vec<MutexGuard<'_, Shard>> {
        self.inner.shards.iter().map(lock).collect()
    }
}

/// Each shard indexes its own entries, under its own lock, so a write pays for the index
/// only in the shard it already holds, and logged-in traffic shares no lock. The index
/// operations take every shard's lock at once (a few microseconds): a rename moves a
/// session between two shards under both their locks, so with all of them held a session
/// is in exactly one shard's index, and the race rule holds. Their cost is one map lookup
/// per shard plus the index's own sessions.
impl IndexStore for MemoryStore {
    async fn list_by_index(&self, index: &IndexKey) -> Result<Vec<(StoreKey, Record)>, Error> {
        let now = self.inner.clock.now_ms();
        let shards = self.lock_all();
        Ok(shards
            .iter()
            .flat_map(|shard| {
                shard.indexed(index).into_iter().filter_map(|key| {
                    shard
                        .entries
                        .get(&key)
                        .filter(|entry| !entry.meta.is_expired(now))
                        .map(|entry| (key, entry.record()))
                })
            })
            .collect())
    }

    async fn delete_by_index(&self, index: &IndexKey, keep: Option<&StoreKey>) -> Result<Vec<StoreKey>, Error> {
        let now = self.inner.clock.now_ms();
        let mut shards = self.lock_all();
        let mut deleted = Vec::new();
        for shard in &mut shards {
            for key in shard.indexed(index) {
                if keep == Some(&key) {
                    continue;
                }
                if shard.entries.get(&key).is_some_and(|entry| entry.meta.is_expired(now)) {
                    shard.remove_expired(&key);
                } else if shard.remove(&key).is_some() {
                    deleted.push(key);
                }
            }
        }
        Ok(deleted)
    }
}
