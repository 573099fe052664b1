//! The store contract (feature `test-util`): the suite every built-in store passes, for
//! testing a store of your own against exactly the same cases.
//!
//! [`store_contract!`](crate::store_contract) makes each case a `#[test]` of its own, in a
//! module named after the store: `store_contract!(memory, |clock| async move { … })` gives
//! `memory::create_never_overwrites`, `memory::rename_is_atomic`, …. The factory builds an
//! empty store whose expiry follows the given [`ManualClock`]; each case calls it once, so
//! a store on a shared server needs a key prefix of its own per call. Each case runs on a
//! multi-threaded tokio runtime of its own (two workers).
//!
//! In `tests/my_store.rs` of a crate with `session = { version = "…", features =
//! ["test-util"] }` among its dev-dependencies:
//!
//! ```
//! use session::MemoryStore;
//!
//! // Seven tests: `memory::create_never_overwrites`, `memory::delete_removes`, ….
//! session::store_contract!(memory, |clock| async move { MemoryStore::builder().clock(clock).build() });
//!
//! // A store that cannot enumerate its sessions (no `QueryStore`) skips the query cases.
//! session::store_contract!(memory_without_query, |clock| async move {
//!     MemoryStore::builder().clock(clock).build()
//! }, without_query);
//! # fn main() {
//! // A case can also be called directly, here as the test above would run it:
//! session::test_util::run(session::test_util::cases::rename_is_atomic(|clock| async move {
//!     MemoryStore::builder().clock(clock).build()
//! }));
//! # }
//! ```

use std::{future::Future, sync::Arc, time::Duration};

use crate::{
    Clock, CookieLifetime, ManualClock, SessionId, SessionMeta,
    store::{FieldRecord, QueryStore, Record, Rename, SessionStore, StoreKey},
};

/// One `#[test]` per contract case, in a module `$name`, each against a fresh store from
/// the factory `|clock| async move { … }` (the store's expiry follows `clock`, a
/// [`ManualClock`](crate::ManualClock)). The store must implement
/// [`QueryStore`](crate::store::QueryStore); add `, without_query` after the factory for a
/// store that implements only [`SessionStore`](crate::store::SessionStore).
///
/// See [`test_util`](crate::test_util) for an example.
#[macro_export]
macro_rules! store_contract {
    ($name:ident, |$clock:ident| $make:expr $(,)?) => {
        $crate::store_contract!(@module $name, $clock, $make;
            create_never_overwrites,
            update_merges_fields_and_never_resurrects,
            rename_is_atomic,
            delete_removes,
            expired_records_are_never_returned,
            own_lifetimes_are_kept,
            query_operations,
            concurrent_updates_of_different_fields_all_survive,
        );
    };
    ($name:ident, |$clock:ident| $make:expr, without_query $(,)?) => {
        $crate::store_contract!(@module $name, $clock, $make;
            create_never_overwrites,
            update_merges_fields_and_never_resurrects,
            rename_is_atomic,
            delete_removes,
            expired_records_are_never_returned,
            own_lifetimes_are_kept,
            concurrent_updates_of_different_fields_all_survive,
        );
    };
    (@module $name:ident, $clock:ident, $make:expr; $($case:ident,)+) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[test]
                fn $case() {
                    $crate::test_util::run($crate::test_util::cases::$case(
                        |$clock: $crate::ManualClock| $make,
                    ));
                }
            )+
        }
    };
}

/// Runs `future` to completion on a new multi-threaded tokio runtime with two workers and
/// every driver enabled, as each contract case runs.
///
/// # Panics
///
/// When the runtime cannot be built, or the future panics.
pub fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the store contract")
        .block_on(future)
}

/// The contract's cases, each given the factory of the store it runs against.
pub mod cases {
    use super::*;

    /// A new key loads as none; create never overwrites a live record.
    pub async fn create_never_overwrites<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        super::create_never_overwrites(&make(ManualClock::new()).await, &ManualClock::new()).await;
    }

    /// Update merges fields, replaces the meta, and never creates a missing record.
    pub async fn update_merges_fields_and_never_resurrects<S: SessionStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        super::update_merges_fields_and_never_resurrects(&make(ManualClock::new()).await, &ManualClock::new()).await;
    }

    /// Rename moves a record at once, and refuses a missing source or a live target.
    pub async fn rename_is_atomic<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        super::rename_is_atomic(&make(ManualClock::new()).await, &ManualClock::new()).await;
    }

    /// Delete removes, and reports when there was nothing to delete.
    pub async fn delete_removes<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        super::delete_removes(&make(ManualClock::new()).await, &ManualClock::new()).await;
    }

    /// A record expires at its deadline, to the millisecond, and stays dead.
    pub async fn expired_records_are_never_returned<S: SessionStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        let clock = ManualClock::new();
        super::expired_records_are_never_returned(&make(clock.clone()).await, &clock).await;
    }

    /// A session's own lifetime (a remembered session's idle window and deadline, a fixed
    /// deadline, its cookie lifetime) and its kind (sub-session of a parent, server-only)
    /// are stored with it; its deadlines are enforced like the defaults.
    pub async fn own_lifetimes_are_kept<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        let clock = ManualClock::new();
        super::own_lifetimes_are_kept(&make(clock.clone()).await, &clock).await;
    }

    /// For a store built with an expired-session retention of at least an hour:
    /// [`expired`](crate::store::SessionStore::expired) tells an expired session, and
    /// never a live, deleted or unknown one. Not part of [`store_contract!`] (a store need
    /// not remember expired sessions); call it from a test of its own.
    pub async fn expired_sessions_are_told_apart<S: SessionStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        let clock = ManualClock::new();
        super::expired_sessions_are_told_apart(&make(clock.clone()).await, &clock).await;
    }

    /// Count, scan, delete_many and clear see every live record of the store.
    pub async fn query_operations<S: QueryStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        let clock = ManualClock::new();
        super::query_operations(&make(clock.clone()).await, &clock).await;
    }

    /// Concurrent updates of different fields of one record all survive.
    pub async fn concurrent_updates_of_different_fields_all_survive<S: SessionStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        super::concurrent_updates_of_different_fields_all_survive(
            Arc::new(make(ManualClock::new()).await),
            &ManualClock::new(),
        )
        .await;
    }
}

const MINUTE_MS: u64 = 60_000;

fn key() -> StoreKey {
    SessionId::generate().unwrap().store_key()
}

fn fields(pairs: &[(u32, &[u8])]) -> FieldRecord {
    let mut record = FieldRecord::new();
    for (tag, value) in pairs {
        record.push(*tag, value);
    }
    record
}

fn record(clock: &ManualClock, pairs: &[(u32, &[u8])]) -> Record {
    Record {
        meta: SessionMeta::new(clock.now_ms(), 30 * MINUTE_MS, 24 * 60 * MINUTE_MS),
        fields: fields(pairs),
    }
}

fn field_of(record: &Record, tag: u32) -> Option<Vec<u8>> {
    record.fields.get(tag).unwrap().map(<[u8]>::to_vec)
}

async fn create_never_overwrites<S: SessionStore>(store: &S, clock: &ManualClock) {
    let k = key();
    assert_eq!(store.load(&k).await.unwrap(), None, "a new key loads as none");
    let first = record(clock, &[(1, b"a")]);
    assert!(store.create(&k, &first).await.unwrap());
    assert_eq!(
        store.load(&k).await.unwrap(),
        Some(first.clone()),
        "load returns what create stored"
    );
    assert!(
        !store.create(&k, &record(clock, &[(1, b"b")])).await.unwrap(),
        "create on a live key is refused"
    );
    assert_eq!(
        store.load(&k).await.unwrap(),
        Some(first),
        "the refused create changed nothing"
    );
}

async fn update_merges_fields_and_never_resurrects<S: SessionStore>(store: &S, clock: &ManualClock) {
    let k = key();
    store
        .create(&k, &record(clock, &[(1, b"one"), (2, b"two")]))
        .await
        .unwrap();
    let mut update = record(clock, &[(2, b"TWO"), (3, b"three")]);
    update.meta = update.meta.accessed_at(update.meta.accessed_ms + 1000, 30 * MINUTE_MS);
    assert!(store.update(&k, &update).await.unwrap());
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(
        field_of(&loaded, 1).as_deref(),
        Some(&b"one"[..]),
        "untouched field kept"
    );
    assert_eq!(
        field_of(&loaded, 2).as_deref(),
        Some(&b"TWO"[..]),
        "updated field replaced"
    );
    assert_eq!(field_of(&loaded, 3).as_deref(), Some(&b"three"[..]), "new field added");
    assert_eq!(loaded.meta, update.meta, "meta replaced");

    let missing = key();
    assert!(
        !store.update(&missing, &update).await.unwrap(),
        "update of a missing key reports it"
    );
    assert_eq!(store.load(&missing).await.unwrap(), None, "and does not create it");
}

async fn rename_is_atomic<S: SessionStore>(store: &S, clock: &ManualClock) {
    let (from, to) = (key(), key());
    store.create(&from, &record(clock, &[(1, b"data")])).await.unwrap();
    let update = record(clock, &[(2, b"more")]);
    assert_eq!(store.rename(&from, &to, &update).await.unwrap(), Rename::Renamed);
    assert_eq!(store.load(&from).await.unwrap(), None, "the old key is gone");
    let moved = store.load(&to).await.unwrap().unwrap();
    assert_eq!(field_of(&moved, 1).as_deref(), Some(&b"data"[..]));
    assert_eq!(field_of(&moved, 2).as_deref(), Some(&b"more"[..]));

    assert_eq!(
        store.rename(&from, &key(), &update).await.unwrap(),
        Rename::SourceMissing
    );

    let other = key();
    store.create(&other, &record(clock, &[(1, b"other")])).await.unwrap();
    assert_eq!(store.rename(&to, &other, &update).await.unwrap(), Rename::TargetExists);
    assert!(
        store.load(&to).await.unwrap().is_some(),
        "a refused rename keeps the source"
    );
    let kept = store.load(&other).await.unwrap().unwrap();
    assert_eq!(field_of(&kept, 1).as_deref(), Some(&b"other"[..]), "and the target");
}

async fn delete_removes<S: SessionStore>(store: &S, clock: &ManualClock) {
    let k = key();
    store.create(&k, &record(clock, &[(1, b"x")])).await.unwrap();
    assert!(store.delete(&k).await.unwrap());
    assert_eq!(store.load(&k).await.unwrap(), None);
    assert!(
        !store.delete(&k).await.unwrap(),
        "deleting twice reports nothing to delete"
    );
}

async fn expired_records_are_never_returned<S: SessionStore>(store: &S, clock: &ManualClock) {
    let k = key();
    let rec = record(clock, &[(1, b"x")]);
    store.create(&k, &rec).await.unwrap();
    clock.advance(Duration::from_millis(rec.meta.expires_ms() - clock.now_ms() - 1));
    assert!(
        store.load(&k).await.unwrap().is_some(),
        "live one millisecond before the deadline"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(store.load(&k).await.unwrap(), None, "expired at the deadline");
    assert!(
        !store.update(&k, &rec).await.unwrap(),
        "an expired record cannot be updated back to life"
    );
    let fresh = record(clock, &[(1, b"new")]);
    assert!(
        store.create(&k, &fresh).await.unwrap(),
        "an expired key can be created again"
    );
}

async fn own_lifetimes_are_kept<S: SessionStore>(store: &S, clock: &ManualClock) {
    const DAY_MS: u64 = 24 * 60 * MINUTE_MS;
    let k = key();
    let mut remembered = record(clock, &[(1, b"x")]);
    let now = clock.now_ms();
    remembered.meta = SessionMeta {
        idle_window_ms: 7 * DAY_MS,
        absolute_deadline_ms: now + 30 * DAY_MS,
        cookie: CookieLifetime::Persistent,
        ..remembered.meta
    }
    .accessed_at(now, 30 * MINUTE_MS);
    store.create(&k, &remembered).await.unwrap();
    assert_eq!(
        store.load(&k).await.unwrap(),
        Some(remembered.clone()),
        "the own lifetime is stored"
    );
    clock.advance(Duration::from_millis(2 * DAY_MS));
    let now = clock.now_ms();
    assert!(
        store.load(&k).await.unwrap().is_some(),
        "live past the default idle and absolute timeouts"
    );
    let fixed = Record {
        meta: SessionMeta {
            idle_window_ms: u64::MAX,
            absolute_deadline_ms: now + 60 * MINUTE_MS,
            cookie: CookieLifetime::BrowserSession,
            parent: Some(key()),
            server_only: true,
            ..remembered.meta
        }
        .accessed_at(now, 30 * MINUTE_MS),
        fields: FieldRecord::new(),
    };
    assert!(store.update(&k, &fixed).await.unwrap());
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(loaded.meta, fixed.meta, "a changed lifetime replaces the stored one");
    assert_eq!(field_of(&loaded, 1).as_deref(), Some(&b"x"[..]));
    clock.advance(Duration::from_millis(60 * MINUTE_MS - 1));
    assert!(store.load(&k).await.unwrap().is_some(), "live until the fixed deadline");
    clock.advance(Duration::from_millis(1));
    assert_eq!(store.load(&k).await.unwrap(), None, "and dead at it");
}

async fn expired_sessions_are_told_apart<S: SessionStore>(store: &S, clock: &ManualClock) {
    let (expiring, deleted) = (key(), key());
    let rec = record(clock, &[(1, b"x")]);
    store.create(&expiring, &rec).await.unwrap();
    store.create(&deleted, &rec).await.unwrap();
    assert!(
        !store.expired(&expiring).await.unwrap(),
        "a live session has not expired"
    );
    assert!(!store.expired(&key()).await.unwrap(), "an unknown key has not expired");
    store.delete(&deleted).await.unwrap();
    clock.advance(Duration::from_millis(rec.meta.expires_ms() - clock.now_ms()));
    assert_eq!(store.load(&expiring).await.unwrap(), None, "expired at the deadline");
    assert!(store.expired(&expiring).await.unwrap(), "and told as expired");
    assert!(
        !store.expired(&deleted).await.unwrap(),
        "a deleted session is unknown, not expired"
    );
    clock.advance(Duration::from_millis(30 * MINUTE_MS));
    assert!(
        store.expired(&expiring).await.unwrap(),
        "still told within the retention"
    );
    let fresh = record(clock, &[(1, b"new")]);
    assert!(
        store.create(&expiring, &fresh).await.unwrap(),
        "the key can be used again"
    );
    assert!(!store.expired(&expiring).await.unwrap(), "and is live");
}

async fn query_operations<S: QueryStore>(store: &S, clock: &ManualClock) {
    let keys: Vec<StoreKey> = (0..40).map(|_| key()).collect();
    for (i, k) in keys.iter().enumerate() {
        store.create(k, &record(clock, &[(1, &[i as u8])])).await.unwrap();
    }
    assert_eq!(store.count().await.unwrap(), 40);
    let mut seen = Vec::new();
    let mut cursor = Some(0);
    while let Some(at) = cursor {
        let page = store.scan(at, 7).await.unwrap();
        seen.extend(page.records.into_iter().map(|(k, _)| k));
        cursor = page.next;
    }
    seen.sort();
    seen.dedup();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(seen, expected, "a scan visits every live record");

    assert_eq!(store.delete_many(&keys[..10]).await.unwrap(), 10);
    assert_eq!(store.count().await.unwrap(), 30);
    assert_eq!(store.clear().await.unwrap(), 30);
    assert_eq!(store.count().await.unwrap(), 0);
}

async fn concurrent_updates_of_different_fields_all_survive<S: SessionStore>(store: Arc<S>, clock: &ManualClock) {
    let k = key();
    store.create(&k, &record(clock, &[])).await.unwrap();
    let tasks: Vec<_> = (0..8u32)
        .map(|tag| {
            let (store, clock) = (store.clone(), clock.clone());
            tokio::spawn(async move {
                for round in 0..20u8 {
                    let update = record(&clock, &[(tag, &[round])]);
                    assert!(store.update(&k, &update).await.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = store.load(&k).await.unwrap().unwrap();
    for tag in 0..8 {
        assert_eq!(
            field_of(&loaded, tag),
            Some(vec![19]),
            "field {tag} kept its last write"
        );
    }
}
