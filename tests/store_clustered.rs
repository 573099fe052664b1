//! The clustered store against real processes on loopback: a `redis-server` and a 6-node
//! Redis Cluster of the test's own, with two or three application nodes (separate store
//! instances) sharing them.
//!
//! Figures (invalidation delay, hit ratio, round trips, failover time) are printed; run
//! with `--nocapture` to see them.

mod common;

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use common::{AppSession, redis_cluster::RedisCluster, redis_server::RedisServer};
use session::{ClusteredStore, RedisStore, RedisStoreBuilder, SessionConfig, SessionId, SessionProvider};

type Provider = SessionProvider<AppSession, ClusteredStore>;

fn prefix() -> String {
    static STORES: AtomicUsize = AtomicUsize::new(0);
    format!("clustered{}:", STORES.fetch_add(1, Ordering::Relaxed))
}

async fn node(redis: RedisStoreBuilder) -> ClusteredStore {
    ClusteredStore::builder(redis.command_timeout(Duration::from_secs(2)))
        .build()
        .await
        .unwrap()
}

/// `count` application nodes sharing one standalone Redis under one prefix.
async fn standalone_nodes(server: &RedisServer, count: usize) -> Vec<ClusteredStore> {
    let prefix = prefix();
    let mut nodes = Vec::new();
    for _ in 0..count {
        nodes.push(node(RedisStore::builder(server.url()).prefix(&prefix)).await);
    }
    nodes
}

/// `count` application nodes sharing one Redis Cluster under one prefix.
async fn cluster_nodes(cluster: &RedisCluster, count: usize) -> Vec<ClusteredStore> {
    let prefix = prefix();
    let mut nodes = Vec::new();
    for _ in 0..count {
        nodes.push(node(RedisStore::cluster_builder(cluster.urls()).prefix(&prefix)).await);
    }
    nodes
}

fn provider(store: ClusteredStore) -> Provider {
    SessionProvider::new(store, SessionConfig::development().build().unwrap())
}

/// Retries `attempt` until it succeeds or `timeout` passes.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

// The contract, each case a test (`on_one_redis::create_never_overwrites`, …), on the
// shared server and the shared cluster: every store has a key prefix of its own.
session::store_contract!(on_one_redis, |clock| async move {
    let redis = RedisStore::builder(RedisServer::shared().url())
        .prefix(prefix())
        .clock(clock);
    ClusteredStore::builder(redis).build().await.unwrap()
});

session::store_contract!(on_a_redis_cluster, |clock| async move {
    let redis = RedisStore::cluster_builder(RedisCluster::shared().urls())
        .prefix(prefix())
        .clock(clock);
    ClusteredStore::builder(redis).build().await.unwrap()
});

/// A Redis store over a TLS-only server, trusting the CA that signed its certificate.
fn over_tls(server: &RedisServer) -> RedisStoreBuilder {
    RedisStore::builder(server.url()).tls_root_certificates(server.ca_pem())
}

// The invalidation connections speak TLS too: the server accepts nothing else.
session::store_contract!(over_tls_only_redis, |clock| async move {
    let redis = over_tls(RedisServer::shared_tls()).prefix(prefix()).clock(clock);
    ClusteredStore::builder(redis).build().await.unwrap()
});

/// Loads `id` on `node` until it is cached there. (A load that overlapped an invalidation
/// is not cached, by design; the next one is.)
async fn cache_on(node: &Provider, id: &SessionId) {
    eventually(Duration::from_secs(5), "cached", || async {
        node.get(id).await.unwrap();
        node.store().is_cached(&id.store_key()).await.then_some(())
    })
    .await;
}

/// Writes on `writer`, reads on `reader` right after each save returns: never stale.
async fn writes_are_seen_at_once(writer: &Provider, reader: &Provider, rounds: u64) {
    let mut session = writer.create().unwrap();
    session.set_user(Some("alice".into()));
    writer.save(&mut session).await.unwrap();
    let id = session.id().clone();
    for round in 1..=rounds {
        // The reader holds a cached copy...
        let before = reader.get(&id).await.unwrap();
        assert_eq!(*before.visits(), round - 1);
        cache_on(reader, &id).await;
        // ...the writer changes the session...
        let mut session = writer.get(&id).await.unwrap();
        *session.visits_mut() = round;
        writer.save(&mut session).await.unwrap();
        // ...and the reader's very next load sees it.
        let after = reader.get(&id).await.unwrap();
        assert_eq!(
            *after.visits(),
            round,
            "round {round}: a stale read right after the save returned"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_is_read_on_another_right_after_the_save_returns() {
    let server = RedisServer::start();
    let nodes = standalone_nodes(&server, 2).await;
    let (a, b) = (provider(nodes[0].clone()), provider(nodes[1].clone()));
    writes_are_seen_at_once(&a, &b, 300).await;
    writes_are_seen_at_once(&b, &a, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_write_or_delete_on_one_node_is_seen_by_the_others_next_load() {
    let server = RedisServer::start_tls();
    let prefix = prefix();
    let (a, b) = (
        provider(node(over_tls(&server).prefix(&prefix)).await),
        provider(node(over_tls(&server).prefix(&prefix)).await),
    );
    assert!(
        a.store().stats().caching && b.store().stats().caching,
        "both listen over TLS"
    );
    writes_are_seen_at_once(&a, &b, 100).await;
    writes_are_seen_at_once(&b, &a, 50).await;

    for round in 0..20 {
        let mut session = a.create().unwrap();
        session.set_user(Some(format!("user{round}")));
        a.save(&mut session).await.unwrap();
        let id = session.id().clone();
        cache_on(&b, &id).await;
        a.delete(&mut session).await.unwrap();
        assert!(
            b.try_get(&id).await.unwrap().is_none(),
            "round {round}: B served a session A had deleted"
        );
    }
    let stats = b.store().stats();
    assert!(stats.hits > 0, "B did serve from its cache meanwhile");
    assert!(stats.invalidations > 0, "B applied invalidations that came over TLS");

    // A lost connection is reopened over TLS, and coherence holds after it.
    let client = redis::Client::build_with_tls(
        server.url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(server.ca_pem()),
        },
    )
    .unwrap();
    kill_invalidation_connection(client, b.store()).await;
    eventually(Duration::from_secs(5), "B noticed the loss", || async {
        (b.store().stats().flushes > stats.flushes).then_some(())
    })
    .await;
    eventually(Duration::from_secs(15), "B listening again", || async {
        b.store().stats().caching.then_some(())
    })
    .await;
    writes_are_seen_at_once(&a, &b, 20).await;
    assert!(
        b.store().stats().invalidations > stats.invalidations,
        "invalidations arrive on the new connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_an_untrusted_certificate_fails_the_build_at_once() {
    let server = RedisServer::shared_tls();
    // A CA of its own, which did not sign the shared server's certificate.
    let other_ca = RedisServer::start_tls().ca_pem();
    for (what, redis) in [
        (
            "another CA",
            RedisStore::builder(server.url()).tls_root_certificates(other_ca),
        ),
        ("the system's roots", RedisStore::builder(server.url())),
    ] {
        let redis = redis
            .prefix(prefix())
            // Long enough for a handshake on a loaded machine: the refusal, not a timeout, is
            // what must end the build.
            .command_timeout(Duration::from_secs(2))
            .retry(session::resilience::RetryPolicy::none());
        let started = Instant::now();
        let error = ClusteredStore::builder(redis)
            .build()
            .await
            .expect_err("an untrusted certificate was accepted");
        assert!(error.is_unavailable(), "{what}: {error}");
        assert!(
            error.to_string().contains("certificate"),
            "{what}: the error says why: {error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn insecure_tls_unix_sockets_and_unusable_roots_are_refused_before_connecting() {
    // Port 1: connecting would fail as unavailable, not as a configuration error.
    for (what, redis, why) in [
        (
            "#insecure",
            RedisStore::builder("rediss://127.0.0.1:1/#insecure"),
            "insecure TLS",
        ),
        (
            "a Unix socket",
            RedisStore::builder("redis+unix:///nowhere/redis.sock"),
            "Unix socket",
        ),
        (
            "roots without a certificate",
            RedisStore::builder("rediss://127.0.0.1:1/").tls_root_certificates(&b"not a certificate"[..]),
            "no certificate",
        ),
    ] {
        let error = ClusteredStore::builder(redis).build().await.unwrap_err();
        assert!(matches!(error, session::Error::Config(_)), "{what}: {error}");
        assert!(error.to_string().contains(why), "{what}: the error says why: {error}");
    }
}

/// Round trips, as Redis counts the session commands it ran (`INFO commandstats`):
/// `hget` (a load), `hgetall` (a load of a hash an earlier version wrote), `evalsha` (a
/// write script). Redis counts a script's own commands too; the create and update scripts
/// call neither `hget` nor `hgetall`.
async fn session_commands(server: &RedisServer) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(
            &mut redis::Client::open(server.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls = rest.split(',').next()?.parse().ok()?;
            ["hget", "hgetall", "evalsha"]
                .contains(&name)
                .then(|| (name.to_owned(), calls))
        })
        .collect()
}

async fn round_trips(server: &RedisServer, before: &BTreeMap<String, u64>) -> u64 {
    let after = session_commands(server).await;
    after
        .iter()
        .map(|(name, calls)| calls - before.get(name).copied().unwrap_or(0))
        .sum()
}

/// Many sessions read and read-modify-written at once on one node, as under load: the
/// invalidation connection keeps receiving the echoes of the node's other writes, and a
/// load must still find what the node's own last write of its session left in the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_concurrent_load_a_read_costs_nothing_and_a_read_modify_write_one_round_trip() {
    const SESSIONS: u64 = 32;
    const ROUNDS: u64 = 40;
    let server = RedisServer::start();
    // A local TTL longer than the test, so no entry expires by age on a slow machine.
    let store = ClusteredStore::builder(RedisStore::builder(server.url()).prefix(prefix()))
        .local_ttl(Duration::from_secs(600))
        .build()
        .await
        .unwrap();
    let node = provider(store);
    let mut ids = Vec::new();
    for _ in 0..SESSIONS {
        let mut session = node.create().unwrap();
        session.set_user(Some("alice".into()));
        node.save(&mut session).await.unwrap();
        ids.push(session.id().clone());
    }

    let before = session_commands(&server).await;
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let node = node.clone();
        tasks.spawn(async move {
            for visits in 1..=ROUNDS {
                let read = node.get(&id).await.unwrap();
                assert_eq!(*read.visits(), visits - 1, "never stale");
                let mut session = node.get(&id).await.unwrap();
                *session.visits_mut() = visits;
                node.save(&mut session).await.unwrap();
            }
        });
    }
    while let Some(task) = tasks.join_next().await {
        task.unwrap();
    }
    assert_eq!(
        round_trips(&server, &before).await,
        SESSIONS * ROUNDS,
        "one round trip per read-modify-write (its save), none per read; {:?}",
        node.store().stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_read_costs_no_round_trip_and_a_read_modify_write_one() {
    let server = RedisServer::start();
    let mut nodes = standalone_nodes(&server, 2).await;
    let (provider, peer) = (provider(nodes.remove(0)), provider(nodes.remove(0)));
    let mut session = peer.create().unwrap();
    session.set_user(Some("alice".into()));
    peer.save(&mut session).await.unwrap();
    let id = session.id().clone();

    // The node that created a session has it cached.
    let before = session_commands(&server).await;
    peer.get(&id).await.unwrap();
    assert_eq!(round_trips(&server, &before).await, 0, "read on the creating node");

    // Read-only requests elsewhere: the first loads (1), the rest are local (0 each).
    let before = session_commands(&server).await;
    provider.get(&id).await.unwrap();
    assert_eq!(round_trips(&server, &before).await, 1, "first read");
    let before = session_commands(&server).await;
    for _ in 0..100 {
        let session = provider.get(&id).await.unwrap();
        assert_eq!(session.user().as_deref(), Some("alice"));
    }
    assert_eq!(round_trips(&server, &before).await, 0, "100 cached reads");

    // Read-modify-write after a read: the load is local, the save one round trip.
    let before = session_commands(&server).await;
    let mut session = provider.get(&id).await.unwrap();
    *session.visits_mut() += 1;
    provider.save(&mut session).await.unwrap();
    assert_eq!(
        round_trips(&server, &before).await,
        1,
        "read-modify-write on a cached session"
    );

    // Back-to-back read-modify-writes: each write updated the entry, so each loads locally.
    let before = session_commands(&server).await;
    for visits in 2..12 {
        let mut session = provider.get(&id).await.unwrap();
        assert_eq!(*session.visits(), visits - 1, "the cached entry holds the last write");
        *session.visits_mut() = visits;
        provider.save(&mut session).await.unwrap();
    }
    assert_eq!(
        round_trips(&server, &before).await,
        10,
        "10 back-to-back read-modify-writes"
    );
    println!(
        "round trips per request: read-only (cached) 0, read-only (first on a node) 1, read-modify-write 1 (the load is local, also right after the node's own write)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_applications_keys_and_forged_messages_evict_nothing() {
    let server = RedisServer::start();
    let mut nodes = standalone_nodes(&server, 2).await;
    let (ours, peer) = (provider(nodes.remove(0)), provider(nodes.remove(0)));
    let mut session = ours.create().unwrap();
    session.set_user(Some("alice".into()));
    ours.save(&mut session).await.unwrap();
    let id = session.id().clone();
    cache_on(&ours, &id).await;
    let before = ours.store().stats();

    // Another application on the same Redis, another prefix: its writes are not ours. And a
    // client that publishes fake invalidations (RESP2 pub/sub form) of our very key name.
    let theirs = provider(standalone_nodes(&server, 1).await.remove(0));
    for _ in 0..20 {
        let mut other = theirs.create().unwrap();
        other.set_user(Some("mallory".into()));
        theirs.save(&mut other).await.unwrap();
    }
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let mut names: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut raw).await.unwrap();
    names.push("*".to_owned());
    for name in &names {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("__redis__:invalidate")
            .arg(name)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    // Anything Redis did push has arrived once a write of our prefix by a peer is seen.
    let mut marker = peer.create().unwrap();
    peer.save(&mut marker).await.unwrap();
    eventually(Duration::from_secs(5), "the peer's write's invalidation", || async {
        (ours.store().stats().invalidations > before.invalidations).then_some(())
    })
    .await;

    let after = ours.store().stats();
    assert_eq!(after.flushes, before.flushes, "nothing flushed the cache");
    assert!(
        ours.store().is_cached(&id.store_key()).await,
        "the entry survived {} foreign writes and {} forged messages",
        20,
        names.len()
    );
    assert_eq!(ours.get(&id).await.unwrap().user().as_deref(), Some("alice"));
    assert_eq!(ours.store().stats().hits, after.hits + 1, "served locally");
}

/// Ends `node`'s invalidation connection from the server's side (`CLIENT KILL ID`).
async fn kill_invalidation_connection(client: redis::Client, node: &ClusteredStore) {
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut raw).await.unwrap();
    let name = format!("name={}", node.invalidation_client_name());
    let listener = clients
        .lines()
        .find(|line| line.split_whitespace().any(|field| field == name))
        .and_then(|line| line.split_whitespace().find_map(|field| field.strip_prefix("id=")))
        .expect("the node's invalidation connection is listed")
        .to_owned();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&listener)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(killed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_invalidation_connection_flushes_the_cache_and_is_restored() {
    let server = RedisServer::start();
    let nodes = standalone_nodes(&server, 2).await;
    let (a, b) = (provider(nodes[0].clone()), provider(nodes[1].clone()));
    let mut session = a.create().unwrap();
    a.save(&mut session).await.unwrap();
    let id = session.id().clone();
    cache_on(&b, &id).await;

    kill_invalidation_connection(redis::Client::open(server.url()).unwrap(), b.store()).await;

    // Right after the kill, and until it is back: every read is fresh.
    let started = Instant::now();
    let mut round = 0;
    let mut flushed_reads = 0;
    while !b.store().stats().caching || round < 5 {
        round += 1;
        let mut session = a.get(&id).await.unwrap();
        *session.visits_mut() = round;
        a.save(&mut session).await.unwrap();
        assert_eq!(
            *b.get(&id).await.unwrap().visits(),
            round,
            "stale read while reconnecting"
        );
        if !b.store().stats().caching {
            flushed_reads += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the invalidation connection never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let restored_after = started.elapsed();
    assert!(b.store().stats().flushes >= 1, "the loss flushed the cache");

    // Restored: the cache is used again, and invalidations work again.
    b.get(&id).await.unwrap();
    let hits = b.store().stats().hits;
    b.get(&id).await.unwrap();
    assert_eq!(b.store().stats().hits, hits + 1, "cached again after reconnection");
    writes_are_seen_at_once(&a, &b, 20).await;
    println!(
        "invalidation connection killed: restored after {restored_after:?}, {flushed_reads} reads went to Redis meanwhile, none stale"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_a_cluster_never_read_stale_data() {
    let cluster = RedisCluster::start();
    let nodes = cluster_nodes(&cluster, 3).await;
    let providers: Vec<Provider> = nodes.iter().cloned().map(provider).collect();
    writes_are_seen_at_once(&providers[0], &providers[1], 100).await;
    writes_are_seen_at_once(&providers[2], &providers[0], 50).await;

    // Invalidation delay: from A's save returning until B would no longer serve its
    // entry ("effective") and until B has applied the invalidation message ("applied").
    let (a, b) = (&providers[0], &providers[1]);
    let mut session = a.create().unwrap();
    a.save(&mut session).await.unwrap();
    let id = session.id().clone();
    let key = id.store_key();
    let (mut effective, mut applied) = (Vec::new(), Vec::new());
    for round in 0..200 {
        cache_on(b, &id).await;
        let seen = b.store().stats().invalidations;
        let mut session = a.get(&id).await.unwrap();
        *session.visits_mut() = round;
        a.save(&mut session).await.unwrap();
        let saved = Instant::now();
        while b.store().is_cached(&key).await {
            assert!(saved.elapsed() < Duration::from_secs(5), "never invalidated");
            tokio::task::yield_now().await;
        }
        effective.push(saved.elapsed());
        while b.store().stats().invalidations == seen {
            assert!(saved.elapsed() < Duration::from_secs(5), "no invalidation message");
            tokio::task::yield_now().await;
        }
        applied.push(saved.elapsed());
    }
    effective.sort();
    applied.sort();
    println!(
        "invalidation delay over 200 writes (cluster): effective median {:?} p99 {:?}; message applied median {:?} p99 {:?}",
        percentile(&effective, 0.5),
        percentile(&effective, 0.99),
        percentile(&applied, 0.5),
        percentile(&applied, 0.99)
    );
    assert!(percentile(&applied, 0.99) < Duration::from_secs(1));

    // Hit ratio: 400 sessions, requests spread over two nodes at random (no sticky
    // sessions), 90% read-only and 10% read-modify-write.
    let (a, b) = (ClusteredStore::clone(&nodes[0]), ClusteredStore::clone(&nodes[1]));
    let pa = provider(a.clone());
    let pb = provider(b.clone());
    let mut ids = Vec::new();
    for _ in 0..400 {
        let mut session = pa.create().unwrap();
        pa.save(&mut session).await.unwrap();
        ids.push(session.id().clone());
    }
    let mut random = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    let (mut reads, mut writes) = (0, 0);
    let mut before = (a.stats(), b.stats());
    for request in 0..6000 {
        if request == 2000 {
            // The first 2,000 requests warm both caches up; the rest are measured.
            before = (a.stats(), b.stats());
            (reads, writes) = (0, 0);
        }
        let id: &SessionId = &ids[(next() % 400) as usize];
        let node = if next() % 2 == 0 { &pa } else { &pb };
        let mut session = node.get(id).await.unwrap();
        if next() % 10 == 0 {
            *session.visits_mut() += 1;
            node.save(&mut session).await.unwrap();
            writes += 1;
        } else {
            reads += 1;
        }
    }
    let (after_a, after_b) = (a.stats(), b.stats());
    let hits = after_a.hits - before.0.hits + after_b.hits - before.1.hits;
    let misses = after_a.misses - before.0.misses + after_b.misses - before.1.misses;
    let ratio = hits as f64 / (hits + misses) as f64;
    println!(
        "hit ratio over {reads} read-only and {writes} read-modify-write requests on 400 sessions across two nodes, after 2,000 warm-up requests: {:.1}% ({hits} hits, {misses} misses)",
        ratio * 100.0
    );
    assert!(ratio > 0.5, "hit ratio {ratio}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_stay_readable_after_a_primary_fails_over() {
    let mut cluster = RedisCluster::start();
    let nodes = cluster_nodes(&cluster, 2).await;
    let (a, b) = (provider(nodes[0].clone()), provider(nodes[1].clone()));
    let mut ids = Vec::new();
    for i in 0..30 {
        let mut session = a.create().unwrap();
        session.set_user(Some(format!("user{i}")));
        a.save(&mut session).await.unwrap();
        ids.push(session.id().clone());
    }
    for id in &ids {
        b.get(id).await.unwrap();
    }
    cluster.wait_replicated(Duration::from_secs(10));

    let victim = cluster.primaries()[0];
    let replica = cluster.replica_of(victim);
    let killed = Instant::now();
    cluster.kill(victim);
    // The killed primary's connections end at once: node B stops serving from its cache.
    eventually(Duration::from_secs(5), "node B noticed the loss", || async {
        (!b.store().stats().caching).then_some(())
    })
    .await;
    cluster.wait_until_healthy(Duration::from_secs(60));
    assert!(cluster.primaries().contains(&replica), "the replica was promoted");
    let promoted = killed.elapsed();

    for (i, id) in ids.iter().enumerate() {
        for (name, node) in [("A", &a), ("B", &b)] {
            let session = eventually(Duration::from_secs(30), "readable after failover", || async {
                node.try_get(id).await.ok().flatten()
            })
            .await;
            assert_eq!(
                session.user().as_deref(),
                Some(format!("user{i}").as_str()),
                "node {name}"
            );
        }
    }
    let readable = killed.elapsed();
    assert_eq!(
        b.store().redis().breaker_state(),
        session::resilience::BreakerState::Closed,
        "the failover did not leave the circuit open"
    );

    // Writes work, node B caches again once it listens to the new primary, and stays coherent.
    eventually(Duration::from_secs(30), "node B caching again", || async {
        b.store().stats().caching.then_some(())
    })
    .await;
    let hits = b.store().stats().hits;
    b.get(&ids[0]).await.unwrap();
    b.get(&ids[0]).await.unwrap();
    assert!(b.store().stats().hits > hits, "cached again after the failover");
    writes_are_seen_at_once(&a, &b, 20).await;
    println!(
        "failover: replica promoted {promoted:?} after the primary was killed; all 30 sessions readable on both nodes after {readable:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfiguration_and_unreachable_redis_fail_at_build() {
    let error = ClusteredStore::builder(RedisStore::builder("redis://127.0.0.1:1/"))
        .local_ttl(Duration::ZERO)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, session::Error::Config(_)), "{error}");
    let unreachable = RedisStore::builder("redis://127.0.0.1:1/")
        .command_timeout(Duration::from_millis(300))
        .retry(session::resilience::RetryPolicy::none());
    let error = ClusteredStore::builder(unreachable).build().await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
}

#[test]
fn expired_sessions_are_told_apart_within_the_retention() {
    session::test_util::run(session::test_util::cases::expired_sessions_are_told_apart(
        |clock| async move {
            let redis = RedisStore::builder(RedisServer::shared().url())
                .prefix(prefix())
                .clock(clock)
                .expired_retention(std::time::Duration::from_secs(3600));
            ClusteredStore::builder(redis).build().await.unwrap()
        },
    ));
}

common::lifetimes::lifetime_cases!(|clock| async move {
    let redis = RedisStore::builder(RedisServer::shared().url())
        .prefix(prefix())
        .clock(clock);
    ClusteredStore::builder(redis).build().await.unwrap()
});

session::index_contract!(indexed_on_one_redis, |clock| async move {
    let redis = RedisStore::builder(RedisServer::shared().url())
        .prefix(prefix())
        .clock(clock);
    ClusteredStore::builder(redis).build().await.unwrap()
});

session::index_contract!(indexed_on_a_redis_cluster, |clock| async move {
    let redis = RedisStore::cluster_builder(RedisCluster::shared().urls())
        .prefix(prefix())
        .clock(clock);
    ClusteredStore::builder(redis).build().await.unwrap()
});
