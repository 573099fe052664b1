//! The memory store: the shared contract, plus its own bounds and sweeping.

mod common;

use std::time::Duration;

use session::{
    Clock, ManualClock, MemoryStore, SessionId, SessionMeta,
    store::{FieldRecord, Record, SessionStore},
};

common::contract::store_contract!(
    memory,
    |clock| async move { MemoryStore::builder().clock(clock).build() }
);

fn record(clock: &ManualClock, idle_ms: u64) -> Record {
    Record {
        meta: SessionMeta::new(clock.now_ms(), idle_ms, idle_ms * 10),
        fields: FieldRecord::new(),
    }
}

#[tokio::test]
async fn capacity_is_bounded_and_evicts_the_soonest_to_expire() {
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
