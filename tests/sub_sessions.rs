//! Sub-sessions (spawned from a parent, valid only with it) and server-only sessions,
//! through the provider, on the memory store and in cookies.

mod common;

use std::time::Duration;

use common::AppSession;
use session::{
    ClientInfo, CookieSessions, Error, ManualClock, MemoryStore, SessionConfig, SessionData, SessionProvider,
    crypto::{KeyId, KeyRing, Secret},
};

/// A grant with its own cookie and a short life: sudo mode.
#[derive(SessionData, Debug, Default)]
struct Sudo {
    reason: Option<String>,
}

struct Providers {
    app: SessionProvider<AppSession, MemoryStore>,
    sudo: SessionProvider<Sudo, MemoryStore>,
    clock: ManualClock,
}

fn providers() -> Providers {
    let clock = ManualClock::new();
    let store = || MemoryStore::builder().clock(clock.clone()).build();
    let app = SessionProvider::new(
        store(),
        SessionConfig::testing()
            .idle_timeout(Duration::from_secs(600))
            .absolute_timeout(Duration::from_secs(3600))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let sudo = SessionProvider::new(
        store(),
        SessionConfig::testing()
            .cookie_name("sudo")
            .idle_timeout(Duration::from_secs(300))
            .absolute_timeout(Duration::from_secs(300))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    Providers { app, sudo, clock }
}

async fn logged_in(provider: &SessionProvider<AppSession, MemoryStore>, user: &str) -> session::Session<AppSession> {
    let mut session = provider.create().unwrap();
    session.set_user(Some(user.into()));
    provider.save(&mut session).await.unwrap();
    session
}

#[tokio::test]
async fn a_sub_session_is_valid_only_with_the_parent_it_was_spawned_from() {
    let Providers { app, sudo, .. } = providers();
    let alice = logged_in(&app, "alice").await;
    let bob = logged_in(&app, "bob").await;

    let mut grant = sudo.spawn(&alice).unwrap();
    assert!(grant.is_child() && grant.is_child_of(&alice));
    grant.set_reason(Some("change password".into()));
    sudo.save(&mut grant).await.unwrap();
    let token = grant.id().expose();

    let loaded = sudo.load_child(&token, &alice).await.unwrap().expect("with its parent");
    assert_eq!(loaded.reason().as_deref(), Some("change password"));
    assert!(
        sudo.load_child(&token, &bob).await.unwrap().is_none(),
        "another user's session is not its parent"
    );
    let alice_again = app.get(alice.id()).await.unwrap();
    assert!(sudo.load_child(&token, &alice_again).await.unwrap().is_some());

    // A new ID for the parent (a new login, a privilege change) ends the grant.
    let mut relogged = app.get(alice.id()).await.unwrap();
    app.regenerate_id(&mut relogged).await.unwrap();
    assert!(sudo.load_child(&token, &relogged).await.unwrap().is_none());
    assert!(!sudo.load(&token).await.unwrap().unwrap().is_child_of(&relogged));

    // So does a deleted parent.
    let mut carol = logged_in(&app, "carol").await;
    let mut grant = sudo.spawn(&carol).unwrap();
    sudo.save(&mut grant).await.unwrap();
    app.delete(&mut carol).await.unwrap();
    assert!(
        sudo.load_child(&grant.id().expose(), &carol).await.unwrap().is_none(),
        "the parent logged out"
    );
}

#[tokio::test]
async fn a_sub_session_never_outlives_its_parent() {
    let Providers { app, sudo, clock } = providers();
    let mut alice = logged_in(&app, "alice").await;
    // Used every 500 s for 3500 s: within its idle timeout, 100 s from its absolute deadline.
    for _ in 0..7 {
        clock.advance(Duration::from_secs(500));
        alice = app.get(alice.id()).await.unwrap();
        alice.touch();
        app.save(&mut alice).await.unwrap();
    }
    let mut grant = sudo.spawn(&alice).unwrap();
    sudo.save(&mut grant).await.unwrap();
    assert_eq!(
        grant.absolute_deadline(),
        alice.absolute_deadline(),
        "capped at the parent's absolute deadline, 100 s away, not its own 300 s"
    );
    grant.set_expiry(session::Expiry::Remember {
        idle: Duration::from_secs(86_400),
        absolute: Duration::from_secs(86_400),
    });
    sudo.save(&mut grant).await.unwrap();
    assert_eq!(
        grant.absolute_deadline(),
        alice.absolute_deadline(),
        "a longer lifetime chosen later is capped too"
    );
    clock.advance(Duration::from_secs(100));
    assert!(app.try_get(alice.id()).await.unwrap().is_none(), "the parent expired");
    assert!(
        sudo.try_get(grant.id()).await.unwrap().is_none(),
        "and the grant with it"
    );
}

#[tokio::test]
async fn server_only_sessions_are_never_accepted_from_a_client() {
    let Providers { app, sudo, .. } = providers();
    let mut job = app.create_server_only().unwrap();
    job.set_visits(7);
    app.save(&mut job).await.unwrap();
    assert!(job.is_server_only());

    let rejected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = rejected.clone();
    let app = app.with_callbacks(session::Callbacks::new().on_rejected(move |why| seen.lock().unwrap().push(why)));
    assert!(
        app.load(&job.id().expose()).await.unwrap().is_none(),
        "a client presenting a server-only ID gets nothing"
    );
    assert_eq!(*rejected.lock().unwrap(), [session::Rejection::ServerOnly]);
    assert_eq!(app.get_server_only(job.id()).await.unwrap().visits(), &7);

    let client = logged_in(&app, "alice").await;
    assert!(
        matches!(app.get_server_only(client.id()).await, Err(Error::NotFound)),
        "a client's session is not a server-only one"
    );

    // Tied to a parent: it lives on only as long as the parent does, under the same ID.
    let mut socket = sudo.spawn_server_only(&client).unwrap();
    sudo.save(&mut socket).await.unwrap();
    let socket = sudo.get_server_only(socket.id()).await.unwrap();
    assert!(app.is_live_parent_of(&socket).await.unwrap());
    let mut client = app.get(client.id()).await.unwrap();
    app.regenerate_id(&mut client).await.unwrap();
    assert!(
        !app.is_live_parent_of(&socket).await.unwrap(),
        "the parent's old ID is dead"
    );
    assert!(!app.is_live_parent_of(&job).await.unwrap(), "no parent at all");
}

#[test]
fn cookie_sub_sessions_carry_their_parent_sealed() {
    let clock = ManualClock::new();
    let ring = KeyRing::new(KeyId(1), Secret::from_bytes((0u8..48).collect::<Vec<u8>>()).unwrap());
    let config = |name: &str| {
        SessionConfig::testing()
            .cookie_name(name)
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let app = CookieSessions::new(ring.clone(), config("session")).unwrap();
    let sudo = CookieSessions::new(ring, config("sudo")).unwrap();
    let client = ClientInfo::default();

    let mut alice = app.create::<AppSession>().unwrap();
    alice.set_user(Some("alice".into()));
    let alice_cookie = app.seal(&mut alice, &client).unwrap();
    let alice = app.open::<AppSession>(&alice_cookie, &client).unwrap();
    let mut bob = app.create::<AppSession>().unwrap();
    let bob = {
        let cookie = app.seal(&mut bob, &client).unwrap();
        app.open::<AppSession>(&cookie, &client).unwrap()
    };

    let mut grant = sudo.spawn::<Sudo, _>(&alice).unwrap();
    let grant_cookie = sudo.seal(&mut grant, &client).unwrap();
    let opened = sudo.open::<Sudo>(&grant_cookie, &client).unwrap();
    assert!(opened.is_child_of(&alice));
    assert!(!opened.is_child_of(&bob), "presented with another session");
    assert!(
        app.open::<AppSession>(&grant_cookie, &client).is_none(),
        "a sudo cookie opens under no other cookie name"
    );
}
