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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_on_a_cluster_passes_the_store_contract() {
    let cluster = RedisCluster::start();
    common::contract::run(|clock: ManualClock| {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(builder(&cluster, &clock).build())
                .unwrap()
        })
    })
    .await;
}

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
