//! Cookie sessions (`CookieSessions`): the whole session sealed into the cookie.

mod common;

use std::{net::IpAddr, time::Duration};

use common::AppSession;
use proptest::prelude::*;
use session::{
    ClientBinding, ClientInfo, Clock, CookieLifetime, CookieSessions, Error, Expiry, LoadOutcome, ManualClock, Session,
    SessionConfig,
    crypto::{KeyId, KeyRing, OpenLimits, Purpose, Secret},
};

fn secret(byte: u8) -> Secret {
    Secret::from_bytes(
        (0..48u8)
            .map(|i| byte.wrapping_add(i.wrapping_mul(7)))
            .collect::<Vec<u8>>(),
    )
    .unwrap()
}

fn ring() -> KeyRing {
    KeyRing::new(KeyId(1), secret(1))
}

fn store_with(ring: KeyRing, clock: &ManualClock, config: session::SessionConfigBuilder) -> CookieSessions {
    CookieSessions::new(ring, config.clock(clock.clone()).build().unwrap()).unwrap()
}

fn store(clock: &ManualClock) -> CookieSessions {
    store_with(ring(), clock, SessionConfig::testing())
}

fn sealed(store: &CookieSessions, user: &str) -> String {
    let mut session = store.create::<AppSession>().unwrap();
    session.set_user(Some(user.into()));
    session.set_notice("hello".into());
    store.seal(&mut session, &ClientInfo::default()).unwrap()
}

fn open(store: &CookieSessions, value: &str) -> Option<Session<AppSession>> {
    store.open(value, &ClientInfo::default())
}

#[test]
fn a_sealed_session_opens_with_its_data_and_flash() {
    let clock = ManualClock::new();
    let store = store(&clock);
    let value = sealed(&store, "alice");
    let session = open(&store, &value).expect("opens");
    assert_eq!(session.user().as_deref(), Some("alice"));
    assert_eq!(session.notice().map(String::as_str), Some("hello"));
    assert!(!session.is_new());
}

#[test]
fn every_truncation_and_every_character_change_is_rejected() {
    let clock = ManualClock::new();
    let store = store(&clock);
    let value = sealed(&store, "alice");
    for cut in 0..value.len() {
        assert!(open(&store, &value[..cut]).is_none(), "truncated to {cut}");
    }
    let bytes = value.as_bytes();
    for at in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).unwrap();
        assert!(open(&store, &changed).is_none(), "changed at {at}");
    }
    assert!(open(&store, "").is_none());
    assert!(open(&store, &"A".repeat(5000)).is_none(), "oversized input");
    assert!(open(&store, &format!("{value}=")).is_none(), "padding is non-canonical");
}

#[test]
fn a_cookie_for_one_name_opens_under_no_other_name_nor_as_a_store_value() {
    let clock = ManualClock::new();
    let a = store_with(ring(), &clock, SessionConfig::testing().cookie_name("a"));
    let b = store_with(ring(), &clock, SessionConfig::testing().cookie_name("b"));
    let value = sealed(&a, "alice");
    assert!(open(&a, &value).is_some());
    assert!(open(&b, &value).is_none(), "sealed for cookie:a, opened as cookie:b");
    let as_redis = ring().open(&Purpose::store("redis").unwrap(), &value, 0, &OpenLimits::default());
    assert!(as_redis.is_err(), "a cookie never opens as a Redis value");
}

#[test]
fn wrong_keys_do_not_open() {
    let clock = ManualClock::new();
    let value = sealed(&store(&clock), "alice");
    let other_key = store_with(KeyRing::new(KeyId(1), secret(99)), &clock, SessionConfig::testing());
    assert!(open(&other_key, &value).is_none());
    let other_id = store_with(KeyRing::new(KeyId(2), secret(1)), &clock, SessionConfig::testing());
    assert!(open(&other_id, &value).is_none(), "unknown key id");
}

#[test]
fn expiry_is_enforced_from_the_sealed_lifetimes() {
    let clock = ManualClock::new();
    let store = store_with(
        ring(),
        &clock,
        SessionConfig::testing().idle_timeout(Duration::from_secs(60)),
    );
    let value = sealed(&store, "alice");
    clock.advance(Duration::from_secs(59));
    assert!(open(&store, &value).is_some());
    clock.advance(Duration::from_secs(1));
    assert!(
        open(&store, &value).is_none(),
        "idle timeout reached, whatever the cookie's Max-Age"
    );

    let absolute = store_with(
        ring(),
        &clock,
        SessionConfig::testing()
            .idle_timeout(Duration::from_secs(60))
            .absolute_timeout(Duration::from_secs(100)),
    );
    let mut value = sealed(&absolute, "alice");
    for _ in 0..3 {
        clock.advance(Duration::from_secs(30));
        let mut session = open(&absolute, &value).expect("active");
        value = absolute.seal(&mut session, &ClientInfo::default()).unwrap();
    }
    clock.advance(Duration::from_secs(10));
    assert!(open(&absolute, &value).is_none(), "absolute timeout is never extended");
}

#[test]
fn a_remembered_lifetime_is_sealed_into_the_cookie_and_enforced() {
    let clock = ManualClock::new();
    let day = Duration::from_secs(24 * 3600);
    let store = store_with(
        ring(),
        &clock,
        SessionConfig::testing()
            .idle_timeout(Duration::from_secs(60))
            .max_persistent_lifetime(10 * day),
    );
    let mut session = store.create::<AppSession>().unwrap();
    session.set_user(Some("alice".into()));
    session.set_expiry(Expiry::Remember {
        idle: 3 * day,
        absolute: 30 * day,
    });
    let mut value = store.seal(&mut session, &ClientInfo::default()).unwrap();
    for _ in 0..4 {
        // Two days unused: past the configured minute, within its own three days.
        clock.advance(2 * day);
        let mut opened = open(&store, &value).expect("remembered");
        assert_eq!(opened.meta().cookie, CookieLifetime::Persistent);
        assert_eq!(opened.user().as_deref(), Some("alice"));
        value = store.seal(&mut opened, &ClientInfo::default()).unwrap();
    }
    clock.advance(2 * day);
    assert!(
        open(&store, &value).is_none(),
        "dead at the capped 10-day lifetime however active"
    );

    let mut fixed = store.create::<AppSession>().unwrap();
    fixed.set_expiry(Expiry::Until(
        std::time::UNIX_EPOCH + Duration::from_millis(clock.now_ms()) + Duration::from_secs(30),
    ));
    let value = store.seal(&mut fixed, &ClientInfo::default()).unwrap();
    clock.advance(Duration::from_secs(29));
    assert!(open(&store, &value).is_some());
    clock.advance(Duration::from_secs(1));
    assert!(open(&store, &value).is_none(), "the fixed deadline is sealed too");
}

#[test]
fn touch_slides_a_cookie_session_and_time_until_expiry_counts_down() {
    let clock = ManualClock::new();
    let store = store_with(
        ring(),
        &clock,
        SessionConfig::development().idle_timeout(Duration::from_secs(600)),
    );
    let mut fresh = store.create::<AppSession>().unwrap();
    fresh.set_user(Some("alice".into()));
    let value = store.seal(&mut fresh, &ClientInfo::default()).unwrap();
    clock.advance(Duration::from_secs(10));
    let mut session = open(&store, &value).expect("live");
    assert_eq!(session.time_until_expiry(), Duration::from_secs(590));
    assert!(!session.is_expired());
    assert!(
        !session.needs_save(),
        "within the refresh interval (20 s) nothing is due"
    );
    session.touch();
    assert!(session.needs_save(), "touch asks the next seal to slide");
    let value = store.seal(&mut session, &ClientInfo::default()).unwrap();
    assert_eq!(
        session.time_until_expiry(),
        Duration::from_secs(600),
        "slid by the seal"
    );
    clock.advance(Duration::from_secs(599));
    let reopened = open(&store, &value).expect("the slid deadline is sealed");
    assert_eq!(reopened.time_until_expiry(), Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    assert!(reopened.is_expired());
    assert!(open(&store, &value).is_none());
}

#[test]
fn an_authentic_expired_cookie_is_told_from_a_forged_one() {
    let clock = ManualClock::new();
    let store = store_with(
        ring(),
        &clock,
        SessionConfig::testing().idle_timeout(Duration::from_secs(60)),
    );
    let value = sealed(&store, "alice");
    assert!(matches!(
        store.open_outcome::<AppSession>(&value, &ClientInfo::default()),
        LoadOutcome::Live(_)
    ));
    clock.advance(Duration::from_secs(60));
    assert!(matches!(
        store.open_outcome::<AppSession>(&value, &ClientInfo::default()),
        LoadOutcome::Expired
    ));
    let mut forged = value.clone();
    forged.replace_range(10..11, if &value[10..11] == "A" { "B" } else { "A" });
    assert!(matches!(
        store.open_outcome::<AppSession>(&forged, &ClientInfo::default()),
        LoadOutcome::Unknown
    ));
}

#[test]
fn rotation_opens_old_cookies_and_reseals_with_the_newest_key() {
    let clock = ManualClock::new();
    let old = store_with(KeyRing::new(KeyId(1), secret(1)), &clock, SessionConfig::development());
    let rotated_ring = KeyRing::new(KeyId(2), secret(2))
        .with_previous(KeyId(1), secret(1))
        .unwrap();
    let rotated = store_with(rotated_ring, &clock, SessionConfig::development());

    let value = sealed(&old, "alice");
    let mut session = open(&rotated, &value).expect("the previous key still opens");
    assert!(session.needs_save(), "opened with an old key: due to be re-sealed");
    let resealed = rotated.seal(&mut session, &ClientInfo::default()).unwrap();
    assert!(open(&old, &resealed).is_none(), "re-sealed with the new key");
    let reopened = open(&rotated, &resealed).unwrap();
    assert!(!reopened.needs_save(), "the newest key needs no re-seal");
    assert_eq!(reopened.user().as_deref(), Some("alice"));
}

#[test]
fn compression_shrinks_large_sessions() {
    let clock = ManualClock::new();
    let plain = store(&clock);
    let compressed = store(&clock).compress_above(Some(64));
    let long = "a fairly repetitive user name ".repeat(20);
    let (a, b) = (sealed(&plain, &long), sealed(&compressed, &long));
    assert!(b.len() < a.len() / 2, "compressed {} vs plain {}", b.len(), a.len());
    assert_eq!(open(&compressed, &b).unwrap().user().as_deref(), Some(long.as_str()));
}

#[test]
fn a_cookie_over_4096_bytes_is_refused_with_its_size() {
    let clock = ManualClock::new();
    let store = store(&clock);
    let mut session = store.create::<AppSession>().unwrap();
    let random: String = (0..4000).map(|i| char::from(b'a' + ((i * 7919) % 26) as u8)).collect();
    session.set_user(Some(random));
    match store.seal(&mut session, &ClientInfo::default()) {
        Err(Error::CookieTooLarge { size, limit }) => {
            assert!(size > limit);
            assert_eq!(limit, 4096);
            assert!(
                Error::CookieTooLarge { size, limit }
                    .to_string()
                    .contains(&size.to_string())
            );
        }
        other => panic!("expected CookieTooLarge, got {other:?}"),
    }
    assert!(
        session.is_dirty(),
        "a refused seal leaves the session's changes pending"
    );
}

#[test]
fn client_binding_rejects_another_client() {
    let clock = ManualClock::new();
    let store = store(&clock).bind_client(ClientBinding {
        user_agent: true,
        ip: true,
    });
    let alice = ClientInfo {
        user_agent: Some("Firefox".into()),
        ip: Some("192.0.2.1".parse::<IpAddr>().unwrap()),
    };
    let mut session = store.create::<AppSession>().unwrap();
    let value = store.seal(&mut session, &alice).unwrap();
    assert!(store.open::<AppSession>(&value, &alice).is_some());
    let other_agent = ClientInfo {
        user_agent: Some("curl".into()),
        ..alice.clone()
    };
    assert!(store.open::<AppSession>(&value, &other_agent).is_none());
    let other_ip = ClientInfo {
        ip: Some("192.0.2.2".parse().unwrap()),
        ..alice.clone()
    };
    assert!(store.open::<AppSession>(&value, &other_ip).is_none());
    let unbound = self::store(&clock);
    assert!(open(&unbound, &value).is_none(), "binding is part of the sealed data");
}

#[test]
fn weak_secrets_are_refused_with_advice() {
    for weak in [
        &b""[..],
        b"short",
        &[7u8; 64],
        b"changeme",
        b"1sxc1aNxGHTTZKlK5cpCgufJAqGM4G13",
    ] {
        let error = Secret::from_bytes(weak.to_vec()).unwrap_err();
        let message = Error::from(error).to_string();
        assert!(
            message.contains("generate") || message.contains("Secret::generate"),
            "{message}"
        );
    }
}

proptest! {
    #[test]
    fn opening_arbitrary_text_never_panics(text in ".{0,600}") {
        let store = store(&ManualClock::new());
        prop_assert!(open(&store, &text).is_none());
    }
}
