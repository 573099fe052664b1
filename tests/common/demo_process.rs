//! The demo's own binaries (the `demo` and `actix_demo` examples) as processes started the
//! way users start them, for the tests that drive them over loopback.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{browser, get_json, send_json};

/// The example binary next to this test's: `target/<profile>/examples/<example>`.
pub fn demo_binary(example: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let demo = profile
        .join("examples")
        .join(format!("{example}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        demo.exists(),
        "{} is missing: build it with `cargo build --example {example}` (a plain `cargo test` builds it)",
        demo.display()
    );
    demo
}

/// A running demo process, killed on drop.
pub struct DemoProcess {
    child: Child,
    /// Where it listens.
    pub url: String,
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo `example` on `store`, with only these variables besides.
pub fn command(example: &str, store: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(demo_binary(example));
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
pub fn start(example: &str, store: &str, env: &[(&str, &str)]) -> DemoProcess {
    let mut child = command(example, store, env).spawn().expect("start the demo binary");
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
    DemoProcess { child, url }
}

/// Logs in, counts two visits, reads the flash once, sets a preference, logs out.
pub async fn tour(demo: &DemoProcess) {
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
    assert_eq!(first["visits"], 1);
    assert_eq!(second["visits"], 2);
    let put = send_json(&client, Method::PUT, url("/api/prefs/theme"), json!({"value": "dark"})).await;
    assert_eq!(put.status(), 200);
    assert_eq!(get_json(&client, url("/api/prefs")).await["theme"], "dark");
    assert_eq!(get_json(&client, url("/api/private")).await["user"], "alice");
    let logout = send_json(&client, Method::POST, url("/api/logout"), json!({})).await;
    assert_eq!(logout.status(), 200);
    assert_eq!(client.get(url("/api/private")).send().await.unwrap().status(), 401);
}
