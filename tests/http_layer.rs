//! The session layer's mechanics over real HTTP: lazy loading, what is saved when, store
//! outages, the guard, client binding, and misconfiguration.

mod common;

use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};
use common::{
    AppSession,
    counting::Counting,
    failing::Failing,
    http::{bare, browser, cookie_value, serve, set_cookies},
};
use reqwest::header;
use std::sync::{Arc, Mutex};

use session::{
    Callbacks, ClientBinding, CookieSessions, Error, MemoryStore, Rejection, Session, SessionConfig, SessionProvider,
    crypto::{KeyId, KeyRing, Secret},
    http::{LazySession, OutagePolicy, RequireSessionLayer, SessionBackend, SessionLayer},
};

async fn count(session: LazySession<AppSession>) -> Result<String, Error> {
    let mut session = session.load().await?;
    *session.visits_mut() += 1;
    Ok(session.visits().to_string())
}

async fn untouched() -> &'static str {
    "no session needed"
}

async fn fails(session: LazySession<AppSession>) -> impl IntoResponse {
    if let Ok(mut session) = session.load().await {
        session.set_user(Some("written by a failing handler".into()));
    }
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn own_cache_control(session: LazySession<AppSession>) -> Result<impl IntoResponse, Error> {
    session.load().await?.set_user(Some("x".into()));
    Ok(([(header::CACHE_CONTROL, "private, max-age=5")], "ok"))
}

async fn public_cache_control(session: LazySession<AppSession>) -> Result<impl IntoResponse, Error> {
    let visits = *session.load().await?.visits();
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], visits.to_string()))
}

async fn logout_then_fail(session: LazySession<AppSession>) -> impl IntoResponse {
    if let Ok(mut session) = session.load().await {
        session.delete();
    }
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn regenerate_then_fail(session: LazySession<AppSession>) -> impl IntoResponse {
    if let Ok(mut session) = session.load().await {
        session.regenerate_id().unwrap();
        session.set_user(Some("changed by a failing handler".into()));
    }
    StatusCode::SERVICE_UNAVAILABLE
}

async fn user(session: LazySession<AppSession>) -> Result<String, Error> {
    Ok(session
        .existing()
        .await?
        .and_then(|s| s.user().clone())
        .unwrap_or_default())
}

async fn login(session: LazySession<AppSession>) -> Result<&'static str, Error> {
    session.load().await?.set_user(Some("alice".into()));
    Ok("ok")
}

fn routes<B: SessionBackend<AppSession>>(layer: SessionLayer<AppSession, B>) -> Router {
    let private = Router::new()
        .route("/private", get(user))
        .layer(RequireSessionLayer::new(|session: &Session<AppSession>| {
            session.user().is_some()
        }));
    Router::new()
        .route("/count", get(count))
        .route("/untouched", get(untouched))
        .route("/fails", get(fails))
        .route("/cache", get(own_cache_control))
        .route("/public", get(public_cache_control))
        .route("/logout-fails", get(logout_then_fail))
        .route("/regenerate-fails", get(regenerate_then_fail))
        .route("/user", get(user))
        .route("/login", get(login))
        .merge(private)
        .layer(layer)
}

fn config() -> SessionConfig {
    SessionConfig::development().build().unwrap()
}

#[tokio::test]
async fn a_handler_that_never_touches_the_session_costs_no_store_call() {
    let store = Counting::new(MemoryStore::new());
    let counts = store.counts.clone();
    let base = serve(routes(SessionLayer::new(SessionProvider::new(store, config())))).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let (loads, writes) = (counts.loads(), counts.writes());
    for _ in 0..5 {
        let response = client.get(format!("{base}/untouched")).send().await.unwrap();
        assert!(set_cookies(&response).is_empty());
    }
    assert_eq!((counts.loads(), counts.writes()), (loads, writes), "no load, no write");
}

#[tokio::test]
async fn nothing_is_saved_on_a_5xx_response() {
    let store = Counting::new(MemoryStore::new());
    let counts = store.counts.clone();
    let base = serve(routes(SessionLayer::new(SessionProvider::new(store, config())))).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let writes = counts.writes();
    let response = client.get(format!("{base}/fails")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&response).is_empty());
    assert_eq!(counts.writes(), writes, "the failed request's change is not written");
    assert_eq!(
        client
            .get(format!("{base}/user"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        ""
    );
}

#[tokio::test]
async fn a_logout_or_an_id_regeneration_is_applied_even_when_the_handler_answers_5xx() {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), config());
    let base = serve(routes(SessionLayer::new(provider))).await;

    // Logout in a failing request: the session is gone server-side and the cookie expired.
    let login = bare().get(format!("{base}/login")).send().await.unwrap();
    let cookie = cookie_value(&login, "session").unwrap();
    let response = bare()
        .get(format!("{base}/logout-fails"))
        .header(header::COOKIE, format!("session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "the handler's status is kept"
    );
    let expired = set_cookies(&response);
    assert!(
        expired.iter().any(|c| c.contains("Max-Age=0")),
        "the cookie is expired: {expired:?}"
    );
    let replay = bare()
        .get(format!("{base}/user"))
        .header(header::COOKIE, format!("session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.text().await.unwrap(), "", "the logged-out session is dead");

    // ID regeneration in a failing request: the old ID dies, the data change is dropped.
    let login = bare().get(format!("{base}/login")).send().await.unwrap();
    let cookie = cookie_value(&login, "session").unwrap();
    let response = bare()
        .get(format!("{base}/regenerate-fails"))
        .header(header::COOKIE, format!("session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let fresh = cookie_value(&response, "session").expect("the regenerated ID is sent");
    assert_ne!(fresh, cookie);
    let user_of = |cookie: String| {
        let base = base.clone();
        async move {
            bare()
                .get(format!("{base}/user"))
                .header(header::COOKIE, format!("session={cookie}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(user_of(cookie).await, "", "the old ID is dead");
    assert_eq!(user_of(fresh).await, "alice", "the new ID holds the data as it was");
}

#[tokio::test]
async fn responses_built_from_a_session_vary_on_cookie_and_stay_out_of_shared_caches() {
    let base = serve(routes(SessionLayer::new(SessionProvider::new(
        MemoryStore::new(),
        config(),
    ))))
    .await;
    let client = browser();
    let directives = |response: &reqwest::Response| {
        (
            response
                .headers()
                .get(header::VARY)
                .map(|v| v.to_str().unwrap().to_owned()),
            response
                .headers()
                .get(header::CACHE_CONTROL)
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    };
    let first = client.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(
        directives(&first),
        (Some("Cookie".into()), Some("no-store".into())),
        "a response that sets the cookie"
    );
    let unchanged = client.get(format!("{base}/public")).send().await.unwrap();
    assert!(set_cookies(&unchanged).is_empty());
    assert_eq!(
        directives(&unchanged),
        (Some("Cookie".into()), Some("private, max-age=60".into())),
        "a read-only response: the application's `public` becomes `private`"
    );
    let own = client.get(format!("{base}/cache")).send().await.unwrap();
    assert_eq!(directives(&own).1.as_deref(), Some("private, max-age=5"), "kept as set");
    let untouched = client.get(format!("{base}/untouched")).send().await.unwrap();
    assert_eq!(directives(&untouched), (None, None), "no session read, nothing added");
}

#[tokio::test]
async fn a_store_that_answers_with_an_error_gives_500_and_an_unreachable_one_503() {
    let store = Failing::new(MemoryStore::new());
    let base = serve(routes(SessionLayer::new(SessionProvider::new(store.clone(), config())))).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    store.set_erroring(true);
    let response = client.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "answered with an error"
    );
    store.set_down(true);
    let response = client.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "unreachable");
    store.set_down(false);
    let response = client.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "2", "nothing was lost");
}

#[tokio::test]
async fn an_unchanged_session_is_not_written_and_sets_no_cookie() {
    let store = Counting::new(MemoryStore::new());
    let counts = store.counts.clone();
    let base = serve(routes(SessionLayer::new(SessionProvider::new(store, config())))).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let writes = counts.writes();
    let response = client.get(format!("{base}/user")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty());
    assert_eq!(counts.writes(), writes);
    let response = client.get(format!("{base}/count")).send().await.unwrap();
    assert!(
        set_cookies(&response).is_empty(),
        "a changed server-side session keeps its ID cookie"
    );
    assert_eq!(counts.writes(), writes + 1);
}

#[tokio::test]
async fn the_applications_cache_control_is_kept() {
    let base = serve(routes(SessionLayer::new(SessionProvider::new(
        MemoryStore::new(),
        config(),
    ))))
    .await;
    let response = bare().get(format!("{base}/cache")).send().await.unwrap();
    assert_eq!(set_cookies(&response).len(), 1);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "private, max-age=5");
}

#[tokio::test]
async fn a_store_outage_fails_closed_with_503_by_default() {
    let store = Failing::new(MemoryStore::new());
    let base = serve(routes(SessionLayer::new(SessionProvider::new(store.clone(), config())))).await;
    let client = browser();
    assert_eq!(
        client
            .get(format!("{base}/count"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "1"
    );
    store.set_down(true);
    for path in ["/count", "/user", "/private"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(set_cookies(&response).is_empty());
    }
    store.set_down(false);
    assert_eq!(
        client
            .get(format!("{base}/count"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "2",
        "nothing lost"
    );
}

#[tokio::test]
async fn a_store_outage_can_degrade_to_an_anonymous_request_that_touches_nothing() {
    let store = Failing::new(MemoryStore::new());
    let layer = SessionLayer::new(SessionProvider::new(store.clone(), config())).on_store_outage(OutagePolicy::Degrade);
    let base = serve(routes(layer)).await;
    let client = browser();
    client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(
        client
            .get(format!("{base}/count"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "1"
    );
    store.set_down(true);
    let response = client.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        set_cookies(&response).is_empty(),
        "the anonymous stand-in is never saved"
    );
    assert_eq!(
        response.text().await.unwrap(),
        "1",
        "served as a fresh anonymous session"
    );
    assert_eq!(
        client.get(format!("{base}/private")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    store.set_down(false);
    assert_eq!(
        client
            .get(format!("{base}/count"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "2",
        "stored session intact"
    );
    assert_eq!(
        client
            .get(format!("{base}/user"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "alice"
    );
}

#[tokio::test]
async fn the_guard_answers_401_without_a_valid_session() {
    let base = serve(routes(SessionLayer::new(SessionProvider::new(
        MemoryStore::new(),
        config(),
    ))))
    .await;
    let client = browser();
    assert_eq!(
        client.get(format!("{base}/private")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    client.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(
        client.get(format!("{base}/private")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "no user"
    );
    client.get(format!("{base}/login")).send().await.unwrap();
    let response = client.get(format!("{base}/private")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "alice");
}

#[tokio::test]
async fn a_missing_layer_is_a_rejection_that_names_the_fix() {
    let base = serve(Router::new().route("/count", get(count))).await;
    let response = bare().get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.text().await.unwrap();
    assert!(body.contains("SessionLayer::new"), "{body}");
}

fn cookie_store(binding: ClientBinding) -> CookieSessions {
    let ring = KeyRing::new(KeyId(1), Secret::generate().unwrap());
    CookieSessions::new(ring, config()).unwrap().bind_client(binding)
}

/// GETs `/count` with these headers and optional session cookie: (body, new cookie).
async fn count_as(base: &str, headers: &[(&str, &str)], cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = bare().get(format!("{base}/count"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(value) = cookie {
        request = request.header(header::COOKIE, format!("session={value}"));
    }
    let response = request.send().await.unwrap();
    let cookie = cookie_value(&response, "session");
    (response.text().await.unwrap(), cookie)
}

#[tokio::test]
async fn client_binding_uses_the_peer_address_and_ignores_untrusted_headers() {
    let layer = SessionLayer::new(cookie_store(ClientBinding {
        user_agent: true,
        ip: true,
    }));
    let base = serve(routes(layer)).await;
    let (_, value) = count_as(&base, &[("user-agent", "browser-a")], None).await;
    let value = value.unwrap();
    let forged = [("user-agent", "browser-a"), ("x-forwarded-for", "203.0.113.9")];
    let (body, _) = count_as(&base, &forged, Some(&value)).await;
    assert_eq!(
        body, "2",
        "a forged proxy header changes nothing without a trusted proxy"
    );
    let (body, _) = count_as(&base, &[("user-agent", "browser-b")], Some(&value)).await;
    assert_eq!(body, "1", "another User-Agent gets a fresh session");
}

#[tokio::test]
async fn client_binding_uses_a_trusted_proxy_header_when_configured() {
    let layer = SessionLayer::new(cookie_store(ClientBinding {
        user_agent: false,
        ip: true,
    }))
    .trusted_proxy_header(header::HeaderName::from_static("x-forwarded-for"));
    let base = serve(routes(layer)).await;
    let (_, value) = count_as(&base, &[("x-forwarded-for", "198.51.100.1, 192.0.2.7")], None).await;
    let value = value.unwrap();
    let (body, _) = count_as(&base, &[("x-forwarded-for", "192.0.2.7")], Some(&value)).await;
    assert_eq!(
        body, "2",
        "the last address, appended by the trusted proxy, is the client"
    );
    let (body, _) = count_as(&base, &[("x-forwarded-for", "192.0.2.8")], Some(&value)).await;
    assert_eq!(body, "1", "another client address gets a fresh session");
    let spoofed = [("x-forwarded-for", "192.0.2.7, not-an-address")];
    let (body, _) = count_as(&base, &spoofed, Some(&value)).await;
    assert_eq!(
        body, "1",
        "only the proxy's own (last) entry counts: an earlier, client-written one is never used"
    );
    let (body, _) = count_as(&base, &[], Some(&value)).await;
    assert_eq!(
        body, "1",
        "no address known: the binding cannot be verified, a fresh session"
    );
}

#[tokio::test]
async fn tampered_cookies_malformed_ids_and_client_mismatches_are_reported() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let callbacks = {
        let seen = seen.clone();
        Callbacks::new().on_rejected(move |rejection| seen.lock().unwrap().push(rejection))
    };
    let layer = SessionLayer::new(
        cookie_store(ClientBinding {
            user_agent: true,
            ip: false,
        })
        .with_callbacks(callbacks.clone()),
    );
    let base = serve(routes(layer)).await;
    let (_, value) = count_as(&base, &[("user-agent", "browser-a")], None).await;
    let value = value.unwrap();
    let mut tampered = value.clone().into_bytes();
    tampered[30] = if tampered[30] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (body, _) = count_as(&base, &[("user-agent", "browser-a")], Some(&tampered)).await;
    assert_eq!(body, "1", "a tampered cookie gets a fresh session");
    let (body, _) = count_as(&base, &[("user-agent", "browser-b")], Some(&value)).await;
    assert_eq!(body, "1");
    assert_eq!(*seen.lock().unwrap(), [Rejection::Tampered, Rejection::ClientMismatch]);

    seen.lock().unwrap().clear();
    let provider = SessionProvider::new(MemoryStore::new(), config()).with_callbacks(callbacks);
    let base = serve(routes(SessionLayer::new(provider))).await;
    let (body, _) = count_as(&base, &[], Some("not-a-session-id")).await;
    assert_eq!(body, "1");
    let unknown = session::SessionId::generate().unwrap().expose();
    count_as(&base, &[], Some(&unknown)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [Rejection::MalformedId],
        "an unknown but well-formed ID is the everyday end of a session, not reported"
    );
}

#[tokio::test]
async fn with_two_session_cookies_the_live_one_is_used() {
    let base = serve(routes(SessionLayer::new(SessionProvider::new(
        MemoryStore::new(),
        config(),
    ))))
    .await;
    let (_, live) = count_as(&base, &[], None).await;
    let live = live.unwrap();
    let stale = session::SessionId::generate().unwrap().expose();
    let response = bare()
        .get(format!("{base}/count"))
        .header(header::COOKIE, format!("session={stale}; other=1; session={live}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        "2",
        "the second cookie holds the live session"
    );
}

#[tokio::test]
async fn a_session_over_the_record_size_limit_is_refused_with_413_and_nothing_stored() {
    async fn grow(session: LazySession<AppSession>) -> Result<&'static str, Error> {
        session.load().await?.set_user(Some("x".repeat(2_000)));
        Ok("ok")
    }
    let config = SessionConfig::development().max_record_bytes(1_024).build().unwrap();
    let app = Router::new()
        .route("/grow", get(grow))
        .route("/count", get(count))
        .layer(SessionLayer::<AppSession, _>::new(SessionProvider::new(
            MemoryStore::new(),
            config,
        )));
    let base = serve(app).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let response = client.get(format!("{base}/grow")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(set_cookies(&response).is_empty());
    let response = client.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "2", "the stored session is as it was");
}

#[tokio::test]
async fn a_cookie_that_would_exceed_4096_bytes_turns_into_an_error_without_a_cookie() {
    async fn huge(session: LazySession<AppSession>) -> Result<&'static str, Error> {
        let noise: String = (0..6000u32)
            .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
            .collect();
        session.load().await?.set_user(Some(noise));
        Ok("ok")
    }
    let app = Router::new()
        .route("/huge", get(huge))
        .route("/count", get(count))
        .layer(SessionLayer::<AppSession, _>::new(cookie_store(ClientBinding::NONE)));
    let base = serve(app).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let response = client.get(format!("{base}/huge")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(set_cookies(&response).is_empty());
    assert_eq!(
        client
            .get(format!("{base}/count"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "2",
        "the previous session stays as it was"
    );
}

#[tokio::test]
async fn a_cookie_sealed_with_a_previous_key_is_resealed_with_the_newest_on_the_next_response() {
    let secret =
        |seed: u8| Secret::from_bytes((0..48u8).map(|i| i.wrapping_mul(31) ^ seed).collect::<Vec<u8>>()).unwrap();
    let server = |ring: KeyRing| async move {
        serve(routes(SessionLayer::new(CookieSessions::new(ring, config()).unwrap()))).await
    };
    let old = server(KeyRing::new(KeyId(1), secret(1))).await;
    let rotated = server(
        KeyRing::new(KeyId(2), secret(2))
            .with_previous(KeyId(1), secret(1))
            .unwrap(),
    )
    .await;
    let newest_only = server(KeyRing::new(KeyId(2), secret(2))).await;
    let user_at = |base: &str, cookie: &str| {
        bare()
            .get(format!("{base}/user"))
            .header(header::COOKIE, format!("session={cookie}"))
            .send()
    };

    let response = bare().get(format!("{old}/login")).send().await.unwrap();
    let sealed_with_old = cookie_value(&response, "session").expect("login sets the cookie");
    let response = user_at(&rotated, &sealed_with_old).await.unwrap();
    let resealed = cookie_value(&response, "session").expect("a read-only request still re-seals an old-key cookie");
    assert_eq!(response.text().await.unwrap(), "alice", "the previous key still opens");

    assert_eq!(
        user_at(&newest_only, &resealed).await.unwrap().text().await.unwrap(),
        "alice"
    );
    assert_eq!(
        user_at(&old, &resealed).await.unwrap().text().await.unwrap(),
        "",
        "sealed with the newest key, which the old ring does not hold"
    );
    let response = user_at(&rotated, &resealed).await.unwrap();
    assert_eq!(
        cookie_value(&response, "session"),
        None,
        "the newest key needs no re-seal"
    );
}
