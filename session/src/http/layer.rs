//! The tower layer: a lazy session in, the commit out.

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderName, HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use super::{
    backend::SessionBackend,
    commit::{Header, ResponseParts},
    cookie,
    lazy::OutagePolicy,
    response::status_response,
    shared::{SessionCore, client_info},
};
use crate::{Error, SessionData};

/// Adds a [`LazySession<T>`](super::LazySession) to every request and commits it after the handler.
///
/// See the [module documentation](super) for the behaviour.
pub struct SessionLayer<T: SessionData, B> {
    core: Arc<SessionCore<T, B>>,
}

impl<T: SessionData, B> Clone for SessionLayer<T, B> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
        }
    }
}

impl<T: SessionData, B> fmt::Debug for SessionLayer<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionLayer").field(&self.core).finish()
    }
}

impl<T: SessionData, B: SessionBackend<T>> SessionLayer<T, B> {
    /// A layer over `backend`: a [`SessionProvider`](crate::SessionProvider) or a cookie
    /// store.
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

    /// Takes the client IP from this header instead of the connection's peer: the last
    /// entry of its last occurrence, the one your own proxy appended (earlier entries are
    /// what the client sent, and are ignored; a last entry that is not an IP address leaves
    /// the address unknown). Set it only behind a proxy that always sets the header; a
    /// client can write any value into it otherwise.
    #[must_use]
    pub fn trusted_proxy_header(mut self, header: HeaderName) -> Self {
        Arc::make_mut(&mut self.core).trusted_proxy_header = Some(header.as_str().to_owned());
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
        let core = self.layer.core.clone();
        let headers = request.headers();
        let user_agent = headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok());
        let ip = core.ip_source(
            |name| {
                headers
                    .get_all(name)
                    .iter()
                    .next_back()
                    .and_then(|value| value.to_str().ok())
            },
            || peer_ip(&request),
        );
        let client = client_info(user_agent, ip);
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok());
        let session = core.begin(cookies, client);
        request.extensions_mut().insert(session.clone());

        // The clone that was polled ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            core.finish(&session, &mut response).await;
            Ok(response)
        })
    }
}

fn peer_ip<Body>(request: &Request<Body>) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip());
    }
    request.extensions().get::<SocketAddr>().map(SocketAddr::ip)
}

fn header_name(header: Header) -> header::HeaderName {
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

impl<ResBody: Default> ResponseParts for Response<ResBody> {
    fn status(&self) -> u16 {
        Response::status(self).as_u16()
    }

    fn values(&self, header: Header) -> impl Iterator<Item = &str> {
        self.headers()
            .get_all(header_name(header))
            .into_iter()
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
        *self = status_response(http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR));
    }
}
