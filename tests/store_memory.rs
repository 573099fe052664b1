//! The memory store: the shared contract, plus its own bounds and sweeping.

mod common;

use std::time::Duration;

use session::{
    Clock, Error, ManualClock, MemoryStore, SessionId, SessionMeta,
    store::{FieldRecord, Record, SessionStore},
};

session::store_contract!(
    memory,
    |clock| async move { MemoryStore::builder().clock(clock).build() }
);

session::index_contract!(memory_index, |clock| async move {
    MemoryStore::builder().clock(clock).build()
});

fn record(clock: &ManualClock, idle_ms: u64) -> Record {
    Record {
        meta: SessionMeta::new(clock.now_ms(), idle_ms, idle_ms * 10),
        fields: FieldRecord::new(),
    }
}

#[tokio::test]
async fn a_flood_of_new_sessions_never_evicts_an_established_one() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().capacity(3_200).clock(clock.clone()).build();
    // 1,000 users who came back (an update makes a session established).
    let users: Vec<_> = (0..1_000).map(|_| SessionId::generate().unwrap().store_key()).collect();
    for key in &users {
        assert!(store.create(key, &record(&clock, 600_000)).await.unwrap());
        assert!(store.update(key, &record(&clock, 600_000)).await.unwrap());
    }
    // A flood of 20,000 one-request visitors.
    for _ in 0..20_000 {
        let key = SessionId::generate().unwrap().store_key();
        assert!(store.create(&key, &record(&clock, 600_000)).await.unwrap());
    }
    assert!(store.len() <= store.capacity());
    for key in &users {
        assert!(
            store.load(key).await.unwrap().is_some(),
            "an established session was evicted"
        );
    }
}

#[tokio::test]
async fn a_store_full_of_established_sessions_refuses_new_ones_and_bounds_bytes() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().capacity(64).clock(clock.clone()).build();
    let (mut established, mut refused) = (Vec::new(), 0);
    for _ in 0..200 {
        let key = SessionId::generate().unwrap().store_key();
        match store.create(&key, &record(&clock, 600_000)).await {
            Ok(true) => {
                assert!(store.update(&key, &record(&clock, 600_000)).await.unwrap());
                established.push(key);
            }
            Err(Error::Unavailable(_)) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(refused > 0, "a store full of established sessions refuses new ones");
    assert!(store.len() <= store.capacity());
    for key in &established {
        assert!(store.load(key).await.unwrap().is_some(), "none was evicted");
    }

    let small = MemoryStore::builder()
        .max_bytes(32 * 4_096)
        .clock(clock.clone())
        .build();
    let mut big = record(&clock, 600_000);
    big.fields.push(1, &[7u8; 1_000]);
    for _ in 0..1_000 {
        let key = SessionId::generate().unwrap().store_key();
        assert!(small.create(&key, &big).await.unwrap());
    }
    assert!(small.bytes() <= 32 * 4_096, "{} bytes", small.bytes());
}

#[tokio::test]
async fn capacity_is_bounded_and_evicts_probationary_sessions_first() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().capacity(64).clock(clock.clone()).build();
    for i in 0..1_000u64 {
        let key = SessionId::generate().unwrap().store_key();
        assert!(store.create(&key, &record(&clock, 60_000 + i)).await.unwrap());
    }
    assert!(
        store.len() <= store.capacity(),
        "{} records in a store of {}",
        store.len(),
        store.capacity()
    );
    assert_eq!(store.capacity(), 64);
}

#[tokio::test]
async fn sweep_removes_only_expired_records() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let short = SessionId::generate().unwrap().store_key();
    let long = SessionId::generate().unwrap().store_key();
    store.create(&short, &record(&clock, 1_000)).await.unwrap();
    store.create(&long, &record(&clock, 60_000)).await.unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.sweep(), 1);
    assert_eq!(store.len(), 1);
    assert!(store.load(&long).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn the_background_sweeper_runs_inside_a_runtime() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .sweep_interval(Duration::from_secs(5))
        .clock(clock.clone())
        .build();
    store
        .create(&SessionId::generate().unwrap().store_key(), &record(&clock, 1_000))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.len(), 1, "expired but not yet swept");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(store.len(), 0, "the sweeper removed it");
}

#[test]
fn expired_sessions_are_told_apart_within_the_retention() {
    session::test_util::run(session::test_util::cases::expired_sessions_are_told_apart(
        |clock| async move {
            MemoryStore::builder()
                .clock(clock)
                .expired_retention(Duration::from_secs(3600))
                .build()
        },
    ));
}

#[tokio::test]
async fn expired_keys_are_forgotten_after_the_retention_and_swept() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .expired_retention(Duration::from_secs(60))
        .build();
    let key = SessionId::generate().unwrap().store_key();
    store.create(&key, &record(&clock, 1000)).await.unwrap();
    clock.advance(Duration::from_millis(1000));
    assert_eq!(store.sweep(), 1, "the expired record is swept");
    assert_eq!(store.len(), 0, "its data is gone");
    assert!(store.expired(&key).await.unwrap(), "its key is remembered");
    clock.advance(Duration::from_secs(60));
    assert!(!store.expired(&key).await.unwrap(), "until the retention has passed");
    store.sweep();
    let plain = MemoryStore::builder().clock(clock.clone()).build();
    plain.create(&key, &record(&clock, 1000)).await.unwrap();
    clock.advance(Duration::from_millis(1000));
    plain.sweep();
    assert!(!plain.expired(&key).await.unwrap(), "no retention: forgotten at once");
}

common::lifetimes::lifetime_cases!(|clock| async move { MemoryStore::builder().clock(clock).build() });

#[tokio::test]
async fn updates_keep_the_byte_count_exact_whether_values_change_length_or_not() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let key = SessionId::generate().unwrap().store_key();
    let with = |fields: &[(u32, &[u8])]| {
        let mut record = record(&clock, 60_000);
        for &(tag, value) in fields {
            record.fields.push(tag, value);
        }
        record
    };
    assert!(store.create(&key, &with(&[(1, b"aaaa"), (2, b"bb")])).await.unwrap());
    let created = store.bytes();

    // Same length: written where it was, nothing grows.
    assert!(store.update(&key, &with(&[(1, b"cccc")])).await.unwrap());
    assert_eq!(store.bytes(), created);
    let fields = store.load(&key).await.unwrap().unwrap().fields;
    assert_eq!(fields.get(1).unwrap(), Some(&b"cccc"[..]));
    assert_eq!(fields.get(2).unwrap(), Some(&b"bb"[..]));

    // Longer: merged, and counted by what it added.
    assert!(store.update(&key, &with(&[(2, b"bbbbbb")])).await.unwrap());
    assert_eq!(store.bytes(), created + 4);
    let fields = store.load(&key).await.unwrap().unwrap().fields;
    assert_eq!(fields.get(1).unwrap(), Some(&b"cccc"[..]));
    assert_eq!(fields.get(2).unwrap(), Some(&b"bbbbbb"[..]));
}
