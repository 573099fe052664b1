//! What happens after the handler, decided once for every HTTP framework: which writes the
//! session needs, and what the response must carry. The framework adapters (the tower
//! layer) only apply the decision to their response type.

use super::{
    backend::{CookieUpdate, RequestOutcome, SessionBackend},
    lazy::LazySession,
};
use crate::{Error, SessionData};

/// What the response must get after the handler.
#[derive(Debug, Default)]
pub(crate) struct Commit {
    /// Replace the response with an error status: the session could not be verified (503)
    /// or saved (503 or 500, see [`Error::is_unavailable`]).
    pub(crate) error: Option<Error>,
    /// Set (`Some(value)`) or expire (`None`) the session cookie.
    pub(crate) cookie: Option<Option<String>>,
    /// The session was read: the response depends on the cookie, so shared caches must
    /// not keep it (`Vary: Cookie`, `Cache-Control: private`).
    pub(crate) read_session: bool,
}

/// Writes what the request's session needs written, given the status the handler
/// answered with, and says what the response must carry.
///
/// On a 5xx only a deletion or an ID regeneration is written (a logout must happen even
/// when the page that did it failed); data changes are dropped.
pub(crate) async fn commit<T: SessionData, B: SessionBackend<T>>(
    backend: &B,
    session: &LazySession<T>,
    status: u16,
) -> Commit {
    let mut slot = session.slot().lock().await;
    let mut commit = Commit {
        read_session: slot.looked_up || slot.session.is_some(),
        ..Commit::default()
    };
    if slot.outage && !slot.degraded {
        commit.error = Some(Error::Unavailable(
            "the session store was unreachable during the request".into(),
        ));
        return commit;
    }
    if slot.degraded {
        return commit;
    }
    let Some(current) = slot.session.as_mut() else {
        return commit;
    };
    if current.is_new() && (current.is_deleted() || !current.is_dirty()) {
        // Nothing worth storing; an invalid cookie the client sent is expired.
        if current.is_deleted() && session.had_cookie() {
            commit.cookie = Some(None);
        }
        return commit;
    }
    let outcome = if status >= 500 {
        RequestOutcome::Failed
    } else {
        RequestOutcome::Succeeded
    };
    let ends_or_moves = current.is_deleted() || current.is_regenerated();
    if !current.needs_save() || (outcome == RequestOutcome::Failed && !ends_or_moves) {
        return commit;
    }
    match backend.commit(current, session.client(), outcome).await {
        Ok(CookieUpdate::Keep) => {}
        Ok(CookieUpdate::Set(value)) => commit.cookie = Some(Some(value)),
        Ok(CookieUpdate::Remove) => commit.cookie = Some(None),
        Err(error) => {
            tracing::error!(%error, "session could not be saved; the stored session is unchanged");
            commit.error = Some(error);
        }
    }
    commit
}
