//! Load and save through the provider against a `redis-server` spawned on a free loopback
//! port: each is one round trip (`HGETALL`, `EVALSHA`).
//!
//! `cargo bench -p session-benches --bench redis -- --sample-size 20`

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::{hint::black_box, time::Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use session::{RedisStore, SessionConfig, SessionData, SessionProvider};
use session_test_support::RedisServer;

#[derive(SessionData)]
struct BenchSession {
    user: Option<String>,
    visits: u64,
    theme: String,
    language: Option<String>,
    cart: Vec<u32>,
}

fn redis(c: &mut Criterion) {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let provider = runtime.block_on(async {
        let store = RedisStore::builder(server.url()).build().await.unwrap();
        SessionProvider::<BenchSession, _>::new(store, SessionConfig::production().build().unwrap())
    });
    let id = runtime.block_on(async {
        let mut session = provider.create().unwrap();
        session.set_user(Some("alice@example.com".into()));
        session.set_theme("dark".into());
        session.set_language(Some("en-GB".into()));
        session.set_cart((0..16).collect());
        provider.save(&mut session).await.unwrap();
        session.id().clone()
    });

    let mut group = c.benchmark_group("redis");
    group.bench_function("load", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(provider.get(&id).await.unwrap()) });
    });
    group.bench_function("save_one_field", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (provider, id) = (provider.clone(), id.clone());
            async move {
                let mut session = provider.get(&id).await.unwrap();
                let started = Instant::now();
                for _ in 0..iters {
                    *session.visits_mut() += 1;
                    black_box(provider.save(&mut session).await.unwrap());
                }
                started.elapsed()
            }
        });
    });
    group.bench_function("create", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut session = provider.create().unwrap();
            session.set_user(Some("bob@example.com".into()));
            black_box(provider.save(&mut session).await.unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, redis);
criterion_main!(benches);
