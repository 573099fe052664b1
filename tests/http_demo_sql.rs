//! The demo application end to end on the SQL stores: its router on a real loopback server
//! with a real client for PostgreSQL, SQLite and MySQL (every route); the demo binary as a
//! process started with `SESSION_DEMO_STORE=postgres|sqlite|mysql`; and an outage of a
//! PostgreSQL server of the test's own answered with 503, then recovered with nothing lost;
//! each on axum and on actix-web (`axum::NAME`, `actix::NAME`), the binaries being the
//! `demo` and `actix_demo` examples.
//!
//! The binary test needs the `demo` example built (`cargo test` builds it).

mod common;
mod demo;

use std::time::Duration;

use common::{
    demo_process::{start, tour},
    http::{bare, browser, cookie_value, get_json, send_json},
    sql,
};
use demo::{Framework, PREFERENCES};
use reqwest::{Client, Method, StatusCode, header};
use serde_json::{Value, json};
use session::{
    ManualClock, MySqlStore, PostgresStore, SessionConfig, SessionProvider, SqliteStore,
    http::OutagePolicy,
    resilience::{BreakerConfig, RetryPolicy},
};
use session_test_support::PostgresServer;

const COOKIE: &str = "session";

#[derive(Clone, Copy, Debug)]
enum Store {
    Postgres,
    Sqlite,
    MySql,
}

async fn serve(framework: Framework, store: Store, clock: &ManualClock) -> String {
    let config = SessionConfig::development().clock(clock.clone()).build().unwrap();
    match store {
        Store::Postgres => {
            let store = PostgresStore::builder_from_url(sql::postgres_url().await)
                .table(sql::table())
                .clock(clock.clone())
                .build()
                .await
                .unwrap();
            store.migrate().await.unwrap();
            demo::serve(framework, SessionProvider::new(store, config), OutagePolicy::FailClosed).await
        }
        Store::Sqlite => {
            let store = SqliteStore::builder_from_path(sql::sqlite_path())
                .clock(clock.clone())
                .build()
                .await
                .unwrap();
            store.migrate().await.unwrap();
            demo::serve(framework, SessionProvider::new(store, config), OutagePolicy::FailClosed).await
        }
        Store::MySql => {
            let store = MySqlStore::builder_from_url(sql::mysql_url().await)
                .table(sql::table())
                .clock(clock.clone())
                .build()
                .await
                .unwrap();
            store.migrate().await.unwrap();
            demo::serve(framework, SessionProvider::new(store, config), OutagePolicy::FailClosed).await
        }
    }
}

demo::on_both_frameworks!(
    every_route_postgres,
    every_route_sqlite,
    every_route_mysql,
    a_database_outage_is_503_and_nothing_is_lost_when_it_is_back,
    the_demo_binary_serves_each_sql_store_from_its_environment,
    devices_and_logging_out_elsewhere_postgres,
    devices_and_logging_out_elsewhere_sqlite,
    devices_and_logging_out_elsewhere_mysql,
);

async fn devices_and_logging_out_elsewhere(framework: Framework, store: Store) {
    let base = serve(framework, store, &ManualClock::new()).await;
    demo::scenarios::devices_and_logging_out_elsewhere(&base, true).await;
}

async fn devices_and_logging_out_elsewhere_postgres(framework: Framework) {
    devices_and_logging_out_elsewhere(framework, Store::Postgres).await;
}

async fn devices_and_logging_out_elsewhere_sqlite(framework: Framework) {
    devices_and_logging_out_elsewhere(framework, Store::Sqlite).await;
}

async fn devices_and_logging_out_elsewhere_mysql(framework: Framework) {
    devices_and_logging_out_elsewhere(framework, Store::MySql).await;
}

fn with_cookie(client: &Client, url: String, value: &str) -> reqwest::RequestBuilder {
    client.get(url).header(header::COOKIE, format!("{COOKIE}={value}"))
}

/// Every route of the demo, and what a server-side store adds: the old ID dead after
/// login and after logout, and overlapping requests that change different preferences
/// all keeping their change.
async fn every_route(framework: Framework, store: Store) {
    let clock = ManualClock::new();
    let base = serve(framework, store, &clock).await;
    let client = browser();
    let url = |path: &str| format!("{base}{path}");

    let page = client.get(url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<form id=\"login\">"));
    assert_eq!(
        get_json(&client, url("/api/visit")).await,
        json!({ "visits": 1, "user": null, "notice": null })
    );
    assert_eq!(get_json(&client, url("/api/visit")).await["visits"], 2);
    assert_eq!(
        get_json(&client, url("/api/peek")).await,
        json!({ "visits": 2, "user": null, "notice": null })
    );
    assert_eq!(
        client.get(url("/api/private")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Login regenerates the ID: the anonymous cookie is dead at once.
    let anonymous = bare();
    let first = anonymous.get(url("/api/visit")).send().await.unwrap();
    let before = cookie_value(&first, COOKIE).expect("a new session sets a cookie");
    let login = anonymous
        .post(url("/api/login"))
        .header(header::COOKIE, format!("{COOKIE}={before}"))
        .json(&json!({ "user": "bob" }))
        .send()
        .await
        .unwrap();
    let after = cookie_value(&login, COOKIE).expect("login sets a new cookie");
    assert_ne!(before, after);
    let replay: Value = with_cookie(&anonymous, url("/api/peek"), &before)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        replay,
        json!({ "visits": 0, "user": null, "notice": null }),
        "old ID dead"
    );

    let response = send_json(&client, Method::POST, url("/api/login"), json!({ "user": "alice" })).await;
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "user": "alice" }));
    let visit = get_json(&client, url("/api/visit")).await;
    assert_eq!(visit["notice"], "Welcome alice", "the flash, on the next request");
    assert_eq!(visit["visits"], 3, "the data moved with the ID");
    assert_eq!(
        get_json(&client, url("/api/visit")).await["notice"],
        Value::Null,
        "and only then"
    );
    assert_eq!(get_json(&client, url("/api/private")).await, json!({ "user": "alice" }));
    send_json(&client, Method::POST, url("/api/flash"), json!({ "notice": "saved" })).await;
    assert_eq!(get_json(&client, url("/api/visit")).await["notice"], "saved");

    // Eight overlapping requests, each setting its own preference (its own field).
    let puts = PREFERENCES.iter().map(|name| {
        let (client, url) = (client.clone(), url(&format!("/api/prefs/{name}")));
        async move { send_json(&client, Method::PUT, url, json!({ "value": format!("v-{name}") })).await }
    });
    for response in futures_join_all(puts).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let prefs = get_json(&client, url("/api/prefs")).await;
    for name in PREFERENCES {
        assert_eq!(prefs[name], format!("v-{name}"), "{name} kept by overlapping requests");
    }
    let unknown = send_json(&client, Method::PUT, url("/api/prefs/colour"), json!({ "value": "x" })).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let logout = send_json(&client, Method::POST, url("/api/logout"), json!({})).await;
    assert_eq!(logout.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(
        client.get(url("/api/private")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let replay = with_cookie(&anonymous, url("/api/private"), &after)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::OK, "another session's cookie is untouched");
}

/// All of `futures`, concurrently, in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

async fn every_route_postgres(framework: Framework) {
    every_route(framework, Store::Postgres).await;
}

async fn every_route_sqlite(framework: Framework) {
    every_route(framework, Store::Sqlite).await;
}

async fn every_route_mysql(framework: Framework) {
    every_route(framework, Store::MySql).await;
}

async fn a_database_outage_is_503_and_nothing_is_lost_when_it_is_back(framework: Framework) {
    let server = tokio::task::spawn_blocking(PostgresServer::start).await.unwrap();
    let clock = ManualClock::new();
    let store = PostgresStore::builder_from_url(server.url("postgres"))
        .clock(clock.clone())
        .command_timeout(Duration::from_millis(250))
        .retry(RetryPolicy::none())
        .circuit_breaker(BreakerConfig {
            failure_threshold: 2,
            reset_timeout: Duration::from_millis(500),
        })
        .build()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let config = SessionConfig::development().clock(clock.clone()).build().unwrap();
    let base = demo::serve(framework, SessionProvider::new(store, config), OutagePolicy::FailClosed).await;
    let client = browser();
    let url = |path: &str| format!("{base}{path}");
    send_json(&client, Method::POST, url("/api/login"), json!({ "user": "alice" })).await;
    assert_eq!(get_json(&client, url("/api/visit")).await["visits"], 1);

    server.freeze();
    for _ in 0..3 {
        let response = client.get(url("/api/visit")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            cookie_value(&response, COOKIE).is_none(),
            "no cookie is set or cleared during an outage"
        );
    }
    server.thaw();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let back = get_json(&client, url("/api/visit")).await;
    assert_eq!(back["user"], "alice", "the session survived the outage");
    assert_eq!(back["visits"], 2, "no visit was counted during the outage");
}

// The demo binary, configured by its environment.

/// The example that serves the demo on `framework`.
fn example(framework: Framework) -> &'static str {
    match framework {
        Framework::Axum => "demo",
        Framework::Actix => "actix_demo",
    }
}

async fn the_demo_binary_serves_each_sql_store_from_its_environment(framework: Framework) {
    let example = example(framework);
    let postgres = sql::postgres_url().await;
    tour(&start(example, "postgres", &[("DATABASE_URL", &postgres)])).await;
    let mysql = sql::mysql_url().await;
    tour(&start(example, "mysql", &[("DATABASE_URL", &mysql)])).await;
    let path = sql::sqlite_path();
    let sqlite = path.to_string_lossy();
    tour(&start(example, "sqlite", &[("SESSION_DEMO_SQLITE_PATH", &sqlite)])).await;
    assert!(path.exists(), "the SQLite file is where SESSION_DEMO_SQLITE_PATH says");
}
