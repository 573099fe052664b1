//! The bookkeeping behind the clustered store's coherence invariants (numbered on
//! `ClusteredStore`, in `mod.rs`): what decides whether a cached record may be served.
//!
//! - A load takes a [`Snapshot`] (sequence number, flush epoch, time) before it asks Redis;
//!   its result is servable while no invalidation of that key was recorded after the
//!   snapshot, no flush happened, and the snapshot is younger than the local TTL
//!   (invariants 3, 5, 6). Invalidations are kept per key for one local TTL: after that,
//!   every entry that could predate them has expired by age.
//! - The node's own writes are recorded as invalidations when sent and when answered, so
//!   no overlapping load is cached; [`Write`] holds what is needed to cache a write's
//!   result only if nothing else was recorded for its key in between (invariant 4). The
//!   echo of a write whose result is cached counts as the node's own for a short wait
//!   after the reply, so the write's request does not wait for the listener to apply it.
//! - A cached record is served only once every invalidation connection has applied what
//!   Redis had written to it when the load began: its unread bytes (peeked) plus those
//!   its driver has read (counted) give the count to wait for ([`Link`]; invariant 2).

use std::{
    io::ErrorKind,
    net::{Shutdown, TcpStream},
    pin::pin,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::lock;
use crate::id::{KeyMap, StoreKey};

const SHARDS: usize = 64;

/// The most unread bytes a link's backlog is measured up to; a longer backlog is not
/// waited for.
const MAX_BACKLOG: usize = 16 * 1024;

thread_local! {
    /// Where a backlog is peeked into: one per thread, so a measure does not zero 16 KiB.
    static PEEK_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MAX_BACKLOG]);
}

/// The state a load started from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Snapshot {
    epoch: u64,
    seq: u64,
    at: Instant,
}

/// One invalidation connection, as the read path sees it.
#[derive(Debug)]
pub(super) struct Link {
    /// A second handle on the connection's TCP socket (under TLS too), to see unread bytes
    /// without reading.
    peek: TcpStream,
    /// Odd while the connection's driver is being polled (it may be mid-way through
    /// applying what it read).
    polls: AtomicU64,
    /// Bytes the driver has read from the socket (counted by the listener's stream).
    received: Arc<AtomicU64>,
    /// `received` when the last poll ended: every byte before it has been applied.
    applied: AtomicU64,
    /// Notified when a poll ends or the link closes.
    polled: Notify,
    closed: AtomicBool,
}

/// What a link has to apply before everything Redis has written to it so far is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backlog {
    /// Nothing: no unread bytes, no poll in progress.
    None,
    /// The bytes up to this count of [`Link::received`].
    Until(u64),
    /// Unknown until the poll in progress ends.
    Polling,
    /// Unknown: the link is closed, or its backlog is longer than [`MAX_BACKLOG`].
    Unknown,
}

impl Link {
    pub(super) fn new(peek: TcpStream) -> Self {
        Self {
            peek,
            polls: AtomicU64::new(0),
            received: Arc::new(AtomicU64::new(0)),
            applied: AtomicU64::new(0),
            polled: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// The counter the connection's stream adds every byte it reads to.
    pub(super) fn received(&self) -> Arc<AtomicU64> {
        self.received.clone()
    }

    /// Brackets one poll of the connection's driver. The driver reads until its socket
    /// would block and applies every whole message before its poll ends, so what was
    /// received by then has been applied.
    pub(super) fn polling<T>(&self, poll: impl FnOnce() -> T) -> T {
        self.polls.fetch_add(1, SeqCst);
        let result = poll();
        self.applied.store(self.received.load(SeqCst), SeqCst);
        self.polls.fetch_add(1, SeqCst);
        self.polled.notify_waiters();
        result
    }

    pub(super) fn close(&self) {
        self.closed.store(true, SeqCst);
        // Shuts the socket itself (not just this handle), so the driver sees the end.
        let _ = self.peek.shutdown(Shutdown::Both);
        self.polled.notify_waiters();
    }

    /// What is to be applied before everything Redis has written so far is: the unread
    /// bytes and the count already read, taken while no poll runs (only a poll reads), so
    /// the two agree.
    fn backlog(&self) -> Backlog {
        let before = self.polls.load(SeqCst);
        if self.closed.load(SeqCst) {
            return Backlog::Unknown;
        }
        if before % 2 == 1 {
            return Backlog::Polling;
        }
        let peeked = PEEK_BUFFER.with_borrow_mut(|buffer| self.peek.peek(buffer));
        let unread = match peeked {
            Err(error) if error.kind() == ErrorKind::WouldBlock => 0,
            // At the end of the stream, or full: nothing to wait for.
            Ok(0 | MAX_BACKLOG) | Err(_) => return Backlog::Unknown,
            Ok(unread) => unread as u64,
        };
        let received = self.received.load(SeqCst);
        if self.polls.load(SeqCst) != before {
            return Backlog::Polling;
        }
        if unread == 0 {
            Backlog::None
        } else {
            Backlog::Until(received + unread)
        }
    }

    /// Waits until `backlog` (measured before the call, neither `None` nor `Unknown`) has
    /// been applied; `false` if the link closes, its backlog cannot be measured, or
    /// `deadline` passes first.
    async fn catch_up(&self, backlog: Backlog, deadline: tokio::time::Instant) -> bool {
        let mut until = match backlog {
            Backlog::Until(bytes) => Some(bytes),
            _ => None,
        };
        loop {
            // Registered before the check, so a poll ending in between is not missed.
            let mut polled = pin!(self.polled.notified());
            polled.as_mut().enable();
            match until {
                None => match self.backlog() {
                    Backlog::None => return true,
                    Backlog::Unknown => return false,
                    Backlog::Until(bytes) => {
                        until = Some(bytes);
                        continue;
                    }
                    Backlog::Polling => {}
                },
                Some(bytes) => {
                    if self.closed.load(SeqCst) {
                        return false;
                    }
                    if self.applied.load(SeqCst) >= bytes {
                        return true;
                    }
                }
            }
            if tokio::time::timeout_at(deadline, polled).await.is_err() {
                return false;
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Invalidated {
    seq: u64,
    at: Instant,
}

/// This node's writes of one key.
#[derive(Debug, Default)]
struct OwnWrites {
    in_flight: u32,
    /// Until then, an echo naming this store alone is of a write whose result this node
    /// caches: Redis sent it before the write's reply, but the listener may apply it later.
    echo_until: Option<Instant>,
    /// Until then, echoes of this key are treated as another writer's.
    doubtful_until: Option<Instant>,
}

impl OwnWrites {
    /// Whether an echo of the key naming this store alone is one of these writes'.
    fn expects_echo(&self) -> bool {
        (self.in_flight > 0 || !lapsed(self.echo_until)) && lapsed(self.doubtful_until)
    }

    /// Whether nothing is left to remember.
    fn is_idle(&self) -> bool {
        self.in_flight == 0 && lapsed(self.echo_until) && lapsed(self.doubtful_until)
    }
}

/// A write of this node in flight; see [`Tracker::begin_write`].
#[derive(Debug)]
#[must_use = "pass it to Tracker::end_write"]
pub(super) struct Write {
    key: StoreKey,
    seq: u64,
    /// The epoch and age of what the write's result derives from, if it can be cached.
    basis: Option<(u64, Instant)>,
}

impl Write {
    /// Whether the write's result may be cached if nothing else happens meanwhile.
    pub(super) fn cacheable(&self) -> bool {
        self.basis.is_some()
    }
}

/// What a write of this node starts from; see [`Tracker::begin_write`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Basis<'a> {
    /// The write carries the whole record (a create).
    Whole,
    /// The write changes the record cached with this snapshot.
    Cached(&'a Snapshot),
    /// Nothing known here: the write's result cannot be cached.
    Unknown,
}

/// Counters for [`ClusteredStats`](super::ClusteredStats).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) invalidations: AtomicU64,
    pub(super) flushes: AtomicU64,
}

/// See the [module documentation](self).
#[derive(Debug)]
pub(super) struct Tracker {
    epoch: AtomicU64,
    seq: AtomicU64,
    ready: AtomicBool,
    recent: Box<[Mutex<KeyMap<Invalidated>>]>,
    own: Box<[Mutex<KeyMap<OwnWrites>>]>,
    /// Until then, no echo is this node's: a write of unknown keys may still run unseen.
    doubtful_until: Mutex<Option<Instant>>,
    /// Bulk writes of this node running (a `clear`, a delete by index: keys not known
    /// beforehand): no echo is this node's while one is.
    bulk: AtomicUsize,
    recent_len: AtomicUsize,
    max_recent: usize,
    ttl: Duration,
    links: RwLock<Vec<Arc<Link>>>,
    pub(super) counters: Counters,
}

/// Whether a doubt that lasts `until` is over (or there is none).
fn lapsed(until: Option<Instant>) -> bool {
    until.is_none_or(|until| until <= Instant::now())
}

impl Tracker {
    /// A tracker that is not ready (serves nothing) until links are installed.
    pub(super) fn new(ttl: Duration, max_recent: usize) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            recent: (0..SHARDS).map(|_| Mutex::new(KeyMap::default())).collect(),
            own: (0..SHARDS).map(|_| Mutex::new(KeyMap::default())).collect(),
            doubtful_until: Mutex::new(None),
            bulk: AtomicUsize::new(0),
            recent_len: AtomicUsize::new(0),
            max_recent: max_recent.max(1),
            ttl,
            links: RwLock::new(Vec::new()),
            counters: Counters::default(),
        }
    }

    fn shard(&self, key: &StoreKey) -> &Mutex<KeyMap<Invalidated>> {
        &self.recent[usize::from(key.as_bytes()[1]) % SHARDS]
    }

    fn own_shard(&self, key: &StoreKey) -> &Mutex<KeyMap<OwnWrites>> {
        &self.own[usize::from(key.as_bytes()[1]) % SHARDS]
    }

    /// Where a load starts; `None` while the links are down (its result is not cached).
    pub(super) fn snapshot(&self) -> Option<Snapshot> {
        let snapshot = Snapshot {
            epoch: self.epoch.load(SeqCst),
            seq: self.seq.load(SeqCst),
            at: Instant::now(),
        };
        self.ready.load(SeqCst).then_some(snapshot)
    }

    /// Whether a record loaded from `snapshot` is still what Redis holds, as far as the
    /// invalidations applied so far tell.
    pub(super) fn still_valid(&self, key: &StoreKey, snapshot: &Snapshot) -> bool {
        self.ready.load(SeqCst)
            && self.epoch.load(SeqCst) == snapshot.epoch
            && snapshot.at.elapsed() < self.ttl
            && lock(self.shard(key))
                .get(key)
                .is_none_or(|seen| seen.seq <= snapshot.seq)
    }

    /// Whether a cached record may be served now: once every link has applied what Redis
    /// sent it before now (waiting at most `wait`), [`still_valid`](Self::still_valid).
    pub(super) async fn serves(&self, key: &StoreKey, snapshot: &Snapshot, wait: Duration) -> bool {
        self.catch_up(wait).await && self.still_valid(key, snapshot)
    }

    /// Records that `key` changed: no load that started before now may be cached or served.
    pub(super) fn invalidate(&self, key: &StoreKey) {
        self.record(key, |_| ());
    }

    /// [`invalidate`](Self::invalidate), running `inspect` on the key's previous
    /// invalidation under the same lock; returns the new sequence number and its result.
    fn record<T>(&self, key: &StoreKey, inspect: impl FnOnce(Option<&Invalidated>) -> T) -> (u64, T) {
        let mut shard = lock(self.shard(key));
        let inspected = inspect(shard.get(key));
        let seq = self.seq.fetch_add(1, SeqCst) + 1;
        let seen = Invalidated {
            seq,
            at: Instant::now(),
        };
        let added = shard.insert(*key, seen).is_none();
        drop(shard);
        if added && self.recent_len.fetch_add(1, SeqCst) + 1 > self.max_recent {
            // Bounded memory under a write storm: forget everything at once instead.
            self.flush();
        }
        (seq, inspected)
    }

    /// This node starts a write of `key`: invalidates it (see [`invalidate`](Self::invalidate))
    /// and marks the write in flight. Every call must be followed by
    /// [`end_write`](Self::end_write) with what it returns.
    pub(super) fn begin_write(&self, key: &StoreKey, basis: Basis<'_>) -> Write {
        lock(self.own_shard(key)).entry(*key).or_default().in_flight += 1;
        let now = Instant::now();
        let epoch = self.epoch.load(SeqCst);
        let (seq, unchanged) = self.record(key, |seen| match basis {
            Basis::Cached(base) => seen.is_none_or(|seen| seen.seq <= base.seq),
            Basis::Whole | Basis::Unknown => true,
        });
        let basis = match basis {
            Basis::Whole => Some((epoch, now)),
            Basis::Cached(base) if unchanged => Some((base.epoch, base.at)),
            Basis::Cached(_) | Basis::Unknown => None,
        };
        Write { key: *key, seq, basis }
    }

    /// The write has ended; `settled` if it certainly cannot still run later (it
    /// succeeded). Invalidates the key again, so a load that began during the
    /// write (and may have read the record before it) is not cached. Returns the snapshot
    /// under which the write's result may be cached: only if it had a valid basis and
    /// nothing else was recorded for the key while it ran (another write of this node, or
    /// anyone's write Redis announced).
    ///
    /// When it returns a snapshot, the write's echo still counts as this node's for
    /// `echo_wait` if one is given (the caller caches the result: the write stays in flight
    /// until then, as far as echoes go), so the caller need not wait for the listener to
    /// apply it.
    pub(super) fn end_write(&self, write: Write, settled: bool, echo_wait: Option<Duration>) -> Option<Snapshot> {
        // Recorded while the write still counts as in flight: an echo applied meanwhile
        // is skipped, as one applied before.
        let (seq, alone) = self.record(&write.key, |seen| seen.is_some_and(|seen| seen.seq == write.seq));
        let snapshot = write
            .basis
            .filter(|_| settled && alone)
            .map(|(epoch, at)| Snapshot { epoch, seq, at })
            .filter(|snapshot| self.still_valid(&write.key, snapshot));
        let mut own = lock(self.own_shard(&write.key));
        if let Some(writes) = own.get_mut(&write.key) {
            writes.in_flight = writes.in_flight.saturating_sub(1);
            if !settled {
                writes.doubtful_until = Some(Instant::now() + self.ttl);
            }
            if let Some(echo_wait) = echo_wait.filter(|_| snapshot.is_some()) {
                let until = Instant::now() + echo_wait;
                writes.echo_until = Some(writes.echo_until.map_or(until, |earlier| earlier.max(until)));
            }
            if writes.is_idle() {
                own.remove(&write.key);
            }
        }
        snapshot
    }

    /// Notes a message mentioning `key`; returns whether, if it names only this store as
    /// writer, it is the echo of a write in flight (or of one answered moments ago whose
    /// result is cached, see [`end_write`](Self::end_write)), which need not invalidate
    /// anything.
    pub(super) fn note_mention(&self, key: &StoreKey) -> bool {
        let own = lock(self.own_shard(key)).get(key).is_some_and(OwnWrites::expects_echo);
        own && self.bulk.load(SeqCst) == 0 && lapsed(*lock(&self.doubtful_until))
    }

    /// A bulk write of this node starts (a `clear`, a delete by index): until
    /// [`end_bulk`](Self::end_bulk), no echo is this node's, so every key it changes is
    /// invalidated as another writer's change would be.
    pub(super) fn begin_bulk(&self) {
        self.bulk.fetch_add(1, SeqCst);
    }

    /// The bulk write has ended (`settled` if it succeeded); `flush` drops everything (a
    /// `clear`). One that did not succeed may still run later, unseen, so for one local TTL
    /// no echo counts as this node's.
    pub(super) fn end_bulk(&self, settled: bool, flush: bool) {
        if !settled {
            *lock(&self.doubtful_until) = Some(Instant::now() + self.ttl);
        }
        if flush {
            self.flush();
        }
        self.bulk.fetch_sub(1, SeqCst);
    }

    /// Waits, at most `wait`, until everything Redis had written to the invalidation
    /// connections when called has been applied; `false` if that did not happen (no links,
    /// a link closed or too far behind, or slower than `wait`). Under load, messages about
    /// other keys keep arriving: only those already sent are waited for.
    pub(super) async fn catch_up(&self, wait: Duration) -> bool {
        // Each link's backlog is measured once (one peek at its socket), and a wait is set
        // up only for the links that have something left to apply.
        let behind: Vec<(Arc<Link>, Backlog)> = {
            let links = self.links.read().unwrap_or_else(PoisonError::into_inner);
            if links.is_empty() {
                return false;
            }
            let mut behind = Vec::new();
            for link in links.iter() {
                match link.backlog() {
                    Backlog::None => {}
                    Backlog::Unknown => return false,
                    backlog => behind.push((link.clone(), backlog)),
                }
            }
            behind
        };
        if behind.is_empty() {
            return true;
        }
        let deadline = tokio::time::Instant::now() + wait;
        for (link, backlog) in behind {
            if !link.catch_up(backlog, deadline).await {
                return false;
            }
        }
        true
    }

    /// Makes every cached entry unservable (an epoch change), e.g. after `FLUSHDB`.
    pub(super) fn flush(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.counters.flushes.fetch_add(1, SeqCst);
        for shard in &*self.recent {
            lock(shard).clear();
        }
        self.recent_len.store(0, SeqCst);
    }

    /// The links went down: nothing is cached or served until [`install`](Self::install).
    pub(super) fn lost(&self) {
        self.ready.store(false, SeqCst);
        self.flush();
        let links = std::mem::take(&mut *self.links.write().unwrap_or_else(PoisonError::into_inner));
        for link in links {
            link.close();
        }
    }

    /// A link's connection ended; if it was one of the installed links, everything is
    /// [`lost`](Self::lost) and `true` returned.
    pub(super) fn link_ended(&self, link: &Arc<Link>) -> bool {
        let installed = self
            .links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|installed| Arc::ptr_eq(installed, link));
        if installed {
            self.lost();
        }
        installed
    }

    /// Every link is up and tracking: caching resumes.
    pub(super) fn install(&self, links: Vec<Arc<Link>>) {
        *self.links.write().unwrap_or_else(PoisonError::into_inner) = links;
        // Nothing was cached while down; a new epoch makes sure of it.
        self.epoch.fetch_add(1, SeqCst);
        self.ready.store(true, SeqCst);
    }

    pub(super) fn is_ready(&self) -> bool {
        self.ready.load(SeqCst)
    }

    /// Forgets invalidations older than the local TTL: every entry that could predate them
    /// has expired by age.
    pub(super) fn prune(&self) {
        let mut removed = 0;
        for shard in &*self.recent {
            let mut shard = lock(shard);
            let before = shard.len();
            shard.retain(|_, seen| seen.at.elapsed() < self.ttl);
            removed += before - shard.len();
        }
        for shard in &*self.own {
            lock(shard).retain(|_, writes| !writes.is_idle());
        }
        let _ = self
            .recent_len
            .fetch_update(SeqCst, SeqCst, |len| Some(len.saturating_sub(removed)));
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    const ECHO_WAIT: Option<Duration> = Some(Duration::from_millis(50));

    fn key(byte: u8) -> StoreKey {
        StoreKey::from_bytes([byte; 32])
    }

    fn ready_tracker(ttl: Duration) -> (Tracker, TcpStream) {
        let tracker = Tracker::new(ttl, 1000);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let (server, _) = listener.accept().unwrap();
        tracker.install(vec![Arc::new(Link::new(client))]);
        (tracker, server)
    }

    /// How long the tests let a load wait for a link.
    const WAIT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn a_load_racing_an_invalidation_is_never_served() {
        let (tracker, _server) = ready_tracker(Duration::from_secs(60));
        let snapshot = tracker.snapshot().unwrap();
        assert!(tracker.serves(&key(1), &snapshot, WAIT).await);
        tracker.invalidate(&key(1));
        assert!(
            !tracker.still_valid(&key(1), &snapshot),
            "invalidated after the load began"
        );
        assert!(
            tracker.serves(&key(2), &snapshot, WAIT).await,
            "other keys are unaffected"
        );
        let later = tracker.snapshot().unwrap();
        assert!(
            tracker.serves(&key(1), &later, WAIT).await,
            "a load after the invalidation is fine"
        );
    }

    #[tokio::test]
    async fn an_own_write_is_cached_only_from_a_basis_nothing_else_changed() {
        let (tracker, _server) = ready_tracker(Duration::from_secs(60));
        let base = tracker.snapshot().unwrap();
        let first = tracker.begin_write(&key(1), Basis::Cached(&base));
        let second = tracker.begin_write(&key(1), Basis::Cached(&base));
        assert!(
            tracker.end_write(second, true, ECHO_WAIT).is_none(),
            "a second write from the same basis cannot know the first's result"
        );
        assert!(
            tracker.end_write(first, true, ECHO_WAIT).is_none(),
            "nor the first the second's"
        );

        let base = tracker.snapshot().unwrap();
        let write = tracker.begin_write(&key(2), Basis::Cached(&base));
        let loading = tracker.snapshot().unwrap();
        let written = tracker.end_write(write, true, ECHO_WAIT).unwrap();
        assert!(tracker.serves(&key(2), &written, WAIT).await);
        assert!(
            !tracker.still_valid(&key(2), &loading),
            "a load that overlapped the write is not cached"
        );

        let base = tracker.snapshot().unwrap();
        let write = tracker.begin_write(&key(3), Basis::Cached(&base));
        tracker.invalidate(&key(3));
        assert!(
            tracker.end_write(write, true, ECHO_WAIT).is_none(),
            "changed while it ran"
        );

        let base = tracker.snapshot().unwrap();
        tracker.invalidate(&key(4));
        let write = tracker.begin_write(&key(4), Basis::Cached(&base));
        assert!(
            tracker.end_write(write, true, ECHO_WAIT).is_none(),
            "changed before it began"
        );

        let write = tracker.begin_write(&key(5), Basis::Unknown);
        assert!(tracker.note_mention(&key(5)));
        assert!(tracker.end_write(write, true, ECHO_WAIT).is_none());
        assert!(!tracker.note_mention(&key(5)), "no write in flight");

        let write = tracker.begin_write(&key(7), Basis::Whole);
        assert!(tracker.note_mention(&key(7)), "the echo of a write in flight");
        assert!(
            tracker.end_write(write, true, ECHO_WAIT).is_some(),
            "its echo changed nothing"
        );
        assert!(
            tracker.note_mention(&key(7)),
            "the echo of a cached write, applied after its reply"
        );
        let write = tracker.begin_write(&key(8), Basis::Whole);
        assert!(tracker.end_write(write, true, Some(Duration::from_millis(1))).is_some());
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            !tracker.note_mention(&key(8)),
            "an echo applied later than the wait is another writer's"
        );
        tracker.prune();
        assert!(lock(tracker.own_shard(&key(8))).get(&key(8)).is_none(), "forgotten");

        let write = tracker.begin_write(&key(6), Basis::Whole);
        assert!(tracker.end_write(write, false, ECHO_WAIT).is_none(), "not answered");
        let write = tracker.begin_write(&key(6), Basis::Whole);
        assert!(
            !tracker.note_mention(&key(6)),
            "doubtful after a write that may still run"
        );
        assert!(tracker.end_write(write, true, ECHO_WAIT).is_some());
    }

    #[tokio::test]
    async fn flushes_and_lost_links_stop_serving() {
        let (tracker, _server) = ready_tracker(Duration::from_secs(60));
        let snapshot = tracker.snapshot().unwrap();
        tracker.flush();
        assert!(!tracker.serves(&key(1), &snapshot, WAIT).await);
        let snapshot = tracker.snapshot().unwrap();
        tracker.lost();
        assert!(!tracker.serves(&key(1), &snapshot, WAIT).await);
        assert!(
            tracker.snapshot().is_none(),
            "nothing is cached while the links are down"
        );
    }

    /// Waits until `bytes` more bytes are unread on `link`'s socket.
    fn arrived(link: &Link, bytes: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(link.peek.peek(&mut [0u8; 64]), Ok(unread) if unread >= bytes) {
            assert!(Instant::now() < deadline, "the bytes never arrived");
        }
    }

    /// One poll of `link`'s driver, as the listener runs it: reads what is unread, counts it.
    fn poll(link: &Link, client: &mut TcpStream) {
        use std::io::Read as _;
        link.polling(|| {
            let mut buffer = [0u8; 64];
            let read = client.read(&mut buffer).unwrap();
            link.received.fetch_add(read as u64, SeqCst);
        });
    }

    #[tokio::test]
    async fn a_load_waits_for_the_bytes_sent_before_it_and_no_later_ones() {
        use std::io::Write as _;
        let tracker = Tracker::new(Duration::from_secs(60), 1000);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let link = Arc::new(Link::new(client.try_clone().unwrap()));
        tracker.install(vec![link.clone()]);
        let (snapshot, key) = (tracker.snapshot().unwrap(), key(1));
        assert!(tracker.serves(&key, &snapshot, WAIT).await, "nothing unread");

        server.write_all(b">2\r\n").unwrap();
        arrived(&link, 4);
        assert!(
            !tracker.serves(&key, &snapshot, Duration::ZERO).await,
            "unread bytes are not applied yet"
        );
        let waiting = tracker.serves(&key, &snapshot, Duration::from_secs(5));
        let mut waiting = pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), waiting.as_mut())
                .await
                .is_err(),
            "it waits for them"
        );
        // More bytes arrive before the driver reads: they were not there when the load
        // began, so they do not hold it once the first ones are applied.
        poll(&link, &mut client);
        server.write_all(b"$1\r\n").unwrap();
        arrived(&link, 4);
        assert!(waiting.await, "served once the bytes before it are applied");
        assert!(
            !tracker.serves(&key, &snapshot, Duration::ZERO).await,
            "a new load waits for the later bytes"
        );
        poll(&link, &mut client);
        assert!(tracker.serves(&key, &snapshot, WAIT).await);

        server.write_all(b"x").unwrap();
        arrived(&link, 1);
        let waiting = tracker.serves(&key, &snapshot, Duration::from_secs(5));
        link.close();
        assert!(!waiting.await, "a closed link serves nothing");
    }

    #[tokio::test]
    async fn entries_expire_by_age_even_without_invalidations() {
        let (tracker, _server) = ready_tracker(Duration::from_millis(30));
        let snapshot = tracker.snapshot().unwrap();
        assert!(tracker.serves(&key(1), &snapshot, WAIT).await);
        std::thread::sleep(Duration::from_millis(40));
        assert!(!tracker.serves(&key(1), &snapshot, WAIT).await);
    }

    #[test]
    fn too_many_remembered_invalidations_flush_instead() {
        let tracker = Tracker::new(Duration::from_secs(60), 3);
        let epoch = tracker.epoch.load(SeqCst);
        for byte in 0..4 {
            tracker.invalidate(&key(byte));
        }
        assert_eq!(tracker.epoch.load(SeqCst), epoch + 1);
        assert_eq!(tracker.recent_len.load(SeqCst), 0);
    }
}
