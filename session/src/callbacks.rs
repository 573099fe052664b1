//! Lifecycle callbacks: started, loaded, deleted, regenerated, and rejected.

use std::{fmt, sync::Arc};

use crate::{id::SessionId, rejection::Rejection};

type IdHook = Arc<dyn Fn(&SessionId) + Send + Sync>;
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

    /// Called when a stored session is deleted.
    #[must_use]
    pub fn on_deleted(mut self, hook: impl Fn(&SessionId) + Send + Sync + 'static) -> Self {
        self.deleted = Some(Arc::new(hook));
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
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("started", &self.started.is_some())
            .field("loaded", &self.loaded.is_some())
            .field("deleted", &self.deleted.is_some())
            .field("regenerated", &self.regenerated.is_some())
            .field("rejected", &self.rejected.is_some())
            .finish()
    }
}
