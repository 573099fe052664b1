//! Session configuration: lifetimes, cookie attributes and the clock, with presets.

use std::{fmt, sync::Arc, time::Duration};

use crate::{
    Error,
    clock::{Clock, SystemClock},
};

/// The `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only on same-site requests.
    Strict,
    /// Sent on same-site requests and top-level cross-site navigations.
    Lax,
    /// Sent on every request; requires `Secure`.
    None,
}

/// Attributes of the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// The cookie name, including a `__Host-` or `__Secure-` prefix.
    pub name: String,
    /// The `Path` attribute.
    pub path: String,
    /// The `Domain` attribute; `None` binds the cookie to the exact host.
    pub domain: Option<String>,
    /// The `Secure` attribute.
    pub secure: bool,
    /// The `HttpOnly` attribute.
    pub http_only: bool,
    /// The `SameSite` attribute.
    pub same_site: SameSite,
    /// The `Max-Age` attribute; `None` makes a browser-session cookie.
    pub max_age: Option<Duration>,
}

/// The default [`SessionConfig::max_record_bytes`]: 64 KiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// The default caps of a remembered session's idle window and lifetime: 30 days.
pub const DEFAULT_MAX_PERSISTENT: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How sessions live and how their cookie looks. Build one with a preset or
/// [`SessionConfig::builder`]; invalid combinations are refused by
/// [`SessionConfigBuilder::build`].
///
/// | preset | idle | absolute | refresh | cookie |
/// |---|---|---|---|---|
/// | [`production`](Self::production) (= [`builder`](Self::builder)) | 30 min | 24 h | 60 s | `__Host-session`, Secure, HttpOnly, SameSite=Lax |
/// | [`high_security`](Self::high_security) | 15 min | 8 h | 30 s | `__Host-session`, Secure, HttpOnly, SameSite=Strict |
/// | [`development`](Self::development) | 30 min | 24 h | 60 s | `session`, HttpOnly, SameSite=Lax, not Secure (plain HTTP) |
/// | [`testing`](Self::testing) | 30 min | 24 h | 0 s | `session`, HttpOnly, SameSite=Lax, not Secure |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session::SessionConfig;
///
/// let config = SessionConfig::production().idle_timeout(Duration::from_secs(600)).build()?;
/// assert_eq!(config.cookie().name, "__Host-session");
///
/// let refused = SessionConfig::production().cookie_domain("example.com").build();
/// assert!(refused.is_err(), "a __Host- cookie cannot carry a Domain");
/// # Ok::<(), session::Error>(())
/// ```
#[derive(Clone)]
pub struct SessionConfig {
    idle_timeout: Duration,
    absolute_timeout: Duration,
    refresh_interval: Duration,
    max_record_bytes: usize,
    max_persistent_idle: Duration,
    max_persistent_lifetime: Duration,
    record_client_ip: bool,
    cookie: CookieConfig,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_timeout", &self.absolute_timeout)
            .field("refresh_interval", &self.refresh_interval)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("max_persistent_idle", &self.max_persistent_idle)
            .field("max_persistent_lifetime", &self.max_persistent_lifetime)
            .field("record_client_ip", &self.record_client_ip)
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SessionConfig`]; see there for the presets.
#[derive(Clone)]
#[must_use = "call .build() to get a SessionConfig"]
pub struct SessionConfigBuilder {
    config: SessionConfig,
    /// Set explicitly; else derived from the idle timeout when built.
    refresh_interval: Option<Duration>,
}

impl SessionConfig {
    /// The secure defaults: the same as [`production`](Self::production).
    pub fn builder() -> SessionConfigBuilder {
        Self::production()
    }

    /// For HTTPS deployments: `__Host-session`, Secure, HttpOnly, SameSite=Lax, 30 minutes
    /// idle, 24 hours absolute.
    pub fn production() -> SessionConfigBuilder {
        SessionConfigBuilder {
            refresh_interval: None,
            config: SessionConfig {
                idle_timeout: Duration::from_secs(30 * 60),
                absolute_timeout: Duration::from_secs(24 * 60 * 60),
                refresh_interval: Duration::ZERO,
                max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
                max_persistent_idle: DEFAULT_MAX_PERSISTENT,
                max_persistent_lifetime: DEFAULT_MAX_PERSISTENT,
                record_client_ip: false,
                cookie: CookieConfig {
                    name: "__Host-session".to_owned(),
                    path: "/".to_owned(),
                    domain: None,
                    secure: true,
                    http_only: true,
                    same_site: SameSite::Lax,
                    max_age: None,
                },
                clock: Arc::new(SystemClock),
            },
        }
    }

    /// Shorter lifetimes and SameSite=Strict.
    pub fn high_security() -> SessionConfigBuilder {
        Self::production()
            .idle_timeout(Duration::from_secs(15 * 60))
            .absolute_timeout(Duration::from_secs(8 * 60 * 60))
            .same_site(SameSite::Strict)
    }

    /// For plain-HTTP development servers: like production, but the cookie is named
    /// `session` and is not `Secure`.
    pub fn development() -> SessionConfigBuilder {
        Self::production().cookie_name("session").secure(false)
    }

    /// For tests: like development, and every access refreshes the idle deadline, so
    /// expiry is exact.
    pub fn testing() -> SessionConfigBuilder {
        Self::development().refresh_interval(Duration::ZERO)
    }

    /// A builder starting from this configuration: for a sub-session type's configuration
    /// (sudo mode), the same settings with its own cookie name and lifetimes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session::SessionConfig;
    ///
    /// let main = SessionConfig::production().build()?;
    /// let sudo = main
    ///     .to_builder()
    ///     .cookie_name("__Host-sudo")
    ///     .idle_timeout(Duration::from_secs(300))
    ///     .absolute_timeout(Duration::from_secs(300))
    ///     .build()?;
    /// assert!(sudo.cookie().secure);
    /// # Ok::<(), session::Error>(())
    /// ```
    pub fn to_builder(&self) -> SessionConfigBuilder {
        SessionConfigBuilder {
            config: self.clone(),
            // Derived again from the (possibly new) idle timeout unless it was set.
            refresh_interval: (self.refresh_interval != self.idle_timeout / 30).then_some(self.refresh_interval),
        }
    }

    /// Idle timeout: a session unused this long expires.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Absolute timeout: a session expires this long after it was created, however active.
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }

    /// An unchanged session is re-written to slide its idle deadline at most this often:
    /// as set, or else a thirtieth of the idle timeout (60 s for 30 minutes).
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// The largest a session may be in a server-side store, in bytes of encoded fields:
    /// a save that would make it larger fails with [`Error::RecordTooLarge`] and stores
    /// nothing.
    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    /// The longest idle window a session may choose for itself with
    /// [`Expiry::Remember`](crate::Expiry::Remember) (default 30 days).
    pub fn max_persistent_idle(&self) -> Duration {
        self.max_persistent_idle
    }

    /// The longest a session may live from the moment it chooses
    /// [`Expiry::Remember`](crate::Expiry::Remember) or
    /// [`Expiry::Until`](crate::Expiry::Until) (default 30 days).
    pub fn max_persistent_lifetime(&self) -> Duration {
        self.max_persistent_lifetime
    }

    /// Whether the HTTP layer keeps the client's IP address in the [`Device`](crate::Device)
    /// it records with a stored session (default `false`).
    pub fn record_client_ip(&self) -> bool {
        self.record_client_ip
    }

    /// The cookie attributes.
    pub fn cookie(&self) -> &CookieConfig {
        &self.cookie
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

impl SessionConfigBuilder {
    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Sets the absolute timeout.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.config.absolute_timeout = timeout;
        self
    }

    /// Sets the sliding-refresh throttle (default: a thirtieth of the idle timeout, so it
    /// follows a shorter or longer idle timeout without being set).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval);
        self
    }

    /// Sets the largest a session may be in a server-side store (default 64 KiB of encoded
    /// fields). Cookie sessions are bounded by the 4096-byte cookie instead.
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.config.max_record_bytes = bytes;
        self
    }

    /// Caps the idle window of a session that chooses
    /// [`Expiry::Remember`](crate::Expiry::Remember) (default 30 days).
    pub fn max_persistent_idle(mut self, cap: Duration) -> Self {
        self.config.max_persistent_idle = cap;
        self
    }

    /// Caps how long a session lives from the moment it chooses
    /// [`Expiry::Remember`](crate::Expiry::Remember) or
    /// [`Expiry::Until`](crate::Expiry::Until) (default 30 days).
    pub fn max_persistent_lifetime(mut self, cap: Duration) -> Self {
        self.config.max_persistent_lifetime = cap;
        self
    }

    /// Makes the HTTP layer keep the client's IP address (the connection's peer, or the
    /// trusted proxy header's) in the [`Device`](crate::Device) it records with each stored
    /// session, beside the User-Agent (default `false`: the User-Agent only). An IP address
    /// is personal data, and often enough to locate a user: keep it only if the "where you
    /// are logged in" page needs it, and say so in the privacy notice. It is stored
    /// server-side with the session and goes with it.
    pub fn record_client_ip(mut self, record: bool) -> Self {
        self.config.record_client_ip = record;
        self
    }

    /// Sets the clock (for tests: a [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }

    /// Sets the cookie name.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config.cookie.name = name.into();
        self
    }

    /// Sets the cookie's `Path`.
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config.cookie.path = path.into();
        self
    }

    /// Sets the cookie's `Domain`.
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.cookie.domain = Some(domain.into());
        self
    }

    /// Sets the cookie's `Secure` attribute.
    pub fn secure(mut self, secure: bool) -> Self {
        self.config.cookie.secure = secure;
        self
    }

    /// Sets the cookie's `HttpOnly` attribute.
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.config.cookie.http_only = http_only;
        self
    }

    /// Sets the cookie's `SameSite` attribute.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.config.cookie.same_site = same_site;
        self
    }

    /// Sets the cookie's `Max-Age`; `None` makes a browser-session cookie.
    pub fn max_age(mut self, max_age: Option<Duration>) -> Self {
        self.config.cookie.max_age = max_age;
        self
    }

    /// Checks the settings and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`], naming the setting and the fix, when timeouts are zero or
    /// inconsistent, or the cookie attributes are invalid or break their prefix's rules.
    pub fn build(self) -> Result<SessionConfig, Error> {
        let mut config = self.config;
        config.refresh_interval = self.refresh_interval.unwrap_or(config.idle_timeout / 30);
        let refuse = |message: String| Err(Error::Config(message));
        if config.idle_timeout.is_zero() {
            return refuse("idle_timeout must be greater than zero".into());
        }
        if config.absolute_timeout < config.idle_timeout {
            return refuse(format!(
                "absolute_timeout ({:?}) is shorter than idle_timeout ({:?}); raise it or lower idle_timeout",
                config.absolute_timeout, config.idle_timeout
            ));
        }
        if config.refresh_interval >= config.idle_timeout {
            return refuse(format!(
                "refresh_interval ({:?}) must be shorter than idle_timeout ({:?}), or sessions expire while in use",
                config.refresh_interval, config.idle_timeout
            ));
        }
        if config.max_persistent_idle.is_zero() || config.max_persistent_lifetime.is_zero() {
            return refuse("max_persistent_idle and max_persistent_lifetime must be greater than zero".into());
        }
        if config.max_record_bytes == 0 {
            return refuse("max_record_bytes must be greater than zero".into());
        }
        validate_cookie(&config.cookie).map_err(Error::Config)?;
        Ok(config)
    }
}

fn validate_cookie(cookie: &CookieConfig) -> Result<(), String> {
    let name = &cookie.name;
    let separators = "()<>@,;:\\\"/[]?={} \t";
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic() && !separators.contains(c)) {
        return Err(format!("cookie name {name:?} is not a valid cookie token"));
    }
    if !cookie.path.starts_with('/') || cookie.path.contains(|c: char| c == ';' || c.is_control()) {
        return Err(format!(
            "cookie path {:?} must start with '/' and contain no ';'",
            cookie.path
        ));
    }
    if let Some(domain) = &cookie.domain
        && (domain.is_empty() || domain.contains(|c: char| c == ';' || c.is_whitespace() || c.is_control()))
    {
        return Err(format!("cookie domain {domain:?} is not a valid domain"));
    }
    if cookie.same_site == SameSite::None && !cookie.secure {
        return Err("SameSite=None requires Secure; browsers drop such cookies otherwise".into());
    }
    if name.starts_with("__Host-") && (!cookie.secure || cookie.path != "/" || cookie.domain.is_some()) {
        return Err(format!(
            "cookie {name:?} has the __Host- prefix, which requires Secure, Path=/ and no Domain; \
             use the development preset (cookie `session`) for plain HTTP"
        ));
    }
    if name.starts_with("__Secure-") && !cookie.secure {
        return Err(format!(
            "cookie {name:?} has the __Secure- prefix, which requires Secure"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_build() {
        for preset in [
            SessionConfig::production(),
            SessionConfig::high_security(),
            SessionConfig::development(),
            SessionConfig::testing(),
        ] {
            preset.build().unwrap();
        }
    }

    #[test]
    fn the_refresh_interval_follows_the_idle_timeout_unless_set() {
        let production = SessionConfig::production().build().unwrap();
        assert_eq!(production.refresh_interval(), Duration::from_secs(60));
        let strict = SessionConfig::high_security().build().unwrap();
        assert_eq!(strict.refresh_interval(), Duration::from_secs(30));
        let short = SessionConfig::development()
            .idle_timeout(Duration::from_secs(2))
            .build()
            .expect("a short idle timeout alone is a valid configuration");
        assert!(short.refresh_interval() < Duration::from_secs(2));
        let set = SessionConfig::production()
            .refresh_interval(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(600))
            .build()
            .unwrap();
        assert_eq!(
            set.refresh_interval(),
            Duration::from_secs(5),
            "as set, whatever the order"
        );
        assert_eq!(
            SessionConfig::testing().build().unwrap().refresh_interval(),
            Duration::ZERO
        );
    }

    #[test]
    fn invalid_settings_are_refused_with_the_fix() {
        let cases = [
            (SessionConfig::production().idle_timeout(Duration::ZERO), "idle_timeout"),
            (
                SessionConfig::production().absolute_timeout(Duration::from_secs(1)),
                "absolute_timeout",
            ),
            (
                SessionConfig::production().refresh_interval(Duration::from_secs(3600)),
                "refresh_interval",
            ),
            (SessionConfig::production().cookie_name("bad name"), "token"),
            (SessionConfig::production().cookie_name(""), "token"),
            (SessionConfig::production().cookie_path("relative"), "path"),
            (SessionConfig::production().secure(false), "__Host-"),
            (SessionConfig::production().cookie_path("/app"), "__Host-"),
            (SessionConfig::development().same_site(SameSite::None), "SameSite=None"),
            (SessionConfig::development().cookie_name("__Secure-s"), "__Secure-"),
            (SessionConfig::development().cookie_domain("a;b"), "domain"),
            (
                SessionConfig::development().max_persistent_lifetime(Duration::ZERO),
                "max_persistent_lifetime",
            ),
        ];
        for (builder, needle) in cases {
            let error = builder.build().unwrap_err().to_string();
            assert!(error.contains(needle), "{error:?} should mention {needle:?}");
        }
    }
}
