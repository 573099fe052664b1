//! The tower layer: a lazy session in, the commit out.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service};

use super::{
    backend::{CookieUpdate, SessionBackend},
    cookie,
    lazy::{LazySession, Loader, OutagePolicy},
    response::{error_response, status_response},
};
use crate::{ClientInfo, SessionData};

#[derive(Clone)]
struct Options {
    outage_policy: OutagePolicy,
    trusted_proxy_header: Option<HeaderName>,
    /// The `Set-Cookie` text around the value, rendered once; `None` if the configuration
    /// cannot render (every set then reports why).
    frame: Option<cookie::SetCookieFrame>,
}

/// Adds a [`LazySession<T>`] to every request and commits it after the handler.
///
/// See the [module documentation](super) for the behaviour.
pub struct SessionLayer<T: SessionData, B> {
    backend: Arc<B>,
    /// The same backend, type-erased once rather than on every request.
    loader: Arc<dyn Loader<T>>,
    options: Arc<Options>,
    data: PhantomData<fn() -> T>,
}

impl<T: SessionData, B> Clone for SessionLayer<T, B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            loader: self.loader.clone(),
            options: self.options.clone(),
            data: PhantomData,
        }
    }
}

impl<T: SessionData, B> fmt::Debug for SessionLayer<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("outage_policy", &self.options.outage_policy)
            .field("trusted_proxy_header", &self.options.trusted_proxy_header)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData, B: SessionBackend<T>> SessionLayer<T, B> {
    /// A layer over `backend`: a [`SessionProvider`](crate::SessionProvider) or a cookie
    /// store.
    pub fn new(backend: B) -> Self {
        let frame = cookie::SetCookieFrame::new(backend.config().cookie()).ok();
        let backend = Arc::new(backend);
        Self {
            loader: backend.clone(),
            backend,
            options: Arc::new(Options {
                outage_policy: OutagePolicy::default(),
                trusted_proxy_header: None,
                frame,
            }),
            data: PhantomData,
        }
    }

    /// Sets what happens when the store is unreachable.
    #[must_use]
    pub fn on_store_outage(mut self, policy: OutagePolicy) -> Self {
        Arc::make_mut(&mut self.options).outage_policy = policy;
        self
    }

    /// Takes the client IP from this header (the last address in it, the one your own
    /// proxy appended) instead of the connection's peer. Set it only behind a proxy that
    /// always sets the header; a client can write any value into it otherwise.
    #[must_use]
    pub fn trusted_proxy_header(mut self, header: HeaderName) -> Self {
        Arc::make_mut(&mut self.options).trusted_proxy_header = Some(header);
        self
    }
}

impl<S, T: SessionData, B: SessionBackend<T>> Layer<S> for SessionLayer<T, B> {
    type Service = SessionService<S, T, B>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
pub struct SessionService<S, T: SessionData, B> {
    inner: S,
    layer: SessionLayer<T, B>,
}

impl<S: Clone, T: SessionData, B> Clone for SessionService<S, T, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, T: SessionData, B> fmt::Debug for SessionService<S, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S, T, B, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, T, B>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: SessionData,
    B: SessionBackend<T>,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let backend = self.layer.backend.clone();
        let options = self.layer.options.clone();
        let cookie = cookie::read(request.headers(), &backend.config().cookie().name);
        let client = client_info(&request, options.trusted_proxy_header.as_ref());
        let session = LazySession::new(self.layer.loader.clone(), cookie, client, options.outage_policy);
        request.extensions_mut().insert(session.clone());

        // The clone that was polled ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            commit(&*backend, options.frame.as_ref(), &session, &mut response).await;
            Ok(response)
        })
    }
}

fn client_info<Body>(request: &Request<Body>, trusted_header: Option<&HeaderName>) -> ClientInfo {
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let ip = match trusted_header {
        Some(name) => request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .next_back(),
        None => peer_ip(request),
    };
    ClientInfo { user_agent, ip }
}

fn peer_ip<Body>(request: &Request<Body>) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip());
    }
    request.extensions().get::<SocketAddr>().map(SocketAddr::ip)
}

/// Writes the session after the handler and sets the cookie accordingly.
async fn commit<T: SessionData, B: SessionBackend<T>, ResBody: Default>(
    backend: &B,
    frame: Option<&cookie::SetCookieFrame>,
    session: &LazySession<T>,
    response: &mut Response<ResBody>,
) {
    let mut slot = session.slot().lock().await;
    if slot.outage && !slot.degraded {
        *response = status_response(StatusCode::SERVICE_UNAVAILABLE);
        return;
    }
    if slot.degraded || response.status().is_server_error() {
        return;
    }
    let Some(current) = slot.session.as_mut() else {
        return;
    };
    if current.is_new() && (current.is_deleted() || !current.is_dirty()) {
        // Nothing worth storing; an invalid cookie the client sent is expired.
        if current.is_deleted() && session.had_cookie() {
            set_cookie(backend, frame, response, None);
        }
        return;
    }
    if !current.needs_save() {
        return;
    }
    let update = match backend.commit(current, session.client()).await {
        Ok(update) => update,
        Err(error) => {
            tracing::error!(%error, "session could not be saved; the stored session is unchanged");
            *response = error_response(&error);
            return;
        }
    };
    match update {
        CookieUpdate::Keep => {}
        CookieUpdate::Set(value) => set_cookie(backend, frame, response, Some(&value)),
        CookieUpdate::Remove => set_cookie(backend, frame, response, None),
    }
}

fn set_cookie<T: SessionData, B: SessionBackend<T>, ResBody: Default>(
    backend: &B,
    frame: Option<&cookie::SetCookieFrame>,
    response: &mut Response<ResBody>,
    value: Option<&str>,
) {
    let header = match (frame, value) {
        (Some(frame), Some(value)) => frame.header(value),
        _ => cookie::set_cookie(backend.config().cookie(), value),
    };
    match header {
        Ok(header) => {
            let headers = response.headers_mut();
            headers.append(header::SET_COOKIE, header);
            if !headers.contains_key(header::CACHE_CONTROL) {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
        }
        Err(error) => {
            tracing::error!(%error, "session cookie refused");
            *response = error_response(&error);
        }
    }
}
