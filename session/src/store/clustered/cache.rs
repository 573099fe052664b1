//! The node's local cache: bounded in entries, each entry served for one TTL after it was
//! put in (and dropped when found past it, or by the sweep of a later put), the least
//! recently used of a few sampled entries evicted when full.
//!
//! Sharded maps under plain mutexes: a hit is a lock, a lookup and an `Arc` clone, and
//! a put of a key already held replaces its value in place (the node's own writes put
//! the session they wrote after every save).

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use super::lock;
use crate::id::{KeyMap, StoreKey};

/// Locks are per shard; the shard is picked by a key byte that the maps' hasher does not
/// use (`id::KeyHash` reads bytes 8..16).
const SHARDS: usize = 16;
/// How many entries an eviction compares: the least recently used of them goes.
const SAMPLES: usize = 5;
/// How many entries each put of a new key checks for expiry, dropping those past it: an
/// entry nobody asks for again (a decrypted session) leaves memory soon after its TTL, not
/// only when the cache is full.
const SWEEP: usize = 2;
/// The longest an entry is kept, whatever the TTL: a longer one (`Duration::MAX` meant as
/// "never") would overflow an `Instant`.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A bounded cache of `V` by store key, entries living at most the TTL.
pub(super) struct LocalCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    shard_capacity: usize,
    ttl: Duration,
}

struct Shard<V> {
    /// Each key's place in `slots`.
    places: KeyMap<usize>,
    slots: Vec<Slot<V>>,
    /// Counts uses, for recency.
    tick: u64,
    /// xorshift state for sampling.
    random: u64,
}

struct Slot<V> {
    key: StoreKey,
    value: Arc<V>,
    expires: Instant,
    used: u64,
}

impl<V> LocalCache<V> {
    /// Holds at most `max_entries` (rounded up to a multiple of the shard count; none for
    /// 0), each for at most `ttl`.
    pub(super) fn new(max_entries: u64, ttl: Duration) -> Self {
        let max_entries = usize::try_from(max_entries).unwrap_or(usize::MAX);
        Self {
            shards: (0..SHARDS)
                .map(|n| {
                    Mutex::new(Shard {
                        places: KeyMap::default(),
                        slots: Vec::new(),
                        tick: 0,
                        // Any odd seed will do: xorshift never leaves a nonzero state.
                        random: (0x9e37_79b9_7f4a_7c15 ^ ((n as u64) << 1)) | 1,
                    })
                })
                .collect(),
            shard_capacity: max_entries.div_ceil(SHARDS),
            ttl: ttl.min(MAX_TTL),
        }
    }

    fn shard(&self, key: &StoreKey) -> MutexGuard<'_, Shard<V>> {
        lock(&self.shards[usize::from(key.as_bytes()[1]) % SHARDS])
    }

    /// The value of `key`, unless absent or older than the TTL.
    pub(super) fn get(&self, key: &StoreKey) -> Option<Arc<V>> {
        let mut shard = self.shard(key);
        let place = *shard.places.get(key)?;
        if shard.slots[place].expires <= Instant::now() {
            shard.remove(key);
            return None;
        }
        shard.tick += 1;
        let tick = shard.tick;
        let slot = &mut shard.slots[place];
        slot.used = tick;
        Some(Arc::clone(&slot.value))
    }

    /// Puts `value` under `key` for one TTL from now, evicting an entry if the shard is
    /// full.
    pub(super) fn insert(&self, key: StoreKey, value: Arc<V>) {
        if self.shard_capacity == 0 {
            return;
        }
        let now = Instant::now();
        let expires = now + self.ttl;
        let mut shard = self.shard(&key);
        shard.tick += 1;
        let slot = Slot {
            key,
            value,
            expires,
            used: shard.tick,
        };
        if let Some(&place) = shard.places.get(&key) {
            shard.slots[place] = slot;
            return;
        }
        shard.drop_expired_samples(now);
        if shard.slots.len() >= self.shard_capacity {
            shard.evict_one(now);
        }
        let place = shard.slots.len();
        shard.places.insert(key, place);
        shard.slots.push(slot);
    }

    /// Drops `key`'s entry, if any.
    pub(super) fn invalidate(&self, key: &StoreKey) {
        self.shard(key).remove(key);
    }

    /// Drops every entry.
    pub(super) fn invalidate_all(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.places.clear();
            shard.slots.clear();
        }
    }

    /// The entries held, expired ones not yet dropped included.
    pub(super) fn entry_count(&self) -> u64 {
        self.shards.iter().map(|shard| lock(shard).slots.len() as u64).sum()
    }
}

impl<V> Shard<V> {
    fn remove(&mut self, key: &StoreKey) {
        let Some(place) = self.places.remove(key) else {
            return;
        };
        self.slots.swap_remove(place);
        if let Some(moved) = self.slots.get(place) {
            self.places.insert(moved.key, place);
        }
    }

    /// Evicts an expired entry or the least recently used, among a few sampled ones.
    fn evict_one(&mut self, now: Instant) {
        let mut victim: Option<(bool, u64, StoreKey)> = None;
        for _ in 0..SAMPLES.min(self.slots.len()) {
            let place = self.next_random() % self.slots.len();
            let slot = &self.slots[place];
            // Expired first, then the oldest use.
            let rank = (slot.expires > now, slot.used, slot.key);
            if victim.is_none_or(|victim| (rank.0, rank.1) < (victim.0, victim.1)) {
                victim = Some(rank);
            }
        }
        if let Some((_, _, key)) = victim {
            self.remove(&key);
        }
    }

    /// Drops those of a few sampled entries that are past their TTL.
    fn drop_expired_samples(&mut self, now: Instant) {
        for _ in 0..SWEEP {
            if self.slots.is_empty() {
                return;
            }
            let place = self.next_random() % self.slots.len();
            if self.slots[place].expires <= now {
                let key = self.slots[place].key;
                self.remove(&key);
            }
        }
    }

    fn next_random(&mut self) -> usize {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        (x >> 16) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;

    fn key() -> StoreKey {
        SessionId::generate().unwrap().store_key()
    }

    #[test]
    fn puts_replace_in_place_and_invalidations_drop() {
        let cache = LocalCache::new(100, Duration::from_secs(60));
        let (a, b) = (key(), key());
        cache.insert(a, Arc::new(1));
        cache.insert(b, Arc::new(2));
        cache.insert(a, Arc::new(3));
        assert_eq!(cache.get(&a).as_deref(), Some(&3));
        assert_eq!(cache.get(&b).as_deref(), Some(&2));
        assert_eq!(cache.entry_count(), 2);
        cache.invalidate(&a);
        assert_eq!(cache.get(&a), None);
        assert_eq!(
            cache.get(&b).as_deref(),
            Some(&2),
            "the other entry, moved in its shard, still found"
        );
        cache.invalidate_all();
        assert_eq!((cache.get(&b), cache.entry_count()), (None, 0));
    }

    #[test]
    fn no_room_caches_nothing_and_no_ttl_is_too_long() {
        let none = LocalCache::new(0, Duration::from_secs(60));
        let a = key();
        none.insert(a, Arc::new(1));
        assert_eq!((none.get(&a), none.entry_count()), (None, 0));
        let forever = LocalCache::new(10, Duration::MAX);
        forever.insert(a, Arc::new(1));
        assert_eq!(forever.get(&a).as_deref(), Some(&1));
    }

    #[test]
    fn entries_live_one_ttl_from_their_put() {
        let cache = LocalCache::new(100, Duration::from_millis(50));
        let a = key();
        cache.insert(a, Arc::new(1));
        assert!(cache.get(&a).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&a), None, "expired");
        assert_eq!(cache.entry_count(), 0, "and dropped when found expired");
    }

    #[test]
    fn puts_of_new_keys_drop_expired_entries_nobody_asks_for() {
        let cache = LocalCache::new(1600, Duration::from_millis(100));
        for n in 0..800 {
            cache.insert(key(), Arc::new(n));
        }
        std::thread::sleep(Duration::from_millis(120));
        for n in 0..800 {
            cache.insert(key(), Arc::new(n));
        }
        // 1,600 samples over 16 shards of 50 expired entries and up to 50 fresh ones.
        let left = cache.entry_count().saturating_sub(800);
        assert!(left < 400, "{left} of 800 expired entries left");
    }

    #[test]
    fn a_full_cache_stays_bounded_and_keeps_what_is_used() {
        let cache = LocalCache::new(1600, Duration::from_secs(60));
        let hot: Vec<StoreKey> = (0..4).map(|_| key()).collect();
        for (n, key) in hot.iter().enumerate() {
            cache.insert(*key, Arc::new(n));
        }
        for n in 0..20_000 {
            cache.insert(key(), Arc::new(n));
            for key in &hot {
                cache.get(key);
            }
        }
        assert_eq!(cache.entry_count(), 1600, "full, and no fuller");
        // An eviction drops the least recently used of five sampled entries of a shard of
        // 100: a key used after every put goes only if all five samples are hot keys.
        let kept = hot.iter().filter(|key| cache.get(key).is_some()).count();
        assert_eq!(kept, hot.len());
    }
}
