//! The per-request session handle: loads on first use, at most once.

use std::{
    fmt,
    future::Future,
    ops::{Deref, DerefMut},
    pin::Pin,
    sync::Arc,
};

use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use super::backend::{RequestOutcome, SessionBackend};
use crate::{ClientInfo, Error, Session, SessionData};

type LoadFuture<'a, T> = Pin<Box<dyn Future<Output = Result<Option<Session<T>>, Error>> + Send + 'a>>;

/// The backend, with its type erased so that handlers name only the session type.
pub(crate) trait Loader<T: SessionData>: Send + Sync {
    // Borrows rather than clones: the request's cookie and client outlive the load.
    fn load<'a>(&'a self, cookie: &'a str, client: &'a ClientInfo) -> LoadFuture<'a, T>;
    fn create(&self) -> Result<Session<T>, Error>;
    /// Deletes a stored session now.
    fn discard<'a>(&'a self, session: &'a mut Session<T>, client: &'a ClientInfo) -> DiscardFuture<'a>;
}

type DiscardFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

impl<T: SessionData, B: SessionBackend<T>> Loader<T> for B {
    fn load<'a>(&'a self, cookie: &'a str, client: &'a ClientInfo) -> LoadFuture<'a, T> {
        Box::pin(SessionBackend::load(self, cookie, client))
    }

    fn create(&self) -> Result<Session<T>, Error> {
        SessionBackend::create(self)
    }

    fn discard<'a>(&'a self, session: &'a mut Session<T>, client: &'a ClientInfo) -> DiscardFuture<'a> {
        session.delete();
        Box::pin(async move {
            SessionBackend::commit(self, session, client, RequestOutcome::Succeeded)
                .await
                .map(drop)
        })
    }
}

/// What the layer does when the store cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutagePolicy {
    /// Answer 503 Service Unavailable (the default): no request runs on a session it could
    /// not verify.
    #[default]
    FailClosed,
    /// Serve the request with an anonymous session that is never saved, leaving the
    /// stored session untouched.
    Degrade,
}

/// The rejection when a handler asks for a session but no session layer (axum) or
/// middleware (actix-web) for that session type is installed.
#[cfg(any(feature = "axum", feature = "actix"))]
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "no session layer for `{0}`: add `.layer(SessionLayer::new(provider))` to the axum router (after the routes that use the session), or `.wrap(actix::SessionMiddleware::new(provider))` to the actix-web app"
)]
pub struct MissingSessionLayer(&'static str);

#[cfg(any(feature = "axum", feature = "actix"))]
impl MissingSessionLayer {
    pub(crate) fn of<T>() -> Self {
        Self(std::any::type_name::<T>())
    }
}

/// What happened to the session during the request, beside what the request brought to
/// load it (one allocation per request for both).
pub(crate) struct Slot<T: SessionData> {
    pub(crate) session: Option<Session<T>>,
    /// The store was unreachable when the session was loaded.
    pub(crate) outage: bool,
    /// The session is an anonymous stand-in because of an outage: never saved.
    pub(crate) degraded: bool,
    /// The cookie did not designate a live session: loaded once, found nothing.
    pub(crate) looked_up: bool,
    /// The values of the request's session cookies, usually one.
    pub(crate) cookies: Vec<String>,
    pub(crate) client: ClientInfo,
    loader: Arc<dyn Loader<T>>,
    outage_policy: OutagePolicy,
}

/// The session of the current request, loaded on first use.
///
/// [`SessionLayer`](super::SessionLayer) puts one into every request's extensions; with the
/// `axum` feature it is an extractor. Cloning it is cheap and every clone refers to the same
/// session.
pub struct LazySession<T: SessionData> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T: SessionData> Clone for LazySession<T> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
        }
    }
}

impl<T: SessionData> fmt::Debug for LazySession<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("LazySession");
        // Not while a handler holds the session: formatting never waits.
        if let Ok(slot) = self.slot.try_lock() {
            debug.field("has_cookie", &!slot.cookies.is_empty());
        }
        debug.finish_non_exhaustive()
    }
}

/// Exclusive access to the request's session; dereferences to [`Session<T>`], and so to
/// the generated accessors. Drop it before awaiting anything slow.
pub struct SessionGuard<T: SessionData> {
    guard: OwnedMappedMutexGuard<Slot<T>, Session<T>>,
}

impl<T: SessionData> Deref for SessionGuard<T> {
    type Target = Session<T>;

    fn deref(&self) -> &Session<T> {
        &self.guard
    }
}

impl<T: SessionData> DerefMut for SessionGuard<T> {
    fn deref_mut(&mut self) -> &mut Session<T> {
        &mut self.guard
    }
}

impl<T: SessionData + fmt::Debug> fmt::Debug for SessionGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: SessionData> LazySession<T> {
    pub(crate) fn new(
        loader: Arc<dyn Loader<T>>,
        cookies: Vec<String>,
        client: ClientInfo,
        outage_policy: OutagePolicy,
    ) -> Self {
        let slot = Slot {
            session: None,
            outage: false,
            degraded: false,
            looked_up: false,
            cookies,
            client,
            loader,
            outage_policy,
        };
        Self {
            slot: Arc::new(Mutex::new(slot)),
        }
    }

    pub(crate) fn slot(&self) -> &Arc<Mutex<Slot<T>>> {
        &self.slot
    }

    /// The request's session: the client's live session, or a new one (stored only if
    /// the handler puts something in it). A sub-session is never given out here: see
    /// [`existing_child_of`](Self::existing_child_of).
    ///
    /// # Errors
    ///
    /// When the store is unreachable and the layer fails closed (the default; the layer
    /// then answers 503 whatever the handler returns), or no ID can be generated.
    pub async fn load(&self) -> Result<SessionGuard<T>, Error> {
        let mut slot = self.lookup().await?;
        if slot.session.as_ref().is_none_or(Session::is_child) {
            let created = slot.loader.create()?;
            slot.session = Some(created);
        }
        Ok(Self::guard(slot).expect("a session was just put in the slot"))
    }

    /// The client's live session, without creating one: `None` when the request carries
    /// no valid session, or carries a sub-session (see
    /// [`existing_child_of`](Self::existing_child_of)).
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub async fn existing(&self) -> Result<Option<SessionGuard<T>>, Error> {
        let slot = self.lookup().await?;
        if slot.session.as_ref().is_some_and(Session::is_child) {
            return Ok(None);
        }
        Ok(Self::guard(slot))
    }

    /// The request's sub-session of `parent` (say, sudo mode under the login session):
    /// `None` unless the request carries a live sub-session spawned from `parent` as it is
    /// now (see [`Session::is_child_of`]). One spawned from another session (another
    /// login, another user, this session before its ID changed) is refused: deleted, and
    /// its cookie expired by the response.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub async fn existing_child_of<P: SessionData>(
        &self,
        parent: &Session<P>,
    ) -> Result<Option<SessionGuard<T>>, Error> {
        let mut slot = self.lookup().await?;
        match slot.session.as_mut() {
            Some(child) if child.is_child_of(parent) => Ok(Self::guard(slot)),
            Some(other) => {
                if !other.is_new() {
                    other.delete();
                }
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Starts a new sub-session of `parent` for this request's client, replacing (and
    /// deleting at once) any session of this type the request carried; stored by the
    /// layer after the handler, with its own cookie. Its absolute deadline never passes
    /// the parent's, and it is valid only together with `parent` as it is now.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load); or when the replaced session cannot be deleted.
    pub async fn spawn_child_of<P: SessionData>(&self, parent: &Session<P>) -> Result<SessionGuard<T>, Error> {
        let mut slot = self.lookup().await?;
        if let Some(mut replaced) = slot.session.take()
            && !replaced.is_new()
        {
            slot.loader.discard(&mut replaced, &slot.client).await?;
        }
        let mut child = slot.loader.create()?;
        child.tie_to(parent);
        slot.session = Some(child);
        Ok(Self::guard(slot).expect("a session was just put in the slot"))
    }

    fn guard(slot: OwnedMutexGuard<Slot<T>>) -> Option<SessionGuard<T>> {
        OwnedMutexGuard::try_map(slot, |slot| slot.session.as_mut())
            .ok()
            .map(|guard| SessionGuard { guard })
    }

    /// The first of the request's session cookies that designates a live session.
    async fn load_first_live(slot: &Slot<T>) -> Result<Option<Session<T>>, Error> {
        for cookie in &slot.cookies {
            if let Some(session) = slot.loader.load(cookie, &slot.client).await? {
                return Ok(Some(session));
            }
        }
        Ok(None)
    }

    /// Locks the slot, loading the client's session the first time.
    async fn lookup(&self) -> Result<OwnedMutexGuard<Slot<T>>, Error> {
        let mut slot = self.slot.clone().lock_owned().await;
        if slot.session.is_some() || slot.looked_up {
            return Ok(slot);
        }
        match Self::load_first_live(&slot).await {
            Ok(session) => {
                slot.session = session;
                slot.looked_up = true;
                Ok(slot)
            }
            Err(error) if error.is_unavailable() => {
                slot.outage = true;
                match slot.outage_policy {
                    OutagePolicy::FailClosed => Err(error),
                    OutagePolicy::Degrade => {
                        tracing::warn!(%error, "session store unavailable: serving an anonymous session");
                        slot.degraded = true;
                        slot.looked_up = true;
                        Ok(slot)
                    }
                }
            }
            Err(error) => Err(error),
        }
    }
}
