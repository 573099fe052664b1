//! The end-to-end apps: one axum router per session layer, and one actix-web app per
//! session middleware (this crate's and actix-session's), identical otherwise.
//!
//! Every app serves `GET /init` (store the whole benchmark session), `GET /read` (read the
//! visit counter) and `GET /rmw` (increment it), answering the counter as text.

use std::{
    fmt,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    http::StatusCode,
    routing::{MethodRouter, get},
};
use session::{
    ClusteredStore, CookieSessions, MemoryStore, SessionConfig, SessionProvider,
    crypto::{KeyId, KeyRing, Secret},
    http::{LazySession, SessionLayer},
};

use crate::content::{self, Profile};

/// A boxed error for set-up code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which session layer an app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum App {
    /// No session at all: the counter is a process-wide atomic.
    NoSession,
    /// This crate, `MemoryStore`.
    OursMemory,
    /// This crate, `CookieSessions`.
    OursCookie,
    /// This crate, `RedisStore`.
    OursRedis,
    /// This crate, `ClusteredStore`: one node.
    OursClustered,
    /// This crate, two `ClusteredStore` nodes over the same Redis in one process, each
    /// request to the other node than the one before (a load balancer without stickiness).
    OursClusteredTwo,
    /// tower-sessions, its `MemoryStore`.
    TowerMemory,
    /// tower-sessions, `tower-sessions-redis-store` over a fred pool.
    TowerRedis,
    /// This crate's actix-web middleware, `CookieSessions`.
    OursActixCookie,
    /// This crate's actix-web middleware, `RedisStore`.
    OursActixRedis,
    /// actix-session, `CookieSessionStore` (a private cookie).
    ActixCookie,
    /// actix-session, `RedisSessionStore`.
    ActixRedis,
}

impl App {
    /// Every app, in report order.
    pub const ALL: [App; 12] = [
        App::NoSession,
        App::OursMemory,
        App::OursCookie,
        App::OursRedis,
        App::OursClustered,
        App::OursClusteredTwo,
        App::TowerMemory,
        App::TowerRedis,
        App::OursActixCookie,
        App::OursActixRedis,
        App::ActixCookie,
        App::ActixRedis,
    ];

    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            App::NoSession => "no-session",
            App::OursMemory => "session-memory",
            App::OursCookie => "session-cookie",
            App::OursRedis => "session-redis",
            App::OursClustered => "session-clustered",
            App::OursClusteredTwo => "session-clustered-2",
            App::TowerMemory => "tower-sessions-memory",
            App::TowerRedis => "tower-sessions-redis",
            App::OursActixCookie => "session-actix-cookie",
            App::OursActixRedis => "session-actix-redis",
            App::ActixCookie => "actix-session-cookie",
            App::ActixRedis => "actix-session-redis",
        }
    }

    /// Whether the app needs a Redis server.
    pub fn uses_redis(self) -> bool {
        matches!(
            self,
            App::OursRedis
                | App::OursClustered
                | App::OursClusteredTwo
                | App::TowerRedis
                | App::OursActixRedis
                | App::ActixRedis
        )
    }

    /// Whether the app is served by actix-web ([`serve_actix`]) rather than axum ([`router`]).
    pub fn is_actix(self) -> bool {
        matches!(
            self,
            App::OursActixCookie | App::OursActixRedis | App::ActixCookie | App::ActixRedis
        )
    }
}

impl fmt::Display for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for App {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        App::ALL
            .into_iter()
            .find(|app| app.name() == text)
            .ok_or_else(|| format!("unknown app {text:?}; one of: {}", names()))
    }
}

fn names() -> String {
    App::ALL.map(App::name).join(", ")
}

/// The router of `app`; Redis-backed apps connect to `redis_url`.
///
/// # Errors
///
/// When a store cannot be configured or Redis cannot be reached.
pub async fn router(app: App, redis_url: Option<&str>) -> Result<Router, BoxError> {
    let redis_url = || redis_url.ok_or_else(|| format!("{app} needs a Redis URL"));
    let config = || SessionConfig::development().build();
    Ok(match app {
        App::NoSession => routes(plain::init, plain::read, plain::rmw),
        App::OursMemory => {
            let provider = SessionProvider::<Profile, _>::new(MemoryStore::new(), config()?);
            routes(ours::init, ours::read, ours::rmw).layer(SessionLayer::new(provider))
        }
        App::OursCookie => {
            let store = CookieSessions::new(KeyRing::new(KeyId(1), Secret::generate()?), config()?)?;
            routes(ours::init, ours::read, ours::rmw).layer(SessionLayer::<Profile, _>::new(store))
        }
        App::OursRedis => {
            let store = crate::stores::ours_redis(redis_url()?).await?;
            let provider = SessionProvider::<Profile, _>::new(store, config()?);
            routes(ours::init, ours::read, ours::rmw).layer(SessionLayer::new(provider))
        }
        App::OursClustered => {
            routes(ours::init, ours::read, ours::rmw).layer(clustered_layer(redis_url()?, "bench-clustered-1:").await?)
        }
        App::OursClusteredTwo => {
            // A prefix of their own: the one-node app's writes are not theirs to hear.
            let prefix = "bench-clustered-2:";
            let nodes = [
                clustered_layer(redis_url()?, prefix).await?,
                clustered_layer(redis_url()?, prefix).await?,
            ];
            // One router, as every other app has; each route alternates between the nodes.
            let next = Arc::new(AtomicUsize::new(0));
            let alternate = |route: MethodRouter| {
                let mut routes = nodes.clone().map(|node| route.clone().layer(node));
                let next = next.clone();
                ::tower::service_fn(move |request| {
                    let node = next.fetch_add(1, Ordering::Relaxed) % routes.len();
                    // A method router is always ready: calling it needs no `poll_ready`.
                    ::tower::Service::call(&mut routes[node], request)
                })
            };
            Router::new()
                .route_service("/init", alternate(get(ours::init)))
                .route_service("/read", alternate(get(ours::read)))
                .route_service("/rmw", alternate(get(ours::rmw)))
        }
        App::TowerMemory => routes(tower::init, tower::read, tower::rmw)
            .layer(tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default()).with_secure(false)),
        App::TowerRedis => {
            let store = crate::stores::tower_redis(redis_url()?).await?;
            routes(tower::init, tower::read, tower::rmw)
                .layer(tower_sessions::SessionManagerLayer::new(store).with_secure(false))
        }
        actix => return Err(format!("{actix} is an actix-web app: see serve_actix").into()),
    })
}

/// One application node of the clustered store: its own cache and invalidation
/// connections over the Redis at `url`, under the `prefix` its peers share.
async fn clustered_layer(
    url: &str,
    prefix: &str,
) -> Result<SessionLayer<Profile, SessionProvider<Profile, ClusteredStore>>, BoxError> {
    let redis = session::RedisStore::builder(url).prefix(prefix);
    let store = ClusteredStore::builder(redis).build().await?;
    Ok(SessionLayer::new(SessionProvider::new(
        store,
        SessionConfig::development().build()?,
    )))
}

/// Serves the actix-web `app` on `listener` with two workers (the axum apps' runtime has
/// two worker threads) until the returned server is stopped; Redis-backed apps connect to
/// `redis_url`.
///
/// # Errors
///
/// When `app` is not an actix-web app, a store cannot be configured or Redis cannot be
/// reached.
pub async fn serve_actix(
    app: App,
    redis_url: Option<&str>,
    listener: std::net::TcpListener,
) -> Result<actix_web::dev::Server, BoxError> {
    use actix_web::{App as ActixApp, HttpServer, web};
    let redis_url = || redis_url.ok_or_else(|| format!("{app} needs a Redis URL"));
    let config = || SessionConfig::development().build();
    // `$middleware` makes each worker's middleware: this crate's is built once and cloned,
    // actix-session's is built per worker, as its documentation shows.
    macro_rules! serve {
        ($init:path, $read:path, $rmw:path, $middleware:expr) => {{
            let middleware = $middleware;
            HttpServer::new(move || {
                ActixApp::new()
                    .route("/init", web::get().to($init))
                    .route("/read", web::get().to($read))
                    .route("/rmw", web::get().to($rmw))
                    .wrap(middleware())
            })
            .workers(2)
            // The load generator's connections wait idle while the other apps run; hyper
            // (axum) never times them out, actix-web would after 5 s.
            .keep_alive(actix_web::http::KeepAlive::Os)
            .disable_signals()
            .listen(listener)?
            .run()
        }};
    }
    fn actix_session<S: actix_session::storage::SessionStore>(
        store: S,
        key: actix_web::cookie::Key,
    ) -> actix_session::SessionMiddleware<S> {
        actix_session::SessionMiddleware::builder(store, key)
            .cookie_secure(false)
            .build()
    }
    let key = actix_web::cookie::Key::generate();
    Ok(match app {
        App::OursActixCookie => {
            let store = CookieSessions::new(KeyRing::new(KeyId(1), Secret::generate()?), config()?)?;
            let middleware = session::http::actix::SessionMiddleware::<Profile, _>::new(store);
            serve!(ours::init, ours::read, ours::rmw, move || middleware.clone())
        }
        App::OursActixRedis => {
            let store = crate::stores::ours_redis(redis_url()?).await?;
            let provider = SessionProvider::<Profile, _>::new(store, config()?);
            let middleware = session::http::actix::SessionMiddleware::new(provider);
            serve!(ours::init, ours::read, ours::rmw, move || middleware.clone())
        }
        App::ActixCookie => serve!(actix::init, actix::read, actix::rmw, move || actix_session(
            actix_session::storage::CookieSessionStore::default(),
            key.clone()
        )),
        App::ActixRedis => {
            let store = crate::stores::actix_redis(redis_url()?).await?;
            serve!(actix::init, actix::read, actix::rmw, move || actix_session(
                store.clone(),
                key.clone()
            ))
        }
        axum => return Err(format!("{axum} is an axum app: see router").into()),
    })
}

/// The three benchmark routes over these handlers.
pub(crate) fn routes<H1, T1, H2, T2, H3, T3>(init: H1, read: H2, rmw: H3) -> Router
where
    H1: axum::handler::Handler<T1, ()>,
    H2: axum::handler::Handler<T2, ()>,
    H3: axum::handler::Handler<T3, ()>,
    T1: 'static,
    T2: 'static,
    T3: 'static,
{
    Router::new()
        .route("/init", get(init))
        .route("/read", get(read))
        .route("/rmw", get(rmw))
}

/// Handlers without any session.
mod plain {
    use super::*;

    static VISITS: AtomicU64 = AtomicU64::new(content::VISITS);

    pub(super) async fn init() -> String {
        VISITS.load(Ordering::Relaxed).to_string()
    }

    pub(super) async fn read() -> String {
        VISITS.load(Ordering::Relaxed).to_string()
    }

    pub(super) async fn rmw() -> String {
        (VISITS.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }
}

/// Handlers over this crate's lazy session.
pub(crate) mod ours {
    use super::*;

    pub(crate) async fn init(session: LazySession<Profile>) -> Result<String, session::Error> {
        let mut session = session.load().await?;
        content::fill(&mut session);
        Ok(session.visits().to_string())
    }

    pub(crate) async fn read(session: LazySession<Profile>) -> Result<String, session::Error> {
        Ok(match session.existing().await? {
            Some(session) => session.visits().to_string(),
            None => "0".to_owned(),
        })
    }

    pub(crate) async fn rmw(session: LazySession<Profile>) -> Result<String, session::Error> {
        let mut session = session.load().await?;
        *session.visits_mut() += 1;
        Ok(session.visits().to_string())
    }
}

/// Handlers over tower-sessions' `Session`, written as its documentation shows.
pub(crate) mod tower {
    use super::*;
    use tower_sessions::Session;

    fn failed(error: tower_sessions::session::Error) -> StatusCode {
        eprintln!("tower-sessions error: {error}");
        StatusCode::INTERNAL_SERVER_ERROR
    }

    pub(crate) async fn init(session: Session) -> Result<String, StatusCode> {
        for (key, value) in content::tower_data() {
            session.insert_value(&key, value).await.map_err(failed)?;
        }
        Ok(content::VISITS.to_string())
    }

    pub(crate) async fn read(session: Session) -> Result<String, StatusCode> {
        let visits: Option<u64> = session.get("visits").await.map_err(failed)?;
        Ok(visits.unwrap_or(0).to_string())
    }

    pub(crate) async fn rmw(session: Session) -> Result<String, StatusCode> {
        let visits = session.get::<u64>("visits").await.map_err(failed)?.unwrap_or(0) + 1;
        session.insert("visits", visits).await.map_err(failed)?;
        Ok(visits.to_string())
    }
}

/// Handlers over actix-session's `Session`, written as its documentation shows.
pub(crate) mod actix {
    use actix_session::Session;
    use actix_web::error::ErrorInternalServerError;

    use super::*;

    pub(crate) async fn init(session: Session) -> actix_web::Result<String> {
        for (key, value) in content::tower_data() {
            session.insert(key, value).map_err(ErrorInternalServerError)?;
        }
        Ok(content::VISITS.to_string())
    }

    pub(crate) async fn read(session: Session) -> actix_web::Result<String> {
        let visits: Option<u64> = session.get("visits").map_err(ErrorInternalServerError)?;
        Ok(visits.unwrap_or(0).to_string())
    }

    pub(crate) async fn rmw(session: Session) -> actix_web::Result<String> {
        let visits = session
            .get::<u64>("visits")
            .map_err(ErrorInternalServerError)?
            .unwrap_or(0)
            + 1;
        session.insert("visits", visits).map_err(ErrorInternalServerError)?;
        Ok(visits.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for app in App::ALL {
            assert_eq!(app.name().parse::<App>(), Ok(app));
        }
        assert!("nope".parse::<App>().is_err());
    }
}
