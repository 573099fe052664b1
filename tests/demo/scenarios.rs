//! End-to-end scenarios shared by the demo's test files (each serves the demo on its own
//! stores and passes its base URL).

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::common::http::{bare, get_json, send_json, set_cookies};

async fn login(client: &Client, base: &str, user: &str) -> reqwest::Response {
    send_json(
        client,
        reqwest::Method::POST,
        format!("{base}/api/login"),
        json!({ "user": user }),
    )
    .await
}

/// A browser with its own cookie jar and User-Agent.
pub fn browser_as(user_agent: &str) -> Client {
    Client::builder()
        .cookie_store(true)
        .user_agent(user_agent)
        .build()
        .unwrap()
}

/// Who `client` is on `base`, as `/api/peek` says (null when anonymous).
pub async fn who(client: &Client, base: &str) -> Value {
    get_json(client, format!("{base}/api/peek")).await["user"].clone()
}

/// Three browsers log in as alice, one as bob: the devices list shows alice's three with
/// the right current flag and User-Agent (on a store that can list them, `listed`; the
/// cookie store answers 501); logging out the others leaves only the caller; logging out
/// everywhere ends all of alice's and none of bob's.
pub async fn devices_and_logging_out_elsewhere(base: &str, listed: bool) {
    let base = base.to_owned();
    let anonymous = bare().get(format!("{base}/api/devices")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let agents = ["Laptop/1.0", "Phone/2.0", "Tablet/3.0"];
    let alices: Vec<Client> = agents.iter().map(|agent| browser_as(agent)).collect();
    for alice in &alices {
        assert_eq!(login(alice, &base, "alice").await.status(), StatusCode::OK);
    }
    let bob = browser_as("Desktop/4.0");
    login(&bob, &base, "bob").await;
    if listed {
        list_devices(&base, &alices, &bob, agents).await;
    } else {
        let devices = alices[0].get(format!("{base}/api/devices")).send().await.unwrap();
        assert_eq!(
            devices.status(),
            StatusCode::NOT_IMPLEMENTED,
            "cookies cannot be listed"
        );
    }

    let others = send_json(
        &alices[1],
        reqwest::Method::POST,
        format!("{base}/api/logout/others"),
        json!({}),
    )
    .await;
    assert_eq!(others.status(), StatusCode::OK);
    let ended = if listed { json!(2) } else { Value::Null };
    assert_eq!(others.json::<Value>().await.unwrap(), json!({ "ended": ended }));
    assert_eq!(who(&alices[0], &base).await, Value::Null, "the laptop is logged out");
    assert_eq!(who(&alices[2], &base).await, Value::Null, "the tablet too");
    assert_eq!(who(&alices[1], &base).await, "alice", "the caller lives on");
    assert_eq!(who(&bob, &base).await, "bob");
    if listed {
        let listed = get_json(&alices[1], format!("{base}/api/devices")).await;
        assert_eq!(listed["devices"].as_array().unwrap().len(), 1);
    }

    login(&alices[0], &base, "alice").await;
    login(&alices[2], &base, "alice").await;
    let everywhere = send_json(
        &alices[0],
        reqwest::Method::POST,
        format!("{base}/api/logout/everywhere"),
        json!({}),
    )
    .await;
    assert_eq!(everywhere.status(), StatusCode::OK);
    assert!(
        set_cookies(&everywhere)
            .iter()
            .any(|c| c.starts_with("session=;") && c.contains("Max-Age=0")),
        "the caller's cookie is expired"
    );
    for alice in &alices {
        assert_eq!(who(alice, &base).await, Value::Null, "every session of alice ended");
    }
    assert_eq!(who(&bob, &base).await, "bob", "and none of bob's");
}

/// Alice's devices as her second browser lists them (itself the current one), and bob's.
async fn list_devices(base: &str, alices: &[Client], bob: &Client, agents: [&str; 3]) {
    let listed = get_json(&alices[1], format!("{base}/api/devices")).await;
    let devices = listed["devices"].as_array().expect("a devices list");
    assert_eq!(devices.len(), 3, "alice's three sessions: {listed}");
    let mut seen: Vec<&str> = devices.iter().map(|d| d["user_agent"].as_str().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, agents, "each with its User-Agent");
    let current: Vec<&Value> = devices.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1, "exactly one is the caller's");
    assert_eq!(current[0]["user_agent"], "Phone/2.0");
    for device in devices {
        assert!(device["created_ms"].as_u64().unwrap() > 0);
        assert!(device["last_access_ms"].as_u64().unwrap() >= device["created_ms"].as_u64().unwrap());
    }
    let bobs = get_json(bob, format!("{base}/api/devices")).await;
    assert_eq!(bobs["devices"].as_array().unwrap().len(), 1, "bob sees only his own");
}
