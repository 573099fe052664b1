//! Revocation of cookie sessions by index: generations in memory and in a real
//! redis-server shared by two nodes, through the API and through the HTTP layer.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, routing::get};
use common::{
    http::{bare, cookie_value, serve, set_cookies},
    redis_server::RedisServer,
};
use reqwest::{StatusCode, header};
use session::{
    Callbacks, ClientInfo, CookieSessions, Error, LoadOutcome, ManualClock, MemoryRevocationStore,
    RedisRevocationStore, RedisStore, Rejection, Session, SessionConfig, SessionData,
    crypto::{KeyId, KeyRing, Secret},
    http::{LazySession, SessionLayer},
    resilience::RetryPolicy,
    revocation::{GenerationFuture, RevocationStore},
    store::IndexKey,
};

#[derive(SessionData, Debug, Clone)]
struct Account {
    #[session(index)]
    user: Option<String>,
    visits: u64,
}

fn ring() -> KeyRing {
    let bytes: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    KeyRing::new(KeyId(1), Secret::from_bytes(bytes).unwrap())
}

fn config(clock: &ManualClock) -> SessionConfig {
    SessionConfig::testing().clock(clock.clone()).build().unwrap()
}

/// Cookie sessions with revocation through `store`, reporting rejections into `rejected`.
fn sessions(clock: &ManualClock, store: impl RevocationStore, rejected: &Arc<Mutex<Vec<Rejection>>>) -> CookieSessions {
    let rejected = rejected.clone();
    CookieSessions::new(ring(), config(clock))
        .unwrap()
        .with_callbacks(Callbacks::default().on_rejected(move |why| rejected.lock().unwrap().push(why)))
        .with_revocation(store)
}

/// A new session of `user` (none: an anonymous session), sealed: (session, cookie).
async fn login(sessions: &CookieSessions, user: Option<&str>) -> (Session<Account>, String) {
    let mut session = sessions.create::<Account>().unwrap();
    session.set_user(user.map(str::to_owned));
    let cookie = sessions.seal_async(&mut session, &ClientInfo::default()).await.unwrap();
    (session, cookie)
}

async fn opens(sessions: &CookieSessions, cookie: &str) -> bool {
    sessions
        .open_async::<Account>(cookie, &ClientInfo::default())
        .await
        .unwrap()
        .is_some()
}

fn alice() -> IndexKey {
    IndexKey::of("user", "alice").unwrap()
}

/// A revocation store that counts its calls, in front of a memory store, and is not
/// local: `CookieSessions` caches its answers.
#[derive(Debug, Clone, Default)]
struct Counting {
    inner: MemoryRevocationStore,
    lookups: Arc<AtomicUsize>,
}

impl RevocationStore for Counting {
    fn generation<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.generation(index, keep_for)
    }

    fn revoke<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a> {
        self.inner.revoke(index, keep_for)
    }
}

#[tokio::test]
async fn log_out_everywhere_refuses_every_cookie_of_the_user_and_no_other() {
    let clock = ManualClock::new();
    let rejected = Arc::default();
    let store = sessions(&clock, MemoryRevocationStore::with_clock(clock.clone()), &rejected);
    let (_, phone) = login(&store, Some("alice")).await;
    let (mut laptop, laptop_cookie) = login(&store, Some("alice")).await;
    let (_, bob) = login(&store, Some("bob")).await;
    let (_, anonymous) = login(&store, None).await;
    assert!(opens(&store, &phone).await && opens(&store, &laptop_cookie).await);

    assert!(store.revoke_all_of(&mut laptop).await.unwrap());
    assert!(laptop.is_deleted(), "the layer expires this session's cookie");
    assert!(!opens(&store, &phone).await, "another device of alice's");
    let outcome = store
        .open_outcome_async::<Account>(&laptop_cookie, &ClientInfo::default())
        .await
        .unwrap();
    assert!(matches!(outcome, LoadOutcome::Unknown), "this device's cookie replayed");
    assert_eq!(*rejected.lock().unwrap(), [Rejection::Revoked, Rejection::Revoked]);
    assert!(opens(&store, &bob).await, "another user");
    assert!(opens(&store, &anonymous).await, "a session without an index");

    // Alice logs in again: sealed with the new generation, her new cookie works.
    let (_, again) = login(&store, Some("alice")).await;
    assert!(opens(&store, &again).await);
    // A session re-sealed keeps the generation it was opened with.
    let mut opened = store
        .open_async::<Account>(&again, &ClientInfo::default())
        .await
        .unwrap()
        .unwrap();
    *opened.visits_mut() += 1;
    store.revoke_index(&alice()).await.unwrap();
    let resealed = store.seal_async(&mut opened, &ClientInfo::default()).await.unwrap();
    assert!(
        !opens(&store, &resealed).await,
        "a revoked session is not revived by re-sealing"
    );

    // A user with no principal has nothing to revoke.
    let (mut nobody, _) = login(&store, None).await;
    assert!(!store.revoke_all_of(&mut nobody).await.unwrap());
    assert!(!nobody.is_deleted());
}

#[tokio::test]
async fn log_out_other_devices_keeps_the_current_session_with_a_new_cookie() {
    let clock = ManualClock::new();
    let rejected = Arc::default();
    let store = sessions(&clock, MemoryRevocationStore::with_clock(clock.clone()), &rejected);
    let (_, phone) = login(&store, Some("alice")).await;
    let (_, laptop_cookie) = login(&store, Some("alice")).await;
    let (_, bob) = login(&store, Some("bob")).await;

    let mut laptop = store
        .open_async::<Account>(&laptop_cookie, &ClientInfo::default())
        .await
        .unwrap()
        .unwrap();
    assert!(store.revoke_others_of(&mut laptop).await.unwrap());
    assert!(laptop.needs_save(), "the layer re-seals it");
    assert!(!laptop.is_deleted());
    let kept = store.seal_async(&mut laptop, &ClientInfo::default()).await.unwrap();

    assert!(opens(&store, &kept).await, "this device, under its new cookie");
    assert!(!opens(&store, &phone).await, "the other device");
    assert!(!opens(&store, &laptop_cookie).await, "this device's cookie from before");
    assert!(opens(&store, &bob).await);
    // Re-sealed again, it keeps working.
    let mut session = store
        .open_async::<Account>(&kept, &ClientInfo::default())
        .await
        .unwrap()
        .unwrap();
    *session.visits_mut() += 1;
    let next = store.seal_async(&mut session, &ClientInfo::default()).await.unwrap();
    assert!(opens(&store, &next).await);
}

#[tokio::test]
async fn unindexed_sessions_are_never_looked_up_and_the_sync_calls_refuse_what_they_cannot_check() {
    let clock = ManualClock::new();
    let rejected = Arc::default();
    let counting = Counting::default();
    let store = sessions(&clock, counting.clone(), &rejected);
    let client = ClientInfo::default();

    let (mut anonymous, cookie) = login(&store, None).await;
    *anonymous.visits_mut() += 1;
    let cookie_again = store.seal(&mut anonymous, &client).unwrap();
    assert!(store.open::<Account>(&cookie, &client).is_some());
    assert!(opens(&store, &cookie_again).await);
    assert_eq!(counting.lookups.load(Ordering::SeqCst), 0, "no index, no lookup");

    // An indexed cookie: the sync calls cannot look its generation up.
    let (mut alice_session, alice_cookie) = login(&store, Some("alice")).await;
    assert!(store.open::<Account>(&alice_cookie, &client).is_none());
    let mut fresh = store.create::<Account>().unwrap();
    fresh.set_user(Some("bob".into()));
    assert!(matches!(store.seal(&mut fresh, &client), Err(Error::Config(_))));
    // Re-sealing under the same index needs no lookup, so the sync seal does it.
    *alice_session.visits_mut() += 1;
    let resealed = store.seal(&mut alice_session, &client).unwrap();
    assert!(opens(&store, &resealed).await);

    // Without revocation, nothing is refused and the sync calls work.
    let plain = CookieSessions::new(ring(), config(&clock)).unwrap();
    let cookie = plain.seal(&mut fresh, &client).unwrap();
    assert!(plain.open::<Account>(&cookie, &client).is_some());
    assert!(matches!(plain.revoke_index(&alice()).await, Err(Error::Config(_))));
    assert!(rejected.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_cached_generation_is_used_for_the_staleness_bound_and_a_revoke_here_is_seen_at_once() {
    let clock = ManualClock::new();
    let rejected = Arc::default();
    let counting = Counting::default();
    let node_a = sessions(&clock, counting.clone(), &rejected).revocation_staleness(Duration::from_secs(5));
    // Another node: its own cache over the same generations.
    let node_b = sessions(&clock, counting.clone(), &rejected).revocation_staleness(Duration::from_secs(5));
    let (_, cookie) = login(&node_a, Some("alice")).await;
    let lookups = counting.lookups.load(Ordering::SeqCst);
    assert_eq!(lookups, 1, "a login asks the store");

    for _ in 0..3 {
        assert!(opens(&node_a, &cookie).await && opens(&node_b, &cookie).await);
    }
    assert_eq!(
        counting.lookups.load(Ordering::SeqCst),
        lookups + 1,
        "node A had it cached from the login, node B asked once"
    );

    node_a.revoke_index(&alice()).await.unwrap();
    assert!(!opens(&node_a, &cookie).await, "the revoking node refuses at once");
    assert!(opens(&node_b, &cookie).await, "node B within its staleness bound");
    clock.advance(Duration::from_secs(5));
    assert!(!opens(&node_b, &cookie).await, "node B after it");
    // A clone shares its cache: it refuses at once too.
    let (_, bobs) = login(&node_b, Some("bob")).await;
    let clone = node_b.clone();
    clone.revoke_index(&IndexKey::of("user", "bob").unwrap()).await.unwrap();
    assert!(!opens(&node_b, &bobs).await);
}

#[tokio::test]
async fn cookies_sealed_while_revocation_was_off_open_once_it_is_on_until_revoked() {
    // (Cookies sealed before revocation existed: the unit tests of `cookie_sessions.rs`,
    // which can build the older layouts.)
    let clock = ManualClock::new();
    let rejected = Arc::default();
    let plain = CookieSessions::new(ring(), config(&clock)).unwrap();
    let store = sessions(&clock, MemoryRevocationStore::with_clock(clock.clone()), &rejected);
    let mut session = plain.create::<Account>().unwrap();
    session.set_user(Some("alice".into()));
    let cookie = plain.seal(&mut session, &ClientInfo::default()).unwrap();
    assert!(opens(&store, &cookie).await);
    store.revoke_index(&alice()).await.unwrap();
    assert!(!opens(&store, &cookie).await);
}

// ---- Through the HTTP layer ----

/// A revocation store that can be switched off: then it answers as an unreachable one.
#[derive(Debug, Clone, Default)]
struct Switchable {
    inner: MemoryRevocationStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Switchable {
    fn answer<'a>(&'a self, call: GenerationFuture<'a>) -> GenerationFuture<'a> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(Error::Unavailable("switched off".into())) });
        }
        call
    }
}

impl RevocationStore for Switchable {
    fn generation<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a> {
        self.answer(self.inner.generation(index, keep_for))
    }

    fn revoke<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a> {
        self.answer(self.inner.revoke(index, keep_for))
    }
}

/// `/login` (as alice), `/me`, `/others` (log out my other devices), `/everywhere`.
fn app(sessions: &CookieSessions) -> Router {
    let others = sessions.clone();
    let everywhere = sessions.clone();
    Router::new()
        .route(
            "/login",
            get(|lazy: LazySession<Account>| async move {
                lazy.load().await?.set_user(Some("alice".into()));
                Ok::<_, Error>("ok")
            }),
        )
        .route(
            "/me",
            get(|lazy: LazySession<Account>| async move {
                Ok::<_, Error>(lazy.load().await?.user().clone().unwrap_or_else(|| "anonymous".into()))
            }),
        )
        .route(
            "/others",
            get(move |lazy: LazySession<Account>| async move {
                let mut session = lazy.load().await?;
                others.revoke_others_of(&mut session).await?;
                Ok::<_, Error>("ok")
            }),
        )
        .route(
            "/everywhere",
            get(move |lazy: LazySession<Account>| async move {
                let mut session = lazy.load().await?;
                everywhere.revoke_all_of(&mut session).await?;
                Ok::<_, Error>("ok")
            }),
        )
        .layer(SessionLayer::<Account, _>::new(sessions.clone()))
}

/// GETs `path` with the session cookie `cookie`: (status, body, the cookie the response sets).
async fn get_with(base: &str, path: &str, cookie: Option<&str>) -> (StatusCode, String, Option<String>) {
    let mut request = bare().get(format!("{base}{path}"));
    if let Some(value) = cookie {
        request = request.header(header::COOKIE, format!("session={value}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let set = cookie_value(&response, "session");
    if set.is_none() {
        assert!(set_cookies(&response).is_empty(), "only the session cookie");
    }
    (status, response.text().await.unwrap(), set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_sets_the_kept_cookie_expires_the_ended_one_and_fails_closed_when_the_store_is_down() {
    let switchable = Switchable::default();
    let sessions = CookieSessions::new(ring(), SessionConfig::testing().build().unwrap())
        .unwrap()
        .with_revocation(switchable.clone())
        .revocation_staleness(Duration::ZERO);
    let base = serve(app(&sessions)).await;

    let (_, _, phone) = get_with(&base, "/login", None).await;
    let (_, _, laptop) = get_with(&base, "/login", None).await;
    let (phone, laptop) = (phone.unwrap(), laptop.unwrap());
    assert_eq!(get_with(&base, "/me", Some(&phone)).await.1, "alice");

    // Log out the other devices from the laptop: the response carries its new cookie.
    let (status, _, kept) = get_with(&base, "/others", Some(&laptop)).await;
    assert_eq!(status, StatusCode::OK);
    let kept = kept.expect("the re-sealed cookie is set");
    assert_eq!(get_with(&base, "/me", Some(&kept)).await.1, "alice");
    assert_eq!(get_with(&base, "/me", Some(&phone)).await.1, "anonymous");
    assert_eq!(
        get_with(&base, "/me", Some(&laptop)).await.1,
        "anonymous",
        "the cookie it replaced"
    );

    // The store is down: a request with an indexed cookie is answered 503, never served.
    switchable.down.store(true, Ordering::SeqCst);
    assert_eq!(
        get_with(&base, "/me", Some(&kept)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    switchable.down.store(false, Ordering::SeqCst);

    // Log out everywhere: the response expires the cookie, and no copy of it opens.
    let (status, _, ended) = get_with(&base, "/everywhere", Some(&kept)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended.as_deref(), Some(""), "the cookie is expired");
    assert_eq!(get_with(&base, "/me", Some(&kept)).await.1, "anonymous");
}

// ---- Redis: two nodes sharing the generations ----

async fn redis_store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::builder(server.url())
        .prefix(prefix)
        .command_timeout(Duration::from_millis(300))
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_redis_refuse_a_revoked_cookie_here_at_once_and_there_within_the_bound() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let rejected = Arc::default();
    let staleness = Duration::from_millis(500);
    let node_a = sessions(
        &clock,
        RedisRevocationStore::new(&redis_store(&server, "app:").await),
        &rejected,
    )
    .revocation_staleness(staleness);
    let node_b = sessions(
        &clock,
        RedisRevocationStore::from(redis_store(&server, "app:").await),
        &rejected,
    )
    .revocation_staleness(staleness);

    let (_, phone) = login(&node_a, Some("alice")).await;
    let (_, laptop_cookie) = login(&node_b, Some("alice")).await;
    let (_, bob) = login(&node_a, Some("bob")).await;
    assert!(opens(&node_b, &phone).await && opens(&node_a, &laptop_cookie).await);
    assert_eq!(
        server.command(&["KEYS", "app:gen:*"]).unwrap(),
        "",
        "nothing kept until a revoke"
    );

    // "Log out my other devices" on node B: its re-sealed cookie works on both nodes at
    // once, though node A had generation 0 cached (a newer one makes it ask Redis).
    let mut laptop = node_b
        .open_async::<Account>(&laptop_cookie, &ClientInfo::default())
        .await
        .unwrap()
        .unwrap();
    assert!(node_b.revoke_others_of(&mut laptop).await.unwrap());
    let kept = node_b.seal_async(&mut laptop, &ClientInfo::default()).await.unwrap();
    assert!(!opens(&node_b, &phone).await, "the revoking node refuses at once");
    assert!(opens(&node_a, &phone).await, "node A within its staleness bound");
    assert!(opens(&node_b, &kept).await && opens(&node_a, &kept).await);
    assert!(!opens(&node_a, &phone).await, "node A, once it has asked Redis");
    clock.advance(staleness);
    assert!(opens(&node_a, &bob).await && opens(&node_b, &bob).await);

    // The generation is a plain counter under the index's digest, kept as long as a cookie
    // can live (the testing preset's absolute timeout, plus the staleness and a margin).
    let key = format!("app:gen:{{{}}}", alice().to_hex());
    assert_eq!(server.command(&["GET", &key]).unwrap(), "1");
    let ttl: u64 = server.command(&["PTTL", &key]).unwrap().parse().unwrap();
    let config = config(&clock);
    let keep_for =
        config.absolute_timeout().max(config.max_persistent_lifetime()) + staleness + Duration::from_secs(60);
    let keep_ms = u64::try_from(keep_for.as_millis()).unwrap();
    assert!((keep_ms..=2 * keep_ms).contains(&ttl), "{ttl} ms");

    // "Log me out everywhere" on node A: node A refuses at once, node B (which has just
    // read generation 1) after the bound.
    assert!(opens(&node_b, &kept).await);
    assert!(node_a.revoke_all_of(&mut laptop).await.unwrap());
    assert_eq!(server.command(&["GET", &key]).unwrap(), "2");
    assert!(!opens(&node_a, &kept).await);
    assert!(opens(&node_b, &kept).await, "node B within its staleness bound");
    clock.advance(staleness);
    assert!(!opens(&node_b, &kept).await, "node B after it");
    assert!(rejected.lock().unwrap().iter().all(|why| *why == Rejection::Revoked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_fails_the_lookup_instead_of_accepting_the_cookie() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let rejected = Arc::default();
    let store = sessions(
        &clock,
        RedisRevocationStore::new(&redis_store(&server, "down:").await),
        &rejected,
    )
    .revocation_staleness(Duration::ZERO);
    let (_, alice_cookie) = login(&store, Some("alice")).await;
    let (_, anonymous) = login(&store, None).await;
    assert!(opens(&store, &alice_cookie).await);

    // Frozen: every call times out.
    server.freeze();
    let error = store
        .open_async::<Account>(&alice_cookie, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error}");
    server.thaw();
    assert!(opens(&store, &alice_cookie).await, "back once it answers");

    // Gone: the connection is refused.
    drop(server);
    let error = store
        .open_async::<Account>(&alice_cookie, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error}");
    let mut session = store.create::<Account>().unwrap();
    session.set_user(Some("carol".into()));
    let error = store
        .seal_async(&mut session, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "a login cannot be sealed either: {error}");
    let error = store.revoke_index(&alice()).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert!(
        opens(&store, &anonymous).await,
        "a session without an index needs no lookup"
    );
    assert!(rejected.lock().unwrap().is_empty(), "nothing was refused as revoked");
}
