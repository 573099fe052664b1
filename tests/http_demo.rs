//! The demo application end to end: a real server on a loopback port, a real
//! client with a cookie jar, for the memory, cookie and Redis stores (a spawned
//! `redis-server`), on axum and on actix-web alike: every test runs on both
//! (`axum::NAME`, `actix::NAME`).

mod common;
mod demo;

use std::time::Duration;

use common::{
    http::{bare, browser, cookie_value, get_json, send_json, set_cookies},
    redis_server::RedisServer,
};
use demo::{Framework, PREFERENCES};
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use session::{
    CookieSessions, ManualClock, MemoryRevocationStore, MemoryStore, RedisStore, SessionConfig, SessionConfigBuilder,
    SessionProvider,
    crypto::{KeyId, KeyRing, Secret},
    http::OutagePolicy,
    resilience::{BreakerConfig, RetryPolicy},
};

#[derive(Clone, Copy, Debug)]
enum Store {
    Memory,
    Cookie,
    Redis,
}

const COOKIE: &str = "session";

/// What keeps a test's server side alive: its clock, and its Redis server if any.
struct Running {
    clock: ManualClock,
    redis: Option<RedisServer>,
}

async fn app(
    framework: Framework,
    store: Store,
    clock: &ManualClock,
    config: SessionConfigBuilder,
) -> (String, Option<RedisServer>) {
    let config = config.clock(clock.clone()).build().unwrap();
    match store {
        Store::Memory => {
            let memory = MemoryStore::builder().clock(clock.clone()).build();
            (
                demo::serve(
                    framework,
                    SessionProvider::new(memory, config),
                    OutagePolicy::FailClosed,
                )
                .await,
                None,
            )
        }
        Store::Cookie => {
            let ring = KeyRing::new(KeyId(1), Secret::from_bytes((0u8..48).collect::<Vec<u8>>()).unwrap());
            (
                demo::serve(
                    framework,
                    CookieSessions::new(ring, config)
                        .unwrap()
                        .with_revocation(MemoryRevocationStore::with_clock(clock.clone())),
                    OutagePolicy::FailClosed,
                )
                .await,
                None,
            )
        }
        Store::Redis => {
            let server = RedisServer::start();
            let store = RedisStore::builder(server.url())
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
            (
                demo::serve(framework, SessionProvider::new(store, config), OutagePolicy::FailClosed).await,
                Some(server),
            )
        }
    }
}

async fn start_with(framework: Framework, store: Store, config: SessionConfigBuilder) -> (String, Running) {
    let clock = ManualClock::new();
    let (base, redis) = app(framework, store, &clock, config).await;
    (base, Running { clock, redis })
}

async fn start(framework: Framework, store: Store) -> (String, Running) {
    start_with(framework, store, SessionConfig::development()).await
}

/// `async fn NAME(framework)` running `SCENARIO(framework, Store::STORE)`, for each
/// `STORE => NAME` listed: the per-store tests `on_both_frameworks!` lists.
macro_rules! per_store {
    ($scenario:ident: $($store:ident => $name:ident),+ $(,)?) => {
        $(
            async fn $name(framework: Framework) {
                $scenario(framework, Store::$store).await;
            }
        )+
    };
}

demo::on_both_frameworks!(
    every_route_memory,
    every_route_cookie,
    flash_memory,
    flash_cookie,
    login_regenerates_the_id_memory,
    login_regenerates_the_id_cookie,
    old_ids_are_dead_on_a_server_side_store_memory,
    old_ids_are_dead_on_a_server_side_store_redis,
    bad_cookies_memory,
    bad_cookies_cookie,
    expiry_memory,
    expiry_cookie,
    eight_concurrent_preference_writes_all_survive_memory,
    eight_concurrent_preference_writes_all_survive_redis,
    peek_never_sets_a_cookie_memory,
    peek_never_sets_a_cookie_cookie,
    set_cookie_attributes_follow_each_preset,
    every_route_redis,
    flash_redis,
    login_regenerates_the_id_redis,
    bad_cookies_redis,
    expiry_redis,
    peek_never_sets_a_cookie_redis,
    a_frozen_redis_answers_503_and_a_thawed_one_serves_the_same_session,
    oversized_changes_are_refused_memory,
    oversized_changes_are_refused_cookie,
    oversized_changes_are_refused_redis,
    remember_me_memory,
    remember_me_cookie,
    remember_me_redis,
    verification_code_memory,
    verification_code_cookie,
    verification_code_redis,
    sudo_memory,
    sudo_cookie,
    sudo_redis,
    devices_and_logging_out_elsewhere_memory,
    devices_and_logging_out_elsewhere_redis,
    logging_out_elsewhere_with_cookies,
    cookie_revocation_reaches_another_node_within_its_bound,
);

async fn login(client: &Client, base: &str, user: &str) -> reqwest::Response {
    send_json(
        client,
        reqwest::Method::POST,
        format!("{base}/api/login"),
        json!({ "user": user }),
    )
    .await
}

fn with_cookie(client: &Client, url: String, value: &str) -> reqwest::RequestBuilder {
    client.get(url).header(header::COOKIE, format!("{COOKIE}={value}"))
}

async fn every_route(framework: Framework, store: Store) {
    let (base, _running) = start(framework, store).await;
    let client = browser();

    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<form id=\"login\">"));
    let anonymous = get_json(&client, format!("{base}/api/session")).await;
    assert_eq!(anonymous["user"], Value::Null);
    assert_eq!(anonymous["expires_in_secs"], Value::Null, "reading creates no session");

    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await,
        json!({ "visits": 1, "user": null, "notice": null })
    );
    assert_eq!(get_json(&client, format!("{base}/api/visit")).await["visits"], 2);
    assert_eq!(
        get_json(&client, format!("{base}/api/peek")).await,
        json!({ "visits": 2, "user": null, "notice": null })
    );

    let private = client.get(format!("{base}/api/private")).send().await.unwrap();
    assert_eq!(private.status(), StatusCode::UNAUTHORIZED, "no user yet");

    let response = login(&client, &base, "alice").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "user": "alice" }));
    let info = get_json(&client, format!("{base}/api/session")).await;
    assert_eq!(info["user"], "alice");
    assert_eq!(info["store"], "test store");
    assert_eq!(info["preferences"].as_array().unwrap().len(), 8);
    let expires = info["expires_in_secs"].as_u64().expect("a live session has an expiry");
    assert!(
        (1700..=1800).contains(&expires),
        "the idle timeout (30 min) ends it first: {expires}"
    );
    assert!(info["absolute_expires_in_secs"].as_u64().unwrap() > expires);
    assert_eq!(
        info["features"],
        json!({ "remember_me": true, "devices": true, "logout_others": true, "code": true, "sudo": true }),
        "the optional routes that exist: {info}"
    );
    assert_eq!(
        get_json(&client, format!("{base}/api/private")).await,
        json!({ "user": "alice" })
    );

    let flash = send_json(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/flash"),
        json!({ "notice": "saved" }),
    )
    .await;
    assert_eq!(flash.json::<Value>().await.unwrap(), json!({}));

    let put = send_json(
        &client,
        reqwest::Method::PUT,
        format!("{base}/api/prefs/theme"),
        json!({ "value": "dark" }),
    )
    .await;
    assert_eq!(put.status(), StatusCode::OK);
    let unknown = send_json(
        &client,
        reqwest::Method::PUT,
        format!("{base}/api/prefs/colour"),
        json!({ "value": "x" }),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let prefs = get_json(&client, format!("{base}/api/prefs")).await;
    assert_eq!(prefs["theme"], "dark");
    assert_eq!(prefs.as_object().unwrap().len(), 8);
    assert!(
        PREFERENCES
            .iter()
            .filter(|name| **name != "theme")
            .all(|name| prefs[name].is_null())
    );

    let bad = send_json(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/login"),
        json!({ "name": "x" }),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let logout = send_json(&client, reqwest::Method::POST, format!("{base}/api/logout"), json!({})).await;
    assert_eq!(logout.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(
        client.get(format!("{base}/api/private")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await,
        json!({ "visits": 1, "user": null, "notice": null })
    );
}

per_store!(every_route:
    Memory => every_route_memory,
    Cookie => every_route_cookie,
    Redis => every_route_redis,
);

async fn flash_is_visible_on_exactly_the_next_request(framework: Framework, store: Store) {
    let (base, _running) = start(framework, store).await;
    let client = browser();
    login(&client, &base, "alice").await;
    assert_eq!(
        get_json(&client, format!("{base}/api/peek")).await["notice"],
        "Welcome alice",
        "peek shows, keeps"
    );
    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await["notice"],
        "Welcome alice"
    );
    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await["notice"],
        Value::Null
    );

    send_json(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/flash"),
        json!({ "notice": "one" }),
    )
    .await;
    assert_eq!(get_json(&client, format!("{base}/api/visit")).await["notice"], "one");
    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await["notice"],
        Value::Null
    );
}

per_store!(flash_is_visible_on_exactly_the_next_request:
    Memory => flash_memory,
    Cookie => flash_cookie,
    Redis => flash_redis,
);

async fn login_regenerates_the_id(framework: Framework, store: Store) {
    let (base, _running) = start(framework, store).await;
    let client = bare();
    let first = client.get(format!("{base}/api/visit")).send().await.unwrap();
    let before = cookie_value(&first, COOKIE).expect("a new session sets a cookie");
    let response = client
        .post(format!("{base}/api/login"))
        .header(header::COOKIE, format!("{COOKIE}={before}"))
        .json(&json!({ "user": "alice" }))
        .send()
        .await
        .unwrap();
    let after = cookie_value(&response, COOKIE).expect("login sets a new cookie");
    assert_ne!(before, after);
    let replay: Value = with_cookie(&client, format!("{base}/api/peek"), &before)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        replay["user"],
        Value::Null,
        "the pre-login cookie never carries the login"
    );
    let current: Value = with_cookie(&client, format!("{base}/api/peek"), &after)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["user"], "alice");
}

per_store!(login_regenerates_the_id:
    Memory => login_regenerates_the_id_memory,
    Cookie => login_regenerates_the_id_cookie,
    Redis => login_regenerates_the_id_redis,
);

async fn old_ids_are_dead_on_a_server_side_store(framework: Framework, store: Store) {
    let (base, _running) = start(framework, store).await;
    let client = bare();
    let first = client.get(format!("{base}/api/visit")).send().await.unwrap();
    let anonymous = cookie_value(&first, COOKIE).unwrap();
    let response = client
        .post(format!("{base}/api/login"))
        .header(header::COOKIE, format!("{COOKIE}={anonymous}"))
        .json(&json!({ "user": "alice" }))
        .send()
        .await
        .unwrap();
    let logged_in = cookie_value(&response, COOKIE).unwrap();
    let replay: Value = with_cookie(&client, format!("{base}/api/peek"), &anonymous)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        replay,
        json!({ "visits": 0, "user": null, "notice": null }),
        "the old ID is dead after login"
    );

    let logout = client
        .post(format!("{base}/api/logout"))
        .header(header::COOKIE, format!("{COOKIE}={logged_in}"))
        .send()
        .await
        .unwrap();
    assert!(
        set_cookies(&logout)
            .iter()
            .any(|c| c.starts_with("session=;") && c.contains("Max-Age=0")),
        "cookie expired"
    );
    let replay = with_cookie(&client, format!("{base}/api/private"), &logged_in)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "replaying the logged-out cookie gets nothing"
    );
    let replay: Value = with_cookie(&client, format!("{base}/api/peek"), &logged_in)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay["user"], Value::Null);
}

per_store!(old_ids_are_dead_on_a_server_side_store:
    Memory => old_ids_are_dead_on_a_server_side_store_memory,
    Redis => old_ids_are_dead_on_a_server_side_store_redis,
);

async fn bad_cookies_start_a_fresh_session(framework: Framework, store: Store) {
    let (base, _running) = start(framework, store).await;
    let client = bare();
    let first = client.get(format!("{base}/api/visit")).send().await.unwrap();
    let good = cookie_value(&first, COOKIE).unwrap();
    let mut tampered = good.clone().into_bytes();
    tampered[good.len() / 2] = if tampered[good.len() / 2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        tampered,
        "garbage".to_owned(),
        "x".repeat(5000),
        String::new(),
        "%00%ff".to_owned(),
    ] {
        let response = with_cookie(&client, format!("{base}/api/visit"), &bad)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "a bad cookie never fails the request"
        );
        let fresh = cookie_value(&response, COOKIE).expect("a fresh session");
        assert_ne!(fresh, bad, "a client-chosen value is never adopted");
        assert_eq!(response.json::<Value>().await.unwrap()["visits"], 1);
    }
}

per_store!(bad_cookies_start_a_fresh_session:
    Memory => bad_cookies_memory,
    Cookie => bad_cookies_cookie,
    Redis => bad_cookies_redis,
);

async fn expiry(framework: Framework, store: Store) {
    let config = SessionConfig::testing()
        .idle_timeout(Duration::from_secs(60))
        .absolute_timeout(Duration::from_secs(150));
    let (base, running) = start_with(framework, store, config).await;
    let clock = &running.clock;
    let client = browser();
    get_json(&client, format!("{base}/api/visit")).await;
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await["visits"],
        2,
        "alive within the idle timeout"
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await["visits"],
        1,
        "idle timeout: a new session"
    );
    for visits in 2..=4 {
        clock.advance(Duration::from_secs(40));
        assert_eq!(get_json(&client, format!("{base}/api/visit")).await["visits"], visits);
    }
    clock.advance(Duration::from_secs(40));
    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await["visits"],
        1,
        "absolute timeout despite activity"
    );
}

per_store!(expiry:
    Memory => expiry_memory,
    Cookie => expiry_cookie,
    Redis => expiry_redis,
);

async fn eight_concurrent_preference_writes_all_survive(framework: Framework, store: Store) {
    let (base, _running) = start(framework, store).await;
    let client = browser();
    get_json(&client, format!("{base}/api/visit")).await;
    for round in 0..10 {
        let writes = PREFERENCES.map(|name| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let body = json!({ "value": format!("{name}-{round}") });
                let response = send_json(&client, reqwest::Method::PUT, format!("{base}/api/prefs/{name}"), body).await;
                assert_eq!(response.status(), StatusCode::OK);
            })
        });
        for write in writes {
            write.await.unwrap();
        }
        let prefs = get_json(&client, format!("{base}/api/prefs")).await;
        for name in PREFERENCES {
            assert_eq!(
                prefs[name],
                format!("{name}-{round}"),
                "round {round}: {name} kept its write"
            );
        }
    }
}

per_store!(eight_concurrent_preference_writes_all_survive:
    Memory => eight_concurrent_preference_writes_all_survive_memory,
    Redis => eight_concurrent_preference_writes_all_survive_redis,
);

async fn peek_never_sets_a_cookie(framework: Framework, store: Store) {
    let (base, _running) = start(framework, store).await;
    let client = browser();
    let anonymous = client.get(format!("{base}/api/peek")).send().await.unwrap();
    assert!(set_cookies(&anonymous).is_empty(), "no session, none created");
    login(&client, &base, "alice").await;
    for _ in 0..3 {
        let response = client.get(format!("{base}/api/peek")).send().await.unwrap();
        assert!(set_cookies(&response).is_empty(), "peek with a pending flash");
        assert_eq!(response.json::<Value>().await.unwrap()["notice"], "Welcome alice");
    }
}

per_store!(peek_never_sets_a_cookie:
    Memory => peek_never_sets_a_cookie_memory,
    Cookie => peek_never_sets_a_cookie_cookie,
    Redis => peek_never_sets_a_cookie_redis,
);

async fn set_cookie_attributes_follow_each_preset(framework: Framework) {
    let presets = [
        (
            SessionConfig::production(),
            vec!["__Host-session=", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"],
            vec!["Domain", "Max-Age"],
        ),
        (
            SessionConfig::high_security(),
            vec!["__Host-session=", "Secure", "HttpOnly", "SameSite=Strict"],
            vec!["Domain"],
        ),
        (
            SessionConfig::development(),
            vec!["session=", "Path=/", "HttpOnly", "SameSite=Lax"],
            vec!["Secure", "Domain"],
        ),
        (
            SessionConfig::development()
                .cookie_name("sid")
                .cookie_domain("example.test")
                .max_age(Some(Duration::from_secs(600))),
            vec!["sid=", "Domain=example.test", "Max-Age=600"],
            vec!["Secure"],
        ),
    ];
    for (config, present, absent) in presets {
        let (base, _running) = start_with(framework, Store::Memory, config).await;
        let response = bare().get(format!("{base}/api/visit")).send().await.unwrap();
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "no-store",
            "a response setting a session cookie is not cached"
        );
        let cookies = set_cookies(&response);
        assert_eq!(cookies.len(), 1);
        for part in present {
            assert!(cookies[0].contains(part), "{} lacks {part}", cookies[0]);
        }
        for part in absent {
            assert!(!cookies[0].contains(part), "{} has {part}", cookies[0]);
        }
    }
}

async fn a_frozen_redis_answers_503_and_a_thawed_one_serves_the_same_session(framework: Framework) {
    let (base, running) = start(framework, Store::Redis).await;
    let redis = running.redis.as_ref().expect("a Redis-backed demo");
    let client = browser();
    login(&client, &base, "alice").await;
    assert_eq!(get_json(&client, format!("{base}/api/visit")).await["visits"], 1);

    redis.freeze();
    for path in ["/api/visit", "/api/peek", "/api/private"] {
        let started = std::time::Instant::now();
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{path} while Redis is frozen"
        );
        assert!(set_cookies(&response).is_empty(), "no cookie while the store is down");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} failed fast: {:?}",
            started.elapsed()
        );
    }
    redis.thaw();

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let visit = loop {
        let response = client.get(format!("{base}/api/visit")).send().await.unwrap();
        if response.status() == StatusCode::OK {
            break response.json::<Value>().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} after thawing",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(visit["user"], "alice", "the stored session survived the outage");
    assert_eq!(visit["visits"], 2, "and nothing was lost or written twice");
}

/// A change past the store's size limit answers 413 with a JSON error, sets no cookie and
/// leaves the stored session as it was; every response that read the session varies on
/// the cookie and stays out of shared caches.
async fn oversized_changes_are_refused(framework: Framework, store: Store) {
    let config = SessionConfig::development().max_record_bytes(8_192);
    let (base, _running) = start_with(framework, store, config).await;
    let client = browser();
    let visit = client.get(format!("{base}/api/visit")).send().await.unwrap();
    assert_eq!(visit.headers()[header::VARY], "Cookie");
    let big = "n".repeat(20_000);
    let response = send_json(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/flash"),
        json!({ "notice": big }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{store:?}");
    assert!(set_cookies(&response).is_empty());
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("size limit"), "{body}");
    assert_eq!(
        get_json(&client, format!("{base}/api/visit")).await,
        json!({ "visits": 2, "user": null, "notice": null }),
        "the stored session is as it was"
    );
}

per_store!(oversized_changes_are_refused:
    Memory => oversized_changes_are_refused_memory,
    Cookie => oversized_changes_are_refused_cookie,
    Redis => oversized_changes_are_refused_redis,
);

/// `remember` on login: without it a browser-session cookie and the configured timeouts;
/// with it `Max-Age` and both server-side deadlines at the remembered length.
async fn remember_me(framework: Framework, store: Store) {
    let hour = Duration::from_secs(3600);
    let config = SessionConfig::testing()
        .idle_timeout(Duration::from_secs(60))
        .absolute_timeout(Duration::from_secs(120))
        .max_persistent_idle(hour)
        .max_persistent_lifetime(hour);
    let (base, running) = start_with(framework, store, config).await;
    let clock = &running.clock;
    let user = |client: Client| {
        let url = format!("{base}/api/visit");
        async move { get_json(&client, url).await["user"].clone() }
    };

    let forgetful = browser();
    let response = login(&forgetful, &base, "bob").await;
    let cookie = set_cookies(&response)
        .into_iter()
        .find(|c| c.starts_with("session="))
        .expect("login sets the cookie");
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "not remembered: a browser-session cookie: {cookie}"
    );

    let remembered = browser();
    let response = send_json(
        &remembered,
        reqwest::Method::POST,
        format!("{base}/api/login"),
        json!({ "user": "alice", "remember": true }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = set_cookies(&response)
        .into_iter()
        .find(|c| c.starts_with("session="))
        .expect("login sets the cookie");
    assert!(cookie.contains("Max-Age=3600"), "remembered for an hour: {cookie}");

    clock.advance(Duration::from_secs(61));
    assert_eq!(
        user(forgetful).await,
        Value::Null,
        "the configured idle timeout ended bob's"
    );
    assert_eq!(
        user(remembered.clone()).await,
        "alice",
        "alice's has its own idle window"
    );
    clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(
        user(remembered.clone()).await,
        "alice",
        "past the configured absolute timeout too"
    );
    clock.advance(Duration::from_secs(10 * 60));
    assert_eq!(
        user(remembered).await,
        Value::Null,
        "and dead at its own deadline, an hour after login"
    );
}

per_store!(remember_me:
    Memory => remember_me_memory,
    Cookie => remember_me_cookie,
    Redis => remember_me_redis,
);

/// `PUT /api/code` keeps a code for the demo's time to live (120 s by default): readable
/// before it, null after it, while the session and its other fields live on.
async fn verification_code(framework: Framework, store: Store) {
    let (base, running) = start(framework, store).await;
    let clock = &running.clock;
    let client = browser();
    let code_url = format!("{base}/api/code");
    assert_eq!(get_json(&client, code_url.clone()).await, json!({ "code": null }));

    login(&client, &base, "alice").await;
    let put = send_json(
        &client,
        reqwest::Method::PUT,
        code_url.clone(),
        json!({ "code": "123456" }),
    )
    .await;
    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(put.json::<Value>().await.unwrap(), json!({}));
    let bad = send_json(&client, reqwest::Method::PUT, code_url.clone(), json!({ "code": "" })).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let put = send_json(
        &client,
        reqwest::Method::PUT,
        format!("{base}/api/prefs/theme"),
        json!({ "value": "dark" }),
    )
    .await;
    assert_eq!(put.status(), StatusCode::OK);

    clock.advance(Duration::from_secs(119));
    assert_eq!(get_json(&client, code_url.clone()).await, json!({ "code": "123456" }));
    let visits = get_json(&client, format!("{base}/api/visit")).await["visits"].clone();

    clock.advance(Duration::from_secs(1));
    assert_eq!(get_json(&client, code_url.clone()).await, json!({ "code": null }));
    let visit = get_json(&client, format!("{base}/api/visit")).await;
    assert_eq!(visit["user"], "alice", "the session outlives the code");
    assert_eq!(visit["visits"], visits.as_u64().unwrap() + 1);
    assert_eq!(get_json(&client, format!("{base}/api/prefs")).await["theme"], "dark");
    assert_eq!(
        get_json(&client, code_url.clone()).await,
        json!({ "code": null }),
        "a save after the deadline does not bring it back"
    );

    let put = send_json(
        &client,
        reqwest::Method::PUT,
        code_url.clone(),
        json!({ "code": "654321" }),
    )
    .await;
    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(get_json(&client, code_url).await, json!({ "code": "654321" }));
}

per_store!(verification_code:
    Memory => verification_code_memory,
    Cookie => verification_code_cookie,
    Redis => verification_code_redis,
);

/// A request with exactly these cookies (`session`, and `sudo` when given).
fn with_cookies(
    client: &Client,
    method: reqwest::Method,
    url: String,
    session: &str,
    sudo: Option<&str>,
) -> reqwest::RequestBuilder {
    let cookies = match sudo {
        Some(sudo) => format!("{COOKIE}={session}; sudo={sudo}"),
        None => format!("{COOKIE}={session}"),
    };
    client.request(method, url).header(header::COOKIE, cookies)
}

/// Logs `user` in with a bare client; gives the session cookie.
async fn session_of(client: &Client, base: &str, user: &str) -> String {
    let response = login(client, base, user).await;
    cookie_value(&response, COOKIE).expect("login sets the session cookie")
}

/// `GET /api/sudo` with these cookies: its status.
async fn sudo_status(client: &Client, base: &str, session: &str, sudo: Option<&str>) -> StatusCode {
    let response = with_cookies(client, reqwest::Method::GET, format!("{base}/api/sudo"), session, sudo)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["sudo"],
        status == StatusCode::OK,
        "the body agrees with the status: {body}"
    );
    status
}

/// Starts sudo mode for `session`; gives the sudo cookie.
async fn start_sudo(client: &Client, base: &str, session: &str) -> String {
    let response = with_cookies(client, reqwest::Method::POST, format!("{base}/api/sudo"), session, None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    cookie_value(&response, "sudo").expect("sudo mode sets its own cookie")
}

/// Sudo mode: a sub-session with its own cookie, valid only with the session that started
/// it, refused after logout, a new login, the parent's expiry, with another user's session
/// and when forged; it also ends on its own after `SESSION_DEMO_SUDO_SECS` (300 s here).
async fn sudo(framework: Framework, store: Store) {
    let config = SessionConfig::testing()
        .idle_timeout(Duration::from_secs(60))
        .absolute_timeout(Duration::from_secs(3600));
    let (base, running) = start_with(framework, store, config).await;
    let clock = &running.clock;
    let client = bare();

    let anonymous = client.post(format!("{base}/api/sudo")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "sudo needs a login");
    let first = client.get(format!("{base}/api/visit")).send().await.unwrap();
    let visitor = cookie_value(&first, COOKIE).unwrap();
    assert_eq!(sudo_status(&client, &base, &visitor, None).await, StatusCode::FORBIDDEN);

    let alice = session_of(&client, &base, "alice").await;
    let grant = start_sudo(&client, &base, &alice).await;
    assert_eq!(sudo_status(&client, &base, &alice, Some(&grant)).await, StatusCode::OK);
    assert_eq!(
        sudo_status(&client, &base, &alice, None).await,
        StatusCode::FORBIDDEN,
        "without its cookie"
    );

    // Forged: a made-up sudo value, and the real one with one character changed.
    let mut tampered = grant.clone();
    let at = tampered.len() / 2;
    let swap = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, swap);
    for forged in [
        tampered.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "garbage",
    ] {
        assert_eq!(
            sudo_status(&client, &base, &alice, Some(forged)).await,
            StatusCode::FORBIDDEN,
            "forged sudo cookie {forged:?}"
        );
    }

    // Another user's session with alice's sudo cookie.
    let bob = session_of(&client, &base, "bob").await;
    assert_eq!(
        sudo_status(&client, &base, &bob, Some(&grant)).await,
        StatusCode::FORBIDDEN
    );

    // A new login (a new session ID) ends it.
    let alice = session_of(&client, &base, "alice").await;
    let grant = start_sudo(&client, &base, &alice).await;
    let relogin = with_cookies(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/login"),
        &alice,
        None,
    )
    .json(&json!({ "user": "alice" }))
    .send()
    .await
    .unwrap();
    let alice = cookie_value(&relogin, COOKIE).unwrap();
    assert_eq!(
        sudo_status(&client, &base, &alice, Some(&grant)).await,
        StatusCode::FORBIDDEN
    );

    // Logging out ends it and expires its cookie.
    let grant = start_sudo(&client, &base, &alice).await;
    let logout = with_cookies(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/logout"),
        &alice,
        Some(&grant),
    )
    .send()
    .await
    .unwrap();
    assert!(
        set_cookies(&logout)
            .iter()
            .any(|c| c.starts_with("sudo=;") && c.contains("Max-Age=0")),
        "logout expires the sudo cookie: {:?}",
        set_cookies(&logout)
    );
    let after = client.get(format!("{base}/api/sudo")).send().await.unwrap();
    assert_eq!(
        after.status(),
        StatusCode::FORBIDDEN,
        "a browser has neither cookie left"
    );
    if !matches!(store, Store::Cookie) {
        // Server-side, even a replay of both old cookies is refused (a sealed cookie stays
        // valid until it expires if replayed: cookie sessions keep no server-side state).
        assert_eq!(
            sudo_status(&client, &base, &alice, Some(&grant)).await,
            StatusCode::FORBIDDEN
        );
    }

    // The parent's expiry ends it.
    let carol = session_of(&client, &base, "carol").await;
    let grant = start_sudo(&client, &base, &carol).await;
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        sudo_status(&client, &base, &carol, Some(&grant)).await,
        StatusCode::FORBIDDEN
    );

    // It ends on its own after its lifetime, while the parent lives on (a browser: the
    // cookie store re-seals both cookies as they slide).
    let dave = browser();
    login(&dave, &base, "dave").await;
    let started = dave.post(format!("{base}/api/sudo")).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::OK);
    let status = || async { dave.get(format!("{base}/api/sudo")).send().await.unwrap().status() };
    for _ in 0..5 {
        clock.advance(Duration::from_secs(50));
        assert_eq!(status().await, StatusCode::OK);
    }
    clock.advance(Duration::from_secs(50));
    assert_eq!(status().await, StatusCode::FORBIDDEN, "300 s after it started");
    let peek = get_json(&dave, format!("{base}/api/peek")).await;
    assert_eq!(peek["user"], "dave", "the parent lives on");
}

per_store!(sudo:
    Memory => sudo_memory,
    Cookie => sudo_cookie,
    Redis => sudo_redis,
);

async fn devices_and_logging_out_elsewhere(framework: Framework, store: Store) {
    let (base, _running) = start(framework, store).await;
    demo::scenarios::devices_and_logging_out_elsewhere(&base, true).await;
}

per_store!(devices_and_logging_out_elsewhere:
    Memory => devices_and_logging_out_elsewhere_memory,
    Redis => devices_and_logging_out_elsewhere_redis,
);

/// The cookie store cannot list devices (501) but both logouts work, by revocation.
async fn logging_out_elsewhere_with_cookies(framework: Framework) {
    let (base, _running) = start(framework, Store::Cookie).await;
    demo::scenarios::devices_and_logging_out_elsewhere(&base, false).await;
}

/// Two demo nodes on the cookie store sharing their revocation generations in Redis: a
/// log out everywhere on A is refused on A at once and on B within the staleness bound
/// (one second, on the nodes' clock).
async fn cookie_revocation_reaches_another_node_within_its_bound(framework: Framework) {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let ring = KeyRing::new(KeyId(1), Secret::from_bytes((0u8..48).collect::<Vec<u8>>()).unwrap());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let redis = RedisStore::builder(server.url())
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        let cookies = CookieSessions::new(
            ring.clone(),
            SessionConfig::development().clock(clock.clone()).build().unwrap(),
        )
        .unwrap()
        .with_revocation(session::RedisRevocationStore::new(&redis));
        nodes.push(demo::serve(framework, cookies, OutagePolicy::FailClosed).await);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let laptop = demo::scenarios::browser_as("Laptop/1.0");
    let phone = demo::scenarios::browser_as("Phone/2.0");
    login(&laptop, a, "alice").await;
    login(&phone, b, "alice").await;
    // Each node has looked the generation up (and cached it).
    for node in [a, b] {
        assert_eq!(demo::scenarios::who(&laptop, node).await, "alice");
        assert_eq!(demo::scenarios::who(&phone, node).await, "alice");
    }

    let everywhere = send_json(
        &laptop,
        reqwest::Method::POST,
        format!("{a}/api/logout/everywhere"),
        json!({}),
    )
    .await;
    assert_eq!(everywhere.status(), StatusCode::OK);
    assert_eq!(demo::scenarios::who(&phone, a).await, Value::Null, "A refuses at once");
    clock.advance(Duration::from_millis(1001));
    assert_eq!(
        demo::scenarios::who(&phone, b).await,
        Value::Null,
        "B refuses once its cached generation is a second old"
    );
}
