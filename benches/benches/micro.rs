//! Micro benchmarks, side by side on the same session content: encode + decode, cookie
//! seal + open, memory store load + save, Redis store load + save (against a private
//! `redis-server`). Group names are what the report reads back:
//! `cargo bench -p session-benches --bench micro`.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use session_benches::{
    content::{self, Profile},
    ops::{self, ActixCookie, ActixStoreOps, AxumCookie, OursCookie, OursStore, TowerStoreOps},
    stores,
};
use session_test_support::RedisServer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    let profile = Profile::sample();
    group.bench_function("session", |b| b.iter(|| ops::ours_codec(black_box(&profile))));
    let record = ops::tower_record();
    group.bench_function("tower-sessions", |b| b.iter(|| ops::tower_codec(black_box(&record))));
    let state = content::actix_state();
    group.bench_function("actix-session", |b| b.iter(|| ops::actix_codec(black_box(&state))));
    group.finish();
}

fn cookie(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("cookie");
    let mut ours = OursCookie::new().expect("a cookie store");
    group.bench_function("session", |b| b.iter(|| ours.seal_open()));
    let mut actix = ActixCookie::default();
    group.bench_function("actix-session", |b| b.iter(|| rt.block_on(actix.seal_open())));
    let mut axum = AxumCookie::default();
    group.bench_function("axum-extra", |b| b.iter(|| axum.seal_open()));
    group.finish();
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory");
    let ours = rt
        .block_on(OursStore::new(session::MemoryStore::new()))
        .expect("stored");
    group.bench_function("session", |b| b.iter(|| rt.block_on(ours.load_save()).expect("saved")));
    let tower = rt
        .block_on(TowerStoreOps::new(tower_sessions::MemoryStore::default()))
        .expect("stored");
    group.bench_function("tower-sessions", |b| {
        b.iter(|| rt.block_on(tower.load_save()).expect("saved"))
    });
    group.finish();
}

fn redis(c: &mut Criterion) {
    let rt = runtime();
    let server = RedisServer::start();
    let url = server.url();
    let ours = rt
        .block_on(async { OursStore::new(stores::ours_redis(&url).await?).await })
        .expect("stored");
    let tower = rt
        .block_on(async { TowerStoreOps::new(stores::tower_redis(&url).await?).await })
        .expect("stored");
    let actix = rt
        .block_on(async { ActixStoreOps::new(stores::actix_redis(&url).await?).await })
        .expect("stored");
    // The first library measured ran slower than the others, whichever it was: every
    // library runs untimed first, so none meets a cold server or machine alone.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        rt.block_on(ours.load_save()).expect("saved");
        rt.block_on(tower.load_save()).expect("saved");
        rt.block_on(actix.load_save()).expect("saved");
    }
    let mut group = c.benchmark_group("redis");
    group.bench_function("session", |b| b.iter(|| rt.block_on(ours.load_save()).expect("saved")));
    group.bench_function("tower-sessions", |b| {
        b.iter(|| rt.block_on(tower.load_save()).expect("saved"))
    });
    group.bench_function("actix-session", |b| {
        b.iter(|| rt.block_on(actix.load_save()).expect("saved"))
    });
    group.finish();
    drop(server);
}

fn config() -> Criterion {
    // Short runs: the report runs every group, and figures are compared within one run.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(40)
}

criterion_group! {
    name = benches;
    config = config();
    targets = codec, cookie, memory, redis
}
criterion_main!(benches);
