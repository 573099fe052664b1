//! What happens after the handler, decided and applied once for every HTTP framework:
//! which writes the session needs, and what the response must carry. A framework adapter
//! (the tower layer, the actix-web middleware) only implements [`ResponseParts`] for its
//! response type.

use std::borrow::Cow;

use super::{
    backend::{CookieUpdate, RequestOutcome, SessionBackend},
    cookie::{self, SetCookieFrame},
    lazy::LazySession,
    response::status_of,
};
use crate::{Error, SessionData, expiry, set_cookie};

/// The response headers the commit reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    SetCookie,
    CacheControl,
    Vary,
}

/// A framework's response, as much of it as the commit needs.
pub(crate) trait ResponseParts {
    /// The status the handler answered with.
    fn status(&self) -> u16;
    /// The values of `header` that are text, in order.
    fn values(&self, header: Header) -> impl Iterator<Item = &str>;
    /// Whether the response has `header` at all.
    fn contains(&self, header: Header) -> bool;
    /// Adds a value of `header`; a value that is not a valid header is an error.
    fn append(&mut self, header: Header, value: Cow<'static, str>) -> Result<(), Error>;
    /// Replaces every value of `header` with `value`.
    fn insert(&mut self, header: Header, value: Cow<'static, str>) -> Result<(), Error>;
    /// Replaces the whole response with an empty one of `status` and `Cache-Control: no-store`.
    fn replace_with_status(&mut self, status: u16);
}

/// Commits the request's session after the handler and applies the decision to `response`:
/// an error status instead of the application's answer, the cookie, the cache headers.
pub(crate) async fn finish<T: SessionData, B: SessionBackend<T>, R: ResponseParts>(
    backend: &B,
    frame: Option<&SetCookieFrame>,
    session: &LazySession<T>,
    response: &mut R,
) {
    let outcome = commit(backend, session, response.status()).await;
    if let Some(error) = &outcome.error {
        response.replace_with_status(status_of(error).as_u16());
    } else if let Some(value) = &outcome.cookie {
        let config = backend.config().cookie();
        let text = match (value, outcome.max_age) {
            // The session chose its own cookie lifetime: rendered for it, not from the frame.
            (Some(value), Some(max_age)) => set_cookie::render_with_max_age(config, Some(value), max_age),
            _ => cookie::set_cookie_text(frame, config, value.as_deref()),
        };
        let set = text.and_then(|text| response.append(Header::SetCookie, Cow::Owned(text)));
        match set {
            // A response that sets the cookie is never stored, unless the application said otherwise.
            Ok(()) if !response.contains(Header::CacheControl) => {
                let _ = response.insert(Header::CacheControl, Cow::Borrowed("no-store"));
            }
            Ok(()) => {}
            Err(error) => {
                tracing::error!(%error, "session cookie refused");
                response.replace_with_status(status_of(&error).as_u16());
            }
        }
    }
    if outcome.read_session {
        keep_out_of_shared_caches(response);
    }
}

/// A response built from a session depends on the request's cookie: `Vary: Cookie`, and
/// `Cache-Control: private` unless the application chose `private` or `no-store` itself
/// (a `public` it chose is replaced).
pub(crate) fn keep_out_of_shared_caches<R: ResponseParts>(response: &mut R) {
    let varies = response.values(Header::Vary).any(|text| {
        text.split(',')
            .any(|name| matches!(name.trim(), "*") || name.trim().eq_ignore_ascii_case("cookie"))
    });
    if !varies {
        let _ = response.append(Header::Vary, Cow::Borrowed("Cookie"));
    }
    if !response.contains(Header::CacheControl) {
        let _ = response.insert(Header::CacheControl, Cow::Borrowed("private"));
        return;
    }
    // The common case (the `no-store` of a response that sets the cookie) allocates nothing.
    let private = response
        .values(Header::CacheControl)
        .flat_map(|text| text.split(','))
        .any(|directive| {
            let name = directive.split('=').next().unwrap_or_default().trim();
            name.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store")
        });
    if private {
        return;
    }
    let mut kept: Vec<String> = response
        .values(Header::CacheControl)
        .flat_map(|text| text.split(','))
        .map(str::trim)
        .filter(|directive| !directive.is_empty() && !directive.eq_ignore_ascii_case("public"))
        .map(str::to_owned)
        .collect();
    kept.insert(0, "private".to_owned());
    let _ = response.insert(Header::CacheControl, Cow::Owned(kept.join(", ")));
}

/// What the response must get after the handler.
#[derive(Debug, Default)]
pub(crate) struct Commit {
    /// Replace the response with an error status: the session could not be verified (503)
    /// or saved (503 or 500, see [`Error::is_unavailable`]).
    pub(crate) error: Option<Error>,
    /// Set (`Some(value)`) or expire (`None`) the session cookie.
    pub(crate) cookie: Option<Option<String>>,
    /// The `Max-Age` of a cookie set for a session that chose its own lifetime (`None`:
    /// the configured one).
    pub(crate) max_age: Option<Option<std::time::Duration>>,
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
    let mut guard = session.slot().lock().await;
    // Fields apart: the session is changed while the cookies and client are read.
    let slot = &mut *guard;
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
    // A spawned sub-session is worth storing even without data: it is the grant itself.
    if current.is_new() && (current.is_deleted() || !(current.is_dirty() || current.is_child())) {
        // Nothing worth storing; an invalid cookie the client sent is expired.
        if current.is_deleted() && !slot.cookies.is_empty() {
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
    match backend.commit(current, &slot.client, outcome).await {
        Ok(CookieUpdate::Keep) => {}
        Ok(CookieUpdate::Set(value)) => {
            commit.cookie = Some(Some(value));
            commit.max_age = expiry::cookie_max_age(current.meta(), backend.config().now_ms());
        }
        Ok(CookieUpdate::Remove) => commit.cookie = Some(None),
        Err(error) => {
            tracing::error!(%error, "session could not be saved; the stored session is unchanged");
            commit.error = Some(error);
        }
    }
    commit
}
