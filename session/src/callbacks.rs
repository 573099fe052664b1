//! Lifecycle callbacks: started, loaded, deleted (by ID or by key), regenerated, and rejected.

use std::{fmt, sync::Arc};

use crate::{
    id::{SessionId, StoreKey},
    rejection::Rejection,
};

type IdHook = Arc<dyn Fn(&SessionId) + Send + Sync>;
type KeyHook = Arc<dyn Fn(&StoreKey) + Send + Sync>;
type RegenerateHook = Arc<dyn Fn(&SessionId, &SessionId) + Send + Sync>;
type RejectHook = Arc<dyn Fn(Rejection) + Send + Sync>;

/// Functions the provider calls as sessions come and go, e.g. for audit logs.
///
/// They run inline, so keep them quick; they fire only after the store confirmed the
/// operation.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use session::Callbacks;
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let counter = started.clone();
/// let callbacks = Callbacks::new()
///     .on_started(move |_id| { counter.fetch_add(1, Ordering::Relaxed); })
///     .on_regenerated(|_old, _new| tracing::info!("session ID rotated"));
/// # let _ = callbacks;
/// ```
#[derive(Clone, Default)]
pub struct Callbacks {
    pub(crate) started: Option<IdHook>,
    pub(crate) loaded: Option<IdHook>,
    pub(crate) deleted: Option<IdHook>,
    pub(crate) deleted_key: Option<KeyHook>,
    pub(crate) regenerated: Option<RegenerateHook>,
    pub(crate) rejected: Option<RejectHook>,
}

impl Callbacks {
    /// No callbacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Called when a new session is first stored.
    #[must_use]
    pub fn on_started(mut self, hook: impl Fn(&SessionId) + Send + Sync + 'static) -> Self {
        self.started = Some(Arc::new(hook));
        self
    }

    /// Called when a live session is loaded.
    #[must_use]
    pub fn on_loaded(mut self, hook: impl Fn(&SessionId) + Send + Sync + 'static) -> Self {
        self.loaded = Some(Arc::new(hook));
        self
    }

    /// Called when a stored session is deleted through its own handle (a logout:
    /// [`SessionProvider::delete`](crate::SessionProvider::delete), or a save of a session
    /// marked deleted), with its ID. Sessions deleted by key, whose ID the provider does not
    /// know, go to [`on_deleted_key`](Self::on_deleted_key) instead: each deletion calls
    /// exactly one of the two.
    #[must_use]
    pub fn on_deleted(mut self, hook: impl Fn(&SessionId) + Send + Sync + 'static) -> Self {
        self.deleted = Some(Arc::new(hook));
        self
    }

    /// Called for each session deleted by key, with the [`StoreKey`] it was stored under
    /// (which is [`SessionId::store_key`] of its ID): the sessions ended by the bulk
    /// operations ([`delete_where`](crate::SessionProvider::delete_where),
    /// [`clear`](crate::SessionProvider::clear)) and by the index operations
    /// ([`delete_all_of`](crate::SessionProvider::delete_all_of),
    /// [`delete_others_of`](crate::SessionProvider::delete_others_of),
    /// [`delete_index`](crate::SessionProvider::delete_index)), except the caller's own
    /// session in `delete_all_of`, which [`on_deleted`](Self::on_deleted) reports with its
    /// ID. Stores keep only the digest of an ID, so that is all a deletion by key can tell.
    #[must_use]
    pub fn on_deleted_key(mut self, hook: impl Fn(&StoreKey) + Send + Sync + 'static) -> Self {
        self.deleted_key = Some(Arc::new(hook));
        self
    }

    /// Called with `(old, new)` when a stored session's ID is regenerated.
    #[must_use]
    pub fn on_regenerated(mut self, hook: impl Fn(&SessionId, &SessionId) + Send + Sync + 'static) -> Self {
        self.regenerated = Some(Arc::new(hook));
        self
    }

    /// Called when a presented session is refused for a reason worth attention (a
    /// malformed or tampered cookie, another client's session; see [`Rejection`]). The
    /// request goes on with a fresh session; a rate-limited warning is logged as well.
    #[must_use]
    pub fn on_rejected(mut self, hook: impl Fn(Rejection) + Send + Sync + 'static) -> Self {
        self.rejected = Some(Arc::new(hook));
        self
    }

    /// Reports a refused session: the `rejected` callback, and a rate-limited warning.
    pub(crate) fn rejected(&self, rejection: Rejection) {
        if let Some(hook) = &self.rejected {
            hook(rejection);
        }
        crate::rejection::warn(rejection);
    }

    pub(crate) fn id_hook(hook: Option<&IdHook>, id: &SessionId) {
        if let Some(hook) = hook {
            hook(id);
        }
    }

    /// Reports sessions deleted by key.
    pub(crate) fn deleted_keys(&self, keys: &[StoreKey]) {
        if let Some(hook) = &self.deleted_key {
            keys.iter().for_each(|key| hook(key));
        }
    }
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("started", &self.started.is_some())
            .field("loaded", &self.loaded.is_some())
            .field("deleted", &self.deleted.is_some())
            .field("deleted_key", &self.deleted_key.is_some())
            .field("regenerated", &self.regenerated.is_some())
            .field("rejected", &self.rejected.is_some())
            .finish()
    }
}
