//! `Session<T>`: one user's typed session data with its ID, lifetimes and change state.

use std::{
    fmt,
    ops::{Deref, DerefMut},
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    Error,
    clock::{Clock, from_unix_ms},
    codec::RecordSize,
    data::{DirtySet, FieldsOf, SessionData, Tracked},
    device::Device,
    expiry::{CookieLifetime, Expiry},
    id::{SessionId, StoreKey},
    index::IndexKey,
    store::Revision,
};

/// The lifetime data of a stored session, in milliseconds since the Unix epoch.
///
/// It is kept server-side (or sealed into the cookie), so clients cannot forge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionMeta {
    /// When the session was created.
    pub created_ms: u64,
    /// When the session was last written (a change or a sliding refresh).
    pub accessed_ms: u64,
    /// The sliding deadline: the session expires if not refreshed by then.
    pub idle_deadline_ms: u64,
    /// The fixed deadline, never extended.
    pub absolute_deadline_ms: u64,
    /// A random identity the session gets when it is created and keeps when its ID is
    /// regenerated: values sealed at rest are bound to it, so they do not open in another
    /// session. All zeros in a record built by [`new`](Self::new) alone.
    pub lineage: [u8; 16],
    /// The session's own sliding idle window, chosen with [`Expiry`]: 0 for the configured
    /// idle timeout, `u64::MAX` for none (an [`Expiry::Until`] deadline).
    pub idle_window_ms: u64,
    /// How long the browser keeps the cookie, chosen with [`Expiry`].
    pub cookie: CookieLifetime,
    /// The session this one was spawned from (a sub-session such as sudo mode): the
    /// [`StoreKey`] of its ID at the time. It is valid only together with that parent,
    /// live and under that ID.
    pub parent: Option<StoreKey>,
    /// A session no client holds: the application addresses it by ID, and a client that
    /// presents its ID is refused.
    pub server_only: bool,
    /// The digest of the session's principal (its `#[session(index)]` field, when that
    /// holds `Some`): stores keep it so that every session of one principal can be listed
    /// and deleted together (see [`IndexStore`](crate::store::IndexStore)). The provider
    /// sets it from the data on every write.
    pub index: Option<IndexKey>,
}

impl SessionMeta {
    /// Lifetimes of a session created at `now_ms`.
    pub fn new(now_ms: u64, idle_ms: u64, absolute_ms: u64) -> Self {
        let absolute_deadline_ms = now_ms.saturating_add(absolute_ms);
        Self {
            created_ms: now_ms,
            accessed_ms: now_ms,
            idle_deadline_ms: now_ms.saturating_add(idle_ms).min(absolute_deadline_ms),
            absolute_deadline_ms,
            lineage: [0; 16],
            idle_window_ms: 0,
            cookie: CookieLifetime::Configured,
            parent: None,
            server_only: false,
            index: None,
        }
    }

    /// The same lifetimes with a fresh random [`lineage`](Self::lineage).
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the operating system's random number generator fails.
    pub fn with_random_lineage(self) -> Result<Self, Error> {
        let mut lineage = [0u8; 16];
        getrandom::fill(&mut lineage).map_err(|error| Error::Random(error.to_string()))?;
        Ok(Self { lineage, ..self })
    }

    /// The same session, accessed at `now_ms`: the idle deadline slides by the session's
    /// own [`idle_window_ms`](Self::idle_window_ms), else by `configured_idle_ms`; the
    /// absolute one does not move.
    #[must_use]
    pub fn accessed_at(self, now_ms: u64, configured_idle_ms: u64) -> Self {
        let idle_ms = match self.idle_window_ms {
            0 => configured_idle_ms,
            own => own,
        };
        Self {
            accessed_ms: now_ms,
            idle_deadline_ms: now_ms.saturating_add(idle_ms).min(self.absolute_deadline_ms),
            ..self
        }
    }

    /// When the session expires: the earlier of the two deadlines.
    pub fn expires_ms(&self) -> u64 {
        self.idle_deadline_ms.min(self.absolute_deadline_ms)
    }

    /// Whether the session has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Created in memory, never stored.
    New,
    /// Loaded from, or saved to, the store.
    Stored,
    /// Marked for deletion at the next save.
    Deleted,
}

/// One user's session: typed data of a [`SessionData`] type `T`, its ID and lifetimes,
/// and which fields changed.
///
/// It dereferences to the generated accessors (`T::Fields`), so `session.user()` and
/// `session.set_user(..)` are called on it directly. Changes are written by
/// [`SessionProvider::save`](crate::SessionProvider::save), which writes only what changed.
pub struct Session<T: SessionData> {
    id: SessionId,
    fields: T::Fields,
    meta: SessionMeta,
    status: Status,
    stored_id: Option<SessionId>,
    in_store: bool,
    refresh_due: bool,
    /// A lifetime chosen during this request, applied by the next save.
    pending_expiry: Option<Expiry>,
    stored_size: RecordSize,
    /// The device the session is used from, as stored or as set since.
    device: Option<Device>,
    /// The device was set since the session was loaded or saved: the next save writes it.
    device_changed: bool,
    /// The provider's clock, for the questions about expiry.
    clock: Arc<dyn Clock>,
    /// A cookie session's index and the revocation generation its cookie was opened or
    /// sealed with: sealed again as long as the index stays the same.
    generation: Option<(IndexKey, u64)>,
    /// What the store read the session as, for its next save.
    revision: Revision,
}

impl<T: SessionData> Session<T> {
    pub(crate) fn new(id: SessionId, meta: SessionMeta, clock: Arc<dyn Clock>) -> Self {
        Self::from_parts(id, T::initial(), meta, Status::New, false, clock)
    }

    pub(crate) fn from_parts(
        id: SessionId,
        data: T,
        meta: SessionMeta,
        status: Status,
        refresh_due: bool,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let in_store = status == Status::Stored;
        let mut data = data;
        // Expired values are gone from memory, so even a whole-record write (a cookie
        // session) leaves them out; no field is marked, so nothing is written for them alone.
        data.drop_expired(clock.now_ms());
        Self {
            id,
            fields: T::Fields::wrap(Tracked::new(data, clock.clone())),
            meta,
            status,
            stored_id: None,
            in_store,
            refresh_due,
            pending_expiry: None,
            stored_size: RecordSize::default(),
            device: None,
            device_changed: false,
            clock,
            generation: None,
            revision: Revision::none(),
        }
    }

    /// The session ID: the value the client holds.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The whole data, read-only.
    pub fn data(&self) -> &T {
        self.fields.tracked().data()
    }

    /// Consumes the session, returning its data.
    pub fn into_data(self) -> T {
        self.fields.into_tracked().into_data()
    }

    /// The lifetime data.
    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    /// When the session was created.
    pub fn created(&self) -> SystemTime {
        from_unix_ms(self.meta.created_ms)
    }

    /// When the session was last written.
    pub fn last_access(&self) -> SystemTime {
        from_unix_ms(self.meta.accessed_ms)
    }

    /// The sliding deadline.
    pub fn idle_deadline(&self) -> SystemTime {
        from_unix_ms(self.meta.idle_deadline_ms)
    }

    /// The fixed deadline.
    pub fn absolute_deadline(&self) -> SystemTime {
        from_unix_ms(self.meta.absolute_deadline_ms)
    }

    /// When the session expires unless refreshed.
    pub fn expires(&self) -> SystemTime {
        from_unix_ms(self.meta.expires_ms())
    }

    /// Whether the session has never been stored.
    pub fn is_new(&self) -> bool {
        self.status == Status::New
    }

    /// Whether the session is marked for deletion.
    pub fn is_deleted(&self) -> bool {
        self.status == Status::Deleted
    }

    /// Whether the ID was regenerated since the session was loaded or saved.
    pub fn is_regenerated(&self) -> bool {
        self.stored_id.is_some()
    }

    /// The stored names of the fields whose stored value changed since load or save: what
    /// the next save writes.
    pub fn dirty_fields(&self) -> impl Iterator<Item = &'static str> {
        self.dirty_set()
            .iter()
            .filter_map(|index| T::FIELDS.get(index).map(|def| def.name))
    }

    /// The fields whose stored value changed since load or save.
    pub(crate) fn dirty_set(&self) -> DirtySet {
        let tracked = self.fields.tracked();
        tracked.marked().union(tracked.data().flash_dirty())
    }

    /// Whether any stored field changed.
    pub fn is_dirty(&self) -> bool {
        !self.dirty_set().is_empty()
    }

    /// Whether the session has expired by now (its idle or absolute deadline passed while
    /// this handle was held; a save would then fail with [`Error::Gone`]).
    pub fn is_expired(&self) -> bool {
        self.meta.is_expired(self.clock.now_ms())
    }

    /// How long until the session expires unless it is used (zero once expired). A save
    /// slides the idle deadline; the absolute deadline never moves.
    pub fn time_until_expiry(&self) -> Duration {
        Duration::from_millis(self.meta.expires_ms().saturating_sub(self.clock.now_ms()))
    }

    /// Asks the next save to slide the idle deadline even if nothing changed and the
    /// refresh interval has not passed (say, after a long-running request).
    pub fn touch(&mut self) {
        self.refresh_due = true;
    }

    /// Chooses this session's lifetime and cookie lifetime ("remember me", a
    /// browser-session cookie, a fixed deadline); the next save stores it, within the
    /// configured caps, and the response sets the cookie accordingly. See [`Expiry`].
    pub fn set_expiry(&mut self, expiry: Expiry) {
        self.pending_expiry = Some(expiry);
    }

    /// The lifetime chosen with [`set_expiry`](Self::set_expiry) that the next save
    /// applies, if any.
    pub fn pending_expiry(&self) -> Option<Expiry> {
        self.pending_expiry
    }

    /// Makes this new session a sub-session of `parent` (say, sudo mode spawned from the
    /// login session): valid only while `parent` is live under its current ID (its logout,
    /// deletion, expiry or ID regeneration ends this one), and never living past the
    /// parent's absolute deadline.
    pub(crate) fn tie_to<P: SessionData>(&mut self, parent: &Session<P>) {
        self.meta.parent = Some(parent.id().store_key());
        self.meta.absolute_deadline_ms = self.meta.absolute_deadline_ms.min(parent.meta.absolute_deadline_ms);
        self.meta.idle_deadline_ms = self.meta.idle_deadline_ms.min(self.meta.absolute_deadline_ms);
    }

    /// Whether this is a sub-session spawned from `parent` as it is now: `parent` is stored,
    /// not deleted, not expired, and still has the ID this session was spawned under.
    pub fn is_child_of<P: SessionData>(&self, parent: &Session<P>) -> bool {
        self.meta.parent == Some(parent.id().store_key())
            && !parent.is_new()
            && !parent.is_deleted()
            && !parent.is_regenerated()
            && !parent.is_expired()
    }

    /// Whether this is a sub-session (spawned from a parent session).
    pub fn is_child(&self) -> bool {
        self.meta.parent.is_some()
    }

    pub(crate) fn set_server_only(&mut self) {
        self.meta.server_only = true;
    }

    /// Whether this session is server-only: no client holds it.
    pub fn is_server_only(&self) -> bool {
        self.meta.server_only
    }

    /// The device this session is used from (User-Agent and, if recording it is enabled,
    /// IP address), as the HTTP layer recorded it when it stored the session; `None` for a
    /// session stored without one, and for cookie sessions. See [`Device`].
    pub fn device(&self) -> Option<&Device> {
        self.device.as_ref()
    }

    /// Records the device this session is used from; the next save writes it with the
    /// session, server-side. The HTTP layer calls it for the sessions it stores; call it
    /// yourself for sessions created elsewhere.
    pub fn set_device(&mut self, device: Device) {
        self.device = Some(device);
        self.device_changed = true;
    }

    /// The device as read from the store: not written again.
    pub(crate) fn set_loaded_device(&mut self, device: Option<Device>) {
        self.device = device;
        self.device_changed = false;
    }

    /// The device to write at the next save, if it was set since.
    pub(crate) fn changed_device(&self) -> Option<&Device> {
        self.device.as_ref().filter(|_| self.device_changed)
    }

    /// Whether the sliding idle deadline is due to be refreshed.
    pub fn is_refresh_due(&self) -> bool {
        self.refresh_due
    }

    /// Whether a save would write anything: the session is new, deleted, regenerated,
    /// changed, or due a sliding refresh.
    pub fn needs_save(&self) -> bool {
        self.status != Status::Stored
            || self.is_regenerated()
            || self.is_dirty()
            || self.refresh_due
            || self.pending_expiry.is_some()
            || self.device_changed
    }

    /// Gives the session a new random ID and keeps its data; at the next save the old ID
    /// stops working at once. Call it on login and privilege changes (session fixation
    /// defence).
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the operating system's random number generator fails.
    pub fn regenerate_id(&mut self) -> Result<(), Error> {
        let new_id = SessionId::generate()?;
        let old_id = std::mem::replace(&mut self.id, new_id);
        if self.in_store && self.stored_id.is_none() {
            self.stored_id = Some(old_id);
        }
        Ok(())
    }

    /// Marks the session for deletion at the next save.
    pub fn delete(&mut self) {
        self.status = Status::Deleted;
    }

    /// The size of the record as stored, as far as this session's saves tell.
    pub(crate) fn stored_size(&self) -> &RecordSize {
        &self.stored_size
    }

    /// What the store read or last wrote the session as.
    pub(crate) fn revision(&self) -> &Revision {
        &self.revision
    }

    pub(crate) fn set_revision(&mut self, revision: Revision) {
        self.revision = revision;
    }

    pub(crate) fn stored_size_mut(&mut self) -> &mut RecordSize {
        &mut self.stored_size
    }

    pub(crate) fn status(&self) -> Status {
        self.status
    }

    /// The ID the store holds the session under, if it was stored.
    pub(crate) fn stored_id(&self) -> &SessionId {
        self.stored_id.as_ref().unwrap_or(&self.id)
    }

    /// Whether the store holds this session (under [`stored_id`](Self::stored_id)).
    pub(crate) fn in_store(&self) -> bool {
        self.in_store
    }

    pub(crate) fn set_id(&mut self, id: SessionId) {
        self.id = id;
    }

    pub(crate) fn set_meta(&mut self, meta: SessionMeta) {
        self.meta = meta;
    }

    /// A cookie session's index and revocation generation, as opened or last sealed.
    pub(crate) fn generation(&self) -> Option<(IndexKey, u64)> {
        self.generation
    }

    pub(crate) fn set_generation(&mut self, generation: Option<(IndexKey, u64)>) {
        self.generation = generation;
    }

    /// Makes the next save write the session even if nothing changed (a cookie session
    /// re-sealed under a new revocation generation).
    pub(crate) fn require_refresh(&mut self) {
        self.refresh_due = true;
    }

    /// After a successful write: everything in memory is what the store holds.
    pub(crate) fn saved(&mut self, status: Status) {
        let tracked = self.fields.tracked_mut();
        tracked.clear_marks();
        tracked.data_mut().flash_saved();
        self.status = status;
        self.in_store = status == Status::Stored;
        self.stored_id = None;
        self.refresh_due = false;
        self.pending_expiry = None;
        self.device_changed = false;
    }
}

impl<T: SessionData> Deref for Session<T> {
    type Target = T::Fields;

    fn deref(&self) -> &T::Fields {
        &self.fields
    }
}

impl<T: SessionData> DerefMut for Session<T> {
    fn deref_mut(&mut self) -> &mut T::Fields {
        &mut self.fields
    }
}

impl<T: SessionData + fmt::Debug> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("data", self.data())
            .field("meta", &self.meta)
            .field("status", &self.status)
            .field("dirty", &self.dirty_set())
            .finish()
    }
}
