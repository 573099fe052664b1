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

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use super::{
    backend::SessionBackend,
    commit, cookie,
    lazy::{LazySession, Loader, OutagePolicy},
    response::error_response,
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

    /// Takes the client IP from this header instead of the connection's peer: the last
    /// entry of its last occurrence, the one your own proxy appended (earlier entries are
    /// what the client sent, and are ignored; a last entry that is not an IP address leaves
    /// the address unknown). Set it only behind a proxy that always sets the header; a
    /// client can write any value into it otherwise.
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
        let cookies = cookie::read(request.headers(), &backend.config().cookie().name);
        let client = client_info(&request, options.trusted_proxy_header.as_ref());
        let session = LazySession::new(self.layer.loader.clone(), cookies, client, options.outage_policy);
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
        // Only the last entry is the proxy's own; earlier ones are what the client sent.
        // An entry that does not parse leaves the address unknown.
        Some(name) => request
            .headers()
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok()),
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

/// Writes the session after the handler (see [`commit::commit`]) and applies the outcome
/// to the response.
async fn commit<T: SessionData, B: SessionBackend<T>, ResBody: Default>(
    backend: &B,
    frame: Option<&cookie::SetCookieFrame>,
    session: &LazySession<T>,
    response: &mut Response<ResBody>,
) {
    let outcome = commit::commit(backend, session, response.status().as_u16()).await;
    if let Some(error) = &outcome.error {
        *response = error_response(error);
    } else if let Some(value) = &outcome.cookie {
        set_cookie(backend, frame, response, value.as_deref());
    }
    if outcome.read_session {
        keep_out_of_shared_caches(response.headers_mut());
    }
}

/// A response built from a session depends on the request's cookie: `Vary: Cookie`, and
/// `Cache-Control: private` unless the application chose `private` or `no-store` itself
/// (a `public` it chose is replaced).
fn keep_out_of_shared_caches(headers: &mut HeaderMap) {
    let varies = headers.get_all(header::VARY).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|name| matches!(name.trim(), "*") || name.trim().eq_ignore_ascii_case("cookie"))
        })
    });
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
    }
    let directives: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .map(|directive| directive.trim().to_owned())
        .filter(|directive| !directive.is_empty())
        .collect();
    let private = |directive: &String| {
        let name = directive.split('=').next().unwrap_or_default().trim();
        name.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store")
    };
    if directives.iter().any(private) {
        return;
    }
    let mut kept: Vec<String> = directives
        .into_iter()
        .filter(|directive| !directive.eq_ignore_ascii_case("public"))
        .collect();
    kept.insert(0, "private".to_owned());
    if let Ok(value) = HeaderValue::from_str(&kept.join(", ")) {
        headers.insert(header::CACHE_CONTROL, value);
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
