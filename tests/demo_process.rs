//! The demo as users start it: the `demo` example's own binary (its `main.rs`: environment
//! variables, store choice, start-up errors) as a separate process, driven over loopback.
//!
//! `cargo test` builds the examples before it runs the tests; run alone, this test needs
//! `cargo build --example demo` first.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{
    http::{browser, get_json, send_json},
    redis_server::RedisServer,
};
use reqwest::Method;
use serde_json::{Value, json};

/// The demo binary next to this test's: `target/<profile>/examples/demo`.
fn demo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let demo = profile
        .join("examples")
        .join(format!("demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        demo.exists(),
        "{} is missing: build it with `cargo build --example demo` (a plain `cargo test` builds it)",
        demo.display()
    );
    demo
}

/// A running demo process, killed on drop.
struct Demo {
    child: Child,
    url: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(store: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(demo_binary());
    command
        .env_clear()
        .env("SESSION_DEMO_ADDR", "127.0.0.1:0")
        .env("SESSION_DEMO_STORE", store)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Starts the demo and reads the address it announces on its first line.
fn start(store: &str, env: &[(&str, &str)]) -> Demo {
    let mut child = command(store, env).spawn().expect("start the demo binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the demo's first line");
    let Some(url) = line.trim().rsplit_once(" on ").map(|(_, url)| url.to_owned()) else {
        let _ = child.kill();
        let output = child.wait_with_output().expect("the demo's output");
        panic!(
            "the demo did not start: {line:?}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    assert!(line.contains(store), "the banner names the store: {line}");
    Demo { child, url }
}

/// Runs the demo to its exit and returns its standard error.
fn refused(store: &str, env: &[(&str, &str)]) -> String {
    let mut child = command(store, env).spawn().expect("start the demo binary");
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

/// Logs in, counts two visits, reads the flash once, sets a preference, logs out.
async fn tour(demo: &Demo) {
    let client = browser();
    let url = |path: &str| format!("{}{path}", demo.url);
    let index = client.get(url("/")).send().await.unwrap().text().await.unwrap();
    assert!(index.contains("<h1>session demo</h1>"), "{index}");
    let login = send_json(&client, Method::POST, url("/api/login"), json!({"user": "alice"})).await;
    assert_eq!(login.status(), 200);
    let first = get_json(&client, url("/api/visit")).await;
    assert_eq!(first["user"], "alice");
    assert_eq!(first["notice"], "Welcome alice");
    let second = get_json(&client, url("/api/visit")).await;
    assert_eq!(second["notice"], Value::Null);
    assert_eq!(
        second["visits"].as_u64(),
        first["visits"].as_u64().map(|visits| visits + 1)
    );
    let put = send_json(&client, Method::PUT, url("/api/prefs/theme"), json!({"value": "dark"})).await;
    assert_eq!(put.status(), 200);
    assert_eq!(get_json(&client, url("/api/prefs")).await["theme"], "dark");
    assert_eq!(get_json(&client, url("/api/private")).await["user"], "alice");
    let logout = send_json(&client, Method::POST, url("/api/logout"), json!({})).await;
    assert_eq!(logout.status(), 200);
    assert_eq!(client.get(url("/api/private")).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_demo_binary_serves_each_store_from_its_environment() {
    tour(&start("memory", &[])).await;
    tour(&start(
        "cookie",
        &[(
            "SESSION_SECRET",
            "q6N8m3d9xW2v7Yk1pL0sT4uZ5rA8bC3eF6gH9jK2mN5oP8rS1tU4vW7xY0zB3cD6",
        )],
    ))
    .await;
    let redis = RedisServer::start();
    tour(&start("redis", &[("REDIS_URL", &redis.url())])).await;
    tour(&start("clustered", &[("REDIS_URL", &redis.url())])).await;
}

#[test]
fn the_demo_binary_refuses_bad_configuration_with_a_message() {
    let unknown = refused("bogus", &[]);
    assert!(
        unknown.contains("expected `memory`, `cookie`, `redis`, `clustered`, `postgres`, `sqlite` or `mysql`"),
        "{unknown}"
    );
    let short = refused("cookie", &[("SESSION_SECRET", "short")]);
    assert!(short.contains("session demo:"), "{short}");
    let unreachable = refused("redis", &[("REDIS_URL", "redis://127.0.0.1:1/")]);
    assert!(unreachable.contains("session demo:"), "{unreachable}");
}
