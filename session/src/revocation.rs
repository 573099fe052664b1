//! Revocation of cookie sessions by index: a *generation* per [`IndexKey`], kept
//! server-side and sealed into every cookie of an indexed session.
//!
//! Revoking an index increments its generation; a cookie sealed with an older generation
//! is refused when it is opened (see
//! [`CookieSessions::with_revocation`](crate::CookieSessions::with_revocation)). An index
//! never revoked is at generation 0.
//!
//! Where the generations live is a [`RevocationStore`]: [`MemoryRevocationStore`] for one
//! process; with the `redis` feature, `RedisRevocationStore` for several nodes sharing a
//! Redis server or Cluster.

#[cfg(feature = "redis")]
pub use crate::store::redis::RedisRevocationStore;

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crate::{
    Error,
    clock::{Clock, SystemClock, duration_ms},
    index::IndexKey,
};

/// The future of a [`RevocationStore`] call: the generation of one index.
pub type GenerationFuture<'a> = Pin<Box<dyn Future<Output = Result<u64, Error>> + Send + 'a>>;

/// Where the revocation generations of indexes are kept.
///
/// `keep_for` is how long an answer must stay valid: a cookie sealed with the generation
/// answered can live that long, so the store must remember a generation above 0 for at
/// least `keep_for` after every call that reads or raises it. A store that forgets a
/// generation early (lost data, a flushed database) makes cookies sealed with it refused:
/// [`CookieSessions`](crate::CookieSessions) refuses a cookie whose generation is above the
/// current one, as it cannot tell it from a revoked one.
///
/// A store that cannot be reached answers an error for which
/// [`Error::is_unavailable`] holds, so the HTTP layer answers 503 (or degrades, as
/// configured) instead of accepting a cookie it could not check.
pub trait RevocationStore: fmt::Debug + Send + Sync + 'static {
    /// The current generation of `index`: 0 if it was never revoked (or forgotten).
    fn generation<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a>;

    /// Increments the generation of `index` and answers the new one.
    fn revoke<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a>;

    /// Whether a lookup is as cheap as a cache read and always current (a store inside
    /// this process): [`CookieSessions`](crate::CookieSessions) then asks it on every
    /// lookup instead of caching its answers.
    fn is_local(&self) -> bool {
        false
    }
}

/// The generations of one process, in memory: for a single-node deployment (and tests).
///
/// Cheap to clone; clones share the generations, so one store can serve several
/// [`CookieSessions`](crate::CookieSessions) (a sub-session type's among them). A
/// generation is forgotten `keep_for` after it was last read or raised.
///
/// # Examples
///
/// ```
/// use session::{CookieSessions, MemoryRevocationStore, SessionConfig};
/// use session::crypto::{KeyId, KeyRing, Secret};
///
/// let ring = KeyRing::new(KeyId(1), Secret::generate()?);
/// let sessions = CookieSessions::new(ring, SessionConfig::production().build()?)?
///     .with_revocation(MemoryRevocationStore::new());
/// # let _ = sessions;
/// # Ok::<(), session::Error>(())
/// ```
#[derive(Clone)]
pub struct MemoryRevocationStore {
    inner: Arc<Mutex<Generations>>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Generations {
    entries: HashMap<IndexKey, Entry>,
    /// How many entries the map may hold before forgotten ones are swept out.
    sweep_at: usize,
}

#[derive(Clone, Copy)]
struct Entry {
    generation: u64,
    forget_at_ms: u64,
}

/// Entries a map holds before its first sweep.
const FIRST_SWEEP: usize = 1024;

impl MemoryRevocationStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store on `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Generations {
                entries: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            })),
            clock: Arc::new(clock),
        }
    }

    fn update(&self, index: &IndexKey, keep_for: Duration, raise: bool) -> u64 {
        let now = self.clock.now_ms();
        let keep_until = now.saturating_add(duration_ms(keep_for));
        let mut generations = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let current = generations
            .entries
            .get(index)
            .filter(|entry| entry.forget_at_ms > now)
            .copied();
        let generation = current.map_or(0, |entry| entry.generation) + u64::from(raise);
        if generation == 0 {
            generations.entries.remove(index);
            return 0;
        }
        let forget_at_ms = current.map_or(keep_until, |entry| entry.forget_at_ms.max(keep_until));
        generations.entries.insert(
            *index,
            Entry {
                generation,
                forget_at_ms,
            },
        );
        if generations.entries.len() >= generations.sweep_at {
            generations.entries.retain(|_, entry| entry.forget_at_ms > now);
            generations.sweep_at = (generations.entries.len() * 2).max(FIRST_SWEEP);
        }
        generation
    }
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let generations = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("MemoryRevocationStore")
            .field("indexes", &generations.entries.len())
            .finish_non_exhaustive()
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn generation<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a> {
        let generation = self.update(index, keep_for, false);
        Box::pin(async move { Ok(generation) })
    }

    fn revoke<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a> {
        let generation = self.update(index, keep_for, true);
        Box::pin(async move { Ok(generation) })
    }

    fn is_local(&self) -> bool {
        true
    }
}

/// A [`RevocationStore`] with the cache in front of it that
/// [`CookieSessions`](crate::CookieSessions) shares between its clones.
pub(crate) struct Revocation {
    store: Arc<dyn RevocationStore>,
    cache: Mutex<Generations>,
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// How a lookup may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// An answer fetched less than the staleness bound ago will do.
    Cached,
    /// Ask the store.
    Fresh,
}

impl Revocation {
    pub(crate) fn new(store: impl RevocationStore) -> Self {
        Self {
            store: Arc::new(store),
            cache: Mutex::new(Generations {
                entries: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    /// The current generation of `index`, from the cache when an answer at most
    /// `staleness_ms` old is there and `lookup` allows it.
    pub(crate) async fn generation(
        &self,
        index: &IndexKey,
        lookup: Lookup,
        now_ms: u64,
        staleness_ms: u64,
        keep_for: Duration,
    ) -> Result<u64, Error> {
        if self.store.is_local() {
            return self.store.generation(index, keep_for).await;
        }
        if lookup == Lookup::Cached
            && let Some(generation) = self.cached(index, now_ms)
        {
            return Ok(generation);
        }
        let generation = self.store.generation(index, keep_for).await?;
        Ok(self.remember(index, generation, now_ms, staleness_ms))
    }

    /// Raises the generation of `index` in the store, and in this node's cache at once.
    pub(crate) async fn revoke(
        &self,
        index: &IndexKey,
        now_ms: u64,
        staleness_ms: u64,
        keep_for: Duration,
    ) -> Result<u64, Error> {
        let generation = self.store.revoke(index, keep_for).await?;
        if self.store.is_local() {
            return Ok(generation);
        }
        Ok(self.remember(index, generation, now_ms, staleness_ms))
    }

    fn cached(&self, index: &IndexKey, now_ms: u64) -> Option<u64> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .entries
            .get(index)
            .filter(|entry| entry.forget_at_ms > now_ms)
            .map(|entry| entry.generation)
    }

    /// Caches `generation` for `staleness_ms` from `now_ms` and answers the generation to
    /// use: a higher one still fresh in the cache wins, as a lookup that started before this
    /// node's revoke may end after it.
    fn remember(&self, index: &IndexKey, generation: u64, now_ms: u64, staleness_ms: u64) -> u64 {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = Entry {
            generation,
            forget_at_ms: now_ms.saturating_add(staleness_ms),
        };
        let entry = match cache.entries.get(index) {
            Some(known) if known.generation > generation && known.forget_at_ms > now_ms => *known,
            _ => fresh,
        };
        cache.entries.insert(*index, entry);
        if cache.entries.len() >= cache.sweep_at {
            cache.entries.retain(|_, kept| kept.forget_at_ms > now_ms);
            cache.sweep_at = (cache.entries.len() * 2).max(FIRST_SWEEP);
        }
        entry.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn key(user: &str) -> IndexKey {
        IndexKey::of("user", user).unwrap()
    }

    fn now<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn the_memory_store_counts_per_index_and_forgets_what_nobody_read_for_keep_for() {
        let clock = ManualClock::new();
        let store = MemoryRevocationStore::with_clock(clock.clone());
        let keep = Duration::from_secs(10);
        assert_eq!(now(store.generation(&key("alice"), keep)).unwrap(), 0);
        assert_eq!(now(store.revoke(&key("alice"), keep)).unwrap(), 1);
        assert_eq!(now(store.revoke(&key("alice"), keep)).unwrap(), 2);
        assert_eq!(now(store.generation(&key("bob"), keep)).unwrap(), 0, "another index");

        clock.advance(Duration::from_secs(8));
        assert_eq!(
            now(store.generation(&key("alice"), keep)).unwrap(),
            2,
            "a read keeps it"
        );
        clock.advance(Duration::from_secs(8));
        assert_eq!(now(store.generation(&key("alice"), keep)).unwrap(), 2);
        clock.advance(keep);
        assert_eq!(now(store.generation(&key("alice"), keep)).unwrap(), 0, "forgotten");
        assert_eq!(now(store.revoke(&key("alice"), keep)).unwrap(), 1);
        assert!(format!("{store:?}").contains("indexes: 1"));
    }

    /// A store whose lookups answer what it was told, to race a lookup against a revoke.
    #[derive(Debug)]
    struct Scripted(Arc<Mutex<u64>>);

    impl RevocationStore for Scripted {
        fn generation<'a>(&'a self, _: &'a IndexKey, _: Duration) -> GenerationFuture<'a> {
            let generation = *self.0.lock().unwrap();
            Box::pin(async move { Ok(generation) })
        }

        fn revoke<'a>(&'a self, _: &'a IndexKey, _: Duration) -> GenerationFuture<'a> {
            let mut generation = self.0.lock().unwrap();
            *generation += 1;
            let generation = *generation;
            Box::pin(async move { Ok(generation) })
        }
    }

    #[test]
    fn the_cache_serves_answers_for_the_staleness_bound_and_never_goes_below_a_revoke_seen_here() {
        let answer = Arc::new(Mutex::new(0));
        let revocation = Revocation::new(Scripted(answer.clone()));
        let keep = Duration::from_secs(60);
        let alice = key("alice");
        let at = |now_ms, lookup| now(revocation.generation(&alice, lookup, now_ms, 1_000, keep)).unwrap();
        assert_eq!(at(0, Lookup::Cached), 0);
        assert_eq!(now(revocation.revoke(&alice, 10, 1_000, keep)).unwrap(), 1);
        assert_eq!(at(20, Lookup::Cached), 1, "a revoke here is seen at once");

        // A lookup that read 0 before the revoke and ends after it does not undo it.
        assert_eq!(revocation.remember(&alice, 0, 30, 1_000), 1);
        assert_eq!(at(40, Lookup::Cached), 1);

        *answer.lock().unwrap() = 5;
        assert_eq!(at(1_009, Lookup::Cached), 1, "within the bound");
        assert_eq!(at(1_010, Lookup::Cached), 5, "after it");
        *answer.lock().unwrap() = 6;
        assert_eq!(at(1_011, Lookup::Fresh), 6, "a fresh lookup asks");
    }
}
