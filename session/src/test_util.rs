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
//!
//! // A store that implements `IndexStore` also runs the index cases: four more tests,
//! // `memory_index::index_lists_exactly_the_live_sessions_of_an_index`, ….
//! session::index_contract!(memory_index, |clock| async move { MemoryStore::builder().clock(clock).build() });
//! # fn main() {
//! // A case can also be called directly, here as the test above would run it:
//! session::test_util::run(session::test_util::cases::rename_is_atomic(|clock| async move {
//!     MemoryStore::builder().clock(clock).build()
//! }));
//! # }
//! ```

use std::{
    collections::HashSet,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::{
    Clock, CookieLifetime, ManualClock, SessionId, SessionMeta,
    store::{FieldRecord, IndexKey, IndexStore, QueryStore, Record, Rename, SessionStore, StoreKey},
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
            removals_drop_stored_fields,
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
            removals_drop_stored_fields,
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

/// One `#[test]` per index case, in a module `$name`, for a store that implements
/// [`IndexStore`](crate::store::IndexStore): listing, keeping the index through updates and
/// renames, deleting by index with and without a session kept, and the race rule under
/// concurrent updates and renames. Same factory as [`store_contract!`](crate::store_contract).
#[macro_export]
macro_rules! index_contract {
    ($name:ident, |$clock:ident| $make:expr $(,)?) => {
        $crate::store_contract!(@module $name, $clock, $make;
            index_lists_exactly_the_live_sessions_of_an_index,
            index_follows_updates_and_renames,
            delete_by_index_deletes_all_but_the_kept_one,
            delete_by_index_wins_races_with_updates_and_renames,
        );
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

    /// Runs `case` against a fresh store from `make`, whose expiry follows the clock the
    /// case is given.
    async fn on_store<S, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
        case: impl AsyncFnOnce(&S, &ManualClock),
    ) {
        let clock = ManualClock::new();
        case(&make(clock.clone()).await, &clock).await;
    }

    /// A new key loads as none; create never overwrites a live record.
    pub async fn create_never_overwrites<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        on_store(make, super::create_never_overwrites).await;
    }

    /// Update merges fields, replaces the meta, and never creates a missing record.
    pub async fn update_merges_fields_and_never_resurrects<S: SessionStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        on_store(make, super::update_merges_fields_and_never_resurrects).await;
    }

    /// A removal (an empty value) in an update or a rename drops the stored field.
    pub async fn removals_drop_stored_fields<S: SessionStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        on_store(make, super::removals_drop_stored_fields).await;
    }

    /// Rename moves a record at once, and refuses a missing source or a live target.
    pub async fn rename_is_atomic<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        on_store(make, super::rename_is_atomic).await;
    }

    /// Delete removes, and reports when there was nothing to delete.
    pub async fn delete_removes<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        on_store(make, super::delete_removes).await;
    }

    /// A record expires at its deadline, to the millisecond, and stays dead.
    pub async fn expired_records_are_never_returned<S: SessionStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        on_store(make, super::expired_records_are_never_returned).await;
    }

    /// A session's own lifetime (a remembered session's idle window and deadline, a fixed
    /// deadline, its cookie lifetime), its kind (sub-session of a parent, server-only) and
    /// its index are stored with it; its deadlines are enforced like the defaults.
    pub async fn own_lifetimes_are_kept<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        on_store(make, super::own_lifetimes_are_kept).await;
    }

    /// For a store built with an expired-session retention of at least an hour:
    /// [`expired`](crate::store::SessionStore::expired) tells an expired session, and
    /// never a live, deleted or unknown one. Not part of [`store_contract!`] (a store need
    /// not remember expired sessions); call it from a test of its own.
    pub async fn expired_sessions_are_told_apart<S: SessionStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        on_store(make, super::expired_sessions_are_told_apart).await;
    }

    /// Count, scan, delete_many and clear see every live record of the store.
    pub async fn query_operations<S: QueryStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
        on_store(make, super::query_operations).await;
    }

    /// Listing an index gives exactly its live sessions: not another index's, not an
    /// unindexed one, not a deleted or an expired one.
    pub async fn index_lists_exactly_the_live_sessions_of_an_index<S: IndexStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        on_store(make, super::index_lists_exactly_the_live_sessions_of_an_index).await;
    }

    /// An update that changes the index moves the session to the new one (or out of every
    /// index); a rename keeps it indexed under the new key only.
    pub async fn index_follows_updates_and_renames<S: IndexStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        on_store(make, super::index_follows_updates_and_renames).await;
    }

    /// Deleting by index deletes every live session of the index but the kept one, reports
    /// exactly those, and leaves other indexes alone.
    pub async fn delete_by_index_deletes_all_but_the_kept_one<S: IndexStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        on_store(make, super::delete_by_index_deletes_all_but_the_kept_one).await;
    }

    /// The race rule: sessions of an index that are updated and renamed concurrently with
    /// a deletion of the index are all dead when it returns, under whatever key they had.
    pub async fn delete_by_index_wins_races_with_updates_and_renames<S: IndexStore, F: Future<Output = S>>(
        make: impl FnOnce(ManualClock) -> F,
    ) {
        let clock = ManualClock::new();
        super::delete_by_index_wins_races_with_updates_and_renames(Arc::new(make(clock.clone()).await), &clock).await;
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

async fn removals_drop_stored_fields<S: SessionStore>(store: &S, clock: &ManualClock) {
    let k = key();
    let stored = record(clock, &[(1, b"one"), (2, b"two"), (3, b"three")]);
    store.create(&k, &stored).await.unwrap();
    let mut update = record(clock, &[(3, b"THREE")]);
    update.fields.push_removal(2);
    assert!(store.update(&k, &update).await.unwrap());
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(
        loaded.fields,
        fields(&[(1, b"one"), (3, b"THREE")]),
        "the removed field is gone, the others kept or changed"
    );

    let to = key();
    let mut update = record(clock, &[]);
    update.fields.push_removal(1);
    update.fields.push_removal(4);
    assert_eq!(store.rename(&k, &to, &update).await.unwrap(), Rename::Renamed);
    let moved = store.load(&to).await.unwrap().unwrap();
    assert_eq!(
        moved.fields,
        fields(&[(3, b"THREE")]),
        "a rename removes too; removing an absent field is no error"
    );
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
            index: Some(index("alice")),
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

fn index(name: &str) -> IndexKey {
    IndexKey::of("user", name).unwrap()
}

fn indexed(clock: &ManualClock, index: Option<IndexKey>, pairs: &[(u32, &[u8])]) -> Record {
    let mut record = record(clock, pairs);
    record.meta.index = index;
    record
}

async fn listed<S: IndexStore>(store: &S, index: &IndexKey) -> Vec<StoreKey> {
    let mut keys: Vec<StoreKey> = store
        .list_by_index(index)
        .await
        .unwrap()
        .into_iter()
        .map(|(key, record)| {
            assert_eq!(record.meta.index, Some(*index), "a listed record carries the index");
            key
        })
        .collect();
    keys.sort();
    keys
}

fn sorted(mut keys: Vec<StoreKey>) -> Vec<StoreKey> {
    keys.sort();
    keys
}

async fn index_lists_exactly_the_live_sessions_of_an_index<S: IndexStore>(store: &S, clock: &ManualClock) {
    let (alice, bob) = (index("alice"), index("bob"));
    assert!(listed(store, &alice).await.is_empty(), "an unknown index lists nothing");
    let alices: Vec<StoreKey> = (0..3).map(|_| key()).collect();
    for (i, k) in alices.iter().enumerate() {
        assert!(
            store
                .create(k, &indexed(clock, Some(alice), &[(1, &[i as u8])]))
                .await
                .unwrap()
        );
    }
    let (bobs, anonymous, deleted, expiring) = (key(), key(), key(), key());
    store.create(&bobs, &indexed(clock, Some(bob), &[])).await.unwrap();
    store.create(&anonymous, &indexed(clock, None, &[])).await.unwrap();
    store.create(&deleted, &indexed(clock, Some(alice), &[])).await.unwrap();
    assert!(store.delete(&deleted).await.unwrap());
    let mut short = indexed(clock, Some(alice), &[]);
    short.meta = SessionMeta {
        index: Some(alice),
        ..SessionMeta::new(clock.now_ms(), MINUTE_MS, 60 * MINUTE_MS)
    };
    store.create(&expiring, &short).await.unwrap();
    assert_eq!(listed(store, &alice).await.len(), 4, "live until its deadline");
    clock.advance(Duration::from_millis(MINUTE_MS));

    assert_eq!(
        listed(store, &alice).await,
        sorted(alices.clone()),
        "exactly the live sessions of the index"
    );
    assert_eq!(listed(store, &bob).await, vec![bobs]);
    let (_, first) = store
        .list_by_index(&alice)
        .await
        .unwrap()
        .into_iter()
        .find(|(k, _)| *k == alices[0])
        .unwrap();
    assert_eq!(
        Some(first),
        store.load(&alices[0]).await.unwrap(),
        "a listed record is the stored one"
    );
}

async fn index_follows_updates_and_renames<S: IndexStore>(store: &S, clock: &ManualClock) {
    let (alice, bob) = (index("alice"), index("bob"));
    let k = key();
    store
        .create(&k, &indexed(clock, Some(alice), &[(1, b"a")]))
        .await
        .unwrap();
    assert!(
        store
            .update(&k, &indexed(clock, Some(alice), &[(2, b"b")]))
            .await
            .unwrap()
    );
    assert_eq!(
        listed(store, &alice).await,
        vec![k],
        "an update keeping the index keeps it"
    );

    assert!(store.update(&k, &indexed(clock, Some(bob), &[])).await.unwrap());
    assert!(
        listed(store, &alice).await.is_empty(),
        "an update to another index leaves the old"
    );
    assert_eq!(listed(store, &bob).await, vec![k], "and joins the new");

    assert!(store.update(&k, &indexed(clock, None, &[])).await.unwrap());
    assert!(
        listed(store, &bob).await.is_empty(),
        "an update to no index leaves every index"
    );
    assert!(store.update(&k, &indexed(clock, Some(alice), &[])).await.unwrap());
    assert_eq!(
        listed(store, &alice).await,
        vec![k],
        "and one back to an index joins it"
    );

    let renamed = key();
    let moved = indexed(clock, Some(alice), &[(3, b"c")]);
    assert_eq!(store.rename(&k, &renamed, &moved).await.unwrap(), Rename::Renamed);
    assert_eq!(
        listed(store, &alice).await,
        vec![renamed],
        "a rename keeps the index under the new key only"
    );
    let loaded = store.load(&renamed).await.unwrap().unwrap();
    assert_eq!(field_of(&loaded, 1).as_deref(), Some(&b"a"[..]), "with its fields");

    let again = key();
    let to_bob = indexed(clock, Some(bob), &[]);
    assert_eq!(store.rename(&renamed, &again, &to_bob).await.unwrap(), Rename::Renamed);
    assert!(
        listed(store, &alice).await.is_empty(),
        "a rename that changes the index leaves the old"
    );
    assert_eq!(
        listed(store, &bob).await,
        vec![again],
        "and joins the new under the new key"
    );

    let taken = key();
    store.create(&taken, &indexed(clock, None, &[])).await.unwrap();
    assert_eq!(
        store.rename(&again, &taken, &moved).await.unwrap(),
        Rename::TargetExists
    );
    assert_eq!(
        listed(store, &bob).await,
        vec![again],
        "a refused rename changes no index"
    );
    assert!(listed(store, &alice).await.is_empty());
}

async fn delete_by_index_deletes_all_but_the_kept_one<S: IndexStore>(store: &S, clock: &ManualClock) {
    let (alice, bob) = (index("alice"), index("bob"));
    let alices: Vec<StoreKey> = (0..4).map(|_| key()).collect();
    for k in &alices {
        store.create(k, &indexed(clock, Some(alice), &[])).await.unwrap();
    }
    let bobs = key();
    store.create(&bobs, &indexed(clock, Some(bob), &[])).await.unwrap();
    let anonymous = key();
    store.create(&anonymous, &indexed(clock, None, &[])).await.unwrap();

    let deleted = store.delete_by_index(&alice, Some(&alices[0])).await.unwrap();
    assert_eq!(
        sorted(deleted),
        sorted(alices[1..].to_vec()),
        "all but the kept one, reported"
    );
    assert!(store.load(&alices[0]).await.unwrap().is_some(), "the kept one lives");
    for k in &alices[1..] {
        assert_eq!(store.load(k).await.unwrap(), None, "the others are gone");
    }
    assert_eq!(listed(store, &alice).await, vec![alices[0]]);
    assert!(store.load(&bobs).await.unwrap().is_some(), "another index is untouched");
    assert!(
        store.load(&anonymous).await.unwrap().is_some(),
        "and so is an unindexed session"
    );

    assert_eq!(
        store.delete_by_index(&alice, None).await.unwrap(),
        vec![alices[0]],
        "without a kept one, every one"
    );
    assert!(listed(store, &alice).await.is_empty());
    assert!(
        store.delete_by_index(&alice, None).await.unwrap().is_empty(),
        "nothing left to delete"
    );
    assert_eq!(listed(store, &bob).await, vec![bobs]);

    let mut short = indexed(clock, Some(bob), &[]);
    short.meta = SessionMeta {
        index: Some(bob),
        ..SessionMeta::new(clock.now_ms(), MINUTE_MS, 60 * MINUTE_MS)
    };
    let expiring = key();
    store.create(&expiring, &short).await.unwrap();
    clock.advance(Duration::from_millis(MINUTE_MS));
    assert_eq!(
        store.delete_by_index(&bob, None).await.unwrap(),
        vec![bobs],
        "an expired session is not reported as deleted"
    );
    assert_eq!(store.load(&expiring).await.unwrap(), None);
}

async fn delete_by_index_wins_races_with_updates_and_renames<S: IndexStore>(store: Arc<S>, clock: &ManualClock) {
    const SESSIONS: usize = 16;
    const TASKS: usize = 8;
    let (alice, bob) = (index("alice"), index("bob"));
    let mut owned: Vec<Vec<StoreKey>> = vec![Vec::new(); TASKS];
    for i in 0..SESSIONS {
        let k = key();
        store
            .create(&k, &indexed(clock, Some(alice), &[(1, &[0])]))
            .await
            .unwrap();
        owned[i % TASKS].push(k);
    }
    let bobs = key();
    store.create(&bobs, &indexed(clock, Some(bob), &[])).await.unwrap();
    let writes = Arc::new(AtomicUsize::new(0));

    // Each task updates and renames its sessions, keeping the index, until each is gone;
    // it returns every key they had and the key each had when it died.
    let tasks: Vec<_> = owned
        .into_iter()
        .enumerate()
        .map(|(task, mut current)| {
            let (store, clock, writes) = (store.clone(), clock.clone(), writes.clone());
            tokio::spawn(async move {
                let mut every: Vec<StoreKey> = current.clone();
                let mut dead = Vec::new();
                for round in 0..10_000usize {
                    if current.is_empty() {
                        break;
                    }
                    let mut alive = Vec::new();
                    for k in current {
                        let update = indexed(&clock, Some(alice), &[(1, &[(round % 251) as u8])]);
                        let live = if (round + task) % 3 == 0 {
                            let next = key();
                            match store.rename(&k, &next, &update).await.unwrap() {
                                Rename::Renamed => {
                                    every.push(next);
                                    alive.push(next);
                                    None
                                }
                                Rename::SourceMissing => Some(k),
                                Rename::TargetExists => panic!("a fresh key was taken"),
                            }
                        } else if store.update(&k, &update).await.unwrap() {
                            alive.push(k);
                            None
                        } else {
                            Some(k)
                        };
                        dead.extend(live);
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    current = alive;
                    tokio::task::yield_now().await;
                }
                (every, dead)
            })
        })
        .collect();

    // Some writes first, so the deletion lands among them.
    while writes.load(Ordering::Relaxed) < 4 * SESSIONS {
        tokio::task::yield_now().await;
    }
    let deleted = store.delete_by_index(&alice, None).await.unwrap();
    let after_delete: Vec<StoreKey> = listed(&*store, &alice).await;
    assert!(
        after_delete.is_empty(),
        "nothing of the index lives when the deletion returns"
    );

    let (mut every, mut dead) = (Vec::new(), Vec::new());
    for task in tasks {
        let (keys, died) = task.await.unwrap();
        every.extend(keys);
        dead.extend(died);
    }
    assert_eq!(
        dead.len(),
        SESSIONS,
        "every session died, none survived its updates and renames"
    );
    assert_eq!(
        deleted.iter().copied().collect::<HashSet<_>>(),
        dead.iter().copied().collect::<HashSet<_>>(),
        "the deletion reported each session under the key it had"
    );
    for k in &every {
        assert_eq!(store.load(k).await.unwrap(), None, "no key of the index loads");
    }
    assert!(store.load(&bobs).await.unwrap().is_some(), "another index is untouched");
}
