//! What the layer needs from a session backend: a server-side provider or `CookieSessions`.

use std::future::Future;

use crate::{
    ClientInfo, CookieLifetime, Device, Error, SaveOutcome, Session, SessionConfig, SessionData, SessionProvider,
    device, store::SessionStore,
};

/// What the response must do with the session cookie after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieUpdate {
    /// Leave the client's cookie as it is.
    Keep,
    /// Set the cookie to this value.
    Set(String),
    /// Expire the cookie.
    Remove,
}

/// How the request a session belongs to ended, which decides what its commit writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The handler answered below 500: every change is written.
    Succeeded,
    /// The handler answered 5xx: a deletion or an ID regeneration is still applied (a
    /// logout must not be undone by a failing page), data changes are dropped.
    Failed,
}

/// A source of sessions for [`SessionLayer`](super::SessionLayer).
pub trait SessionBackend<T: SessionData>: Send + Sync + 'static {
    /// The configuration (cookie attributes, lifetimes).
    fn config(&self) -> &SessionConfig;

    /// A new, unsaved session.
    ///
    /// # Errors
    ///
    /// When no ID can be generated.
    fn create(&self) -> Result<Session<T>, Error>;

    /// The live session the cookie value designates; `None` for anything invalid,
    /// unknown or expired.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn load(&self, cookie: &str, client: &ClientInfo)
    -> impl Future<Output = Result<Option<Session<T>>, Error>> + Send;

    /// Writes what the session needs written after a request that ended as `outcome`, and
    /// says what to do with the cookie.
    ///
    /// # Errors
    ///
    /// When the backend fails or the session cannot be encoded; the stored session is
    /// then unchanged.
    fn commit(
        &self,
        session: &mut Session<T>,
        client: &ClientInfo,
        outcome: RequestOutcome,
    ) -> impl Future<Output = Result<CookieUpdate, Error>> + Send;
}

impl<T: SessionData, S: SessionStore> SessionBackend<T> for SessionProvider<T, S> {
    fn config(&self) -> &SessionConfig {
        SessionProvider::config(self)
    }

    fn create(&self) -> Result<Session<T>, Error> {
        SessionProvider::create(self)
    }

    async fn load(&self, cookie: &str, _client: &ClientInfo) -> Result<Option<Session<T>>, Error> {
        SessionProvider::load(self, cookie).await
    }

    async fn commit(
        &self,
        session: &mut Session<T>,
        client: &ClientInfo,
        outcome: RequestOutcome,
    ) -> Result<CookieUpdate, Error> {
        record_device(session, client, self.config().record_client_ip());
        // A persistent configured cookie's Max-Age slides with the session; a lifetime the
        // session chose is sent once, when chosen (its Max-Age runs to a fixed deadline).
        let slides = self.config().cookie().max_age.is_some();
        let chosen = session.pending_expiry().is_some() && outcome == RequestOutcome::Succeeded;
        let saved = match outcome {
            RequestOutcome::Succeeded => self.save(session).await,
            RequestOutcome::Failed => self.save_lifecycle_only(session).await,
        };
        match saved {
            Ok(SaveOutcome::Created | SaveOutcome::Regenerated) => Ok(CookieUpdate::Set(session.id().expose())),
            Ok(SaveOutcome::Updated | SaveOutcome::Refreshed)
                if chosen || (slides && session.meta().cookie == CookieLifetime::Configured) =>
            {
                Ok(CookieUpdate::Set(session.id().expose()))
            }
            Ok(SaveOutcome::Updated | SaveOutcome::Refreshed | SaveOutcome::Unchanged) => Ok(CookieUpdate::Keep),
            Ok(SaveOutcome::Deleted) => Ok(CookieUpdate::Remove),
            Err(Error::Gone) => {
                tracing::info!("session was deleted or expired during the request; its changes were dropped");
                Ok(CookieUpdate::Remove)
            }
            Err(error) => Err(error),
        }
    }
}

/// Records the client's device with a session that is about to be written: a new one, or
/// one whose User-Agent changed (a browser update, or a device never recorded). A write
/// happens anyway, so this adds bytes to it, never a write of its own.
fn record_device<T: SessionData>(session: &mut Session<T>, client: &ClientInfo, with_ip: bool) {
    if session.is_deleted() {
        return;
    }
    // Compared before anything is built: most writes are of a device already recorded.
    let agent = client.user_agent.as_deref().map(device::cut);
    if session.is_new()
        || session
            .device()
            .is_none_or(|stored| stored.user_agent.as_deref() != agent)
    {
        session.set_device(Device::from_client(client, with_ip));
    }
}
