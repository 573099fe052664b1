//! The session layer's mechanics over real HTTP, for the tower layer (axum) and the
//! actix-web middleware alike: lazy loading, what is saved when, store outages, the guard,
//! client binding, and misconfiguration. Each scenario runs once per framework
//! (`axum_layer::…`, `actix_middleware::…`), against the same handlers.

mod common;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use common::{
    AppSession,
    counting::Counting,
    failing::Failing,
    http::{bare, browser, cookie_value, get_text, serve, serve_actix, set_cookies},
};
use reqwest::{StatusCode, header};
use session::{
    Callbacks, ClientBinding, CookieSessions, Device, Error, MemoryStore, Rejection, Session, SessionConfig,
    SessionProvider,
    crypto::{KeyId, KeyRing, Secret},
    http::{LazySession, OutagePolicy, RequireSessionLayer, SessionBackend, SessionLayer, actix},
};

/// What a handler answers, for either framework: a status, headers and a text body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

fn ok(body: impl Into<String>) -> Reply {
    Reply {
        status: 200,
        headers: Vec::new(),
        body: body.into(),
    }
}

fn status(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: String::new(),
    }
}

type Answer = Result<Reply, Error>;
type Handler = fn(LazySession<AppSession>) -> Pin<Box<dyn Future<Output = Answer> + Send>>;

async fn count(session: LazySession<AppSession>) -> Answer {
    let mut session = session.load().await?;
    *session.visits_mut() += 1;
    Ok(ok(session.visits().to_string()))
}

async fn fails(session: LazySession<AppSession>) -> Answer {
    if let Ok(mut session) = session.load().await {
        session.set_user(Some("written by a failing handler".into()));
    }
    Ok(status(500))
}

async fn own_cache_control(session: LazySession<AppSession>) -> Answer {
    session.load().await?.set_user(Some("x".into()));
    let mut reply = ok("ok");
    reply.headers.push(("cache-control", "private, max-age=5"));
    Ok(reply)
}

async fn public_cache_control(session: LazySession<AppSession>) -> Answer {
    let visits = *session.load().await?.visits();
    let mut reply = ok(visits.to_string());
    reply.headers.push(("cache-control", "public, max-age=60"));
    Ok(reply)
}

async fn logout_then_fail(session: LazySession<AppSession>) -> Answer {
    if let Ok(mut session) = session.load().await {
        session.delete();
    }
    Ok(status(500))
}

async fn regenerate_then_fail(session: LazySession<AppSession>) -> Answer {
    if let Ok(mut session) = session.load().await {
        session.regenerate_id().unwrap();
        session.set_user(Some("changed by a failing handler".into()));
    }
    Ok(status(503))
}

async fn user(session: LazySession<AppSession>) -> Answer {
    Ok(ok(session
        .existing()
        .await?
        .and_then(|s| s.user().clone())
        .unwrap_or_default()))
}

async fn login(session: LazySession<AppSession>) -> Answer {
    session.load().await?.set_user(Some("alice".into()));
    Ok(ok("ok"))
}

async fn grow(session: LazySession<AppSession>) -> Answer {
    session.load().await?.set_user(Some("x".repeat(2_000)));
    Ok(ok("ok"))
}

async fn huge(session: LazySession<AppSession>) -> Answer {
    let noise: String = (0..6000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    session.load().await?.set_user(Some(noise));
    Ok(ok("ok"))
}

/// Every route but `/private` (which the guard wraps) and `/untouched` (no session).
const ROUTES: &[(&str, Handler)] = &[
    ("/count", |s| Box::pin(count(s))),
    ("/fails", |s| Box::pin(fails(s))),
    ("/cache", |s| Box::pin(own_cache_control(s))),
    ("/public", |s| Box::pin(public_cache_control(s))),
    ("/logout-fails", |s| Box::pin(logout_then_fail(s))),
    ("/regenerate-fails", |s| Box::pin(regenerate_then_fail(s))),
    ("/user", |s| Box::pin(user(s))),
    ("/login", |s| Box::pin(login(s))),
    ("/grow", |s| Box::pin(grow(s))),
    ("/huge", |s| Box::pin(huge(s))),
];

fn logged_in(session: &Session<AppSession>) -> bool {
    session.user().is_some()
}

#[derive(Clone, Copy, Debug)]
enum Framework {
    Axum,
    Actix,
}

/// The session layer's settings, applied to either framework's layer or middleware.
struct Setup<T, B> {
    backend: B,
    outage: OutagePolicy,
    trusted_proxy_header: Option<&'static str>,
    data: std::marker::PhantomData<T>,
}

impl<T, B> Setup<T, B> {
    fn new(backend: B) -> Self {
        Self {
            backend,
            outage: OutagePolicy::FailClosed,
            trusted_proxy_header: None,
            data: std::marker::PhantomData,
        }
    }

    fn on_store_outage(mut self, outage: OutagePolicy) -> Self {
        self.outage = outage;
        self
    }

    fn trusted_proxy_header(mut self, name: &'static str) -> Self {
        self.trusted_proxy_header = Some(name);
        self
    }
}

/// Serves the routes behind the session layer (axum) or middleware (actix-web).
async fn serve_on<B: SessionBackend<AppSession>>(framework: Framework, setup: Setup<AppSession, B>) -> String {
    match framework {
        Framework::Axum => {
            use axum::{Router, response::IntoResponse, routing::get};
            let to_axum = |answer: Answer| match answer {
                Err(error) => error.into_response(),
                Ok(reply) => {
                    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
                    for (name, value) in reply.headers {
                        response
                            .headers_mut()
                            .insert(name, axum::http::HeaderValue::from_static(value));
                    }
                    response
                }
            };
            let mut router = Router::new()
                .route(
                    "/private",
                    get(move |s: LazySession<AppSession>| async move { to_axum(user(s).await) }),
                )
                .layer(RequireSessionLayer::new(logged_in));
            for &(path, handler) in ROUTES {
                router = router.route(
                    path,
                    get(move |s: LazySession<AppSession>| async move { to_axum(handler(s).await) }),
                );
            }
            let mut layer = SessionLayer::new(setup.backend).on_store_outage(setup.outage);
            if let Some(name) = setup.trusted_proxy_header {
                layer = layer.trusted_proxy_header(axum::http::HeaderName::from_static(name));
            }
            let router = router.route("/untouched", get(|| async { "no session needed" }));
            serve(router.layer(layer)).await
        }
        Framework::Actix => {
            let mut middleware = actix::SessionMiddleware::new(setup.backend).on_store_outage(setup.outage);
            if let Some(name) = setup.trusted_proxy_header {
                middleware = middleware.trusted_proxy_header(actix_web::http::header::HeaderName::from_static(name));
            }
            serve_actix!(move || actix_app().wrap(middleware.clone()))
        }
    }
}

/// The routes as an actix-web app, without the session middleware.
fn actix_app() -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    use actix_web::{App, HttpResponse, ResponseError, web};
    fn to_actix(answer: Answer) -> HttpResponse {
        match answer {
            Err(error) => error.error_response(),
            Ok(reply) => {
                let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
                for header in reply.headers {
                    response.insert_header(header);
                }
                response.body(reply.body)
            }
        }
    }
    let mut app = App::new()
        .service(
            web::resource("/private")
                .wrap(actix::RequireSession::new(logged_in))
                .route(web::get().to(|s: LazySession<AppSession>| async move { to_actix(user(s).await) })),
        )
        .route("/untouched", web::get().to(|| async { "no session needed" }));
    for &(path, handler) in ROUTES {
        app = app.route(
            path,
            web::get().to(move |s: LazySession<AppSession>| async move { to_actix(handler(s).await) }),
        );
    }
    app
}

fn config() -> SessionConfig {
    SessionConfig::development().build().unwrap()
}

/// Each scenario as a test per framework: `axum_layer::NAME` and `actix_middleware::NAME`.
macro_rules! on_both_frameworks {
    ($($name:ident,)+) => {
        mod axum_layer {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Framework::Axum).await;
                }
            )+
        }
        mod actix_middleware {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Framework::Actix).await;
                }
            )+
        }
    };
}

on_both_frameworks!(
    a_handler_that_never_touches_the_session_costs_no_store_call,
    nothing_is_saved_on_a_5xx_response,
    a_logout_or_an_id_regeneration_is_applied_even_when_the_handler_answers_5xx,
    responses_built_from_a_session_vary_on_cookie_and_stay_out_of_shared_caches,
    a_store_that_answers_with_an_error_gives_500_and_an_unreachable_one_503,
    an_unchanged_session_is_not_written_and_sets_no_cookie,
    the_applications_cache_control_is_kept,
    a_store_outage_fails_closed_with_503_by_default,
    a_store_outage_can_degrade_to_an_anonymous_request_that_touches_nothing,
    the_guard_answers_401_without_a_valid_session,
    a_missing_layer_is_a_rejection_that_names_the_fix,
    client_binding_uses_the_peer_address_and_ignores_untrusted_headers,
    client_binding_uses_a_trusted_proxy_header_when_configured,
    tampered_cookies_malformed_ids_and_client_mismatches_are_reported,
    with_two_session_cookies_the_live_one_is_used,
    a_session_over_the_record_size_limit_is_refused_with_413_and_nothing_stored,
    a_cookie_that_would_exceed_4096_bytes_turns_into_an_error_without_a_cookie,
    a_cookie_sealed_with_a_previous_key_is_resealed_with_the_newest_on_the_next_response,
    the_device_is_recorded_with_a_stored_session_and_its_ip_only_when_asked,
);

async fn a_handler_that_never_touches_the_session_costs_no_store_call(framework: Framework) {
    let store = Counting::new(MemoryStore::new());
    let counts = store.counts.clone();
    let base = serve_on(framework, Setup::new(SessionProvider::new(store, config()))).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let (loads, writes) = (counts.loads(), counts.writes());
    for _ in 0..5 {
        let response = client.get(format!("{base}/untouched")).send().await.unwrap();
        assert!(set_cookies(&response).is_empty());
    }
    assert_eq!((counts.loads(), counts.writes()), (loads, writes), "no load, no write");
}

async fn nothing_is_saved_on_a_5xx_response(framework: Framework) {
    let store = Counting::new(MemoryStore::new());
    let counts = store.counts.clone();
    let base = serve_on(framework, Setup::new(SessionProvider::new(store, config()))).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let writes = counts.writes();
    let response = client.get(format!("{base}/fails")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&response).is_empty());
    assert_eq!(counts.writes(), writes, "the failed request's change is not written");
    assert_eq!(get_text(&client, format!("{base}/user")).await, "");
}

async fn a_logout_or_an_id_regeneration_is_applied_even_when_the_handler_answers_5xx(framework: Framework) {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), config());
    let base = serve_on(framework, Setup::new(provider)).await;

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

async fn responses_built_from_a_session_vary_on_cookie_and_stay_out_of_shared_caches(framework: Framework) {
    let base = serve_on(
        framework,
        Setup::new(SessionProvider::new(MemoryStore::new(), config())),
    )
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

async fn a_store_that_answers_with_an_error_gives_500_and_an_unreachable_one_503(framework: Framework) {
    let store = Failing::new(MemoryStore::new());
    let base = serve_on(framework, Setup::new(SessionProvider::new(store.clone(), config()))).await;
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

async fn an_unchanged_session_is_not_written_and_sets_no_cookie(framework: Framework) {
    let store = Counting::new(MemoryStore::new());
    let counts = store.counts.clone();
    let base = serve_on(framework, Setup::new(SessionProvider::new(store, config()))).await;
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

async fn the_applications_cache_control_is_kept(framework: Framework) {
    let base = serve_on(
        framework,
        Setup::new(SessionProvider::new(MemoryStore::new(), config())),
    )
    .await;
    let response = bare().get(format!("{base}/cache")).send().await.unwrap();
    assert_eq!(set_cookies(&response).len(), 1);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "private, max-age=5");
}

async fn a_store_outage_fails_closed_with_503_by_default(framework: Framework) {
    let store = Failing::new(MemoryStore::new());
    let base = serve_on(framework, Setup::new(SessionProvider::new(store.clone(), config()))).await;
    let client = browser();
    assert_eq!(get_text(&client, format!("{base}/count")).await, "1");
    store.set_down(true);
    for path in ["/count", "/user", "/private"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(set_cookies(&response).is_empty());
    }
    store.set_down(false);
    assert_eq!(get_text(&client, format!("{base}/count")).await, "2", "nothing lost");
}

async fn a_store_outage_can_degrade_to_an_anonymous_request_that_touches_nothing(framework: Framework) {
    let store = Failing::new(MemoryStore::new());
    let layer = Setup::new(SessionProvider::new(store.clone(), config())).on_store_outage(OutagePolicy::Degrade);
    let base = serve_on(framework, layer).await;
    let client = browser();
    client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(get_text(&client, format!("{base}/count")).await, "1");
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
        get_text(&client, format!("{base}/count")).await,
        "2",
        "stored session intact"
    );
    assert_eq!(get_text(&client, format!("{base}/user")).await, "alice");
}

async fn the_guard_answers_401_without_a_valid_session(framework: Framework) {
    let base = serve_on(
        framework,
        Setup::new(SessionProvider::new(MemoryStore::new(), config())),
    )
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

async fn a_missing_layer_is_a_rejection_that_names_the_fix(framework: Framework) {
    let (base, fix) = match framework {
        Framework::Axum => {
            use axum::{Router, response::IntoResponse, routing::get};
            let handler =
                |s: LazySession<AppSession>| async move { count(s).await.map(|reply| reply.body).into_response() };
            (
                serve(Router::new().route("/count", get(handler))).await,
                "SessionLayer::new",
            )
        }
        Framework::Actix => (serve_actix!(actix_app), "SessionMiddleware::new"),
    };
    let response = bare().get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.text().await.unwrap();
    assert!(body.contains(fix), "{body}");
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

async fn client_binding_uses_the_peer_address_and_ignores_untrusted_headers(framework: Framework) {
    let layer = Setup::new(cookie_store(ClientBinding {
        user_agent: true,
        ip: true,
    }));
    let base = serve_on(framework, layer).await;
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

async fn client_binding_uses_a_trusted_proxy_header_when_configured(framework: Framework) {
    let layer = Setup::new(cookie_store(ClientBinding {
        user_agent: false,
        ip: true,
    }))
    .trusted_proxy_header("x-forwarded-for");
    let base = serve_on(framework, layer).await;
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

async fn tampered_cookies_malformed_ids_and_client_mismatches_are_reported(framework: Framework) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let callbacks = {
        let seen = seen.clone();
        Callbacks::new().on_rejected(move |rejection| seen.lock().unwrap().push(rejection))
    };
    let layer = Setup::new(
        cookie_store(ClientBinding {
            user_agent: true,
            ip: false,
        })
        .with_callbacks(callbacks.clone()),
    );
    let base = serve_on(framework, layer).await;
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
    let base = serve_on(framework, Setup::new(provider)).await;
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

async fn with_two_session_cookies_the_live_one_is_used(framework: Framework) {
    let base = serve_on(
        framework,
        Setup::new(SessionProvider::new(MemoryStore::new(), config())),
    )
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

async fn a_session_over_the_record_size_limit_is_refused_with_413_and_nothing_stored(framework: Framework) {
    let config = SessionConfig::development().max_record_bytes(1_024).build().unwrap();
    let base = serve_on(framework, Setup::new(SessionProvider::new(MemoryStore::new(), config))).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let response = client.get(format!("{base}/grow")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(set_cookies(&response).is_empty());
    let response = client.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "2", "the stored session is as it was");
}

async fn a_cookie_that_would_exceed_4096_bytes_turns_into_an_error_without_a_cookie(framework: Framework) {
    let base = serve_on(framework, Setup::new(cookie_store(ClientBinding::NONE))).await;
    let client = browser();
    client.get(format!("{base}/count")).send().await.unwrap();
    let response = client.get(format!("{base}/huge")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(set_cookies(&response).is_empty());
    assert_eq!(
        get_text(&client, format!("{base}/count")).await,
        "2",
        "the previous session stays as it was"
    );
}

async fn a_cookie_sealed_with_a_previous_key_is_resealed_with_the_newest_on_the_next_response(framework: Framework) {
    let secret =
        |seed: u8| Secret::from_bytes((0..48u8).map(|i| i.wrapping_mul(31) ^ seed).collect::<Vec<u8>>()).unwrap();
    let server = |ring: KeyRing| async move {
        serve_on(framework, Setup::new(CookieSessions::new(ring, config()).unwrap())).await
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

async fn the_device_is_recorded_with_a_stored_session_and_its_ip_only_when_asked(framework: Framework) {
    let with_ip = SessionConfig::development().record_client_ip(true).build().unwrap();
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), with_ip);
    let base = serve_on(framework, Setup::new(provider.clone())).await;
    let device = |cookie: &str| {
        let provider = provider.clone();
        let cookie = cookie.to_owned();
        async move { provider.load(&cookie).await.unwrap().unwrap().device().cloned() }
    };
    let (_, cookie) = count_as(&base, &[("user-agent", "browser-a")], None).await;
    let cookie = cookie.unwrap();
    let loopback = Some("127.0.0.1".parse().unwrap());
    assert_eq!(
        device(&cookie).await,
        Some(Device {
            user_agent: Some("browser-a".into()),
            ip: loopback,
        }),
        "recorded when the session is stored"
    );
    let (body, _) = count_as(&base, &[("user-agent", "browser-b")], Some(&cookie)).await;
    assert_eq!(body, "2");
    let recorded = device(&cookie).await.unwrap();
    assert_eq!(
        recorded.user_agent.as_deref(),
        Some("browser-b"),
        "again with the next write when the User-Agent changed"
    );
    let long = "x".repeat(1_000);
    count_as(&base, &[("user-agent", long.as_str())], Some(&cookie)).await;
    assert_eq!(
        device(&cookie).await.unwrap().user_agent.map(|agent| agent.len()),
        Some(256),
        "cut to 256 bytes"
    );

    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), config());
    let base = serve_on(framework, Setup::new(provider.clone())).await;
    let (_, cookie) = count_as(&base, &[("user-agent", "browser-a")], None).await;
    let stored = provider.load(&cookie.unwrap()).await.unwrap().unwrap();
    assert_eq!(
        stored.device(),
        Some(&Device {
            user_agent: Some("browser-a".into()),
            ip: None,
        }),
        "no IP address unless the configuration asks for it"
    );
}
