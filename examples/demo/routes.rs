//! The demo's routes (listed in `main.rs`) as plain functions over the request's
//! [`LazySession`]: no web framework here. The axum app (`app.rs`) and the actix-web app
//! (`examples/actix_demo/app.rs`) each register [`ROUTES`] and turn a [`Reply`] into their
//! own response, so both serve exactly the same application.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use serde_json::{Value, json};
use session::{
    CookieSessions, Error, Expiring, Expiry, Flash, Session, SessionConfig, SessionData, SessionProvider,
    http::{LazySession, SessionBackend},
    store::IndexStore,
};

/// Everything the demo remembers about a visitor.
#[derive(SessionData, Debug)]
pub struct DemoSession {
    /// Indexed: every session of one user can be listed and ended together.
    #[session(index)]
    pub user: Option<String>,
    pub visits: u64,
    #[session(flash)]
    pub notice: Flash<String>,
    /// A verification code, readable for [`Context::code_ttl`] after `PUT /api/code`.
    #[session(expiring)]
    pub code: Expiring<String>,
    pub theme: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    pub currency: Option<String>,
    pub font_size: Option<String>,
    pub density: Option<String>,
    pub sidebar: Option<String>,
    pub notifications: Option<String>,
}

/// The preference names of `PUT /api/prefs/{name}`, in display order.
pub const PREFERENCES: [&str; 8] = [
    "theme",
    "language",
    "timezone",
    "currency",
    "font_size",
    "density",
    "sidebar",
    "notifications",
];

/// The page at `GET /`: one HTML file, no external assets; it drives the JSON API.
pub const PAGE: &str = include_str!("page.html");

/// An HTTP method of [`ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
}

/// What a route does; [`handle`] runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Page,
    Visit,
    Peek,
    Info,
    Login,
    Logout,
    Flash,
    Private,
    Prefs,
    SetPref,
    Code,
    SetCode,
    Sudo,
    StartSudo,
    Devices,
    LogoutOthers,
    LogoutEverywhere,
}

/// One route: method, path (`{name}` is the one path parameter), action, and whether it
/// needs a logged-in session (401 otherwise, from the session guard).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub action: Action,
    pub logged_in_only: bool,
}

const fn route(method: Method, path: &'static str, action: Action) -> Route {
    Route {
        method,
        path,
        action,
        logged_in_only: false,
    }
}

/// Every route of the demo; both frameworks register exactly these.
pub const ROUTES: &[Route] = &[
    route(Method::Get, "/", Action::Page),
    route(Method::Get, "/api/visit", Action::Visit),
    route(Method::Get, "/api/peek", Action::Peek),
    route(Method::Get, "/api/session", Action::Info),
    route(Method::Post, "/api/login", Action::Login),
    route(Method::Post, "/api/logout", Action::Logout),
    route(Method::Post, "/api/flash", Action::Flash),
    Route {
        logged_in_only: true,
        ..route(Method::Get, "/api/private", Action::Private)
    },
    route(Method::Get, "/api/prefs", Action::Prefs),
    route(Method::Put, "/api/prefs/{name}", Action::SetPref),
    route(Method::Get, "/api/code", Action::Code),
    route(Method::Put, "/api/code", Action::SetCode),
    route(Method::Get, "/api/sudo", Action::Sudo),
    Route {
        logged_in_only: true,
        ..route(Method::Post, "/api/sudo", Action::StartSudo)
    },
    Route {
        logged_in_only: true,
        ..route(Method::Get, "/api/devices", Action::Devices)
    },
    Route {
        logged_in_only: true,
        ..route(Method::Post, "/api/logout/others", Action::LogoutOthers)
    },
    Route {
        logged_in_only: true,
        ..route(Method::Post, "/api/logout/everywhere", Action::LogoutEverywhere)
    },
];

/// The predicate of the guarded routes.
pub fn logged_in(session: &Session<DemoSession>) -> bool {
    session.user().is_some()
}

/// What the application knows besides the session.
#[derive(Clone)]
pub struct Context {
    /// Every session of a user, from the backend ([`DemoStore::accounts`]).
    pub accounts: Arc<dyn Accounts>,
    /// The store in use, as the start-up line names it.
    pub store: String,
    /// How long `PUT /api/code` keeps the code: `SESSION_DEMO_CODE_TTL_SECS`.
    pub code_ttl: Duration,
    /// How long sudo mode lasts: `SESSION_DEMO_SUDO_SECS`.
    pub sudo_ttl: Duration,
}

impl Context {
    /// The context of `backend`, whose store the page names `store`, with the default
    /// lifetimes of a code and of sudo mode.
    pub fn new(store: impl Into<String>, backend: &impl DemoStore) -> Self {
        Self {
            accounts: backend.accounts(),
            store: store.into(),
            code_ttl: DEFAULT_CODE_TTL,
            sudo_ttl: DEFAULT_SUDO_TTL,
        }
    }
}

/// The default of `SESSION_DEMO_CODE_TTL_SECS`.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(120);

/// The default of `SESSION_DEMO_SUDO_SECS`.
pub const DEFAULT_SUDO_TTL: Duration = Duration::from_secs(300);

/// Sudo mode: a sub-session spawned from the login session, with its own cookie and a
/// short life, valid only together with the session that started it.
#[derive(SessionData, Debug)]
pub struct SudoSession {
    /// When it was granted (ms since the epoch).
    pub granted_ms: u64,
}

/// What the demo needs of a session backend beyond loading and saving: the backend of the
/// sudo sub-sessions (the same store or key ring, the sudo cookie — `sudo`, or
/// `__Host-sudo` beside a `__Host-` session cookie — and its lifetime), and the operations
/// on every session of a user.
pub trait DemoStore: SessionBackend<DemoSession> {
    type Sudo: SessionBackend<SudoSession>;

    fn sudo(&self, lifetime: Duration) -> Result<Self::Sudo, Error>;

    fn accounts(&self) -> Arc<dyn Accounts>;
}

/// A boxed future of the [`Accounts`] operations.
pub type AccountsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// Every session of the logged-in user: listed, or ended.
pub trait Accounts: Send + Sync + 'static {
    /// Every live session of the user of `session`, as the devices list shows them; `None`
    /// where the store cannot list them (cookies).
    fn devices<'a>(&'a self, session: &'a Session<DemoSession>) -> AccountsFuture<'a, Option<Vec<Value>>>;

    /// Ends every other session of the user; how many, where the store can count them.
    fn logout_others<'a>(&'a self, session: &'a mut Session<DemoSession>) -> AccountsFuture<'a, Option<usize>>;

    /// Ends every session of the user, this one included.
    fn logout_everywhere<'a>(&'a self, session: &'a mut Session<DemoSession>) -> AccountsFuture<'a, ()>;
}

impl<S: IndexStore + Clone> Accounts for SessionProvider<DemoSession, S> {
    fn devices<'a>(&'a self, session: &'a Session<DemoSession>) -> AccountsFuture<'a, Option<Vec<Value>>> {
        Box::pin(async move {
            let listed = self.sessions_of(session).await?;
            Ok(Some(
                listed
                    .iter()
                    .map(|each| {
                        json!({
                            "current": each.current,
                            "created_ms": each.meta.created_ms,
                            "last_access_ms": each.meta.accessed_ms,
                            "user_agent": each.device.as_ref().and_then(|device| device.user_agent.clone()),
                        })
                    })
                    .collect(),
            ))
        })
    }

    fn logout_others<'a>(&'a self, session: &'a mut Session<DemoSession>) -> AccountsFuture<'a, Option<usize>> {
        Box::pin(async move { self.delete_others_of(session).await.map(Some) })
    }

    fn logout_everywhere<'a>(&'a self, session: &'a mut Session<DemoSession>) -> AccountsFuture<'a, ()> {
        Box::pin(async move { self.delete_all_of(session).await.map(drop) })
    }
}

/// The sudo cookie's configuration: the session cookie's, renamed, with the sudo lifetime.
pub fn sudo_config(config: &SessionConfig, lifetime: Duration) -> Result<SessionConfig, Error> {
    let name = if config.cookie().name.starts_with("__Host-") {
        "__Host-sudo"
    } else {
        "sudo"
    };
    config
        .to_builder()
        .cookie_name(name)
        .idle_timeout(lifetime)
        .absolute_timeout(lifetime)
        .max_age(None)
        .build()
}

impl<S: IndexStore + Clone> DemoStore for SessionProvider<DemoSession, S> {
    type Sudo = SessionProvider<SudoSession, S>;

    fn sudo(&self, lifetime: Duration) -> Result<Self::Sudo, Error> {
        Ok(SessionProvider::new(
            self.store().clone(),
            sudo_config(self.config(), lifetime)?,
        ))
    }

    fn accounts(&self) -> Arc<dyn Accounts> {
        Arc::new(self.clone())
    }
}

impl DemoStore for CookieSessions {
    type Sudo = CookieSessions;

    fn sudo(&self, lifetime: Duration) -> Result<Self::Sudo, Error> {
        self.with_config(sudo_config(self.config(), lifetime)?)
    }

    fn accounts(&self) -> Arc<dyn Accounts> {
        Arc::new(self.clone())
    }
}

/// Cookies cannot be listed (no server-side state), but they can be revoked: the demo's
/// cookie sessions carry a generation per user ([`CookieSessions::with_revocation`]).
impl Accounts for CookieSessions {
    fn devices<'a>(&'a self, _session: &'a Session<DemoSession>) -> AccountsFuture<'a, Option<Vec<Value>>> {
        Box::pin(async { Ok(None) })
    }

    fn logout_others<'a>(&'a self, session: &'a mut Session<DemoSession>) -> AccountsFuture<'a, Option<usize>> {
        Box::pin(async move { self.revoke_others_of(session).await.map(|_| None) })
    }

    fn logout_everywhere<'a>(&'a self, session: &'a mut Session<DemoSession>) -> AccountsFuture<'a, ()> {
        Box::pin(async move { self.revoke_all_of(session).await.map(drop) })
    }
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    Json(Value),
    Html(&'static str),
}

/// A response, for either framework to send.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Body,
}

fn json(value: Value) -> Reply {
    Reply {
        status: 200,
        body: Body::Json(value),
    }
}

fn error(status: u16, message: &str) -> Reply {
    Reply {
        status,
        body: Body::Json(json!({ "error": message })),
    }
}

/// A handler's answer; a session error becomes the framework's error response (503, 413
/// or 500), which the session middleware completes.
pub type Answer = Result<Reply, Error>;

/// Runs `action` for a request with `session`, the path parameter if the route has one,
/// and the request body.
pub async fn handle(
    action: Action,
    session: LazySession<DemoSession>,
    sudo: LazySession<SudoSession>,
    context: &Context,
    param: Option<String>,
    body: &[u8],
) -> Answer {
    match action {
        Action::Page => Ok(Reply {
            status: 200,
            body: Body::Html(PAGE),
        }),
        Action::Visit => visit(session).await,
        Action::Peek => peek(session).await,
        Action::Info => info(session, context).await,
        Action::Login => login(session, body).await,
        Action::Logout => logout(session, sudo).await,
        Action::Flash => flash(session, body).await,
        Action::Private => private(session).await,
        Action::Prefs => prefs(session).await,
        Action::SetPref => set_pref(session, param.as_deref().unwrap_or_default(), body).await,
        Action::Code => code(session).await,
        Action::SetCode => set_code(session, context, body).await,
        Action::Sudo => sudo_state(session, sudo).await,
        Action::StartSudo => start_sudo(session, sudo).await,
        Action::Devices => devices(session, context).await,
        Action::LogoutOthers => logout_others(session, context).await,
        Action::LogoutEverywhere => logout_everywhere(session, context).await,
    }
}

/// The JSON body for an error response the session layer answered with an empty body
/// (413, 503, 500): the demo speaks JSON. `None` for anything else.
pub fn layer_error_body(status: u16, empty: bool) -> Option<Value> {
    if !empty || !(400..600).contains(&status) || status == 401 {
        return None;
    }
    let error = match status {
        413 => "the session would grow past its size limit; nothing was stored",
        503 => "the session store is unavailable",
        _ => "the session could not be saved",
    };
    Some(json!({ "error": error }))
}

fn state(session: &Session<DemoSession>) -> Value {
    json!({ "visits": session.visits(), "user": session.user(), "notice": session.notice() })
}

async fn visit(session: LazySession<DemoSession>) -> Answer {
    let mut session = session.load().await?;
    *session.visits_mut() += 1;
    Ok(json(state(&session)))
}

async fn peek(session: LazySession<DemoSession>) -> Answer {
    Ok(json(match session.existing().await? {
        Some(mut session) => {
            // Reading must not consume the flash: keep it for the request it was meant for.
            session.keep_notice();
            state(&session)
        }
        None => json!({ "visits": 0, "user": null, "notice": null }),
    }))
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// Which optional parts of the page have routes behind them: the page shows a part only
/// when its route exists.
fn features() -> Value {
    let has = |path: &str| ROUTES.iter().any(|route| route.path == path);
    json!({
        "remember_me": true,
        "devices": has("/api/devices"),
        "logout_others": has("/api/logout/others"),
        "code": has("/api/code"),
        "sudo": has("/api/sudo"),
    })
}

/// `GET /api/session`: read only, like `peek`; when the session ends, and the store.
async fn info(session: LazySession<DemoSession>, context: &Context) -> Answer {
    let now = SystemTime::now();
    let expiry = match session.existing().await? {
        Some(mut session) => {
            session.keep_notice();
            let remaining = |deadline: SystemTime| deadline.duration_since(now).map_or(0, |left| left.as_secs());
            json!({
                "user": session.user(),
                "expires_in_secs": remaining(session.expires()),
                "idle_expires_in_secs": remaining(session.idle_deadline()),
                "absolute_expires_in_secs": remaining(session.absolute_deadline()),
                "expires_at_ms": unix_ms(session.expires()),
            })
        }
        None => json!({
            "user": null,
            "expires_in_secs": null,
            "idle_expires_in_secs": null,
            "absolute_expires_in_secs": null,
            "expires_at_ms": null,
        }),
    };
    let mut body = expiry;
    body["store"] = json!(context.store);
    body["preferences"] = json!(PREFERENCES);
    body["features"] = features();
    Ok(json(body))
}

#[derive(Deserialize)]
struct Login {
    user: String,
    #[serde(default)]
    remember: bool,
}

async fn login(session: LazySession<DemoSession>, body: &[u8]) -> Answer {
    let Ok(Login { user, remember }) = serde_json::from_slice(body) else {
        return Ok(error(400, "expected {\"user\": \"name\", \"remember\": false}"));
    };
    let user = user.trim().to_owned();
    if user.is_empty() || user.len() > 64 {
        return Ok(error(400, "user must be 1 to 64 characters"));
    }
    let mut session = session.load().await?;
    session.set_user(Some(user.clone()));
    // A new ID on every privilege change: a planted ID never becomes a logged-in one.
    session.regenerate_id()?;
    session.set_notice(format!("Welcome {user}"));
    session.set_expiry(if remember {
        // As long as the configured caps allow: SESSION_DEMO_REMEMBER_SECS (stores.rs).
        Expiry::Remember {
            idle: Duration::MAX,
            absolute: Duration::MAX,
        }
    } else {
        Expiry::BrowserSession
    });
    Ok(json(json!({ "user": user })))
}

async fn logout(session: LazySession<DemoSession>, sudo: LazySession<SudoSession>) -> Answer {
    if let Some(mut session) = session.existing().await? {
        // The grant would die with its parent anyway; deleting it now also expires its cookie.
        if let Some(mut grant) = sudo.existing_child_of(&session).await? {
            grant.delete();
        }
        session.delete();
    }
    Ok(json(json!({})))
}

/// `GET /api/devices` (logged in only): every live session of this user.
async fn devices(session: LazySession<DemoSession>, context: &Context) -> Answer {
    let Some(session) = session.existing().await? else {
        return Ok(error(401, "log in first"));
    };
    Ok(match context.accounts.devices(&session).await? {
        Some(devices) => json(json!({ "devices": devices })),
        None => error(501, "this store keeps no sessions to list: cookies hold them"),
    })
}

/// `POST /api/logout/others` (logged in only): every other session of this user ends.
async fn logout_others(session: LazySession<DemoSession>, context: &Context) -> Answer {
    let Some(mut session) = session.existing().await? else {
        return Ok(error(401, "log in first"));
    };
    let ended = context.accounts.logout_others(&mut session).await?;
    Ok(json(json!({ "ended": ended })))
}

/// `POST /api/logout/everywhere` (logged in only): every session of this user ends, this
/// one included (its cookie is expired by the response).
async fn logout_everywhere(session: LazySession<DemoSession>, context: &Context) -> Answer {
    let Some(mut session) = session.existing().await? else {
        return Ok(error(401, "log in first"));
    };
    context.accounts.logout_everywhere(&mut session).await?;
    Ok(json(json!({})))
}

/// `POST /api/sudo` (logged in only): a new sudo sub-session bound to this session.
async fn start_sudo(session: LazySession<DemoSession>, sudo: LazySession<SudoSession>) -> Answer {
    let Some(parent) = session.existing().await? else {
        return Ok(error(401, "log in first"));
    };
    let mut grant = sudo.spawn_child_of(&parent).await?;
    grant.set_granted_ms(unix_ms(SystemTime::now()));
    Ok(json(json!({})))
}

/// `GET /api/sudo`: whether this request carries a live sudo sub-session of its session.
async fn sudo_state(session: LazySession<DemoSession>, sudo: LazySession<SudoSession>) -> Answer {
    let granted = match session.existing().await? {
        Some(parent) => sudo.existing_child_of(&parent).await?.is_some(),
        None => false,
    };
    Ok(Reply {
        status: if granted { 200 } else { 403 },
        body: Body::Json(json!({ "sudo": granted })),
    })
}

#[derive(Deserialize)]
struct FlashBody {
    notice: String,
}

async fn flash(session: LazySession<DemoSession>, body: &[u8]) -> Answer {
    let Ok(FlashBody { notice }) = serde_json::from_slice(body) else {
        return Ok(error(400, "expected {\"notice\": \"text\"}"));
    };
    session.load().await?.set_notice(notice);
    Ok(json(json!({})))
}

async fn private(session: LazySession<DemoSession>) -> Answer {
    let user = session.existing().await?.and_then(|session| session.user().clone());
    Ok(json(json!({ "user": user })))
}

async fn prefs(session: LazySession<DemoSession>) -> Answer {
    let session = session.existing().await?;
    let mut out = serde_json::Map::new();
    for name in PREFERENCES {
        let value = session.as_ref().and_then(|session| preference(session, name).clone());
        out.insert(name.to_owned(), value.map_or(Value::Null, Value::String));
    }
    Ok(json(Value::Object(out)))
}

fn preference<'a>(session: &'a Session<DemoSession>, name: &str) -> &'a Option<String> {
    match name {
        "theme" => session.theme(),
        "language" => session.language(),
        "timezone" => session.timezone(),
        "currency" => session.currency(),
        "font_size" => session.font_size(),
        "density" => session.density(),
        "sidebar" => session.sidebar(),
        _ => session.notifications(),
    }
}

#[derive(Deserialize)]
struct PrefBody {
    value: String,
}

async fn set_pref(session: LazySession<DemoSession>, name: &str, body: &[u8]) -> Answer {
    if !PREFERENCES.contains(&name) {
        return Ok(error(404, &format!("unknown preference {name:?}")));
    }
    let Ok(PrefBody { value }) = serde_json::from_slice(body) else {
        return Ok(error(400, "expected {\"value\": \"text\"}"));
    };
    let mut session = session.load().await?;
    // Each preference is its own field: concurrent requests setting different ones all keep their change.
    let value = Some(value);
    match name {
        "theme" => session.set_theme(value),
        "language" => session.set_language(value),
        "timezone" => session.set_timezone(value),
        "currency" => session.set_currency(value),
        "font_size" => session.set_font_size(value),
        "density" => session.set_density(value),
        "sidebar" => session.set_sidebar(value),
        _ => session.set_notifications(value),
    }
    Ok(json(json!({})))
}

/// `GET /api/code`: read only, like `peek`; null once the code's time to live has passed.
async fn code(session: LazySession<DemoSession>) -> Answer {
    let code = match session.existing().await? {
        Some(mut session) => {
            session.keep_notice();
            session.code().cloned()
        }
        None => None,
    };
    Ok(json(json!({ "code": code })))
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

/// `PUT /api/code`: keeps the code for `context.code_ttl`; the session's own lifetime does
/// not move for it.
async fn set_code(session: LazySession<DemoSession>, context: &Context, body: &[u8]) -> Answer {
    let Ok(CodeBody { code }) = serde_json::from_slice(body) else {
        return Ok(error(400, "expected {\"code\": \"text\"}"));
    };
    if code.is_empty() || code.len() > 64 {
        return Ok(error(400, "code must be 1 to 64 characters"));
    }
    session.load().await?.set_code(code, context.code_ttl);
    Ok(json(json!({})))
}
