//! The demo as users start it: the `demo` (axum) and `actix_demo` (actix-web) examples' own
//! binaries (their `main.rs`: environment variables, store choice, start-up errors) as
//! separate processes, driven over loopback.
//!
//! `cargo test` builds the examples before it runs the tests; run alone, this test needs
//! `cargo build --example demo --example actix_demo` first.

mod common;

use std::time::Duration;

use common::{
    demo_process::{command, start, tour},
    http::{browser, get_json, send_json},
    redis_server::RedisServer,
};
use reqwest::Method;
use serde_json::{Value, json};

/// Runs the demo to its exit and returns its standard error.
fn refused(example: &str, store: &str, env: &[(&str, &str)]) -> String {
    let mut child = command(example, store, env).spawn().expect("start the demo binary");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let _ = tx.send(std::io::read_to_string(stderr).unwrap_or_default());
    });
    let Ok(stderr) = rx.recv_timeout(Duration::from_secs(20)) else {
        let _ = child.kill();
        panic!("the demo kept running with SESSION_DEMO_STORE={store} {env:?}");
    };
    let status = child.wait().expect("the demo's exit status");
    assert!(!status.success(), "the demo exited successfully with {store} {env:?}");
    stderr
}

async fn serves_each_store_from_its_environment(example: &str) {
    tour(&start(example, "memory", &[])).await;
    tour(&start(
        example,
        "cookie",
        &[(
            "SESSION_SECRET",
            "q6N8m3d9xW2v7Yk1pL0sT4uZ5rA8bC3eF6gH9jK2mN5oP8rS1tU4vW7xY0zB3cD6",
        )],
    ))
    .await;
    let redis = RedisServer::start();
    tour(&start(example, "redis", &[("REDIS_URL", &redis.url())])).await;
    tour(&start(example, "clustered", &[("REDIS_URL", &redis.url())])).await;
}

fn refuses_bad_configuration_with_a_message(example: &str) {
    let unknown = refused(example, "bogus", &[]);
    assert!(
        unknown.contains("expected `memory`, `cookie`, `redis`, `clustered`, `postgres`, `sqlite` or `mysql`"),
        "{unknown}"
    );
    let short = refused(example, "cookie", &[("SESSION_SECRET", "short")]);
    assert!(short.contains("session demo:"), "{short}");
    let unreachable = refused(example, "redis", &[("REDIS_URL", "redis://127.0.0.1:1/")]);
    assert!(unreachable.contains("session demo:"), "{unreachable}");
    let ttl = refused(example, "memory", &[("SESSION_DEMO_CODE_TTL_SECS", "soon")]);
    assert!(
        ttl.contains("SESSION_DEMO_CODE_TTL_SECS=\"soon\" is not a number of seconds"),
        "{ttl}"
    );
}

/// `SESSION_DEMO_CODE_TTL_SECS=1`: the code is gone a second later, the login is not.
async fn keeps_the_code_for_its_ttl_from_the_environment(example: &str) {
    let demo = start(example, "memory", &[("SESSION_DEMO_CODE_TTL_SECS", "1")]);
    let client = browser();
    let url = |path: &str| format!("{}{path}", demo.url);
    send_json(&client, Method::POST, url("/api/login"), json!({"user": "alice"})).await;
    let put = send_json(&client, Method::PUT, url("/api/code"), json!({"code": "123456"})).await;
    assert_eq!(put.status(), 200);
    assert_eq!(get_json(&client, url("/api/code")).await["code"], "123456");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get_json(&client, url("/api/code")).await["code"], Value::Null);
    assert_eq!(get_json(&client, url("/api/private")).await["user"], "alice");
}

#[tokio::test]
async fn the_demo_binary_serves_each_store_from_its_environment() {
    serves_each_store_from_its_environment("demo").await;
}

#[tokio::test]
async fn the_actix_demo_binary_serves_each_store_from_its_environment() {
    serves_each_store_from_its_environment("actix_demo").await;
}

#[tokio::test]
async fn the_demo_binary_keeps_the_code_for_its_ttl_from_the_environment() {
    keeps_the_code_for_its_ttl_from_the_environment("demo").await;
}

#[tokio::test]
async fn the_actix_demo_binary_keeps_the_code_for_its_ttl_from_the_environment() {
    keeps_the_code_for_its_ttl_from_the_environment("actix_demo").await;
}

#[test]
fn the_demo_binary_refuses_bad_configuration_with_a_message() {
    refuses_bad_configuration_with_a_message("demo");
}

#[test]
fn the_actix_demo_binary_refuses_bad_configuration_with_a_message() {
    refuses_bad_configuration_with_a_message("actix_demo");
}
