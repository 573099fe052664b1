//! A layer that answers 401 unless the request carries a valid session.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use super::{
    lazy::LazySession,
    response::{status_of, status_response},
};
use crate::{Session, SessionData};

/// Lets a request through only if it carries a live session that satisfies a predicate
/// (e.g. "a user is logged in"); otherwise answers 401 Unauthorized. Like the Go seed's
/// enforcer.
///
/// Install it inside a [`SessionLayer`](super::SessionLayer) (that is, add it to the
/// router or service before the session layer). It never creates a session.
///
/// ```
/// use session::{Session, SessionData};
/// use session::http::RequireSessionLayer;
///
/// #[derive(SessionData)]
/// struct AppSession {
///     user: Option<String>,
/// }
///
/// let logged_in = RequireSessionLayer::new(|session: &Session<AppSession>| session.user().is_some());
/// # let _ = logged_in;
/// ```
pub struct RequireSessionLayer<T, F> {
    predicate: Arc<F>,
    data: PhantomData<fn() -> T>,
}

impl<T, F> Clone for RequireSessionLayer<T, F> {
    fn clone(&self) -> Self {
        Self {
            predicate: self.predicate.clone(),
            data: PhantomData,
        }
    }
}

impl<T, F> fmt::Debug for RequireSessionLayer<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireSessionLayer").finish_non_exhaustive()
    }
}

impl<T: SessionData, F: Fn(&Session<T>) -> bool + Send + Sync + 'static> RequireSessionLayer<T, F> {
    /// Requires a live session for which `predicate` holds.
    pub fn new(predicate: F) -> Self {
        Self {
            predicate: Arc::new(predicate),
            data: PhantomData,
        }
    }
}

impl<S, T, F> Layer<S> for RequireSessionLayer<T, F> {
    type Service = RequireSession<S, T, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireSession {
            inner,
            predicate: self.predicate.clone(),
            data: PhantomData,
        }
    }
}

/// The service of [`RequireSessionLayer`].
pub struct RequireSession<S, T, F> {
    inner: S,
    predicate: Arc<F>,
    data: PhantomData<fn() -> T>,
}

impl<S: Clone, T, F> Clone for RequireSession<S, T, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            predicate: self.predicate.clone(),
            data: PhantomData,
        }
    }
}

impl<S, T, F> fmt::Debug for RequireSession<S, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireSession").finish_non_exhaustive()
    }
}

impl<S, T, F, ReqBody, ResBody> Service<Request<ReqBody>> for RequireSession<S, T, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: SessionData,
    F: Fn(&Session<T>) -> bool + Send + Sync + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let predicate = self.predicate.clone();
        Box::pin(async move {
            let session = request.extensions().get::<LazySession<T>>().cloned();
            if let Err(status) = check(session.as_ref(), &*predicate).await {
                return Ok(status_response(status));
            }
            inner.call(request).await
        })
    }
}

/// Whether a request with `session` may pass the guard: `Ok`, or the status to answer
/// instead (401; 500 without a session middleware; the load's error status). Shared by
/// every framework's guard.
pub(crate) async fn check<T: SessionData, F: Fn(&Session<T>) -> bool>(
    session: Option<&LazySession<T>>,
    predicate: &F,
) -> Result<(), StatusCode> {
    let Some(session) = session else {
        tracing::error!("the session guard found no session: install the session layer or middleware outside it");
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    };
    match session.existing().await {
        Ok(Some(current)) if predicate(&current) => Ok(()),
        Ok(_) => Err(StatusCode::UNAUTHORIZED),
        Err(error) => Err(status_of(&error)),
    }
}
