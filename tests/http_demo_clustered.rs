//! The demo application on the clustered store, as a load balancer without sticky
//! sessions would use it: two demo processes' worth of application nodes (each its own
//! server and its own `ClusteredStore`) over one Redis Cluster, one browser alternating
//! between them; on axum and on actix-web.

mod common;
mod demo;

use common::{
    http::{bare, browser, cookie_value, get_json},
    redis_cluster::RedisCluster,
};
use demo::Framework;
use reqwest::StatusCode;
use serde_json::{Value, json};
use session::{ClusteredStore, RedisStore, SessionConfig, SessionProvider, http::OutagePolicy};

async fn demo_node(framework: Framework, cluster: &RedisCluster) -> (String, ClusteredStore) {
    let redis = RedisStore::cluster_builder(cluster.urls()).prefix("demo:");
    let store = ClusteredStore::builder(redis).build().await.unwrap();
    let provider = SessionProvider::new(store.clone(), SessionConfig::development().build().unwrap());
    (demo::serve(framework, provider, OutagePolicy::FailClosed).await, store)
}

demo::on_both_frameworks!(
    a_browser_alternating_between_two_nodes_sees_one_session,
    logging_out_everywhere_on_one_node_ends_the_sessions_on_the_other,
);

/// Three browsers of alice, each with its session cached on node B; alice logs out
/// everywhere on node A: B refuses each old cookie on its very next request.
async fn logging_out_everywhere_on_one_node_ends_the_sessions_on_the_other(framework: Framework) {
    let cluster = RedisCluster::start();
    let ((a, _store_a), (b, store_b)) = (
        demo_node(framework, &cluster).await,
        demo_node(framework, &cluster).await,
    );
    let alices: Vec<_> = (0..3).map(|_| browser()).collect();
    let mut cookies = Vec::new();
    for alice in &alices {
        let response = alice
            .post(format!("{a}/api/login"))
            .json(&json!({"user": "alice"}))
            .send()
            .await
            .unwrap();
        cookies.push(cookie_value(&response, "session").unwrap());
    }
    let bob = browser();
    bob.post(format!("{a}/api/login"))
        .json(&json!({"user": "bob"}))
        .send()
        .await
        .unwrap();
    // Cache every session on B.
    let hits = store_b.stats().hits;
    for alice in alices.iter().chain([&bob]) {
        for _ in 0..2 {
            get_json(alice, format!("{b}/api/peek")).await;
        }
    }
    assert!(store_b.stats().hits > hits, "B serves them from its cache");
    let listed = get_json(&alices[0], format!("{b}/api/devices")).await;
    assert_eq!(listed["devices"].as_array().unwrap().len(), 3, "B lists alice's three");

    let response = alices[0]
        .post(format!("{a}/api/logout/everywhere"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for cookie in &cookies {
        let replay = bare()
            .get(format!("{b}/api/private"))
            .header("cookie", format!("session={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            replay.status(),
            StatusCode::UNAUTHORIZED,
            "B refuses a logged-out session at once"
        );
    }
    assert_eq!(
        get_json(&bob, format!("{b}/api/peek")).await["user"],
        "bob",
        "bob's lives on"
    );
}

async fn a_browser_alternating_between_two_nodes_sees_one_session(framework: Framework) {
    let cluster = RedisCluster::start();
    let ((a, store_a), (b, store_b)) = (
        demo_node(framework, &cluster).await,
        demo_node(framework, &cluster).await,
    );
    let client = browser();

    // Log in on A; B sees the user and the flash, exactly once.
    let response = client
        .post(format!("{a}/api/login"))
        .json(&json!({"user": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_value(&response, "session").expect("login sets the session cookie");
    let state = get_json(&client, format!("{b}/api/peek")).await;
    assert_eq!(state["user"], "alice");
    assert_eq!(state["notice"], "Welcome alice");
    assert_eq!(
        get_json(&client, format!("{b}/api/visit")).await["notice"],
        "Welcome alice"
    );
    assert_eq!(get_json(&client, format!("{a}/api/visit")).await["notice"], Value::Null);

    // Visits counted on both nodes, each seeing the other's last write.
    for visit in 3..=20 {
        let node = if visit % 2 == 0 { &a } else { &b };
        assert_eq!(get_json(&client, format!("{node}/api/visit")).await["visits"], visit);
    }
    // Read-only requests are served from the local caches.
    let hits = store_a.stats().hits + store_b.stats().hits;
    for node in [&a, &b, &a, &b] {
        assert_eq!(get_json(&client, format!("{node}/api/peek")).await["visits"], 20);
        get_json(&client, format!("{node}/api/prefs")).await;
    }
    assert!(
        store_a.stats().hits + store_b.stats().hits > hits,
        "peeks hit the local caches"
    );

    // Log out on B: A, which has the session cached, refuses a replay of the cookie at once.
    let replay = || {
        bare()
            .get(format!("{a}/api/private"))
            .header("cookie", format!("session={cookie}"))
            .send()
    };
    assert_eq!(replay().await.unwrap().status(), StatusCode::OK);
    let response = client
        .post(format!("{b}/api/logout"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(replay().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}
