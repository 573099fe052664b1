//! Expiring slots (`#[session(expiring)]`) through the provider and the memory store, on a
//! manual clock: the value's deadline is stored with it and checked on read, the session
//! lives on without it.

mod common;

use std::time::Duration;

use common::counting::Counting;
use session::{
    Expiring, ManualClock, MemoryStore, SaveOutcome, Session, SessionConfig, SessionData, SessionId, SessionProvider,
};

#[derive(SessionData, Debug)]
struct Login {
    user: Option<String>,
    visits: u64,
    #[session(expiring)]
    code: Expiring<String>,
}

type Provider = SessionProvider<Login, Counting<MemoryStore>>;

const TTL: Duration = Duration::from_secs(120);

fn provider() -> (Provider, ManualClock) {
    let clock = ManualClock::new();
    let store = Counting::new(MemoryStore::builder().clock(clock.clone()).build());
    let config = SessionConfig::development()
        .idle_timeout(Duration::from_secs(1800))
        .clock(clock.clone())
        .build()
        .unwrap();
    (SessionProvider::new(store, config), clock)
}

fn tag(name: &str) -> u32 {
    Login::FIELDS.iter().find(|def| def.name == name).unwrap().tag
}

/// A stored session of alice holding the code `"123456"` for [`TTL`].
async fn with_code(provider: &Provider) -> SessionId {
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    session.set_code("123456".into(), TTL);
    provider.save(&mut session).await.unwrap();
    session.id().clone()
}

async fn load(provider: &Provider, id: &SessionId) -> Session<Login> {
    provider.get(id).await.expect("the session is alive")
}

#[tokio::test]
async fn the_value_is_readable_before_its_ttl_and_absent_after_while_the_session_lives_on() {
    let (provider, clock) = provider();
    let id = with_code(&provider).await;

    clock.advance(TTL - Duration::from_millis(1));
    let session = load(&provider, &id).await;
    assert_eq!(session.code().map(String::as_str), Some("123456"));

    clock.advance(Duration::from_millis(1));
    let mut session = load(&provider, &id).await;
    assert_eq!(session.code(), None);
    assert_eq!(session.code_expires_in(), None);
    assert_eq!(session.user().as_deref(), Some("alice"), "the other fields are intact");
    assert!(!session.is_expired());
    *session.visits_mut() += 1;
    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Updated);
    assert_eq!(*load(&provider, &id).await.visits(), 1);
}

#[tokio::test]
async fn the_time_to_expiry_decreases_across_requests() {
    let (provider, clock) = provider();
    let id = with_code(&provider).await;
    assert_eq!(load(&provider, &id).await.code_expires_in(), Some(TTL));
    clock.advance(Duration::from_secs(50));
    assert_eq!(
        load(&provider, &id).await.code_expires_in(),
        Some(Duration::from_secs(70))
    );
    clock.advance(Duration::from_secs(69));
    assert_eq!(
        load(&provider, &id).await.code_expires_in(),
        Some(Duration::from_secs(1))
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(load(&provider, &id).await.code_expires_in(), None);
}

#[tokio::test]
async fn a_save_after_expiry_does_not_resurrect_the_value() {
    let (provider, clock) = provider();
    let id = with_code(&provider).await;
    clock.advance(TTL);

    // A request that changes another field after the deadline.
    let mut session = load(&provider, &id).await;
    session.set_user(Some("bob".into()));
    provider.save(&mut session).await.unwrap();
    assert_eq!(
        provider.store().counts.last_written_tags(),
        [tag("user")],
        "an expired value alone is not written"
    );
    let session = load(&provider, &id).await;
    assert_eq!(session.code(), None);
    assert_eq!(session.user().as_deref(), Some("bob"));

    // A handle that set the value and is saved only after its deadline.
    let mut session = load(&provider, &id).await;
    session.set_code("654321".into(), Duration::from_secs(10));
    clock.advance(Duration::from_secs(10));
    assert_eq!(session.code(), None);
    provider.save(&mut session).await.unwrap();
    assert_eq!(load(&provider, &id).await.code(), None);
}

#[tokio::test]
async fn set_take_and_clear_write_only_the_slot() {
    let (provider, _clock) = provider();
    let id = with_code(&provider).await;

    let mut session = load(&provider, &id).await;
    session.set_code("777777".into(), TTL);
    assert_eq!(session.dirty_fields().collect::<Vec<_>>(), ["code"]);
    provider.save(&mut session).await.unwrap();
    assert_eq!(provider.store().counts.last_written_tags(), [tag("code")]);

    let mut session = load(&provider, &id).await;
    assert_eq!(session.take_code().as_deref(), Some("777777"));
    provider.save(&mut session).await.unwrap();
    assert_eq!(provider.store().counts.last_written_tags(), [tag("code")]);
    assert_eq!(load(&provider, &id).await.code(), None);

    let mut session = load(&provider, &id).await;
    session.set_code("1".into(), TTL);
    provider.save(&mut session).await.unwrap();
    let mut session = load(&provider, &id).await;
    session.clear_code();
    provider.save(&mut session).await.unwrap();
    assert_eq!(load(&provider, &id).await.code(), None);
}

#[tokio::test]
async fn a_fresh_value_set_meanwhile_survives_a_request_that_found_the_old_one_expired() {
    let (provider, clock) = provider();
    let id = with_code(&provider).await;
    clock.advance(TTL);

    let mut stale = load(&provider, &id).await;
    let mut fresh = load(&provider, &id).await;
    fresh.set_code("999999".into(), TTL);
    provider.save(&mut fresh).await.unwrap();
    *stale.visits_mut() += 1;
    provider.save(&mut stale).await.unwrap();

    let session = load(&provider, &id).await;
    assert_eq!(session.code().map(String::as_str), Some("999999"));
    assert_eq!(*session.visits(), 1);
}

#[tokio::test]
async fn a_long_ttl_does_not_extend_the_session() {
    let (provider, clock) = provider();
    let mut session = provider.create().unwrap();
    session.set_code("x".into(), Duration::from_secs(24 * 3600));
    provider.save(&mut session).await.unwrap();
    let expires = session.expires();
    assert_eq!(session.time_until_expiry(), Duration::from_secs(1800));
    let id = session.id().clone();

    let loaded = load(&provider, &id).await;
    assert_eq!(loaded.expires(), expires);
    clock.advance(Duration::from_secs(1800));
    assert!(
        provider.try_get(&id).await.unwrap().is_none(),
        "the session ends at its idle deadline"
    );
}
