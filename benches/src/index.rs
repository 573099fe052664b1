//! "Log out everywhere" at scale: one user's sessions among many, listed and deleted
//! through the session index, against `delete_where`, which reads every session; and the
//! cookie store end to end with revocation by index off and on.

use std::time::{Duration, Instant};

use session::{
    CookieSessions, Device, MemoryRevocationStore, RedisRevocationStore, Session, SessionConfig, SessionData,
    SessionProvider,
    crypto::{KeyId, KeyRing, Secret},
    http::SessionLayer,
    store::{IndexKey, IndexStore, QueryStore, SessionStore},
};

use crate::{apps::BoxError, content::Profile, load::median};

/// The user whose sessions are listed and deleted.
pub const TARGET: &str = "target@example.com";
/// Sessions of every user, the target's included.
pub const USER_SESSIONS: usize = 5;
/// The User-Agent recorded with every session, as the HTTP layer records it.
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// The benchmark session with whose it is: the index field, then [`Profile`]'s fields.
#[derive(SessionData, Debug, Clone, PartialEq)]
pub struct Account {
    /// Whose session it is.
    #[session(index)]
    pub user: Option<String>,
    /// The user id.
    pub user_id: u64,
    /// The user name.
    pub user_name: String,
    /// The visit counter.
    pub visits: u64,
    /// Preference.
    pub theme: String,
    /// Preference.
    pub language: String,
    /// Preference.
    pub timezone: String,
    /// Preference.
    pub currency: String,
    /// Preference.
    pub font_size: String,
    /// Preference.
    pub density: String,
    /// Preference.
    pub sidebar: String,
    /// Preference.
    pub notifications: String,
}

/// Writes the benchmark content of `user`'s session, field by field, as a handler would.
pub fn fill_account(session: &mut AccountFields, user: &str) {
    let sample = Profile::sample();
    session.set_user(Some(user.to_owned()));
    session.set_user_id(sample.user_id);
    session.set_user_name(sample.user_name);
    session.set_visits(sample.visits);
    session.set_theme(sample.theme);
    session.set_language(sample.language);
    session.set_timezone(sample.timezone);
    session.set_currency(sample.currency);
    session.set_font_size(sample.font_size);
    session.set_density(sample.density);
    session.set_sidebar(sample.sidebar);
    session.set_notifications(sample.notifications);
}

/// A new, unsaved session of `user` with the benchmark content and a recorded device.
///
/// # Errors
///
/// When the provider cannot make a session ID.
pub fn new_session<S: SessionStore>(
    provider: &SessionProvider<Account, S>,
    user: &str,
) -> Result<Session<Account>, session::Error> {
    let mut session = provider.create()?;
    fill_account(&mut session, user);
    session.set_device(Device {
        user_agent: Some(USER_AGENT.to_owned()),
        ip: None,
    });
    Ok(session)
}

/// The index of [`TARGET`]'s sessions.
///
/// # Errors
///
/// Never in practice (a string always serializes).
pub fn target_index() -> Result<IndexKey, session::Error> {
    IndexKey::of("user", TARGET)
}

/// Stores [`TARGET`]'s [`USER_SESSIONS`] sessions.
///
/// # Errors
///
/// When a save fails.
pub async fn create_target<S: SessionStore>(
    provider: &SessionProvider<Account, S>,
) -> Result<Vec<Session<Account>>, BoxError> {
    let mut sessions = Vec::with_capacity(USER_SESSIONS);
    for _ in 0..USER_SESSIONS {
        let mut session = new_session(provider, TARGET)?;
        provider.save(&mut session).await?;
        sessions.push(session);
    }
    Ok(sessions)
}

/// Fills the store with `count - USER_SESSIONS` sessions of other users, [`USER_SESSIONS`]
/// each, saved by `tasks` concurrent tasks (on Redis, concurrent commands share one
/// pipelined connection); returns how long that took. [`TARGET`]'s are not among them.
///
/// # Errors
///
/// When a save fails.
pub async fn fill<S>(provider: &SessionProvider<Account, S>, count: u64, tasks: u64) -> Result<Duration, BoxError>
where
    S: SessionStore + Send + Sync + 'static,
{
    let others = count.saturating_sub(USER_SESSIONS as u64);
    let tasks = tasks.clamp(1, others.max(1));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let provider = provider.clone();
        set.spawn(async move {
            // Task `task` saves sessions task, task + tasks, ...
            let mut n = task;
            while n < others {
                let user = format!("user-{}@example.com", n / USER_SESSIONS as u64);
                let mut session = new_session(&provider, &user)?;
                provider.save(&mut session).await?;
                if n > 0 && n % 200_000 == 0 {
                    eprintln!("  {n} sessions saved, {:.0?}", started.elapsed());
                }
                n += tasks;
            }
            Ok::<_, BoxError>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// Microsecond samples of one operation.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    /// The median, µs.
    pub fn median(&self) -> f64 {
        median(self.0.clone())
    }

    /// The nearest-rank `q` quantile, µs.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    fn time(&mut self, started: Instant) {
        self.0.push(started.elapsed().as_secs_f64() * 1e6);
    }
}

/// The timings of one store.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// A load of a session that does not exist: one round trip on Redis, the baseline.
    pub missing_load: Samples,
    /// `sessions_of_index`: an administrator's listing.
    pub list_index: Samples,
    /// `sessions_of`: the user's own listing, from one of the sessions.
    pub list_of: Samples,
    /// `delete_index`: an administrator's "log out everywhere".
    pub delete_index: Samples,
    /// `delete_all_of`: the user's own "log out everywhere".
    pub delete_all_of: Samples,
    /// `delete_where` on the user's name: every session read.
    pub delete_where: Samples,
}

fn expect(what: &str, got: usize) -> Result<(), BoxError> {
    if got == USER_SESSIONS {
        Ok(())
    } else {
        Err(format!("{what} found {got} sessions, not {USER_SESSIONS}").into())
    }
}

/// Times the listing and deletion of [`TARGET`]'s sessions: `samples` of each index
/// operation and `scan_samples` of `delete_where`. The target's sessions are stored again
/// (untimed) before every deletion, and left stored at the end.
///
/// # Errors
///
/// When the store fails or an operation finds other than [`USER_SESSIONS`] sessions.
pub async fn measure<S: IndexStore + QueryStore>(
    provider: &SessionProvider<Account, S>,
    samples: usize,
    scan_samples: usize,
) -> Result<Timings, BoxError> {
    let index = target_index()?;
    let mut timings = Timings::default();
    let own = create_target(provider).await?;
    for _ in 0..samples.min(10) {
        expect("warm-up listing", provider.sessions_of_index(&index).await?.len())?;
    }
    let missing = session::SessionId::generate()?.store_key();
    for _ in 0..samples {
        let started = Instant::now();
        let found = provider.store().load(&missing).await?;
        timings.missing_load.time(started);
        if found.is_some() {
            return Err("a random key was found".into());
        }
        let started = Instant::now();
        let listed = provider.sessions_of_index(&index).await?;
        timings.list_index.time(started);
        expect("sessions_of_index", listed.len())?;
        let started = Instant::now();
        let listed = provider.sessions_of(&own[0]).await?;
        timings.list_of.time(started);
        expect("sessions_of", listed.len())?;
        if listed.iter().filter(|each| each.current).count() != 1 {
            return Err("sessions_of marked other than one session current".into());
        }
    }
    for _ in 0..samples {
        let started = Instant::now();
        let deleted = provider.delete_index(&index).await?;
        timings.delete_index.time(started);
        expect("delete_index", deleted)?;
        let mut own = create_target(provider).await?;
        let started = Instant::now();
        let deleted = provider.delete_all_of(&mut own[0]).await?;
        timings.delete_all_of.time(started);
        expect("delete_all_of", deleted)?;
        create_target(provider).await?;
    }
    for _ in 0..scan_samples {
        let started = Instant::now();
        let deleted = provider
            .delete_where(|each| each.data.user.as_deref() == Some(TARGET))
            .await?;
        timings.delete_where.time(started);
        expect("delete_where", deleted)?;
        create_target(provider).await?;
    }
    Ok(timings)
}

/// The cookie store end to end, with revocation off or on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieApp {
    /// No revocation.
    Off,
    /// Generations in this process (`MemoryRevocationStore`).
    Memory,
    /// Generations in Redis (`RedisRevocationStore`), read at most once a second per index.
    Redis,
    /// Generations in Redis, read on every request (`revocation_staleness` zero).
    RedisEveryRequest,
}

impl CookieApp {
    /// Every app, in report order.
    pub const ALL: [CookieApp; 4] = [
        CookieApp::Off,
        CookieApp::Memory,
        CookieApp::Redis,
        CookieApp::RedisEveryRequest,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CookieApp::Off => "cookie",
            CookieApp::Memory => "cookie-revocation-memory",
            CookieApp::Redis => "cookie-revocation-redis",
            CookieApp::RedisEveryRequest => "cookie-revocation-redis-uncached",
        }
    }

    /// What the report calls it.
    pub fn describe(self) -> &'static str {
        match self {
            CookieApp::Off => "revocation off",
            CookieApp::Memory => "revocation on, `MemoryRevocationStore`",
            CookieApp::Redis => "revocation on, `RedisRevocationStore` (staleness 1 s, the default)",
            CookieApp::RedisEveryRequest => "revocation on, `RedisRevocationStore`, staleness 0 (a lookup per request)",
        }
    }

    /// Whether the app needs a Redis server.
    pub fn uses_redis(self) -> bool {
        matches!(self, CookieApp::Redis | CookieApp::RedisEveryRequest)
    }
}

impl std::str::FromStr for CookieApp {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CookieApp::ALL
            .into_iter()
            .find(|app| app.name() == text)
            .ok_or_else(|| format!("unknown cookie app {text:?}"))
    }
}

/// The router of `app`: `/init` logs a new user in (its own user name, so every load
/// user has an index of its own), `/read` and `/rmw` as in the other end-to-end apps.
///
/// # Errors
///
/// When the store cannot be configured or Redis cannot be reached.
pub async fn cookie_router(app: CookieApp, redis_url: Option<&str>) -> Result<axum::Router, BoxError> {
    let store = CookieSessions::new(
        KeyRing::new(KeyId(1), Secret::generate()?),
        SessionConfig::development().build()?,
    )?;
    let redis = || async {
        let url = redis_url.ok_or_else(|| format!("{} needs a Redis URL", app.name()))?;
        Ok::<_, BoxError>(RedisRevocationStore::new(&crate::stores::ours_redis(url).await?))
    };
    let store = match app {
        CookieApp::Off => store,
        CookieApp::Memory => store.with_revocation(MemoryRevocationStore::new()),
        CookieApp::Redis => store.with_revocation(redis().await?),
        CookieApp::RedisEveryRequest => store
            .with_revocation(redis().await?)
            .revocation_staleness(Duration::ZERO),
    };
    Ok(
        crate::apps::routes(handlers::init, handlers::read, handlers::rmw)
            .layer(SessionLayer::<Account, _>::new(store)),
    )
}

mod handlers {
    use std::sync::atomic::{AtomicU64, Ordering};

    use session::http::LazySession;

    use super::{Account, fill_account};

    static USERS: AtomicU64 = AtomicU64::new(0);

    pub(super) async fn init(session: LazySession<Account>) -> Result<String, session::Error> {
        let mut session = session.load().await?;
        let user = format!("user-{}@example.com", USERS.fetch_add(1, Ordering::Relaxed));
        fill_account(&mut session, &user);
        Ok(session.visits().to_string())
    }

    pub(super) async fn read(session: LazySession<Account>) -> Result<String, session::Error> {
        Ok(match session.existing().await? {
            Some(session) => session.visits().to_string(),
            None => "0".to_owned(),
        })
    }

    pub(super) async fn rmw(session: LazySession<Account>) -> Result<String, session::Error> {
        let mut session = session.load().await?;
        *session.visits_mut() += 1;
        Ok(session.visits().to_string())
    }
}

#[cfg(test)]
mod tests {
    use session::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn finds_the_targets_sessions_among_others() {
        let provider =
            SessionProvider::<Account, _>::new(MemoryStore::new(), SessionConfig::development().build().unwrap());
        fill(&provider, 1_000, 4).await.unwrap();
        assert_eq!(provider.count().await.unwrap(), 995);
        let timings = measure(&provider, 3, 1).await.unwrap();
        assert_eq!(timings.list_index.0.len(), 3);
        assert_eq!(timings.delete_all_of.0.len(), 3);
        assert_eq!(timings.delete_where.0.len(), 1);
        assert_eq!(provider.count().await.unwrap(), 1_000);
        let listed = provider.sessions_of_index(&target_index().unwrap()).await.unwrap();
        assert_eq!(listed[0].data.visits, crate::content::VISITS);
        assert_eq!(
            listed[0]
                .device
                .as_ref()
                .and_then(|device| device.user_agent.as_deref()),
            Some(USER_AGENT)
        );
    }

    #[tokio::test]
    async fn cookie_apps_serve_with_revocation_off_and_in_memory() {
        for app in [CookieApp::Off, CookieApp::Memory] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let router = cookie_router(app, None).await.unwrap();
            let server = tokio::spawn(async move { axum::serve(listener, router).await });
            let load = crate::load::Load {
                connections: 1,
                users_per_connection: 2,
                duration: Duration::from_millis(200),
                max_requests_per_connection: 20,
            };
            let mut clients = crate::load::Clients::connect(addr, load, "/init").await.unwrap();
            let outcome = clients.run("/rmw").await.unwrap();
            assert_eq!(outcome.errors, 0, "{app:?}");
            assert!(outcome.requests > 0, "{app:?}");
            server.abort();
        }
        assert!(cookie_router(CookieApp::Redis, None).await.is_err());
        assert_eq!("cookie-revocation-memory".parse(), Ok(CookieApp::Memory));
    }
}
