//! The lifetime rules through the provider, on any store: a remembered session's own
//! deadlines, an expiring field, sub-sessions, server-only sessions and `touch`. Each store's
//! test file runs them with `lifetime_cases!(|clock| async move { store })`.

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use session::{
    Clock, CookieLifetime, Error, Expiring, Expiry, ManualClock, Session, SessionConfig, SessionData, SessionProvider,
    store::SessionStore,
};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A login with a verification code.
#[derive(SessionData, Debug)]
pub struct Login {
    pub user: Option<String>,
    #[session(expiring)]
    pub code: Expiring<String>,
}

/// A sub-session or a job: a counter.
#[derive(SessionData, Debug)]
pub struct Grant {
    pub uses: u32,
}

fn config(clock: &ManualClock) -> session::SessionConfigBuilder {
    SessionConfig::development()
        .idle_timeout(30 * MINUTE)
        .absolute_timeout(DAY)
        .max_persistent_idle(7 * DAY)
        .max_persistent_lifetime(30 * DAY)
        .clock(clock.clone())
}

fn provider<T: SessionData, S: SessionStore>(store: S, clock: &ManualClock) -> SessionProvider<T, S> {
    SessionProvider::new(store, config(clock).build().unwrap())
}

fn now(clock: &ManualClock) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(clock.now_ms())
}

async fn logged_in<S: SessionStore>(provider: &SessionProvider<Login, S>, user: &str) -> Session<Login> {
    let mut session = provider.create().unwrap();
    session.set_user(Some(user.into()));
    provider.save(&mut session).await.unwrap();
    session
}

/// Used now (an unchanged session slides at its save).
async fn use_session<T: SessionData, S: SessionStore>(
    provider: &SessionProvider<T, S>,
    session: &Session<T>,
) -> Option<Session<T>> {
    let mut loaded = provider.try_get(session.id()).await.unwrap()?;
    loaded.touch();
    provider.save(&mut loaded).await.unwrap();
    Some(loaded)
}

/// Remember me: the session's own idle window and lifetime, within the caps; a browser
/// session keeps the configured ones; a fixed deadline does not slide.
pub async fn remember_me<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
    let clock = ManualClock::new();
    let provider = provider::<Login, _>(make(clock.clone()).await, &clock);
    let mut remembered = logged_in(&provider, "alice").await;
    remembered.set_expiry(Expiry::Remember {
        idle: 14 * DAY,
        absolute: 90 * DAY,
    });
    provider.save(&mut remembered).await.unwrap();
    assert_eq!(remembered.meta().cookie, CookieLifetime::Persistent);
    assert_eq!(remembered.time_until_expiry(), 7 * DAY, "idle capped at 7 days");

    let mut browser = logged_in(&provider, "bob").await;
    browser.set_expiry(Expiry::BrowserSession);
    provider.save(&mut browser).await.unwrap();
    let mut fixed = logged_in(&provider, "carol").await;
    fixed.set_expiry(Expiry::Until(now(&clock) + 20 * MINUTE));
    provider.save(&mut fixed).await.unwrap();

    clock.advance(10 * MINUTE);
    assert!(
        use_session(&provider, &fixed).await.is_some(),
        "live before its deadline"
    );
    clock.advance(10 * MINUTE);
    assert!(
        provider.try_get(fixed.id()).await.unwrap().is_none(),
        "its deadline did not slide"
    );
    clock.advance(11 * MINUTE);
    assert!(
        provider.try_get(browser.id()).await.unwrap().is_none(),
        "the configured idle timeout ended the browser session"
    );
    let loaded = provider.try_get(remembered.id()).await.unwrap().expect("remembered");
    assert_eq!(loaded.meta().cookie, CookieLifetime::Persistent, "stored with it");
    assert_eq!(loaded.user().as_deref(), Some("alice"));
    for _ in 0..4 {
        clock.advance(6 * DAY);
        assert!(
            use_session(&provider, &remembered).await.is_some(),
            "slides by its own window"
        );
    }
    clock.advance(6 * DAY);
    assert!(
        provider.try_get(remembered.id()).await.unwrap().is_none(),
        "dead at its capped 30-day lifetime"
    );
}

/// An expiring field reads as absent after its deadline while the session lives on, and a
/// save does not bring it back.
pub async fn expiring_field<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
    let clock = ManualClock::new();
    let provider = provider::<Login, _>(make(clock.clone()).await, &clock);
    let mut session = logged_in(&provider, "alice").await;
    session.set_code("424242".into(), 2 * MINUTE);
    provider.save(&mut session).await.unwrap();
    clock.advance(MINUTE);
    let loaded = use_session(&provider, &session).await.unwrap();
    assert_eq!(loaded.code().map(String::as_str), Some("424242"));
    assert_eq!(loaded.code_expires_in(), Some(MINUTE));
    clock.advance(MINUTE);
    let mut loaded = use_session(&provider, &session).await.expect("the session lives on");
    assert_eq!(loaded.code(), None, "the code is gone");
    loaded.set_user(Some("alice2".into()));
    provider.save(&mut loaded).await.unwrap();
    let reloaded = provider.get(session.id()).await.unwrap();
    assert_eq!(reloaded.code(), None, "and stays gone");
    assert_eq!(reloaded.user().as_deref(), Some("alice2"));
}

/// A sub-session lives only with the parent it was spawned from.
pub async fn sub_sessions<S: SessionStore + Clone, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
    let clock = ManualClock::new();
    let store = make(clock.clone()).await;
    let app = provider::<Login, _>(store.clone(), &clock);
    let sudo = SessionProvider::<Grant, _>::new(
        store,
        config(&clock)
            .cookie_name("sudo")
            .idle_timeout(5 * MINUTE)
            .absolute_timeout(5 * MINUTE)
            .build()
            .unwrap(),
    );
    let alice = logged_in(&app, "alice").await;
    let bob = logged_in(&app, "bob").await;
    let mut grant = sudo.spawn(&alice).unwrap();
    sudo.save(&mut grant).await.unwrap();
    let token = grant.id().expose();
    assert!(sudo.load_child(&token, &alice).await.unwrap().is_some());
    assert!(sudo.load_child(&token, &bob).await.unwrap().is_none(), "another parent");
    assert!(
        sudo.load(&token).await.unwrap().is_some_and(|child| child.is_child()),
        "stored as a sub-session"
    );

    let mut relogged = app.get(alice.id()).await.unwrap();
    app.regenerate_id(&mut relogged).await.unwrap();
    assert!(
        sudo.load_child(&token, &relogged).await.unwrap().is_none(),
        "a new ID ends it"
    );

    let mut carol = logged_in(&app, "carol").await;
    let mut grant = sudo.spawn(&carol).unwrap();
    sudo.save(&mut grant).await.unwrap();
    app.delete(&mut carol).await.unwrap();
    assert!(
        sudo.load_child(&grant.id().expose(), &carol).await.unwrap().is_none(),
        "the parent's logout ends it"
    );

    // Capped at the parent's absolute deadline; the parent's expiry ends it.
    let mut dave = logged_in(&app, "dave").await;
    let left = |dave: &Session<Login>| dave.absolute_deadline().duration_since(now(&clock)).unwrap();
    while left(&dave) > 3 * MINUTE {
        clock.advance((left(&dave) - 3 * MINUTE).min(29 * MINUTE));
        dave = use_session(&app, &dave).await.expect("dave is active");
    }
    let mut grant = sudo.spawn(&dave).unwrap();
    sudo.save(&mut grant).await.unwrap();
    assert!(grant.absolute_deadline() <= dave.absolute_deadline());
    assert!(
        grant.time_until_expiry() < 5 * MINUTE,
        "ends with its parent, before its own 5 minutes"
    );
    clock.advance(grant.time_until_expiry());
    assert!(app.try_get(dave.id()).await.unwrap().is_none(), "the parent expired");
    assert!(
        sudo.try_get(grant.id()).await.unwrap().is_none(),
        "and the grant with it"
    );
}

/// Server-only sessions are never accepted from a client, and a tied one knows whether its
/// parent lives.
pub async fn server_only<S: SessionStore + Clone, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
    let clock = ManualClock::new();
    let store = make(clock.clone()).await;
    let app = provider::<Login, _>(store.clone(), &clock);
    let jobs = provider::<Grant, _>(store, &clock);
    let alice = logged_in(&app, "alice").await;
    let mut job = jobs.spawn_server_only(&alice).unwrap();
    job.set_uses(3);
    jobs.save(&mut job).await.unwrap();
    assert!(
        jobs.load(&job.id().expose()).await.unwrap().is_none(),
        "refused to a client"
    );
    let loaded = jobs.get_server_only(job.id()).await.unwrap();
    assert_eq!(*loaded.uses(), 3);
    assert!(loaded.is_server_only());
    assert!(app.is_live_parent_of(&loaded).await.unwrap());
    assert!(matches!(jobs.get_server_only(alice.id()).await, Err(Error::NotFound)));
    let mut alice = app.get(alice.id()).await.unwrap();
    app.delete(&mut alice).await.unwrap();
    assert!(!app.is_live_parent_of(&loaded).await.unwrap(), "the parent logged out");
}

/// `is_expired`, `time_until_expiry` and `touch`.
pub async fn touch_and_time_until_expiry<S: SessionStore, F: Future<Output = S>>(make: impl FnOnce(ManualClock) -> F) {
    let clock = ManualClock::new();
    let provider = provider::<Login, _>(make(clock.clone()).await, &clock);
    let session = logged_in(&provider, "alice").await;
    clock.advance(20 * MINUTE);
    let mut loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.time_until_expiry(), 10 * MINUTE);
    assert!(!loaded.is_expired());
    loaded.touch();
    provider.save(&mut loaded).await.unwrap();
    assert_eq!(loaded.time_until_expiry(), 30 * MINUTE, "touch slid the idle deadline");
    clock.advance(30 * MINUTE);
    assert!(loaded.is_expired());
    assert_eq!(loaded.time_until_expiry(), Duration::ZERO);
    assert!(provider.try_get(session.id()).await.unwrap().is_none());
}

/// One `#[test]` per lifetime case, in a module `lifetimes`, against a store from the
/// factory `|clock| async move { … }` (its expiry following `clock`).
macro_rules! lifetime_cases {
    (|$clock:ident| $make:expr) => {
        mod lifetimes {
            #[allow(unused_imports)]
            use super::*;

            $crate::common::lifetimes::lifetime_cases!(@cases $clock, $make;
                remember_me,
                expiring_field,
                sub_sessions,
                server_only,
                touch_and_time_until_expiry,
            );
        }
    };
    (@cases $clock:ident, $make:expr; $($case:ident,)+) => {
        $(
            #[test]
            fn $case() {
                session::test_util::run($crate::common::lifetimes::$case(|$clock: session::ManualClock| $make));
            }
        )+
    };
}
pub(crate) use lifetime_cases;
