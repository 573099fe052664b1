//! The connections a store keeps between its calls.
//!
//! sqlx's pool runs a round trip on a connection each time it hands one out (a ping, with
//! `test_before_acquire`, the default) and each time one comes back (a ping, always, in
//! sqlx 0.8): two of the three round trips of a one-statement call, and as much work for
//! the database as the statement itself. So a store keeps the connections its calls used
//! and hands each to its next call directly, with no round trip:
//!
//! - a call takes a kept connection if one is idle, else an idle one of the pool without
//!   its ping ([`Pool::try_acquire`]), else waits: for one of the store's connections if
//!   the pool can open no more and the store has one in a call or a call in the pool
//!   (which brings one back), otherwise in the pool;
//! - a call that ends with the connection sound gives it to the store's next waiting call,
//!   or keeps it idle; one that ended with a connection failure, or was cancelled (its
//!   timeout), gives the connection back to the pool, whose ping on return sorts it out
//!   (and, if nothing else would come to the calls waiting for one, sends the first there);
//! - a connection idle in the store for [`LINGER`] goes back to the pool, and so does one
//!   out of the pool for [`KEEP_AT_MOST`] at the end of its call, so the application's
//!   other users of the pool, and the pool's own lifetime limits, get their turn; and one
//!   for each call of the store's waiting in the pool;
//! - a statement on a connection that skipped the ping and failed at the connection level
//!   (what the ping would have caught: a server restarted or a connection it closed) is run
//!   once more on a connection the pool pings first.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::{Duration, Instant},
};

use sqlx::{Database, Pool, pool::PoolConnection};
use tokio::sync::oneshot;

/// How long a connection stays idle in the store before it goes back to the pool.
pub(crate) const LINGER: Duration = Duration::from_millis(50);

/// How long a connection stays out of the pool, across calls, at most.
pub(crate) const KEEP_AT_MOST: Duration = Duration::from_secs(1);

/// The connections a store holds, over its pool.
pub(crate) struct Lease<DB: Database> {
    pool: Pool<DB>,
    /// Whether connections are kept between calls (not for SQLite, whose pool's ping is a
    /// message to a thread of this process, and whose in-memory pool has one connection the
    /// application also reads through).
    keep: bool,
    state: Arc<Mutex<State<DB>>>,
}

struct State<DB: Database> {
    /// Most recently used last.
    idle: Vec<Kept<DB>>,
    /// Calls waiting for a connection of the store's: `None` sends one to the pool.
    waiting: VecDeque<oneshot::Sender<Option<Kept<DB>>>>,
    /// Calls waiting in the pool: one connection goes back to it for each.
    in_pool: usize,
    /// Connections given back to the pool for calls waiting there (at most `in_pool`).
    owed: usize,
    /// Connections out of the pool: idle here or in a call.
    out: u32,
    /// Whether a task returns idle connections to the pool.
    sweeping: bool,
    /// Tests: how many calls took a connection from the pool with its check.
    #[cfg(test)]
    checked: u64,
}

struct Kept<DB: Database> {
    /// Always there until dropped.
    connection: Option<PoolConnection<DB>>,
    /// When it came out of the pool.
    taken: Instant,
    /// When it was last kept idle.
    idle_since: Instant,
    /// The store's, to count it back when it goes back to the pool; gone with the store.
    state: Weak<Mutex<State<DB>>>,
}

/// A connection in a call; [`finish`](Self::finish) says how the call went. Dropped
/// unfinished (the call was cancelled), it goes back to the pool.
pub(crate) struct Held<'a, DB: Database> {
    lease: &'a Lease<DB>,
    kept: Option<Kept<DB>>,
    /// Whether the pool's ping was skipped.
    unchecked: bool,
}

impl<DB: Database> Lease<DB> {
    pub(crate) fn new(pool: Pool<DB>, keep: bool) -> Self {
        Self {
            pool,
            keep,
            state: Arc::new(Mutex::new(State {
                idle: Vec::new(),
                waiting: VecDeque::new(),
                in_pool: 0,
                owed: 0,
                out: 0,
                sweeping: false,
                #[cfg(test)]
                checked: 0,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<DB>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection for one call.
    pub(crate) async fn take(&self) -> Result<Held<'_, DB>, sqlx::Error> {
        let waiter = {
            let mut state = self.state();
            if let Some(kept) = state.idle.pop() {
                return Ok(self.held(kept, true));
            }
            if let Some(connection) = self.pool.try_acquire() {
                state.out += 1;
                return Ok(self.held(self.kept(connection), true));
            }
            // Waiting in the pool while the store keeps the connections it gets back, or
            // behind a call of the store's already waiting there (which brings its
            // connection back to the store), would wait for nothing: wait for one of those.
            if self.keep
                && (state.out > 0 || state.in_pool > 0)
                && self.pool.size() >= self.pool.options().get_max_connections()
            {
                let (send, receive) = oneshot::channel();
                state.waiting.push_back(send);
                Some(receive)
            } else {
                None
            }
        };
        if let Some(receive) = waiter
            && let Ok(Some(kept)) = receive.await
        {
            return Ok(self.held(kept, true));
        }
        self.take_checked().await
    }

    /// A connection as the pool hands it out (pinged first, by default).
    pub(crate) async fn take_checked(&self) -> Result<Held<'_, DB>, sqlx::Error> {
        /// Counts a call in `in_pool` while it waits there; cancelled, it leaves as one
        /// that got no connection.
        struct InPool<'a, DB: Database> {
            lease: &'a Lease<DB>,
            got_one: bool,
        }
        impl<DB: Database> Drop for InPool<'_, DB> {
            fn drop(&mut self) {
                self.lease.state().leave_pool(self.got_one);
            }
        }
        {
            let mut state = self.state();
            state.in_pool += 1;
            #[cfg(test)]
            {
                state.checked += 1;
            }
        }
        let mut in_pool = InPool {
            lease: self,
            got_one: false,
        };
        let connection = self.pool.acquire().await;
        in_pool.got_one = connection.is_ok();
        drop(in_pool);
        Ok(self.held(self.kept(connection?), false))
    }

    /// A connection just out of the pool (counted in `out` by the caller).
    fn kept(&self, connection: PoolConnection<DB>) -> Kept<DB> {
        let now = Instant::now();
        Kept {
            connection: Some(connection),
            taken: now,
            idle_since: now,
            state: Arc::downgrade(&self.state),
        }
    }

    fn held(&self, kept: Kept<DB>, unchecked: bool) -> Held<'_, DB> {
        Held {
            lease: self,
            kept: Some(kept),
            unchecked,
        }
    }

    /// Gives a sound connection to a waiting call, keeps it idle, or gives it back to the
    /// pool.
    fn put(&self, mut kept: Kept<DB>) {
        let mut state = self.state();
        // A call waiting in the pool would otherwise wait for a connection that comes back
        // to it only after `KEEP_AT_MOST`; one connection for each is enough (sending every
        // one back set off a cascade: calls found none kept and queued in the pool too).
        let owed = state.in_pool > state.owed;
        if !self.keep || owed || kept.taken.elapsed() >= KEEP_AT_MOST {
            state.owed += usize::from(owed);
            drop(state);
            return drop(kept);
        }
        while let Some(waiter) = state.waiting.pop_front() {
            match waiter.send(Some(kept)) {
                Ok(()) => return,
                // That call was cancelled.
                Err(returned) => kept = returned.expect("sent a connection"),
            }
        }
        kept.idle_since = Instant::now();
        state.idle.push(kept);
        if !state.sweeping
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            state.sweeping = true;
            runtime.spawn(sweep(Arc::downgrade(&self.state)));
        }
    }
}

impl<DB: Database> State<DB> {
    /// A call of the store's stops waiting in the pool, with a connection (counted in
    /// `out`) or without.
    fn leave_pool(&mut self, got_one: bool) {
        self.in_pool -= 1;
        if got_one {
            // Whichever connection it got, one owed to the calls in the pool is used up.
            self.owed = self.owed.saturating_sub(1);
            self.out += 1;
        }
        self.owed = self.owed.min(self.in_pool);
        self.wake_if_stranded();
    }

    /// With no connection of the store's out and no call of its in the pool, nothing
    /// would come to the calls waiting for one: the first still waiting goes to the pool
    /// (and the others wait behind it).
    fn wake_if_stranded(&mut self) {
        if self.out > 0 || self.in_pool > 0 {
            return;
        }
        while let Some(waiter) = self.waiting.pop_front() {
            if waiter.send(None).is_ok() {
                return;
            }
        }
    }
}

impl<DB: Database> Drop for Kept<DB> {
    /// Gives the connection back to the pool (sqlx checks it there) and, if nothing else
    /// would come to the calls waiting for one, sends the first of them there. (Sending one
    /// to the pool for each connection that went back set off a cascade: calls queued in
    /// the pool, with two pings each.) Whatever drops it: a call that failed or was
    /// cancelled, the sweep, a waiting call cancelled as it was handed one. Never dropped
    /// under the lock.
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.out -= 1;
            state.wake_if_stranded();
        }
        drop(self.connection.take());
    }
}

/// Gives the connections idle for [`LINGER`] back to the pool, until none is idle or the
/// store is gone.
async fn sweep<DB: Database>(state: Weak<Mutex<State<DB>>>) {
    loop {
        tokio::time::sleep(LINGER).await;
        let Some(state) = state.upgrade() else { return };
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (stale, fresh): (Vec<_>, Vec<_>) = state
            .idle
            .drain(..)
            .partition(|kept| now.duration_since(kept.idle_since) >= LINGER);
        state.idle = fresh;
        let done = state.idle.is_empty();
        if done {
            state.sweeping = false;
        }
        drop(state);
        drop(stale);
        if done {
            return;
        }
    }
}

impl<DB: Database> Held<'_, DB> {
    /// The connection.
    pub(crate) fn connection(&mut self) -> &mut DB::Connection {
        self.kept
            .as_mut()
            .and_then(|kept| kept.connection.as_deref_mut())
            .expect("held until finished")
    }

    /// Whether `result` is a connection failure on a connection handed over without the
    /// pool's check: what the check would have caught (a server restarted, a connection it
    /// closed while idle), so the statement is run once more on a checked one.
    pub(crate) fn should_retry<T>(&self, result: &Result<T, sqlx::Error>) -> bool {
        self.unchecked && result.as_ref().is_err_and(lost)
    }

    /// Ends the call: a connection that answered (with rows or with an error of the
    /// database's) is kept, a lost one goes back to the pool.
    pub(crate) fn finish<T>(mut self, result: &Result<T, sqlx::Error>) {
        let kept = self.kept.take().expect("held until finished");
        if result.as_ref().is_err_and(lost) {
            drop(kept);
        } else {
            self.lease.put(kept);
        }
    }
}

impl<DB: Database> Drop for Held<'_, DB> {
    fn drop(&mut self) {
        drop(self.kept.take());
    }
}

/// Whether an error says the connection is lost (so it goes back to the pool, whose check
/// drops it): an I/O or protocol failure, or the server ending the session (SQLSTATE class
/// `08`, and `57P01`-`57P03`: terminated, shutting down).
fn lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A lease that keeps connections, over a pool of `connections` in-memory SQLite ones.
    async fn lease_over(connections: u32) -> Lease<sqlx::Sqlite> {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(connections)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        Lease::new(pool, true)
    }

    /// Four times as many busy calls as connections, for twice `KEEP_AT_MOST`: connections
    /// go back to the pool as they age, and the calls waiting for one must not all follow
    /// them there (each such trip costs two pings).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busy_calls_hand_connections_on_rather_than_queue_in_the_pool() {
        let lease = Arc::new(lease_over(2).await);
        let until = Instant::now() + KEEP_AT_MOST * 2 + Duration::from_millis(200);
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let lease = Arc::clone(&lease);
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < until {
                        let mut held = lease.take().await.unwrap();
                        let result = sqlx::query("SELECT 1").execute(held.connection()).await;
                        held.finish(&result);
                        result.unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut done = 0;
        for call in calls {
            done += call.await.unwrap();
        }
        let checked = lease.state().checked;
        // The calls that start before the pool has opened its connections, and a few per
        // connection that ages out: a handful, not a share of the calls (thousands when
        // every connection that came free followed a call waiting in the pool).
        assert!(done > 1_000, "only {done} calls ran");
        assert!(checked <= 30, "{checked} of {done} calls took a checked connection");
    }

    /// A call waiting for the store's only connection gets it through the pool when the
    /// call holding it is cancelled (its connection goes back there).
    #[tokio::test]
    async fn a_call_waiting_for_the_last_connection_is_not_stranded_when_it_goes_back() {
        let lease = lease_over(1).await;
        let holder = lease.take().await.unwrap();
        let waiting = lease.take();
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiting.as_mut())
                .await
                .is_err(),
            "waits while the connection is in a call"
        );
        assert_eq!(lease.state().waiting.len(), 1);
        drop(holder);
        let mut held = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("not stranded")
            .unwrap();
        let result = sqlx::query("SELECT 1").execute(held.connection()).await;
        held.finish(&result);
        result.unwrap();
    }
}
