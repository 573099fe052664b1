//! The store contract: one suite every server-side store must pass.
//!
//! Each store's test calls [`run`] with a factory that builds an empty store whose
//! expiry follows the given clock.

use std::{sync::Arc, time::Duration};

use session::{
    Clock, FieldRecord, ManualClock, SessionId, SessionMeta, StoreKey,
    store::{QueryStore, Record, Rename, SessionStore},
};

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

/// Runs every contract case against fresh stores from `make`.
pub async fn run<S, F>(make: F)
where
    S: QueryStore,
    F: Fn(ManualClock) -> S,
{
    create_never_overwrites(&make(ManualClock::new()), &ManualClock::new()).await;
    update_merges_fields_and_never_resurrects(&make(ManualClock::new()), &ManualClock::new()).await;
    rename_is_atomic(&make(ManualClock::new()), &ManualClock::new()).await;
    delete_removes(&make(ManualClock::new()), &ManualClock::new()).await;
    let clock = ManualClock::new();
    expired_records_are_never_returned(&make(clock.clone()), &clock).await;
    let clock = ManualClock::new();
    query_operations(&make(clock.clone()), &clock).await;
    concurrent_updates_of_different_fields_all_survive(Arc::new(make(ManualClock::new())), &ManualClock::new()).await;
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
