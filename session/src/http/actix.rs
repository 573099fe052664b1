//! actix-web integration (feature `actix`): [`SessionMiddleware`], the extractor
//! [`LazySession`], and [`RequireSession`] (401).
//!
//! The behaviour is the tower layer's, from the same code: the session is loaded on first
//! use, saved after the handler only if needed (never after a 5xx, except a deletion or an
//! ID regeneration), a bad cookie starts a fresh session, an unreachable store answers 503
//! or degrades ([`OutagePolicy`]), and every response that read the session carries
//! `Vary: Cookie` and `Cache-Control: private` (or `no-store` when it sets the cookie). Only
//! the wrapping of requests and responses is here.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use session::http::{LazySession, actix::SessionMiddleware};
//! use session::{Error, MemoryStore, SessionConfig, SessionData, SessionProvider};
//!
//! #[derive(SessionData)]
//! struct AppSession {
//!     visits: u64,
//! }
//!
//! async fn visit(session: LazySession<AppSession>) -> Result<String, Error> {
//!     let mut session = session.load().await?;
//!     *session.visits_mut() += 1;
//!     Ok(format!("visit number {}", session.visits()))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::production().build()?);
//! let middleware = SessionMiddleware::new(provider); // shared by every worker
//! HttpServer::new(move || App::new().route("/", web::get().to(visit)).wrap(middleware.clone()))
//!     .bind("127.0.0.1:3000")?
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```

use std::{
    borrow::Cow,
    fmt,
    future::{Future, Ready, ready},
    marker::PhantomData,
    pin::Pin,
    rc::Rc,
    sync::Arc,
};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::{BoxBody, EitherBody, MessageBody},
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::{
        StatusCode,
        header::{self, HeaderName, HeaderValue},
    },
};

use super::{
    backend::SessionBackend,
    commit::{Header, ResponseParts},
    cookie, guard,
    lazy::{LazySession, MissingSessionLayer, OutagePolicy},
    response::status_of,
    shared::{SessionCore, client_info},
};
use crate::{Error, Session, SessionData};

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Adds a [`LazySession<T>`] to every request and commits it after the handler: the
/// actix-web counterpart of [`SessionLayer`](super::SessionLayer). Install it with
/// `App::wrap`; clone it into each worker's `App` (the clones share the backend).
pub struct SessionMiddleware<T: SessionData, B> {
    core: Arc<SessionCore<T, B>>,
}

impl<T: SessionData, B> Clone for SessionMiddleware<T, B> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
        }
    }
}

impl<T: SessionData, B> fmt::Debug for SessionMiddleware<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionMiddleware").field(&self.core).finish()
    }
}

impl<T: SessionData, B: SessionBackend<T>> SessionMiddleware<T, B> {
    /// A middleware over `backend`: a [`SessionProvider`](crate::SessionProvider) or a
    /// cookie store.
    pub fn new(backend: B) -> Self {
        Self {
            core: Arc::new(SessionCore::new(backend)),
        }
    }

    /// Sets what happens when the store is unreachable.
    #[must_use]
    pub fn on_store_outage(mut self, policy: OutagePolicy) -> Self {
        Arc::make_mut(&mut self.core).outage_policy = policy;
        self
    }

    /// Takes the client IP from this header instead of the connection's peer, as
    /// [`SessionLayer::trusted_proxy_header`](super::SessionLayer::trusted_proxy_header)
    /// does: the last entry of its last occurrence. Set it only behind a proxy that always
    /// sets the header.
    #[must_use]
    pub fn trusted_proxy_header(mut self, header: HeaderName) -> Self {
        Arc::make_mut(&mut self.core).trusted_proxy_header = Some(header.as_str().to_owned());
        self
    }
}

impl<S, Bd, T, B> Transform<S, ServiceRequest> for SessionMiddleware<T, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<Bd>, Error = actix_web::Error> + 'static,
    Bd: MessageBody + 'static,
    T: SessionData,
    B: SessionBackend<T>,
{
    type Response = ServiceResponse<EitherBody<Bd>>;
    type Error = actix_web::Error;
    type Transform = SessionMiddlewareService<S, T, B>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionMiddlewareService {
            service: Rc::new(service),
            middleware: self.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around an inner service.
pub struct SessionMiddlewareService<S, T: SessionData, B> {
    service: Rc<S>,
    middleware: SessionMiddleware<T, B>,
}

impl<S, T: SessionData, B> fmt::Debug for SessionMiddlewareService<S, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMiddlewareService")
            .field("middleware", &self.middleware)
            .finish_non_exhaustive()
    }
}

impl<S, Bd, T, B> Service<ServiceRequest> for SessionMiddlewareService<S, T, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<Bd>, Error = actix_web::Error> + 'static,
    Bd: MessageBody + 'static,
    T: SessionData,
    B: SessionBackend<T>,
{
    type Response = ServiceResponse<EitherBody<Bd>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let core = self.middleware.core.clone();
        let headers = request.headers();
        let user_agent = headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok());
        let ip = core.ip_source(
            |name| headers.get_all(name).next_back().and_then(|value| value.to_str().ok()),
            || request.peer_addr().map(|addr| addr.ip()),
        );
        let client = client_info(user_agent, ip);
        let cookies = headers.get_all(header::COOKIE).filter_map(|value| value.to_str().ok());
        let session = core.begin(cookies, client);
        request.extensions_mut().insert(session.clone());

        let response = self.service.call(request);
        Box::pin(async move {
            let mut response = response.await?.map_into_left_body();
            core.finish(&session, &mut response).await;
            Ok(response)
        })
    }
}

fn header_name(header: Header) -> HeaderName {
    match header {
        Header::SetCookie => header::SET_COOKIE,
        Header::CacheControl => header::CACHE_CONTROL,
        Header::Vary => header::VARY,
    }
}

fn header_value(value: Cow<'static, str>) -> Result<HeaderValue, Error> {
    match value {
        Cow::Borrowed(text) => Ok(HeaderValue::from_static(text)),
        Cow::Owned(text) => HeaderValue::try_from(text).map_err(cookie::invalid_header),
    }
}

/// An empty response of `status` that is never cached.
fn status_response(status: StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

impl<Bd> ResponseParts for ServiceResponse<EitherBody<Bd>> {
    fn status(&self) -> u16 {
        ServiceResponse::status(self).as_u16()
    }

    fn values(&self, header: Header) -> impl Iterator<Item = &str> {
        self.headers()
            .get_all(header_name(header))
            .filter_map(|value| value.to_str().ok())
    }

    fn contains(&self, header: Header) -> bool {
        self.headers().contains_key(header_name(header))
    }

    fn append(&mut self, header: Header, value: Cow<'static, str>) -> Result<(), Error> {
        self.headers_mut().append(header_name(header), header_value(value)?);
        Ok(())
    }

    fn insert(&mut self, header: Header, value: Cow<'static, str>) -> Result<(), Error> {
        self.headers_mut().insert(header_name(header), header_value(value)?);
        Ok(())
    }

    fn replace_with_status(&mut self, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        *self.response_mut() = status_response(status).map_into_right_body();
    }
}

/// The request's session, from [`SessionMiddleware`]; without it, the handler answers 500
/// ([`MissingSessionLayer`]).
impl<T: SessionData> FromRequest for LazySession<T> {
    type Error = MissingSessionLayer;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            request
                .extensions()
                .get::<Self>()
                .cloned()
                .ok_or(MissingSessionLayer::of::<T>()),
        )
    }
}

impl ResponseError for MissingSessionLayer {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        tracing::error!("{self}");
        HttpResponse::InternalServerError().body(self.to_string())
    }
}

/// 503 when the store is unavailable, 413 for a session grown too large, 500 otherwise; the
/// details go to the log, not the client.
impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(status_of(self).as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let status = self.status_code();
        tracing::error!(error = %self, "session error");
        HttpResponse::build(status).body(status.canonical_reason().unwrap_or("error"))
    }
}

/// Lets a request through only if it carries a live session that satisfies a predicate;
/// otherwise answers 401 Unauthorized: the actix-web counterpart of
/// [`RequireSessionLayer`](super::RequireSessionLayer). It never creates a session.
///
/// Wrap it inside [`SessionMiddleware`] (a scope or resource with this guard, in an app
/// wrapped by the session middleware):
///
/// ```
/// use actix_web::{App, web};
/// use session::http::actix::{RequireSession, SessionMiddleware};
/// use session::{MemoryStore, Session, SessionConfig, SessionData, SessionProvider};
///
/// #[derive(SessionData)]
/// struct AppSession {
///     user: Option<String>,
/// }
///
/// # fn app() -> Result<(), session::Error> {
/// let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::production().build()?);
/// let app = App::new()
///     .service(
///         web::scope("/account")
///             .wrap(RequireSession::new(|session: &Session<AppSession>| session.user().is_some()))
///             .route("", web::get().to(|| async { "yours" })),
///     )
///     .wrap(SessionMiddleware::new(provider));
/// # let _ = app; Ok(()) }
/// ```
pub struct RequireSession<T, F> {
    predicate: Rc<F>,
    data: PhantomData<fn() -> T>,
}

impl<T, F> Clone for RequireSession<T, F> {
    fn clone(&self) -> Self {
        Self {
            predicate: self.predicate.clone(),
            data: PhantomData,
        }
    }
}

impl<T, F> fmt::Debug for RequireSession<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireSession").finish_non_exhaustive()
    }
}

impl<T: SessionData, F: Fn(&Session<T>) -> bool + 'static> RequireSession<T, F> {
    /// Requires a live session for which `predicate` holds.
    pub fn new(predicate: F) -> Self {
        Self {
            predicate: Rc::new(predicate),
            data: PhantomData,
        }
    }
}

impl<S, Bd, T, F> Transform<S, ServiceRequest> for RequireSession<T, F>
where
    S: Service<ServiceRequest, Response = ServiceResponse<Bd>, Error = actix_web::Error> + 'static,
    Bd: MessageBody + 'static,
    T: SessionData,
    F: Fn(&Session<T>) -> bool + 'static,
{
    type Response = ServiceResponse<EitherBody<Bd>>;
    type Error = actix_web::Error;
    type Transform = RequireSessionService<S, T, F>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireSessionService {
            service: Rc::new(service),
            guard: self.clone(),
        }))
    }
}

/// The service [`RequireSession`] wraps around an inner service.
pub struct RequireSessionService<S, T, F> {
    service: Rc<S>,
    guard: RequireSession<T, F>,
}

impl<S, T, F> fmt::Debug for RequireSessionService<S, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireSessionService").finish_non_exhaustive()
    }
}

impl<S, Bd, T, F> Service<ServiceRequest> for RequireSessionService<S, T, F>
where
    S: Service<ServiceRequest, Response = ServiceResponse<Bd>, Error = actix_web::Error> + 'static,
    Bd: MessageBody + 'static,
    T: SessionData,
    F: Fn(&Session<T>) -> bool + 'static,
{
    type Response = ServiceResponse<EitherBody<Bd>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let predicate = self.guard.predicate.clone();
        Box::pin(async move {
            let session = request.extensions().get::<LazySession<T>>().cloned();
            if let Err(status) = guard::check(session.as_ref(), &*predicate).await {
                let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(request.into_response(status_response(status)).map_into_right_body());
            }
            Ok(service.call(request).await?.map_into_left_body())
        })
    }
}
