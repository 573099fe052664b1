//! The Redis store on a Redis Cluster of the test's own (3 primaries, 3 replicas): the
//! shared contract, regenerate across slots, query operations over every primary.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::redis_cluster::RedisCluster;
use session::{ManualClock, RedisStore, RedisStoreBuilder, store::QueryStore as _};

fn builder(cluster: &RedisCluster, clock: &ManualClock) -> RedisStoreBuilder {
    static STORES: AtomicUsize = AtomicUsize::new(0);
    let n = STORES.fetch_add(1, Ordering::Relaxed);
    RedisStore::cluster_builder(cluster.urls())
        .prefix(format!("cluster{n}:session:"))
        .clock(clock.clone())
}

// The contract, each case a test (`cluster::create_never_overwrites`, …), on the cluster
// shared by this file's tests: every store has a key prefix of its own.
session::store_contract!(cluster, |clock| async move {
    builder(RedisCluster::shared(), &clock).build().await.unwrap()
});

type Provider = session::SessionProvider<common::AppSession, RedisStore>;

fn provider_for(store: RedisStore, clock: &ManualClock) -> Provider {
    let config = session::SessionConfig::development()
        .clock(clock.clone())
        .build()
        .unwrap();
    session::SessionProvider::new(store, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_over_every_primary_and_regenerate_moves_between_slots() {
    let cluster = RedisCluster::start();
    let clock = ManualClock::new();
    let store = builder(&cluster, &clock).prefix("spread:").build().await.unwrap();
    assert!(store.is_cluster());
    let provider = provider_for(store, &clock);

    let mut ids = Vec::new();
    for i in 0..60 {
        let mut session = provider.create().unwrap();
        session.set_user(Some(format!("user{i}")));
        provider.save(&mut session).await.unwrap();
        ids.push(session.id().clone());
    }
    for primary in cluster.primaries() {
        let size: usize = common::redis_cluster::query(primary, &["DBSIZE"])
            .unwrap()
            .parse()
            .unwrap();
        assert!(size > 0, "primary {primary} holds some of the 60 sessions");
    }
    assert_eq!(provider.count().await.unwrap(), 60, "count visits every primary");
    let mut seen = 0;
    provider
        .for_each(|_| {
            seen += 1;
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(seen, 60, "a scan visits every primary");

    // Regenerate: the new key is (almost surely) in another slot; the old ID is dead.
    let mut session = provider.get(&ids[0]).await.unwrap();
    let old = session.id().clone();
    provider.regenerate_id(&mut session).await.unwrap();
    assert_ne!(session.id(), &old);
    assert!(provider.try_get(&old).await.unwrap().is_none(), "the old ID is dead");
    let moved = provider.get(session.id()).await.unwrap();
    assert_eq!(moved.user().as_deref(), Some("user0"), "the data moved with it");
    assert_eq!(provider.count().await.unwrap(), 60, "moved, not copied");

    let doomed: Vec<_> = ids[1..11].iter().map(|id| id.store_key()).collect();
    assert_eq!(
        provider.store().delete_many(&doomed).await.unwrap(),
        10,
        "delete_many across slots"
    );
    assert_eq!(provider.store().clear().await.unwrap(), 50);
    assert_eq!(provider.count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regenerate_racing_updates_of_the_old_id_loses_none_of_them() {
    use session::{
        Clock as _, SessionId, SessionMeta,
        store::{FieldRecord, Record, Rename, SessionStore as _},
    };

    let cluster = RedisCluster::start();
    let clock = ManualClock::new();
    let store = builder(&cluster, &clock).build().await.unwrap();
    let now = clock.now_ms();
    let record = move |value: u32| {
        let mut fields = FieldRecord::new();
        fields.push(7, &value.to_be_bytes());
        Record {
            meta: SessionMeta::new(now, 60_000, 600_000),
            fields,
        }
    };
    for _ in 0..30 {
        let (from, to) = (
            SessionId::generate().unwrap().store_key(),
            SessionId::generate().unwrap().store_key(),
        );
        assert!(store.create(&from, &record(0)).await.unwrap());
        // Updates of the old ID keep coming while it is regenerated; each one that reports
        // success must survive under the new ID.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for value in 1.. {
                    if !store.update(&from, &record(value)).await.unwrap() {
                        return last;
                    }
                    last = value;
                }
                unreachable!()
            })
        };
        tokio::task::yield_now().await;
        let mut empty = record(0);
        empty.fields = FieldRecord::new();
        assert_eq!(store.rename(&from, &to, &empty).await.unwrap(), Rename::Renamed);
        let last = writer.await.unwrap();
        let moved = store.load(&to).await.unwrap().expect("the session moved");
        let value = moved.fields.get(7).unwrap().unwrap();
        assert_eq!(value, last.to_be_bytes(), "the last acknowledged update survived");
        assert_eq!(store.load(&from).await.unwrap(), None);
    }
}

#[test]
fn expired_sessions_are_told_apart_within_the_retention() {
    session::test_util::run(session::test_util::cases::expired_sessions_are_told_apart(
        |clock| async move {
            builder(RedisCluster::shared(), &clock)
                .expired_retention(std::time::Duration::from_secs(3600))
                .build()
                .await
                .unwrap()
        },
    ));
}

common::lifetimes::lifetime_cases!(
    |clock| async move { builder(RedisCluster::shared(), &clock).build().await.unwrap() }
);

session::index_contract!(cluster_indexed, |clock| async move {
    builder(RedisCluster::shared(), &clock).build().await.unwrap()
});
