//! The provider's session lifecycle against the memory store.

mod common;

use std::{
    ops::ControlFlow,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{AppSession, counting::Counting};
use session::{
    __private::FieldDef, Callbacks, Error, ManualClock, MemoryStore, SaveOutcome, SessionConfig, SessionData,
    SessionId, SessionProvider, store::SessionStore,
};

type Provider = SessionProvider<AppSession, Counting<MemoryStore>>;

fn provider_with(clock: &ManualClock, config: session::SessionConfigBuilder) -> Provider {
    let store = Counting::new(MemoryStore::builder().clock(clock.clone()).build());
    SessionProvider::new(store, config.clock(clock.clone()).build().unwrap())
}

fn provider() -> (Provider, ManualClock) {
    let clock = ManualClock::new();
    (provider_with(&clock, SessionConfig::development()), clock)
}

fn tag(name: &str) -> u32 {
    AppSession::FIELDS.iter().find(|def| def.name == name).unwrap().tag
}

#[tokio::test]
async fn a_new_session_stores_the_fields_off_their_default_and_loads_back() {
    let (provider, _) = provider();
    let mut session = provider.create().unwrap();
    assert!(session.is_new());
    assert_eq!(session.theme(), "light", "#[session(default)] applies to new sessions");
    session.set_user(Some("alice".into()));
    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Created);
    assert!(!session.is_new());
    assert_eq!(
        provider.store().counts.last_written_tags(),
        vec![tag("user")],
        "fields at their default are not stored"
    );

    let mut loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.user().as_deref(), Some("alice"));
    assert_eq!(loaded.theme(), "light");

    // Set back to its default, a field is removed from the stored record.
    loaded.set_theme("dark".into());
    provider.save(&mut loaded).await.unwrap();
    loaded.set_theme("light".into());
    loaded.set_user(None);
    provider.save(&mut loaded).await.unwrap();
    let stored = provider.store().load(&session.id().store_key()).await.unwrap().unwrap();
    assert!(stored.fields.is_empty(), "{:?}", stored.fields);
    let loaded = provider.get(session.id()).await.unwrap();
    assert_eq!((loaded.user(), loaded.theme().as_str()), (&None, "light"));
}

#[tokio::test]
async fn an_unchanged_session_is_never_written_and_a_change_writes_only_that_field() {
    let (provider, _) = provider();
    let mut session = provider.create().unwrap();
    provider.save(&mut session).await.unwrap();
    let writes = provider.store().counts.writes();

    let mut loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(provider.save(&mut loaded).await.unwrap(), SaveOutcome::Unchanged);
    let _ = loaded.user();
    let _ = loaded.theme();
    assert!(!loaded.is_dirty(), "reading marks nothing");
    assert_eq!(provider.save(&mut loaded).await.unwrap(), SaveOutcome::Unchanged);
    assert_eq!(
        provider.store().counts.writes(),
        writes,
        "no write for an unchanged session"
    );

    loaded.set_language(Some("fr".into()));
    assert_eq!(provider.save(&mut loaded).await.unwrap(), SaveOutcome::Updated);
    assert_eq!(provider.store().counts.last_written_tags(), vec![tag("language")]);
    assert_eq!(
        provider.save(&mut loaded).await.unwrap(),
        SaveOutcome::Unchanged,
        "saving clears the marks"
    );

    *loaded.visits_mut() += 1;
    provider.save(&mut loaded).await.unwrap();
    assert_eq!(provider.store().counts.last_written_tags(), vec![tag("visits")]);

    loaded.set_scratch(vec![1, 2, 3]);
    assert!(!loaded.is_dirty(), "skipped fields are not stored");
}

#[tokio::test]
async fn flash_lives_for_exactly_the_next_load() {
    let (provider, _) = provider();
    let mut first = provider.create().unwrap();
    first.set_notice("saved!".into());
    assert_eq!(
        first.notice(),
        None,
        "a flash set for the next request is not visible now"
    );
    provider.save(&mut first).await.unwrap();
    let id = first.id().clone();

    let mut second = provider.get(&id).await.unwrap();
    assert_eq!(second.notice().map(String::as_str), Some("saved!"));
    assert!(second.is_dirty(), "consuming a flash must be written");
    provider.save(&mut second).await.unwrap();
    assert_eq!(provider.store().counts.last_written_tags(), vec![tag("notice")]);

    let mut third = provider.get(&id).await.unwrap();
    assert_eq!(third.notice(), None, "gone after the request that saw it");
    assert!(!third.is_dirty());
    assert_eq!(provider.save(&mut third).await.unwrap(), SaveOutcome::Unchanged);
}

#[tokio::test]
async fn kept_and_now_flash_values() {
    let (provider, _) = provider();
    let mut session = provider.create().unwrap();
    session.set_notice("keep me".into());
    provider.save(&mut session).await.unwrap();
    let id = session.id().clone();

    let mut second = provider.get(&id).await.unwrap();
    assert_eq!(second.notice().map(String::as_str), Some("keep me"));
    second.keep_notice();
    assert!(!second.is_dirty(), "keeping a flash changes nothing stored");
    assert_eq!(provider.save(&mut second).await.unwrap(), SaveOutcome::Unchanged);

    let mut third = provider.get(&id).await.unwrap();
    assert_eq!(
        third.notice().map(String::as_str),
        Some("keep me"),
        "kept for one more request"
    );
    third.notice_now("only now".into());
    assert_eq!(third.notice().map(String::as_str), Some("only now"));
    provider.save(&mut third).await.unwrap();

    let fourth = provider.get(&id).await.unwrap();
    assert_eq!(
        fourth.notice(),
        None,
        "neither the kept value nor the now value survive"
    );
}

#[tokio::test]
async fn idle_timeout_expires_and_activity_slides_it() {
    let clock = ManualClock::new();
    let provider = provider_with(&clock, SessionConfig::testing().idle_timeout(Duration::from_secs(60)));
    let mut session = provider.create().unwrap();
    provider.save(&mut session).await.unwrap();
    let id = session.id().clone();

    for _ in 0..5 {
        clock.advance(Duration::from_secs(50));
        let mut active = provider.get(&id).await.expect("activity keeps it alive");
        assert!(active.is_refresh_due());
        assert_eq!(provider.save(&mut active).await.unwrap(), SaveOutcome::Refreshed);
    }
    clock.advance(Duration::from_secs(60));
    assert!(
        matches!(provider.get(&id).await, Err(Error::NotFound)),
        "expired after 60 idle seconds"
    );
}

#[tokio::test]
async fn absolute_timeout_is_never_extended() {
    let clock = ManualClock::new();
    let config = SessionConfig::testing()
        .idle_timeout(Duration::from_secs(60))
        .absolute_timeout(Duration::from_secs(200));
    let provider = provider_with(&clock, config);
    let mut session = provider.create().unwrap();
    provider.save(&mut session).await.unwrap();
    let id = session.id().clone();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(50));
        let mut active = provider.get(&id).await.unwrap();
        *active.visits_mut() += 1;
        provider.save(&mut active).await.unwrap();
    }
    assert!(provider.get(&id).await.unwrap().idle_deadline() <= provider.get(&id).await.unwrap().absolute_deadline());
    clock.advance(Duration::from_secs(50));
    assert!(
        provider.try_get(&id).await.unwrap().is_none(),
        "dead at 200 s although active"
    );
}

#[tokio::test]
async fn sliding_refresh_is_throttled() {
    let clock = ManualClock::new();
    let config = SessionConfig::development().refresh_interval(Duration::from_secs(60));
    let provider = provider_with(&clock, config);
    let mut session = provider.create().unwrap();
    provider.save(&mut session).await.unwrap();
    let writes = provider.store().counts.writes();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(10));
        let mut loaded = provider.get(session.id()).await.unwrap();
        assert_eq!(provider.save(&mut loaded).await.unwrap(), SaveOutcome::Unchanged);
    }
    assert_eq!(
        provider.store().counts.writes(),
        writes,
        "no refresh within the interval"
    );
    clock.advance(Duration::from_secs(10));
    let mut loaded = provider.get(session.id()).await.unwrap();
    let before = loaded.idle_deadline();
    assert_eq!(provider.save(&mut loaded).await.unwrap(), SaveOutcome::Refreshed);
    assert!(loaded.idle_deadline() > before);
    assert!(
        provider.store().counts.last_written_tags().is_empty(),
        "a refresh writes no field"
    );
}

#[tokio::test]
async fn regenerate_keeps_data_and_kills_the_old_id_at_once() {
    let (provider, _) = provider();
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    let old = session.id().clone();

    session.set_language(Some("de".into()));
    provider.regenerate_id(&mut session).await.unwrap();
    assert_ne!(session.id(), &old);
    assert!(provider.try_get(&old).await.unwrap().is_none(), "the old ID is dead");
    let renewed = provider.get(session.id()).await.unwrap();
    assert_eq!(renewed.user().as_deref(), Some("alice"));
    assert_eq!(
        renewed.language().as_deref(),
        Some("de"),
        "pending changes saved with the rename"
    );
}

#[tokio::test]
async fn regenerating_twice_before_saving_still_kills_the_first_id() {
    let (provider, _) = provider();
    let mut session = provider.create().unwrap();
    provider.save(&mut session).await.unwrap();
    let first = session.id().clone();
    session.regenerate_id().unwrap();
    session.regenerate_id().unwrap();
    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Regenerated);
    assert!(provider.try_get(&first).await.unwrap().is_none());
    assert!(provider.try_get(session.id()).await.unwrap().is_some());
}

#[tokio::test]
async fn delete_removes_the_session_and_a_stale_handle_cannot_resurrect_it() {
    let (provider, _) = provider();
    let mut session = provider.create().unwrap();
    provider.save(&mut session).await.unwrap();
    let mut stale = provider.get(session.id()).await.unwrap();

    provider.delete(&mut session).await.unwrap();
    assert!(provider.try_get(session.id()).await.unwrap().is_none());

    stale.set_user(Some("mallory".into()));
    assert!(matches!(provider.save(&mut stale).await, Err(Error::Gone)));
    assert!(provider.try_get(stale.id()).await.unwrap().is_none(), "still deleted");
}

#[tokio::test]
async fn unknown_garbage_and_expired_ids_are_not_adopted() {
    let (provider, clock) = provider();
    assert!(provider.load("garbage").await.unwrap().is_none());
    assert!(provider.load("").await.unwrap().is_none());
    let unknown = SessionId::generate().unwrap();
    assert!(provider.load(&unknown.expose()).await.unwrap().is_none());
    let fresh = provider.load_or_create(Some(&unknown.expose())).await.unwrap();
    assert_ne!(fresh.id(), &unknown, "a client-chosen ID is never adopted");
    assert!(fresh.is_new());

    let mut session = provider.create().unwrap();
    provider.save(&mut session).await.unwrap();
    clock.advance(Duration::from_secs(24 * 3600));
    assert!(provider.load(&session.id().expose()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_of_different_fields_from_two_handles_both_survive() {
    let (provider, _) = provider();
    let mut session = provider.create().unwrap();
    provider.save(&mut session).await.unwrap();
    let id = session.id().clone();

    for round in 0..50u64 {
        let mut a = provider.get(&id).await.unwrap();
        let mut b = provider.get(&id).await.unwrap();
        a.set_user(Some(format!("user{round}")));
        b.set_visits(round);
        let (pa, pb) = (provider.clone(), provider.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { pa.save(&mut a).await }),
            tokio::spawn(async move { pb.save(&mut b).await })
        );
        ra.unwrap().unwrap();
        rb.unwrap().unwrap();
        let merged = provider.get(&id).await.unwrap();
        assert_eq!(merged.user().as_deref(), Some(format!("user{round}").as_str()));
        assert_eq!(*merged.visits(), round);
    }
}

#[tokio::test]
async fn query_and_bulk_operations() {
    let (provider, _) = provider();
    for i in 0..30 {
        let mut session = provider.create().unwrap();
        session.set_user(Some(if i % 3 == 0 { "alice".into() } else { format!("user{i}") }));
        provider.save(&mut session).await.unwrap();
    }
    assert_eq!(provider.count().await.unwrap(), 30);
    let alice = provider
        .find(|s| s.data.user.as_deref() == Some("alice"))
        .await
        .unwrap();
    assert_eq!(alice.len(), 10);

    let mut visited = 0;
    provider
        .for_each(|_| {
            visited += 1;
            if visited == 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .unwrap();
    assert_eq!(visited, 5, "iteration stops when asked");

    assert_eq!(
        provider
            .delete_where(|s| s.data.user.as_deref() == Some("alice"))
            .await
            .unwrap(),
        10
    );
    assert_eq!(provider.count().await.unwrap(), 20);
    assert_eq!(provider.clear().await.unwrap(), 20);
    assert_eq!(provider.count().await.unwrap(), 0);
}

#[tokio::test]
async fn callbacks_fire_after_the_store_confirms() {
    #[derive(Debug, PartialEq)]
    enum Event {
        Started,
        Loaded,
        Regenerated(bool),
        Deleted,
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = |event: fn(&SessionId) -> Event| {
        let events = events.clone();
        move |id: &SessionId| events.lock().unwrap().push(event(id))
    };
    let regenerated = events.clone();
    let callbacks = Callbacks::new()
        .on_started(log(|_| Event::Started))
        .on_loaded(log(|_| Event::Loaded))
        .on_deleted(log(|_| Event::Deleted))
        .on_regenerated(move |old, new| regenerated.lock().unwrap().push(Event::Regenerated(old != new)));
    let (provider, _) = provider();
    let provider = provider.with_callbacks(callbacks);

    let mut session = provider.create().unwrap();
    assert!(events.lock().unwrap().is_empty(), "nothing started until it is stored");
    provider.save(&mut session).await.unwrap();
    let mut session = provider.get(session.id()).await.unwrap();
    provider.regenerate_id(&mut session).await.unwrap();
    provider.delete(&mut session).await.unwrap();
    assert!(provider.load("unknown").await.unwrap().is_none());
    assert_eq!(
        *events.lock().unwrap(),
        vec![Event::Started, Event::Loaded, Event::Regenerated(true), Event::Deleted]
    );
}

#[test]
fn field_tags_are_stable() {
    assert_eq!(FieldDef::tag_of("user"), AppSession::FIELDS[0].tag);
    // Pinned: changing the tag function would orphan every stored field.
    assert_eq!(
        FieldDef::tag_of("user"),
        0x6078_5ef2,
        "32-bit FNV-1a of the stored name"
    );
}

#[tokio::test]
async fn a_session_tells_its_expiry_and_touch_slides_it_at_the_next_save() {
    let (provider, clock) = provider();
    let idle = provider.config().idle_timeout();
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    assert!(!session.is_expired());
    assert_eq!(session.time_until_expiry(), idle);

    clock.advance(idle / 2);
    let mut session = provider.get(session.id()).await.unwrap();
    assert_eq!(session.time_until_expiry(), idle / 2);
    assert_eq!(
        provider.save(&mut session).await.unwrap(),
        SaveOutcome::Refreshed,
        "half the idle timeout is past the refresh interval"
    );
    assert_eq!(session.time_until_expiry(), idle, "the save slid the idle deadline");

    let mut session = provider.get(session.id()).await.unwrap();
    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Unchanged);
    session.touch();
    clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(
        provider.save(&mut session).await.unwrap(),
        SaveOutcome::Refreshed,
        "touched"
    );
    assert_eq!(session.time_until_expiry(), idle);

    clock.advance(idle);
    assert!(session.is_expired());
    assert_eq!(session.time_until_expiry(), std::time::Duration::ZERO);
}

const DAY: Duration = Duration::from_secs(24 * 3600);

fn now(clock: &ManualClock) -> std::time::SystemTime {
    use session::Clock as _;
    std::time::UNIX_EPOCH + Duration::from_millis(clock.now_ms())
}

#[tokio::test]
async fn a_remembered_session_outlives_the_configured_timeouts_within_the_caps() {
    let clock = ManualClock::new();
    let provider = provider_with(
        &clock,
        SessionConfig::development()
            .max_persistent_idle(7 * DAY)
            .max_persistent_lifetime(30 * DAY),
    );
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    session.set_expiry(session::Expiry::Remember {
        idle: 14 * DAY,
        absolute: 90 * DAY,
    });
    provider.save(&mut session).await.unwrap();
    assert_eq!(session.pending_expiry(), None, "applied by the save");
    assert_eq!(session.meta().cookie, session::CookieLifetime::Persistent);
    assert_eq!(
        session.time_until_expiry(),
        7 * DAY,
        "the idle window is capped at max_persistent_idle"
    );
    assert_eq!(session.absolute_deadline(), now(&clock) + 30 * DAY, "and the lifetime");

    // Idle for six days (past the configured 30 minutes and 24 hours), then used: it slides
    // by its own idle window.
    clock.advance(6 * DAY);
    let mut loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.meta().idle_window_ms, (7 * DAY).as_millis() as u64);
    loaded.touch();
    assert_eq!(provider.save(&mut loaded).await.unwrap(), SaveOutcome::Refreshed);
    clock.advance(6 * DAY);
    let mut loaded = provider.get(session.id()).await.unwrap();
    loaded.touch();
    provider.save(&mut loaded).await.unwrap();
    // Used every six days, it still ends at its absolute deadline.
    for _ in 0..2 {
        clock.advance(6 * DAY);
        let mut loaded = provider.get(session.id()).await.unwrap();
        loaded.touch();
        provider.save(&mut loaded).await.unwrap();
    }
    clock.advance(6 * DAY);
    assert!(
        provider.try_get(session.id()).await.unwrap().is_none(),
        "dead after 30 days however active"
    );

    // Not remembered, the same idle gap ends it.
    let mut plain = provider.create().unwrap();
    plain.set_user(Some("bob".into()));
    provider.save(&mut plain).await.unwrap();
    clock.advance(Duration::from_secs(31 * 60));
    assert!(provider.try_get(plain.id()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_fixed_deadline_never_slides_and_a_browser_session_keeps_the_configured_timeouts() {
    let (provider, clock) = provider();
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();

    let mut loaded = provider.get(session.id()).await.unwrap();
    loaded.set_expiry(session::Expiry::Until(now(&clock) + Duration::from_secs(3600)));
    assert_eq!(
        provider.save(&mut loaded).await.unwrap(),
        SaveOutcome::Refreshed,
        "a lifetime change alone is written"
    );
    assert!(!loaded.is_dirty());
    for _ in 0..2 {
        // Used every 20 minutes: the configured 30-minute idle timeout would slide, this does not.
        clock.advance(Duration::from_secs(20 * 60));
        let mut used = provider.get(session.id()).await.unwrap();
        used.touch();
        provider.save(&mut used).await.unwrap();
        assert_eq!(used.expires(), session.created() + Duration::from_secs(3600));
    }
    clock.advance(Duration::from_secs(20 * 60));
    assert!(
        provider.try_get(session.id()).await.unwrap().is_none(),
        "dead at the deadline"
    );

    let mut other = provider.create().unwrap();
    other.set_expiry(session::Expiry::BrowserSession);
    other.set_user(Some("bob".into()));
    provider.save(&mut other).await.unwrap();
    assert_eq!(other.meta().cookie, session::CookieLifetime::BrowserSession);
    assert_eq!(other.time_until_expiry(), Duration::from_secs(30 * 60));
}

#[tokio::test]
async fn a_lifetime_chosen_by_a_failed_request_is_dropped_with_its_changes() {
    let (provider, _) = provider();
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    let mut loaded = provider.get(session.id()).await.unwrap();
    loaded.set_expiry(session::Expiry::Remember {
        idle: DAY,
        absolute: DAY,
    });
    loaded.regenerate_id().unwrap();
    assert_eq!(
        provider.save_lifecycle_only(&mut loaded).await.unwrap(),
        SaveOutcome::Regenerated
    );
    let reloaded = provider.get(loaded.id()).await.unwrap();
    assert_eq!(reloaded.meta().cookie, session::CookieLifetime::Configured);
    assert_eq!(reloaded.time_until_expiry(), Duration::from_secs(30 * 60));
}

#[tokio::test]
async fn a_load_tells_an_expired_session_from_an_unknown_one_and_adopts_neither() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .expired_retention(Duration::from_secs(24 * 3600))
        .build();
    let provider = SessionProvider::<AppSession, _>::new(
        store,
        SessionConfig::development().clock(clock.clone()).build().unwrap(),
    );
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    let token = session.id().expose();
    assert!(matches!(
        provider.load_outcome(&token).await.unwrap(),
        session::LoadOutcome::Live(_)
    ));

    clock.advance(Duration::from_secs(31 * 60));
    assert!(matches!(
        provider.load_outcome(&token).await.unwrap(),
        session::LoadOutcome::Expired
    ));
    provider.store().sweep();
    assert!(
        matches!(
            provider.load_outcome(&token).await.unwrap(),
            session::LoadOutcome::Expired
        ),
        "still told after the sweep removed its data"
    );
    let fresh = provider.load_or_create(Some(&token)).await.unwrap();
    assert!(
        fresh.is_new() && fresh.id().expose() != token,
        "an expired ID is never adopted"
    );

    for unknown in [SessionId::generate().unwrap().expose(), "garbage".to_owned()] {
        assert!(matches!(
            provider.load_outcome(&unknown).await.unwrap(),
            session::LoadOutcome::Unknown
        ));
    }
    let mut deleted = provider.create().unwrap();
    deleted.set_user(Some("bob".into()));
    provider.save(&mut deleted).await.unwrap();
    provider.delete(&mut deleted).await.unwrap();
    assert!(
        matches!(
            provider.load_outcome(&deleted.id().expose()).await.unwrap(),
            session::LoadOutcome::Unknown
        ),
        "a logged-out session is not an expired one"
    );
}
