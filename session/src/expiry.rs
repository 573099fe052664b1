//! One session's own lifetime, chosen at run time: "remember me", a browser-session
//! cookie, or a fixed deadline.

use std::time::{Duration, SystemTime};

use crate::{
    clock::{duration_ms, to_unix_ms},
    config::SessionConfig,
    session::SessionMeta,
};

/// How long one session lives and how long its cookie is kept, set with
/// [`Session::set_expiry`](crate::Session::set_expiry) and written by the next save.
///
/// The choice is stored with the session (sealed into the cookie for
/// [`CookieSessions`](crate::CookieSessions)) and enforced server-side like the configured
/// timeouts; the cookie's `Max-Age` only tells the browser how long to keep it.
///
/// | variant | server-side deadlines | cookie |
/// |---|---|---|
/// | [`Configured`](Self::Configured) (every new session) | the configured idle and absolute timeouts (absolute from creation) | the configured `Max-Age` |
/// | [`BrowserSession`](Self::BrowserSession) | the configured timeouts (absolute from creation) | no `Max-Age`: the browser drops it when it closes |
/// | [`Remember`](Self::Remember) | its own idle window and absolute lifetime from now, each capped by [`SessionConfig::max_persistent_idle`] and [`SessionConfig::max_persistent_lifetime`] | `Max-Age` until the absolute deadline |
/// | [`Until`](Self::Until) | exactly that instant (capped as above), whatever the activity | `Max-Age` until then |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session::{Expiry, MemoryStore, SessionConfig, SessionData, SessionProvider};
///
/// #[derive(SessionData)]
/// struct AppSession {
///     user: Option<String>,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build()?);
/// let mut session = provider.create()?;
/// session.set_user(Some("alice".into()));
/// let thirty_days = Duration::from_secs(30 * 24 * 3600);
/// session.set_expiry(Expiry::Remember { idle: thirty_days, absolute: thirty_days });
/// provider.save(&mut session).await?;
/// assert!(session.time_until_expiry() > Duration::from_secs(29 * 24 * 3600));
/// # Ok::<(), session::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The configured lifetimes and cookie `Max-Age`: what every session starts with.
    Configured,
    /// A cookie without `Max-Age` or `Expires`, which the browser forgets when it closes;
    /// the configured server-side timeouts still apply.
    BrowserSession,
    /// A persistent cookie with the session's own deadlines: it expires when unused for
    /// `idle`, and at the latest `absolute` from now.
    Remember {
        /// The sliding idle window.
        idle: Duration,
        /// The lifetime from now, never extended.
        absolute: Duration,
    },
    /// The session ends at this instant whether used or not; the cookie is kept until then.
    /// An instant already past ends the session at its next save.
    Until(SystemTime),
}

/// How long the browser keeps the session cookie, as stored with the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CookieLifetime {
    /// The configured `Max-Age` (none: a browser-session cookie).
    #[default]
    Configured,
    /// No `Max-Age`, whatever the configuration.
    BrowserSession,
    /// `Max-Age` until the session's absolute deadline.
    Persistent,
}

impl CookieLifetime {
    /// The byte the stores keep it as.
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Configured => 0,
            Self::BrowserSession => 1,
            Self::Persistent => 2,
        }
    }

    /// Reads [`to_byte`](Self::to_byte); `None` for an unknown byte.
    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Configured),
            1 => Some(Self::BrowserSession),
            2 => Some(Self::Persistent),
            _ => None,
        }
    }
}

/// [`SessionMeta::idle_window_ms`] of a session without a sliding idle deadline.
pub(crate) const NO_IDLE: u64 = u64::MAX;

/// The lifetimes of `meta` after choosing `expiry` at `now_ms`, within the configured caps.
/// The idle deadline is recomputed by the save's [`SessionMeta::accessed_at`].
pub(crate) fn apply(meta: SessionMeta, expiry: Expiry, now_ms: u64, config: &SessionConfig) -> SessionMeta {
    let lifetime_cap = now_ms.saturating_add(duration_ms(config.max_persistent_lifetime()));
    // The configured absolute timeout counts from creation, so choosing it again and again
    // never extends a session.
    let configured_end = meta.created_ms.saturating_add(duration_ms(config.absolute_timeout()));
    let (idle_window_ms, absolute_deadline_ms, cookie) = match expiry {
        Expiry::Configured => (0, configured_end, CookieLifetime::Configured),
        Expiry::BrowserSession => (0, configured_end, CookieLifetime::BrowserSession),
        Expiry::Remember { idle, absolute } => (
            duration_ms(idle.min(config.max_persistent_idle())).max(1),
            now_ms.saturating_add(duration_ms(absolute)).min(lifetime_cap),
            CookieLifetime::Persistent,
        ),
        Expiry::Until(at) => (NO_IDLE, to_unix_ms(at).min(lifetime_cap), CookieLifetime::Persistent),
    };
    // A sub-session never outlives the parent's absolute deadline, capped when spawned.
    let absolute_deadline_ms = match meta.parent {
        Some(_) => absolute_deadline_ms.min(meta.absolute_deadline_ms),
        None => absolute_deadline_ms,
    };
    SessionMeta {
        idle_window_ms,
        absolute_deadline_ms,
        cookie,
        ..meta
    }
}

/// The `Max-Age` of the cookie of a session with `meta` at `now_ms`: `None` for the
/// configured one, `Some(None)` for none at all, `Some(Some(age))` for this one.
#[cfg_attr(not(feature = "http"), allow(dead_code))] // the layer is its only caller
pub(crate) fn cookie_max_age(meta: &SessionMeta, now_ms: u64) -> Option<Option<Duration>> {
    match meta.cookie {
        CookieLifetime::Configured => None,
        CookieLifetime::BrowserSession => Some(None),
        // Whole seconds, rounded up: Max-Age has no finer unit, and the cookie should not
        // end before the session.
        CookieLifetime::Persistent => Some(Some(Duration::from_secs(
            meta.absolute_deadline_ms.saturating_sub(now_ms).div_ceil(1000),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn config() -> SessionConfig {
        SessionConfig::development()
            .max_persistent_idle(7 * DAY)
            .max_persistent_lifetime(30 * DAY)
            .build()
            .unwrap()
    }

    fn meta() -> SessionMeta {
        SessionMeta::new(1_000, 1_800_000, 86_400_000)
    }

    #[test]
    fn remember_sets_its_own_deadlines_within_the_caps() {
        let config = config();
        let now = 5_000;
        let remembered = apply(
            meta(),
            Expiry::Remember {
                idle: 2 * DAY,
                absolute: 10 * DAY,
            },
            now,
            &config,
        )
        .accessed_at(now, 1_800_000);
        assert_eq!(remembered.cookie, CookieLifetime::Persistent);
        assert_eq!(remembered.idle_deadline_ms, now + duration_ms(2 * DAY));
        assert_eq!(remembered.absolute_deadline_ms, now + duration_ms(10 * DAY));

        let capped = apply(
            meta(),
            Expiry::Remember {
                idle: 365 * DAY,
                absolute: 365 * DAY,
            },
            now,
            &config,
        )
        .accessed_at(now, 1_800_000);
        assert_eq!(capped.idle_deadline_ms, now + duration_ms(7 * DAY));
        assert_eq!(capped.absolute_deadline_ms, now + duration_ms(30 * DAY));
        assert_eq!(
            cookie_max_age(&capped, now),
            Some(Some(Duration::from_millis(duration_ms(30 * DAY))))
        );
    }

    #[test]
    fn until_does_not_slide_and_browser_session_drops_max_age() {
        let config = config();
        let now = 5_000;
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(now + 60_000);
        let fixed = apply(meta(), Expiry::Until(at), now, &config);
        let later = fixed.accessed_at(now + 30_000, 1_800_000);
        assert_eq!(later.idle_deadline_ms, now + 60_000, "no sliding idle deadline");
        assert_eq!(later.expires_ms(), now + 60_000);

        let browser = apply(fixed, Expiry::BrowserSession, now, &config).accessed_at(now, 1_800_000);
        assert_eq!(cookie_max_age(&browser, now), Some(None));
        assert_eq!(browser.idle_deadline_ms, now + 1_800_000);
        assert_eq!(
            browser.absolute_deadline_ms,
            1_000 + 86_400_000,
            "the configured absolute timeout, from creation"
        );

        let back = apply(browser, Expiry::Configured, now, &config);
        assert_eq!(cookie_max_age(&back, now), None);
    }

    #[test]
    fn cookie_lifetime_bytes_round_trip() {
        for lifetime in [
            CookieLifetime::Configured,
            CookieLifetime::BrowserSession,
            CookieLifetime::Persistent,
        ] {
            assert_eq!(CookieLifetime::from_byte(lifetime.to_byte()), Some(lifetime));
        }
        assert_eq!(CookieLifetime::from_byte(9), None);
    }
}
