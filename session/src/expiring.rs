//! Expiring slots: a value that is absent after its own deadline, stored with it.

use std::time::Duration;

use crate::clock::duration_ms;

/// An expiring slot: declare a field `#[session(expiring)] code: Expiring<String>`.
///
/// A value set with a time to live (`set_code(value, ttl)`) reads as `None` once the
/// provider's clock reaches its deadline (`code()`, `code_expires_in()`), while the session
/// and its other fields live on. The deadline (milliseconds since the Unix epoch) is stored
/// with the value, so it holds across requests and processes, and it never extends the
/// session's own lifetime: a session that ends first takes the value with it.
///
/// An expired value is never returned. A save writes the slot only when the application
/// set, took or cleared it, as for any other field, so a request that finds the value
/// expired cannot erase a fresh one that a concurrent request set meanwhile; until then the
/// expired bytes stay in a server-side record (a cookie session drops them at its next
/// write).
///
/// The methods here take the current time explicitly; the generated accessors read it from
/// the provider's [`Clock`](crate::Clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring<T> {
    entry: Option<Entry<T>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry<T> {
    deadline_ms: u64,
    value: T,
}

impl<T> Default for Expiring<T> {
    fn default() -> Self {
        Self { entry: None }
    }
}

impl<T> Expiring<T> {
    /// The value, if one is set and `now_ms` is before its deadline.
    pub fn get_at(&self, now_ms: u64) -> Option<&T> {
        self.live(now_ms).map(|entry| &entry.value)
    }

    /// How long the value has left at `now_ms`; `None` when there is none or it expired.
    pub fn expires_in_at(&self, now_ms: u64) -> Option<Duration> {
        self.live(now_ms)
            .map(|entry| Duration::from_millis(entry.deadline_ms - now_ms))
    }

    /// The deadline of the value held, expired or not, in milliseconds since the Unix epoch.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.entry.as_ref().map(|entry| entry.deadline_ms)
    }

    /// Holds `value` until `deadline_ms` (milliseconds since the Unix epoch).
    pub fn set_until(&mut self, value: T, deadline_ms: u64) {
        self.entry = Some(Entry { deadline_ms, value });
    }

    /// Holds `value` for `ttl` from `now_ms`.
    pub fn set_for(&mut self, value: T, ttl: Duration, now_ms: u64) {
        self.set_until(value, now_ms.saturating_add(duration_ms(ttl)));
    }

    /// Removes the value and returns it if it had not expired at `now_ms`.
    pub fn take_at(&mut self, now_ms: u64) -> Option<T> {
        self.entry
            .take()
            .filter(|entry| now_ms < entry.deadline_ms)
            .map(|entry| entry.value)
    }

    /// Removes the value, expired or not.
    pub fn clear(&mut self) {
        self.entry = None;
    }

    fn live(&self, now_ms: u64) -> Option<&Entry<T>> {
        self.entry.as_ref().filter(|entry| now_ms < entry.deadline_ms)
    }

    /// Forgets a value that expired by `now_ms`; whether there was one.
    pub(crate) fn drop_expired(&mut self, now_ms: u64) -> bool {
        let expired = self.entry.as_ref().is_some_and(|entry| now_ms >= entry.deadline_ms);
        if expired {
            self.entry = None;
        }
        expired
    }

    /// What the codec stores: the deadline with the value.
    pub(crate) fn stored(&self) -> Option<(u64, &T)> {
        self.entry.as_ref().map(|entry| (entry.deadline_ms, &entry.value))
    }

    pub(crate) fn loaded(&mut self, stored: Option<(u64, T)>) {
        self.entry = stored.map(|(deadline_ms, value)| Entry { deadline_ms, value });
    }
}

/// Implemented only by [`Expiring<T>`]: the bound that makes `#[session(expiring)]` on
/// another type a compile error.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[session(expiring)]` needs a field of type `Expiring<T>`, not `{Self}`",
    label = "not an expiring slot",
    note = "declare the field as `Expiring<{Self}>`, or remove `#[session(expiring)]`"
)]
pub trait ExpiringSlot {
    type Value;
    fn get_at(&self, now_ms: u64) -> Option<&Self::Value>;
    fn expires_in_at(&self, now_ms: u64) -> Option<Duration>;
    fn set_for(&mut self, value: Self::Value, ttl: Duration, now_ms: u64);
    fn take_at(&mut self, now_ms: u64) -> Option<Self::Value>;
    fn clear(&mut self);
    fn drop_expired(&mut self, now_ms: u64) -> bool;
    fn stored(&self) -> Option<(u64, &Self::Value)>;
    fn loaded(&mut self, stored: Option<(u64, Self::Value)>);
}

impl<T> ExpiringSlot for Expiring<T> {
    type Value = T;
    fn get_at(&self, now_ms: u64) -> Option<&T> {
        Expiring::get_at(self, now_ms)
    }
    fn expires_in_at(&self, now_ms: u64) -> Option<Duration> {
        Expiring::expires_in_at(self, now_ms)
    }
    fn set_for(&mut self, value: T, ttl: Duration, now_ms: u64) {
        Expiring::set_for(self, value, ttl, now_ms);
    }
    fn take_at(&mut self, now_ms: u64) -> Option<T> {
        Expiring::take_at(self, now_ms)
    }
    fn clear(&mut self) {
        Expiring::clear(self);
    }
    fn drop_expired(&mut self, now_ms: u64) -> bool {
        Expiring::drop_expired(self, now_ms)
    }
    fn stored(&self) -> Option<(u64, &T)> {
        Expiring::stored(self)
    }
    fn loaded(&mut self, stored: Option<(u64, T)>) {
        Expiring::loaded(self, stored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn a_value_is_live_until_its_deadline_and_absent_from_it_on() {
        let mut slot = Expiring::default();
        slot.set_for("123456", Duration::from_secs(60), T0);
        assert_eq!(slot.get_at(T0), Some(&"123456"));
        assert_eq!(slot.get_at(T0 + 59_999), Some(&"123456"));
        assert_eq!(slot.get_at(T0 + 60_000), None);
        assert_eq!(slot.deadline_ms(), Some(T0 + 60_000));
    }

    #[test]
    fn the_time_left_decreases_and_ends_at_the_deadline() {
        let mut slot = Expiring::default();
        slot.set_for(7u32, Duration::from_secs(10), T0);
        assert_eq!(slot.expires_in_at(T0), Some(Duration::from_secs(10)));
        assert_eq!(slot.expires_in_at(T0 + 4_000), Some(Duration::from_secs(6)));
        assert_eq!(slot.expires_in_at(T0 + 10_000), None);
        assert_eq!(Expiring::<u32>::default().expires_in_at(T0), None);
    }

    #[test]
    fn take_returns_only_a_live_value_and_empties_the_slot() {
        let mut slot = Expiring::default();
        slot.set_for(1u8, Duration::from_secs(1), T0);
        assert_eq!(slot.take_at(T0), Some(1));
        assert_eq!(slot.deadline_ms(), None);
        slot.set_for(2u8, Duration::from_secs(1), T0);
        assert_eq!(slot.take_at(T0 + 1_000), None);
        assert_eq!(slot.deadline_ms(), None);
    }

    #[test]
    fn clear_and_drop_expired_forget_the_value() {
        let mut slot = Expiring::default();
        slot.set_for('a', Duration::from_secs(5), T0);
        assert!(!slot.drop_expired(T0 + 4_999));
        assert_eq!(slot.get_at(T0 + 4_999), Some(&'a'));
        assert!(slot.drop_expired(T0 + 5_000));
        assert_eq!(slot.deadline_ms(), None);
        assert!(!slot.drop_expired(T0 + 5_000));
        slot.set_for('b', Duration::from_secs(5), T0);
        slot.clear();
        assert_eq!(slot.get_at(T0), None);
    }

    #[test]
    fn a_huge_ttl_saturates_instead_of_wrapping() {
        let mut slot = Expiring::default();
        slot.set_for((), Duration::MAX, T0);
        assert_eq!(slot.deadline_ms(), Some(u64::MAX));
        assert_eq!(slot.get_at(u64::MAX - 1), Some(&()));
    }

    #[test]
    fn stored_and_loaded_round_trip_the_deadline_with_the_value() {
        let mut slot = Expiring::default();
        slot.set_until(String::from("x"), T0);
        let stored = slot.stored().map(|(deadline, value)| (deadline, value.clone()));
        let mut other = Expiring::default();
        other.loaded(stored);
        assert_eq!(other, slot);
        other.loaded(None);
        assert_eq!(other.deadline_ms(), None);
    }

    mod in_a_session {
        use std::{sync::Arc, time::Duration};

        use crate::{
            Clock, Expiring, ManualClock, SessionData, SessionId, SessionMeta, codec,
            data::DirtySet,
            session::{Session, Status},
        };

        #[derive(SessionData, Debug)]
        #[session(crate = "crate")]
        struct Data {
            user: Option<String>,
            #[session(expiring)]
            code: Expiring<String>,
        }

        fn session_at(clock: &ManualClock, data: Data) -> Session<Data> {
            let meta = SessionMeta::new(clock.now_ms(), 3_600_000, 86_400_000);
            let id = SessionId::generate().unwrap();
            Session::from_parts(id, data, meta, Status::Stored, false, Arc::new(clock.clone()))
        }

        fn stored(clock: &ManualClock) -> Session<Data> {
            session_at(clock, Data::initial())
        }

        #[test]
        fn the_accessors_read_the_sessions_clock() {
            let clock = ManualClock::at_ms(super::T0);
            let mut session = stored(&clock);
            session.set_code("123456".into(), Duration::from_secs(60));
            assert_eq!(session.code().map(String::as_str), Some("123456"));
            assert_eq!(session.code_expires_in(), Some(Duration::from_secs(60)));
            clock.advance(Duration::from_secs(45));
            assert_eq!(session.code_expires_in(), Some(Duration::from_secs(15)));
            assert_eq!(session.code().map(String::as_str), Some("123456"));
            clock.advance(Duration::from_secs(15));
            assert_eq!(session.code(), None);
            assert_eq!(session.code_expires_in(), None);
            assert!(!session.is_expired(), "the session outlives the value");
        }

        #[test]
        fn set_take_and_clear_mark_the_field_reads_do_not() {
            let clock = ManualClock::at_ms(super::T0);
            let mut session = stored(&clock);
            let _ = session.code();
            let _ = session.code_expires_in();
            assert!(!session.is_dirty());
            session.set_code("a".into(), Duration::from_secs(1));
            assert_eq!(session.dirty_fields().collect::<Vec<_>>(), ["code"]);

            let mut session = stored(&clock);
            session.clear_code();
            assert_eq!(session.dirty_fields().collect::<Vec<_>>(), ["code"]);

            let mut session = stored(&clock);
            session.set_code("b".into(), Duration::from_secs(1));
            let record = codec::encode(session.data(), DirtySet::all(2)).unwrap();
            let mut session = session_at(&clock, codec::decode(&record));
            assert_eq!(session.take_code().as_deref(), Some("b"));
            assert_eq!(session.code(), None);
            assert_eq!(session.dirty_fields().collect::<Vec<_>>(), ["code"]);
        }

        #[test]
        fn the_deadline_is_stored_with_the_value() {
            let clock = ManualClock::at_ms(super::T0);
            let mut session = stored(&clock);
            session.set_code("x".into(), Duration::from_secs(30));
            let record = codec::encode(session.data(), DirtySet::all(2)).unwrap();
            clock.advance(Duration::from_secs(10));
            let loaded = session_at(&clock, codec::decode(&record));
            assert_eq!(loaded.code().map(String::as_str), Some("x"));
            assert_eq!(loaded.code_expires_in(), Some(Duration::from_secs(20)));
            assert_eq!(loaded.data().code.deadline_ms(), Some(super::T0 + 30_000));
        }

        #[test]
        fn a_value_expired_at_load_is_dropped_without_marking_the_field() {
            let clock = ManualClock::at_ms(super::T0);
            let mut session = stored(&clock);
            session.set_user(Some("alice".into()));
            session.set_code("x".into(), Duration::from_secs(30));
            let record = codec::encode(session.data(), DirtySet::all(2)).unwrap();
            clock.advance(Duration::from_secs(30));
            let loaded = session_at(&clock, codec::decode(&record));
            assert_eq!(loaded.code(), None);
            assert_eq!(loaded.data().code.deadline_ms(), None, "gone from memory too");
            assert!(!loaded.is_dirty(), "nothing is written for an expired value alone");
            assert_eq!(loaded.user().as_deref(), Some("alice"));
        }
    }
}
