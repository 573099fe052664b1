//! The provider: the session lifecycle over a store.

use std::{fmt, marker::PhantomData, ops::ControlFlow, sync::Arc, time::SystemTime};

use crate::{
    Error,
    callbacks::Callbacks,
    clock::{duration_ms, from_unix_ms},
    codec::{self, AtDefault, FieldRecord, RecordSize},
    config::SessionConfig,
    data::{DirtySet, SessionData},
    device::{DEVICE_TAG, Device},
    expiry,
    id::{SessionId, StoreKey},
    index::IndexKey,
    rejection::Rejection,
    session::{Session, SessionMeta, Status},
    store::{IndexStore, QueryStore, Record, Rename, SessionStore},
};

/// How many fresh IDs a create or regenerate tries before giving up on collisions.
const ID_ATTEMPTS: u32 = 3;
/// Records read per page by the query operations.
const SCAN_BATCH: usize = 512;

/// What [`SessionProvider::save`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Nothing: the session was unchanged and not due a refresh.
    Unchanged,
    /// A new session was stored.
    Created,
    /// The changed fields were written.
    Updated,
    /// Only the idle deadline moved (sliding refresh).
    Refreshed,
    /// The session moved to its new ID; the old one is dead.
    Regenerated,
    /// The session was deleted.
    Deleted,
}

/// What [`SessionProvider::load_outcome`] found for the session a client presented.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned and matched at once, never stored: boxing would cost every live load an allocation"
)]
pub enum LoadOutcome<T: SessionData> {
    /// A live session.
    Live(Session<T>),
    /// The session expired (while the store still remembers it): say "your session
    /// expired, please log in again". The client's ID is not adopted.
    Expired,
    /// No such session: never was, deleted, expired and forgotten, or not a well-formed ID.
    Unknown,
}

/// A session read by a query operation. Stores keep only the digest of an ID, so a
/// query knows the [`StoreKey`] but never the ID itself.
#[derive(Debug, Clone)]
pub struct StoredSession<T> {
    /// The digest the session is stored under.
    pub key: StoreKey,
    /// Lifetime data.
    pub meta: SessionMeta,
    /// The decoded data.
    pub data: T,
}

/// One session of a principal, as [`SessionProvider::sessions_of`] lists it: for a "where
/// you are logged in" page.
#[derive(Debug, Clone)]
pub struct IndexedSession<T> {
    /// The digest the session is stored under: what identifies it to the application (say,
    /// in a "log out this device" form, as [`StoreKey::to_hex`]), never the session ID.
    pub key: StoreKey,
    /// Lifetime data: [`created_ms`](SessionMeta::created_ms) and
    /// [`accessed_ms`](SessionMeta::accessed_ms) tell when it was started and last used.
    pub meta: SessionMeta,
    /// The device it is used from, if one was recorded (see [`Device`]).
    pub device: Option<Device>,
    /// The decoded data.
    pub data: T,
    /// Whether it is the session the listing was asked from.
    pub current: bool,
}

impl<T> IndexedSession<T> {
    /// When the session was created.
    pub fn created(&self) -> SystemTime {
        from_unix_ms(self.meta.created_ms)
    }

    /// When the session was last written (a change or a sliding refresh).
    pub fn last_access(&self) -> SystemTime {
        from_unix_ms(self.meta.accessed_ms)
    }
}

struct Shared<S> {
    store: Arc<S>,
    config: SessionConfig,
    callbacks: Callbacks,
}

/// Creates, loads, saves, regenerates and deletes sessions of type `T` in store `S`.
///
/// Cheap to clone; clones share the store.
///
/// # Examples
///
/// ```
/// use session::{MemoryStore, SessionConfig, SessionData, SessionProvider};
///
/// #[derive(SessionData)]
/// struct Cart {
///     items: Vec<String>,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let provider = SessionProvider::<Cart, _>::new(MemoryStore::new(), SessionConfig::development().build()?);
/// let mut session = provider.create()?;
/// session.items_mut().push("book".into());
/// provider.save(&mut session).await?;
///
/// let loaded = provider.get(session.id()).await?;
/// assert_eq!(loaded.items(), &["book".to_string()]);
/// # Ok::<(), session::Error>(())
/// # }).unwrap();
/// ```
pub struct SessionProvider<T, S> {
    shared: Arc<Shared<S>>,
    data: PhantomData<fn() -> T>,
}

impl<T, S> Clone for SessionProvider<T, S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            data: PhantomData,
        }
    }
}

impl<T, S> fmt::Debug for SessionProvider<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionProvider")
            .field("config", &self.shared.config)
            .field("callbacks", &self.shared.callbacks)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData, S: SessionStore> SessionProvider<T, S> {
    /// A provider over `store`.
    pub fn new(store: S, config: SessionConfig) -> Self {
        Self::from_shared(Arc::new(store), config, Callbacks::new())
    }

    fn from_shared(store: Arc<S>, config: SessionConfig, callbacks: Callbacks) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                config,
                callbacks,
            }),
            data: PhantomData,
        }
    }

    /// The same provider with these lifecycle callbacks.
    #[must_use]
    pub fn with_callbacks(self, callbacks: Callbacks) -> Self {
        Self::from_shared(self.shared.store.clone(), self.shared.config.clone(), callbacks)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    fn now_ms(&self) -> u64 {
        self.shared.config.now_ms()
    }

    fn idle_ms(&self) -> u64 {
        duration_ms(self.shared.config.idle_timeout())
    }

    /// A new session with a fresh ID and default data. It is stored by its first
    /// [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the operating system's random number generator fails.
    pub fn create(&self) -> Result<Session<T>, Error> {
        let config = &self.shared.config;
        let meta = SessionMeta::new(self.now_ms(), self.idle_ms(), duration_ms(config.absolute_timeout()))
            .with_random_lineage()?;
        Ok(Session::new(SessionId::generate()?, meta, config.clock().clone()))
    }

    /// A new sub-session of `parent` (sudo mode, a step-up): valid only together with
    /// `parent` as it is now (see [`Session::is_child_of`]); its absolute deadline never
    /// passes the parent's. Stored by its first [`save`](Self::save); reach it again with
    /// [`load_child`](Self::load_child).
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the operating system's random number generator fails.
    pub fn spawn<P: SessionData>(&self, parent: &Session<P>) -> Result<Session<T>, Error> {
        let mut child = self.create()?;
        child.tie_to(parent);
        Ok(child)
    }

    /// A new server-only session: no client ever holds it (a background job's state, a
    /// websocket connection's); the application keeps its ID and reaches it with
    /// [`get_server_only`](Self::get_server_only). A client that presents its ID is
    /// refused by [`load`](Self::load). Tie it to a parent with
    /// [`spawn_server_only`](Self::spawn_server_only).
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the operating system's random number generator fails.
    pub fn create_server_only(&self) -> Result<Session<T>, Error> {
        let mut session = self.create()?;
        session.set_server_only();
        Ok(session)
    }

    /// A new server-only session tied to `parent`, like [`spawn`](Self::spawn): check
    /// that the parent still lives with [`SessionProvider::is_live_parent_of`] on the
    /// parent's provider.
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the operating system's random number generator fails.
    pub fn spawn_server_only<P: SessionData>(&self, parent: &Session<P>) -> Result<Session<T>, Error> {
        let mut session = self.spawn(parent)?;
        session.set_server_only();
        Ok(session)
    }

    /// Loads a live server-only session by the ID the application kept.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no live server-only session has this ID (a session that
    /// clients hold is not one); otherwise when the store fails.
    pub async fn get_server_only(&self, id: &SessionId) -> Result<Session<T>, Error> {
        match self.try_get(id).await? {
            Some(session) if session.is_server_only() => Ok(session),
            _ => Err(Error::NotFound),
        }
    }

    /// Whether the parent of `child` (a sub-session or a tied server-only session) is a
    /// live session of this provider's store, under the ID `child` was spawned from. For a
    /// request that carries the parent itself, [`Session::is_child_of`] tells the same
    /// without a store round trip.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn is_live_parent_of<C: SessionData>(&self, child: &Session<C>) -> Result<bool, Error> {
        let Some(key) = child.meta().parent else {
            return Ok(false);
        };
        Ok(self
            .shared
            .store
            .load(&key)
            .await?
            .is_some_and(|record| !record.meta.is_expired(self.now_ms())))
    }

    /// Loads the sub-session a client presented together with `parent`: `None` (and the
    /// client's value is never adopted) when it is unknown, expired, not a sub-session, or
    /// a sub-session of another parent or of this parent before its ID changed.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load_child<P: SessionData>(
        &self,
        token: &str,
        parent: &Session<P>,
    ) -> Result<Option<Session<T>>, Error> {
        Ok(self.load(token).await?.filter(|child| child.is_child_of(parent)))
    }

    /// Loads the session a client presented, e.g. a cookie value. Text that is not a
    /// well-formed ID, and IDs of unknown, expired, deleted or server-only sessions, give
    /// `None`: the caller starts a new session and never adopts the client's ID.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load(&self, token: &str) -> Result<Option<Session<T>>, Error> {
        match SessionId::parse(token) {
            Some(id) => Ok(self.try_get(&id).await?.filter(|session| {
                if session.is_server_only() {
                    self.shared.callbacks.rejected(Rejection::ServerOnly);
                }
                !session.is_server_only()
            })),
            None => {
                self.shared.callbacks.rejected(Rejection::MalformedId);
                Ok(None)
            }
        }
    }

    /// Loads the session a client presented, telling an expired session from an unknown
    /// one: a store remembers expired sessions for its expired-session retention (see
    /// [`MemoryStoreBuilder::expired_retention`](crate::MemoryStoreBuilder::expired_retention)
    /// and the other stores' builders; zero by default), and a sealed cookie
    /// ([`CookieSessions::open_outcome`](crate::CookieSessions::open_outcome)) carries its
    /// own deadline. An expired session is never adopted: a new one gets a new ID.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load_outcome(&self, token: &str) -> Result<LoadOutcome<T>, Error> {
        if let Some(session) = self.load(token).await? {
            return Ok(LoadOutcome::Live(session));
        }
        let Some(id) = SessionId::parse(token) else {
            return Ok(LoadOutcome::Unknown);
        };
        Ok(if self.shared.store.expired(&id.store_key()).await? {
            LoadOutcome::Expired
        } else {
            LoadOutcome::Unknown
        })
    }

    /// Loads the session a client presented, or creates a new one.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load_or_create(&self, token: Option<&str>) -> Result<Session<T>, Error> {
        if let Some(token) = token
            && let Some(session) = self.load(token).await?
        {
            return Ok(session);
        }
        self.create()
    }

    /// Loads a live session by ID.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn try_get(&self, id: &SessionId) -> Result<Option<Session<T>>, Error> {
        let key = id.store_key();
        let Some((record, revision)) = self.shared.store.load_revision(&key).await? else {
            return Ok(None);
        };
        let now = self.now_ms();
        if record.meta.is_expired(now) {
            // The store's own expiry lags; never hand out what the provider's clock says is dead.
            if let Err(error) = self.shared.store.delete(&key).await {
                tracing::debug!(%error, "could not remove an expired session");
            }
            return Ok(None);
        }
        let refresh_due =
            now.saturating_sub(record.meta.accessed_ms) >= duration_ms(self.shared.config.refresh_interval());
        let (data, size, device) = codec::decode_with_size::<T>(&record.fields);
        Callbacks::id_hook(self.shared.callbacks.loaded.as_ref(), id);
        let clock = self.shared.config.clock().clone();
        let mut session = Session::from_parts(id.clone(), data, record.meta, Status::Stored, refresh_due, clock);
        *session.stored_size_mut() = size;
        session.set_loaded_device(device);
        session.set_revision(revision);
        Ok(Some(session))
    }

    /// Loads a live session by ID.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no live session has this ID; otherwise when the store fails.
    pub async fn get(&self, id: &SessionId) -> Result<Session<T>, Error> {
        self.try_get(id).await?.ok_or(Error::NotFound)
    }

    /// Writes what the session needs written, and nothing else: a new session in full, a
    /// changed one field by field, an unchanged one only when its sliding refresh is due;
    /// a regenerated ID atomically replaces the old; a deleted session is removed.
    ///
    /// # Errors
    ///
    /// [`Error::Gone`] when the session was deleted or expired in the store meanwhile (its
    /// changes are dropped, not resurrected); [`Error::Encode`] when a field cannot be
    /// encoded; [`Error::RecordTooLarge`] when the session would grow past
    /// [`SessionConfig::max_record_bytes`]; otherwise when the store fails. On error the stored session is unchanged
    /// and the session keeps its pending changes.
    pub async fn save(&self, session: &mut Session<T>) -> Result<SaveOutcome, Error> {
        self.write(session, Changes::Keep).await
    }

    /// Applies only what ends or moves the session: a deletion, or a regenerated ID (with
    /// the lifetimes, none of the data changes). For a request that failed: its logout and
    /// its ID regeneration must happen, its data changes must not.
    ///
    /// # Errors
    ///
    /// As [`save`](Self::save).
    pub async fn save_lifecycle_only(&self, session: &mut Session<T>) -> Result<SaveOutcome, Error> {
        self.write(session, Changes::Drop).await
    }

    /// The lifetimes a save at `now` writes: the session's own choice if it made one
    /// during the request (a failed request's is dropped with its data changes), then the
    /// access that slides the idle deadline.
    fn next_meta(&self, session: &Session<T>, now: u64, changes: Changes) -> SessionMeta {
        next_meta(&self.shared.config, session, now, changes == Changes::Keep)
    }

    /// Refuses a record over the configured size, before anything is written.
    fn check_size(&self, size: usize) -> Result<(), Error> {
        let limit = self.shared.config.max_record_bytes();
        if size > limit {
            return Err(Error::RecordTooLarge { size, limit });
        }
        Ok(())
    }

    async fn write(&self, session: &mut Session<T>, changes: Changes) -> Result<SaveOutcome, Error> {
        let store = &self.shared.store;
        let callbacks = &self.shared.callbacks;
        let now = self.now_ms();
        match session.status() {
            Status::Deleted => {
                if session.in_store() {
                    let id = session.stored_id().clone();
                    store.delete(&id.store_key()).await?;
                    Callbacks::id_hook(callbacks.deleted.as_ref(), &id);
                }
                session.saved(Status::Deleted);
                Ok(SaveOutcome::Deleted)
            }
            Status::New if changes == Changes::Drop => Ok(SaveOutcome::Unchanged),
            Status::New => {
                let meta = self.next_meta(session, now, changes);
                let all = DirtySet::all(T::FIELDS.len());
                let mut fields = codec::encode_save(session.data(), all, AtDefault::Omit)?;
                push_device(&mut fields, session);
                let record = Record { meta, fields };
                self.check_size(record.fields.as_bytes().len())?;
                for _ in 0..ID_ATTEMPTS {
                    if let Some(revision) = store.create_revision(&session.id().store_key(), &record).await? {
                        session.set_revision(revision);
                        *session.stored_size_mut() = RecordSize::of::<T>(&record.fields);
                        session.set_meta(meta);
                        session.saved(Status::Stored);
                        Callbacks::id_hook(callbacks.started.as_ref(), session.id());
                        return Ok(SaveOutcome::Created);
                    }
                    session.set_id(SessionId::generate()?);
                }
                Err(Error::IdCollision { attempts: ID_ATTEMPTS })
            }
            Status::Stored if session.is_regenerated() => {
                let meta = self.next_meta(session, now, changes);
                let fields = match changes {
                    Changes::Keep => {
                        let dirty = session.dirty_set();
                        let mut fields = codec::encode_save(session.data(), dirty, AtDefault::Remove)?;
                        push_device(&mut fields, session);
                        fields
                    }
                    Changes::Drop => FieldRecord::new(),
                };
                self.check_size(session.stored_size().after::<T>(&fields))?;
                let update = Record { meta, fields };
                let old = session.stored_id().clone();
                for _ in 0..ID_ATTEMPTS {
                    match store
                        .rename_revision(&old.store_key(), &session.id().store_key(), session.revision(), &update)
                        .await?
                    {
                        (Rename::Renamed, revision) => {
                            session.set_revision(revision);
                            session.stored_size_mut().apply::<T>(&update.fields);
                            session.set_meta(meta);
                            session.saved(Status::Stored);
                            if let Some(hook) = &callbacks.regenerated {
                                hook(&old, session.id());
                            }
                            return Ok(SaveOutcome::Regenerated);
                        }
                        (Rename::SourceMissing, _) => return Err(Error::Gone),
                        (Rename::TargetExists, _) => session.set_id(SessionId::generate()?),
                    }
                }
                Err(Error::IdCollision { attempts: ID_ATTEMPTS })
            }
            Status::Stored if changes == Changes::Drop => Ok(SaveOutcome::Unchanged),
            Status::Stored => {
                let dirty = session.dirty_set();
                let outcome = if !dirty.is_empty() || session.changed_device().is_some() {
                    SaveOutcome::Updated
                } else if session.is_refresh_due() || session.pending_expiry().is_some() {
                    SaveOutcome::Refreshed
                } else {
                    return Ok(SaveOutcome::Unchanged);
                };
                let meta = self.next_meta(session, now, changes);
                let mut fields = codec::encode_save(session.data(), dirty, AtDefault::Remove)?;
                push_device(&mut fields, session);
                let update = Record { meta, fields };
                self.check_size(session.stored_size().after::<T>(&update.fields))?;
                let Some(revision) = store
                    .update_revision(&session.id().store_key(), session.revision(), &update)
                    .await?
                else {
                    return Err(Error::Gone);
                };
                session.set_revision(revision);
                session.stored_size_mut().apply::<T>(&update.fields);
                session.set_meta(meta);
                session.saved(Status::Stored);
                Ok(outcome)
            }
        }
    }

    /// Deletes the session now.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn delete(&self, session: &mut Session<T>) -> Result<(), Error> {
        session.delete();
        self.save(session).await.map(drop)
    }

    /// Gives the session a new ID now, keeping its data and saving its pending changes;
    /// the old ID is dead when this returns.
    ///
    /// # Errors
    ///
    /// As [`save`](Self::save).
    pub async fn regenerate_id(&self, session: &mut Session<T>) -> Result<(), Error> {
        session.regenerate_id()?;
        self.save(session).await.map(drop)
    }
}

/// The lifetimes a save at `now` writes for `session`: its own choice of lifetime if it
/// made one and `keep_changes` (a failed request's is dropped with its data changes),
/// then the access that slides the idle deadline. Shared with the cookie sessions.
pub(crate) fn next_meta<T: SessionData>(
    config: &SessionConfig,
    session: &Session<T>,
    now: u64,
    keep_changes: bool,
) -> SessionMeta {
    let mut meta = match session.pending_expiry() {
        Some(chosen) if keep_changes => expiry::apply(*session.meta(), chosen, now, config),
        _ => *session.meta(),
    };
    // A failed request's data changes are dropped, so the index stays the stored one.
    if keep_changes {
        meta.index = session.data().index_key();
    }
    meta.accessed_at(now, duration_ms(config.idle_timeout()))
}

/// Appends the session's device to a write when it was set since the last one.
fn push_device<T: SessionData>(fields: &mut FieldRecord, session: &Session<T>) {
    if let Some(device) = session.changed_device() {
        fields.push(DEVICE_TAG, &device.encode());
    }
}

/// Whether a save writes the session's data changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changes {
    Keep,
    Drop,
}

/// Query and bulk operations, for stores that can enumerate their sessions.
impl<T: SessionData, S: QueryStore> SessionProvider<T, S> {
    /// Calls `visit` with every live session, page by page, until it breaks.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn for_each(&self, mut visit: impl FnMut(StoredSession<T>) -> ControlFlow<()>) -> Result<(), Error> {
        let now = self.now_ms();
        let mut cursor = Some(0);
        while let Some(at) = cursor {
            let page = self.shared.store.scan(at, SCAN_BATCH).await?;
            for (key, record) in page.records {
                if record.meta.is_expired(now) {
                    continue;
                }
                let session = StoredSession {
                    key,
                    meta: record.meta,
                    data: codec::decode(&record.fields),
                };
                if visit(session).is_break() {
                    return Ok(());
                }
            }
            cursor = page.next;
        }
        Ok(())
    }

    /// Every live session that matches `predicate`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn find(
        &self,
        mut predicate: impl FnMut(&StoredSession<T>) -> bool,
    ) -> Result<Vec<StoredSession<T>>, Error> {
        let mut found = Vec::new();
        self.for_each(|session| {
            if predicate(&session) {
                found.push(session);
            }
            ControlFlow::Continue(())
        })
        .await?;
        Ok(found)
    }

    /// How many live sessions the store holds.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn count(&self) -> Result<usize, Error> {
        self.shared.store.count().await
    }

    /// Deletes every live session that matches `predicate`; returns how many were deleted.
    /// For "log this user out everywhere", an `#[session(index)]` field and
    /// [`delete_all_of`](Self::delete_all_of) cost the user's sessions, not a scan of all.
    ///
    /// [`Callbacks::on_deleted_key`] hears each deleted session; with that hook set, the
    /// sessions are deleted one by one, so it hears exactly the ones this call deleted.
    ///
    /// # Errors
    ///
    /// When the store fails; sessions deleted before the failure stay deleted (and were
    /// reported).
    pub async fn delete_where(&self, predicate: impl FnMut(&StoredSession<T>) -> bool) -> Result<usize, Error> {
        let keys: Vec<StoreKey> = self
            .find(predicate)
            .await?
            .into_iter()
            .map(|session| session.key)
            .collect();
        match self.shared.callbacks.deleted_key {
            None => self.shared.store.delete_many(&keys).await,
            Some(_) => self.delete_each(keys).await,
        }
    }

    /// Deletes every session of the store; returns how many were live.
    ///
    /// With [`Callbacks::on_deleted_key`] set, the sessions are read page by page and
    /// deleted one by one so that it hears each; sessions created while this runs are then
    /// removed by the store's own clear, unreported.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn clear(&self) -> Result<usize, Error> {
        let store = &self.shared.store;
        if self.shared.callbacks.deleted_key.is_none() {
            return store.clear().await;
        }
        let mut deleted = 0;
        let mut cursor = Some(0);
        while let Some(at) = cursor {
            let page = store.scan(at, SCAN_BATCH).await?;
            deleted += self.delete_each(page.records.into_iter().map(|(key, _)| key)).await?;
            cursor = page.next;
        }
        Ok(deleted + store.clear().await?)
    }

    /// Deletes `keys` one by one, reporting each deleted session, also when a later
    /// deletion fails.
    async fn delete_each(&self, keys: impl IntoIterator<Item = StoreKey>) -> Result<usize, Error> {
        let mut deleted = Vec::new();
        let mut outcome = Ok(());
        for key in keys {
            match self.shared.store.delete(&key).await {
                Ok(true) => deleted.push(key),
                Ok(false) => {}
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        self.shared.callbacks.deleted_keys(&deleted);
        outcome.map(|()| deleted.len())
    }
}

/// "Where you are logged in" and "log me out everywhere": the sessions of one principal,
/// for a session type with an `#[session(index)]` field, in a store that keeps the index
/// ([`IndexStore`]; asking another store is a compile error).
///
/// The principal of a session is its index field's current value (set in this request or
/// loaded); a session whose index field is `None` (nobody logged in) has none, and these
/// operations then find and delete nothing.
///
/// # Examples
///
/// ```
/// use session::{ClientInfo, Device, MemoryStore, SessionConfig, SessionData, SessionProvider};
///
/// #[derive(SessionData)]
/// struct AppSession {
///     #[session(index)]
///     user: Option<String>,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::testing().build()?);
/// let mut phone = provider.create()?;
/// phone.set_user(Some("alice".into()));
/// phone.set_device(Device { user_agent: Some("Phone".into()), ip: None });
/// provider.save(&mut phone).await?;
/// let mut laptop = provider.create()?;
/// laptop.set_user(Some("alice".into()));
/// provider.save(&mut laptop).await?;
///
/// let sessions = provider.sessions_of(&laptop).await?;
/// assert_eq!(sessions.len(), 2);
/// assert_eq!(sessions.iter().filter(|session| session.current).count(), 1);
///
/// // "Log out my other devices": the phone's session is gone, the laptop's lives on.
/// assert_eq!(provider.delete_others_of(&laptop).await?, 1);
/// assert!(provider.try_get(phone.id()).await?.is_none());
/// assert!(provider.try_get(laptop.id()).await?.is_some());
/// # Ok::<(), session::Error>(())
/// # }).unwrap();
/// ```
impl<T: SessionData, S: IndexStore> SessionProvider<T, S> {
    /// The live sessions of `session`'s principal, the most recently used first; the one
    /// `session` is (if it is stored) has [`current`](IndexedSession::current) set. Empty
    /// when `session` has no principal.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn sessions_of(&self, session: &Session<T>) -> Result<Vec<IndexedSession<T>>, Error> {
        let Some(index) = session.data().index_key() else {
            return Ok(Vec::new());
        };
        let current = session.in_store().then(|| session.stored_id().store_key());
        self.list(&index, current).await
    }

    /// The live sessions whose index is `index` (see [`IndexKey::of`]), the most recently
    /// used first; none is [`current`](IndexedSession::current).
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn sessions_of_index(&self, index: &IndexKey) -> Result<Vec<IndexedSession<T>>, Error> {
        self.list(index, None).await
    }

    async fn list(&self, index: &IndexKey, current: Option<StoreKey>) -> Result<Vec<IndexedSession<T>>, Error> {
        let now = self.now_ms();
        let mut sessions: Vec<IndexedSession<T>> = self
            .shared
            .store
            .list_by_index(index)
            .await?
            .into_iter()
            .filter(|(_, record)| record.meta.index == Some(*index) && !record.meta.is_expired(now))
            .map(|(key, record)| {
                let (data, _, device) = codec::decode_with_size::<T>(&record.fields);
                IndexedSession {
                    key,
                    meta: record.meta,
                    device,
                    data,
                    current: current == Some(key),
                }
            })
            .collect();
        sessions.sort_by(|a, b| b.meta.accessed_ms.cmp(&a.meta.accessed_ms).then(a.key.cmp(&b.key)));
        Ok(sessions)
    }

    /// "Log me out everywhere": deletes every session of `session`'s principal, this one
    /// included, which is marked deleted (the HTTP layer then expires its cookie). Returns
    /// how many stored sessions were deleted; 0 when `session` has no principal (it is then
    /// left as it is).
    ///
    /// A session of the principal that is updated or given a new ID while this runs is
    /// deleted all the same (see [`IndexStore`]'s race rule).
    /// [`Callbacks::on_deleted`] hears this session, [`Callbacks::on_deleted_key`] the others.
    ///
    /// # Errors
    ///
    /// When the store fails; sessions deleted before the failure stay deleted.
    pub async fn delete_all_of(&self, session: &mut Session<T>) -> Result<usize, Error> {
        let Some(index) = session.data().index_key() else {
            return Ok(0);
        };
        let callbacks = &self.shared.callbacks;
        let mut deleted = self.shared.store.delete_by_index(&index, None).await?;
        if !session.in_store() {
            callbacks.deleted_keys(&deleted);
            session.delete();
            return Ok(deleted.len());
        }
        let id = session.stored_id().clone();
        let own = id.store_key();
        let mut count = deleted.len();
        match deleted.iter().position(|key| *key == own) {
            Some(at) => {
                deleted.swap_remove(at);
            }
            // Stored under another principal (the index field changed in this request).
            None => count += usize::from(self.shared.store.delete(&own).await?),
        }
        callbacks.deleted_keys(&deleted);
        Callbacks::id_hook(callbacks.deleted.as_ref(), &id);
        session.saved(Status::Deleted);
        Ok(count)
    }

    /// "Log out my other devices": deletes every session of `session`'s principal except
    /// `session` itself; returns how many. 0 when `session` has no principal.
    /// [`Callbacks::on_deleted_key`] hears each.
    ///
    /// # Errors
    ///
    /// When the store fails; sessions deleted before the failure stay deleted.
    pub async fn delete_others_of(&self, session: &Session<T>) -> Result<usize, Error> {
        let Some(index) = session.data().index_key() else {
            return Ok(0);
        };
        let keep = session.in_store().then(|| session.stored_id().store_key());
        let deleted = self.shared.store.delete_by_index(&index, keep.as_ref()).await?;
        self.shared.callbacks.deleted_keys(&deleted);
        Ok(deleted.len())
    }

    /// Deletes every session whose index is `index` (see [`IndexKey::of`]): an
    /// administrator's "log alice out everywhere", without a session of hers. Returns how
    /// many; [`Callbacks::on_deleted_key`] hears each.
    ///
    /// # Errors
    ///
    /// When the store fails; sessions deleted before the failure stay deleted.
    pub async fn delete_index(&self, index: &IndexKey) -> Result<usize, Error> {
        let deleted = self.shared.store.delete_by_index(index, None).await?;
        self.shared.callbacks.deleted_keys(&deleted);
        Ok(deleted.len())
    }
}
