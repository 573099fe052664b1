//! Sessions kept whole in the cookie: sealed on every change, opened on every request.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    Callbacks, ClientBinding, ClientInfo, Error, LoadOutcome, Session, SessionConfig, SessionData, SessionId,
    clock::duration_ms,
    codec::{self, AtDefault},
    crypto::{KeyRing, OpenFailure, OpenLimits, Purpose, SealOptions},
    data::DirtySet,
    expiry::CookieLifetime,
    id::StoreKey,
    index::IndexKey,
    provider,
    rejection::Rejection,
    revocation::{Lookup, Revocation, RevocationStore},
    session::{SessionMeta, Status},
    set_cookie,
};

/// The most bytes of plaintext a cookie may decompress to.
const MAX_PLAINTEXT: usize = 16 * 1024;
/// The most bytes of a plaintext besides its fields: the payload's fixed parts (varints at
/// their longest), the fields' length, the trailer and a generation.
const PLAINTEXT_FRAME: usize = 32 + 4 * 10 + 16 + 10 + 1 + 33 + 17 + 3 + 33 + 10;
/// Envelope bytes around the ciphertext: header, IV and tag, plus a padding block.
const ENVELOPE_OVERHEAD: usize = 75;
/// The default bound on how old a cached revocation generation may be.
const DEFAULT_STALENESS: Duration = Duration::from_secs(1);
/// How much longer than the longest cookie a revocation store keeps a generation: room for
/// clock skew between the nodes and the store.
const KEEP_MARGIN: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    id: [u8; 32],
    created_ms: u64,
    accessed_ms: u64,
    idle_deadline_ms: u64,
    absolute_deadline_ms: u64,
    lineage: [u8; 16],
    idle_window_ms: u64,
    cookie: u8,
    parent: Option<[u8; 32]>,
    binding: Option<[u8; 16]>,
    #[serde(borrow)]
    fields: &'a [u8],
}

impl<'a> Payload<'a> {
    /// The payload of the session `id` with lifetimes `meta`, bound to `binding`.
    fn new(id: &SessionId, meta: &SessionMeta, binding: Option<[u8; 16]>, fields: &'a [u8]) -> Self {
        Self {
            id: *id.as_bytes(),
            created_ms: meta.created_ms,
            accessed_ms: meta.accessed_ms,
            idle_deadline_ms: meta.idle_deadline_ms,
            absolute_deadline_ms: meta.absolute_deadline_ms,
            lineage: meta.lineage,
            idle_window_ms: meta.idle_window_ms,
            cookie: meta.cookie.to_byte(),
            parent: meta.parent.map(|key| *key.as_bytes()),
            binding,
            fields,
        }
    }
}

/// What follows the [`Payload`] in the plaintext. Kept apart so that a cookie sealed before
/// it existed (nothing follows) still opens, and an older version ignores it. An indexed
/// session's revocation generation follows it in turn (a varint), for the same reasons.
#[derive(Serialize, Deserialize)]
struct Trailer {
    index: Option<[u8; 32]>,
}

/// Sessions kept whole in an encrypted, authenticated cookie: no server-side state.
///
/// The cookie value is a [sealed envelope](crate::crypto#the-envelope) with the purpose
/// `cookie:<name>`, so a cookie sealed under one name opens under no other name and never
/// as a store value. Its plaintext is the postcard encoding of
///
/// ```text
/// id          [u8; 32]   the session ID (for callbacks and logs; not a lookup key)
/// created     u64        SessionMeta, milliseconds since the epoch (varints)
/// accessed    u64
/// idle        u64        sliding deadline
/// absolute    u64        fixed deadline
/// lineage     [u8; 16]   the session's lineage (SessionMeta::lineage)
/// idle window u64        the session's own idle window in ms, 0 for the configured one
/// cookie      u8         cookie lifetime: 0 configured, 1 browser session, 2 persistent
/// parent      Option<[u8; 32]>  a sub-session's parent: the key (digest) of its ID
/// binding     Option<[u8; 16]>  digest of the bound client facts, when binding is on
/// fields      bytes      the field-tagged record of every field not at its default (codec)
/// index       Option<[u8; 32]>  the session's IndexKey (SessionMeta::index); absent from
///                        cookies sealed before indexes, read as none
/// generation  u64        the index's revocation generation when sealed; only after an
///                        index; absent from cookies sealed before revocation, read as 0
/// ```
///
/// Expiry is enforced from the authenticated envelope and lifetimes, never from the
/// cookie's `Max-Age`. A cookie sealed with an older key of the ring opens and is re-sealed
/// with the newest key on the next response.
///
/// Cookie sessions leave no server-side state, so they have no query or bulk operations (this
/// is not a [`SessionStore`](crate::store::SessionStore)), and a regenerated or deleted session's
/// old cookie stays valid until it expires if a client replays it. Use a server-side store
/// where revocation must be immediate.
///
/// # Revocation
///
/// With [`with_revocation`](Self::with_revocation), sessions of a type with an
/// `#[session(index)]` field can be ended by index: [`revoke_all_of`](Self::revoke_all_of)
/// ("log me out everywhere"), [`revoke_others_of`](Self::revoke_others_of) ("log out my other
/// devices") and [`revoke_index`](Self::revoke_index) (an administrator's "log alice out
/// everywhere"). Each index has a *generation* in a
/// [`RevocationStore`](crate::revocation::RevocationStore), 0 until it is first revoked;
/// revoking increments it. An indexed session's cookie carries the generation it was first
/// sealed with (re-sealing keeps it), and a cookie whose generation is not the current one
/// is refused as no session, reported as [`Rejection::Revoked`]. Cookies of sessions
/// without an index are never looked up nor refused. Cookies sealed before revocation
/// existed count as generation 0: valid until their index is revoked once.
///
/// The trade-off: opening an indexed cookie costs one generation lookup, cached per index
/// for at most [`revocation_staleness`](Self::revocation_staleness) (1 s by default), and
/// sealing a session under a new index (a login) asks the store itself. The node that
/// revokes refuses the revoked cookies at once; other nodes within the staleness bound.
/// When the store cannot be reached the lookup fails like a server-side store's load
/// ([`Error::is_unavailable`]): the HTTP layer answers 503 by default and never accepts a
/// cookie it could not check. Listing a principal's sessions or devices stays impossible:
/// nothing of a cookie session is kept server-side but the generation, so the revoke
/// operations do not even count what they ended.
///
/// The lookup is asynchronous: use [`open_async`](Self::open_async),
/// [`open_outcome_async`](Self::open_outcome_async) and [`seal_async`](Self::seal_async)
/// (the HTTP layer does). With revocation on, the synchronous [`open`](Self::open) refuses
/// every indexed cookie (it cannot check it) and [`seal`](Self::seal) refuses to seal a
/// session under a new index (it cannot look its generation up).
///
/// Give it to [`SessionLayer`](crate::http::SessionLayer) in place of a
/// [`SessionProvider`](crate::SessionProvider).
///
/// # Examples
///
/// ```
/// use session::{ClientInfo, CookieSessions, SessionConfig, SessionData};
/// use session::crypto::{KeyId, KeyRing, Secret};
///
/// #[derive(SessionData)]
/// struct AppSession {
///     user: Option<String>,
/// }
///
/// let ring = KeyRing::new(KeyId(1), Secret::generate()?);
/// let store = CookieSessions::new(ring, SessionConfig::production().build()?)?.compress_above(Some(256));
///
/// let client = ClientInfo::default();
/// let mut session = store.create::<AppSession>()?;
/// session.set_user(Some("alice".into()));
/// let cookie = store.seal(&mut session, &client)?;
///
/// let opened = store.open::<AppSession>(&cookie, &client).expect("valid cookie");
/// assert_eq!(opened.user().as_deref(), Some("alice"));
/// assert!(store.open::<AppSession>("tampered", &client).is_none());
/// # Ok::<(), session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CookieSessions {
    ring: KeyRing,
    purpose: Purpose,
    config: SessionConfig,
    compress_above: Option<usize>,
    binding: ClientBinding,
    callbacks: Callbacks,
    /// Bytes of the `Set-Cookie` value around the cookie value (name, `=`, attributes):
    /// the cookie crate writes the value verbatim, so a value's full size is this plus its
    /// length, checked on every seal without rendering the header twice.
    frame_len: usize,
    /// The generation store and its cache, shared by clones; `None`: revocation is off.
    revocation: Option<Arc<Revocation>>,
    /// How long a cached generation is used before it is asked again.
    staleness: Duration,
}

impl CookieSessions {
    /// Cookie sessions sealed with `ring` under the cookie name of `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the cookie name is too long to be a purpose label.
    pub fn new(ring: KeyRing, config: SessionConfig) -> Result<Self, Error> {
        let purpose = Purpose::cookie(&config.cookie().name).map_err(|error| Error::Config(error.to_string()))?;
        let frame_len = set_cookie::render(config.cookie(), Some(""))?.len();
        Ok(Self {
            ring,
            purpose,
            config,
            compress_above: None,
            binding: ClientBinding::NONE,
            callbacks: Callbacks::default(),
            frame_len,
            revocation: None,
            staleness: DEFAULT_STALENESS,
        })
    }

    /// Turns on revocation by index, with generations kept in `store` (see
    /// [Revocation](Self#revocation)): a [`MemoryRevocationStore`](crate::MemoryRevocationStore)
    /// for one process, a `RedisRevocationStore` (feature `redis`) for several nodes. Off by
    /// default.
    ///
    /// Clones and [`with_config`](Self::with_config) share the store and its cache, so a
    /// revoke through any of them is seen by all at once.
    #[must_use]
    pub fn with_revocation(mut self, store: impl RevocationStore) -> Self {
        self.revocation = Some(Arc::new(Revocation::new(store)));
        self
    }

    /// How long a generation read from the revocation store is used before it is read again
    /// (default 1 s): a cookie revoked through another node is refused here at most this
    /// long after. A revoke through this node (or a clone) is seen at once. Zero reads the
    /// store for every indexed cookie. Stores in this process
    /// ([`RevocationStore::is_local`]) are never cached. Measured on the configuration's
    /// clock.
    #[must_use]
    pub fn revocation_staleness(mut self, staleness: Duration) -> Self {
        self.staleness = staleness;
        self
    }

    /// Sets the callbacks. Cookie sessions keep nothing server-side, so only
    /// [`on_rejected`](Callbacks::on_rejected) is called (tampered cookies, client
    /// mismatches, revoked cookies).
    #[must_use]
    pub fn with_callbacks(mut self, callbacks: Callbacks) -> Self {
        self.callbacks = callbacks;
        self
    }

    /// Compresses the sealed data (gzip) when it is longer than this many bytes.
    #[must_use]
    pub fn compress_above(mut self, threshold: Option<usize>) -> Self {
        self.compress_above = threshold;
        self
    }

    /// Binds sessions to client facts; a mismatch is treated as no session.
    #[must_use]
    pub fn bind_client(mut self, binding: ClientBinding) -> Self {
        self.binding = binding;
        self
    }

    /// Cookie sessions with the same key ring and options under another configuration:
    /// for a sub-session type (sudo mode) with its own cookie name and lifetimes. Its
    /// cookies are sealed for its own cookie name, so neither opens as the other.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_config(&self, config: SessionConfig) -> Result<Self, Error> {
        let fresh = Self::new(self.ring.clone(), config)?;
        Ok(Self {
            compress_above: self.compress_above,
            binding: self.binding,
            callbacks: self.callbacks.clone(),
            revocation: self.revocation.clone(),
            staleness: self.staleness,
            ..fresh
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// A new, unsealed session.
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if no ID can be generated.
    pub fn create<T: SessionData>(&self) -> Result<Session<T>, Error> {
        let meta = SessionMeta::new(
            self.config.now_ms(),
            duration_ms(self.config.idle_timeout()),
            duration_ms(self.config.absolute_timeout()),
        )
        .with_random_lineage()?;
        Ok(Session::new(SessionId::generate()?, meta, self.config.clock().clone()))
    }

    /// A new sub-session of `parent` (sudo mode): valid only together with `parent` as it
    /// is now (see [`Session::is_child_of`]); its absolute deadline never passes the
    /// parent's. The parent's key is sealed into the cookie with the rest.
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if no ID can be generated.
    pub fn spawn<T: SessionData, P: SessionData>(&self, parent: &Session<P>) -> Result<Session<T>, Error> {
        let mut child = self.create::<T>()?;
        child.tie_to(parent);
        Ok(child)
    }

    /// Opens a cookie value. Anything invalid, tampered, expired, sealed for another name or
    /// bound to another client gives `None`: the caller starts a new session.
    ///
    /// With revocation on, an indexed session's cookie gives `None` too, as this cannot
    /// look its generation up: use [`open_async`](Self::open_async).
    pub fn open<T: SessionData>(&self, value: &str, client: &ClientInfo) -> Option<Session<T>> {
        live(self.open_outcome(value, client))
    }

    /// Opens a cookie value, telling an authentic cookie whose session expired
    /// ([`LoadOutcome::Expired`]: its sealed deadline passed) from anything else that does
    /// not open ([`LoadOutcome::Unknown`]).
    ///
    /// With revocation on, an indexed session's cookie is [`LoadOutcome::Unknown`], as this
    /// cannot look its generation up: use [`open_outcome_async`](Self::open_outcome_async).
    pub fn open_outcome<T: SessionData>(&self, value: &str, client: &ClientInfo) -> LoadOutcome<T> {
        match self.open_unchecked::<T>(value, client) {
            LoadOutcome::Live(session) if self.revocation.is_some() && session.generation().is_some() => {
                tracing::warn!(
                    "revocation is on, so an indexed cookie session opens only through open_async; starting a new session"
                );
                LoadOutcome::Unknown
            }
            outcome => outcome,
        }
    }

    /// As [`open`](Self::open), and with revocation on, an indexed session's cookie whose
    /// generation is not its index's current one gives `None` (reported as
    /// [`Rejection::Revoked`]).
    ///
    /// # Errors
    ///
    /// When the revocation store fails: [`Error::is_unavailable`] holds if it cannot be
    /// reached. The cookie is then neither accepted nor refused.
    pub async fn open_async<T: SessionData>(
        &self,
        value: &str,
        client: &ClientInfo,
    ) -> Result<Option<Session<T>>, Error> {
        self.open_outcome_async(value, client).await.map(live)
    }

    /// As [`open_outcome`](Self::open_outcome), and with revocation on, an indexed session's
    /// cookie whose generation is not its index's current one is [`LoadOutcome::Unknown`]
    /// (reported as [`Rejection::Revoked`]). Without revocation, or for a session without an
    /// index, nothing is looked up.
    ///
    /// # Errors
    ///
    /// As [`open_async`](Self::open_async).
    pub async fn open_outcome_async<T: SessionData>(
        &self,
        value: &str,
        client: &ClientInfo,
    ) -> Result<LoadOutcome<T>, Error> {
        let outcome = self.open_unchecked(value, client);
        let (Some(revocation), LoadOutcome::Live(session)) = (&self.revocation, &outcome) else {
            return Ok(outcome);
        };
        let Some((index, sealed)) = session.generation() else {
            return Ok(outcome);
        };
        let mut current = self.generation(revocation, &index, Lookup::Cached).await?;
        if sealed > current {
            // Raised by a revoke elsewhere that the cache has not seen yet (a kept session
            // re-sealed), or forgotten by the store: only the store can tell.
            current = self.generation(revocation, &index, Lookup::Fresh).await?;
        }
        if sealed != current {
            self.callbacks.rejected(Rejection::Revoked);
            return Ok(LoadOutcome::Unknown);
        }
        Ok(outcome)
    }

    /// Opens a cookie value without asking the revocation store.
    fn open_unchecked<T: SessionData>(&self, value: &str, client: &ClientInfo) -> LoadOutcome<T> {
        let now = self.config.now_ms();
        let limits = OpenLimits {
            max_input_len: set_cookie::MAX_COOKIE_BYTES,
            max_plaintext_len: MAX_PLAINTEXT,
        };
        let opened = match self.ring.open_telling_expiry(&self.purpose, value, now / 1000, &limits) {
            Ok(opened) => opened,
            Err(OpenFailure::Expired) => return LoadOutcome::Expired,
            Err(OpenFailure::Invalid) => {
                self.callbacks.rejected(Rejection::Tampered);
                return LoadOutcome::Unknown;
            }
        };
        let Ok((payload, rest)) = postcard::take_from_bytes::<Payload>(&opened.plaintext) else {
            tracing::warn!("an authentic session cookie did not decode; starting a new session");
            return LoadOutcome::Unknown;
        };
        let Some((trailer, generation)) = read_trailer(rest) else {
            tracing::warn!("an authentic session cookie did not decode; starting a new session");
            return LoadOutcome::Unknown;
        };
        let Some(cookie) = CookieLifetime::from_byte(payload.cookie) else {
            tracing::warn!("an authentic session cookie has an unknown cookie lifetime; starting a new session");
            return LoadOutcome::Unknown;
        };
        let meta = SessionMeta {
            created_ms: payload.created_ms,
            accessed_ms: payload.accessed_ms,
            idle_deadline_ms: payload.idle_deadline_ms,
            absolute_deadline_ms: payload.absolute_deadline_ms,
            lineage: payload.lineage,
            idle_window_ms: payload.idle_window_ms,
            cookie,
            parent: payload.parent.map(StoreKey::from_bytes),
            server_only: false,
            index: trailer.index.map(IndexKey::from_bytes),
        };
        if meta.is_expired(now) {
            return LoadOutcome::Expired;
        }
        if !self.binding.matches(payload.binding, client) {
            self.callbacks.rejected(Rejection::ClientMismatch);
            return LoadOutcome::Unknown;
        }
        let refresh_due = opened.sealed_with_old_key
            || now.saturating_sub(meta.accessed_ms) >= duration_ms(self.config.refresh_interval());
        let data = codec::decode_bytes::<T>(payload.fields);
        let mut session = Session::from_parts(
            SessionId::from_bytes(payload.id),
            data,
            meta,
            Status::Stored,
            refresh_due,
            self.config.clock().clone(),
        );
        // Checked under the index of the data: a cookie sealed before indexes carried none.
        let index = session.data().index_key();
        session.set_generation(index.map(|index| (index, if meta.index == Some(index) { generation } else { 0 })));
        LoadOutcome::Live(session)
    }

    /// Seals the whole session into a cookie value, sliding its idle deadline.
    ///
    /// An indexed session keeps the revocation generation it was opened or last sealed
    /// with; under a new index (a login) it takes the index's current generation, which
    /// only [`seal_async`](Self::seal_async) can look up when revocation is on.
    ///
    /// # Errors
    ///
    /// [`Error::CookieTooLarge`] (with the actual size) when the `Set-Cookie` value would
    /// exceed 4096 bytes, [`Error::Encode`] when a field cannot be encoded, or
    /// [`Error::Seal`]; with revocation on, [`Error::Config`] for a session under a new
    /// index. The session is unchanged on error.
    pub fn seal<T: SessionData>(&self, session: &mut Session<T>, client: &ClientInfo) -> Result<String, Error> {
        match self.generation_to_seal(session) {
            Ok(generation) => self.seal_with(session, client, generation),
            Err(_) => Err(Error::Config(
                "revocation is on: a session under a new index is sealed with seal_async, which looks up the index's generation"
                    .into(),
            )),
        }
    }

    /// As [`seal`](Self::seal), looking up the current revocation generation of a session's
    /// new index in the revocation store (not in the cache: a login right after a revoke on
    /// another node must not be sealed with the generation that revoke ended).
    ///
    /// # Errors
    ///
    /// As [`seal`](Self::seal), and when the revocation store fails. The session is
    /// unchanged on error.
    pub async fn seal_async<T: SessionData>(
        &self,
        session: &mut Session<T>,
        client: &ClientInfo,
    ) -> Result<String, Error> {
        let generation = match self.generation_to_seal(session) {
            Ok(generation) => generation,
            Err((index, revocation)) => Some((index, self.generation(revocation, &index, Lookup::Fresh).await?)),
        };
        self.seal_with(session, client, generation)
    }

    /// "Log me out everywhere": revokes every cookie of `session`'s principal (its index),
    /// this one included, which is marked deleted (the HTTP layer then expires its cookie).
    /// Returns `false`, leaving `session` as it is, when it has no principal.
    ///
    /// Nothing counts the cookies ended: none of them is known server-side.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when revocation is off; when the revocation store fails, nothing
    /// was revoked (or, if the answer was lost, it was: retry).
    pub async fn revoke_all_of<T: SessionData>(&self, session: &mut Session<T>) -> Result<bool, Error> {
        let Some(index) = session.data().index_key() else {
            return Ok(false);
        };
        self.revoke(&index).await?;
        session.delete();
        Ok(true)
    }

    /// "Log out my other devices": revokes every cookie of `session`'s principal, then gives
    /// `session` the new generation and marks it for re-sealing, so the HTTP layer sets its
    /// new cookie on the response and this device stays logged in. Returns `false` when it
    /// has no principal. Outside the layer, seal it again ([`seal_async`](Self::seal_async))
    /// and send the new cookie.
    ///
    /// If the request then fails (a 5xx), the layer keeps the client's cookie, as for any
    /// change of a failed request, and that cookie, now revoked, ends this session too.
    ///
    /// # Errors
    ///
    /// As [`revoke_all_of`](Self::revoke_all_of).
    pub async fn revoke_others_of<T: SessionData>(&self, session: &mut Session<T>) -> Result<bool, Error> {
        let Some(index) = session.data().index_key() else {
            return Ok(false);
        };
        let generation = self.revoke(&index).await?;
        session.set_generation(Some((index, generation)));
        session.require_refresh();
        Ok(true)
    }

    /// Revokes every cookie whose session's index is `index` (see
    /// [`IndexKey::of`](crate::store::IndexKey::of)): an administrator's "log alice out
    /// everywhere", without a session of hers.
    ///
    /// # Errors
    ///
    /// As [`revoke_all_of`](Self::revoke_all_of).
    pub async fn revoke_index(&self, index: &IndexKey) -> Result<(), Error> {
        self.revoke(index).await.map(drop)
    }

    async fn revoke(&self, index: &IndexKey) -> Result<u64, Error> {
        let Some(revocation) = &self.revocation else {
            return Err(Error::Config(
                "revocation is off: turn it on with CookieSessions::with_revocation".into(),
            ));
        };
        revocation
            .revoke(
                index,
                self.config.now_ms(),
                duration_ms(self.staleness),
                self.keep_for(),
            )
            .await
    }

    async fn generation(&self, revocation: &Revocation, index: &IndexKey, lookup: Lookup) -> Result<u64, Error> {
        revocation
            .generation(
                index,
                lookup,
                self.config.now_ms(),
                duration_ms(self.staleness),
                self.keep_for(),
            )
            .await
    }

    /// How long a revocation store must keep a generation after reading or raising it: as
    /// long as a cookie sealed with it can live.
    fn keep_for(&self) -> Duration {
        let longest = self
            .config
            .absolute_timeout()
            .max(self.config.max_persistent_lifetime());
        longest.saturating_add(self.staleness).saturating_add(KEEP_MARGIN)
    }

    /// The index and generation to seal `session` with: the ones it was opened or sealed
    /// with while its index is the same; 0 for a new index without revocation; with
    /// revocation, a new index must be looked up (`Err`).
    fn generation_to_seal<T: SessionData>(
        &self,
        session: &Session<T>,
    ) -> Result<Option<(IndexKey, u64)>, (IndexKey, &Revocation)> {
        let Some(index) = session.data().index_key() else {
            return Ok(None);
        };
        match (session.generation(), &self.revocation) {
            (Some((sealed, generation)), _) if sealed == index => Ok(Some((index, generation))),
            (_, None) => Ok(Some((index, 0))),
            (_, Some(revocation)) => Err((index, revocation)),
        }
    }

    fn seal_with<T: SessionData>(
        &self,
        session: &mut Session<T>,
        client: &ClientInfo,
        generation: Option<(IndexKey, u64)>,
    ) -> Result<String, Error> {
        let meta = provider::next_meta(&self.config, session, self.config.now_ms(), true);
        let all = DirtySet::all(T::FIELDS.len());
        let fields = codec::encode_save(session.data(), all, AtDefault::Omit)?;
        let payload = Payload::new(session.id(), &meta, self.binding.digest(client), fields.as_bytes());
        let trailer = Trailer {
            index: meta.index.map(|key| *key.as_bytes()),
        };
        // Sized once: growing from empty reallocated it several times per seal.
        let plaintext = postcard::to_extend(&payload, Vec::with_capacity(fields.as_bytes().len() + PLAINTEXT_FRAME))
            .and_then(|plaintext| postcard::to_extend(&trailer, plaintext))
            .and_then(|plaintext| match generation {
                Some((_, generation)) => postcard::to_extend(&generation, plaintext),
                None => Ok(plaintext),
            })
            .map_err(|error| Error::Encode {
                field: "<cookie payload>",
                source: error.into(),
            })?;
        if plaintext.len() > MAX_PLAINTEXT {
            // Past what a cookie can hold even compressed (opening bounds it too): the
            // size it would have had plain is the honest figure.
            return Err(Error::CookieTooLarge {
                size: self.frame_len + (ENVELOPE_OVERHEAD + plaintext.len()).div_ceil(3) * 4,
                limit: set_cookie::MAX_COOKIE_BYTES,
            });
        }
        let options = SealOptions {
            expires_at: meta.expires_ms().div_ceil(1000),
            compress_above: self.compress_above,
            max_plaintext_len: MAX_PLAINTEXT,
        };
        let value = self.ring.seal(&self.purpose, &plaintext, &options)?;
        let size = self.frame_len + value.len();
        if size > set_cookie::MAX_COOKIE_BYTES {
            return Err(Error::CookieTooLarge {
                size,
                limit: set_cookie::MAX_COOKIE_BYTES,
            });
        }
        session.set_meta(meta);
        session.saved(Status::Stored);
        session.set_generation(generation);
        Ok(value)
    }
}

fn live<T: SessionData>(outcome: LoadOutcome<T>) -> Option<Session<T>> {
    match outcome {
        LoadOutcome::Live(session) => Some(session),
        LoadOutcome::Expired | LoadOutcome::Unknown => None,
    }
}

/// Reads what follows the payload: the trailer (none in cookies sealed before indexes) and
/// the revocation generation (0 in cookies sealed before revocation). Anything after them
/// is left for later versions.
fn read_trailer(rest: &[u8]) -> Option<(Trailer, u64)> {
    if rest.is_empty() {
        return Some((Trailer { index: None }, 0));
    }
    let (trailer, rest) = postcard::take_from_bytes::<Trailer>(rest).ok()?;
    if rest.is_empty() {
        return Some((trailer, 0));
    }
    let (generation, _) = postcard::take_from_bytes::<u64>(rest).ok()?;
    Some((trailer, generation))
}

#[cfg(feature = "http")]
mod backend {
    use super::CookieSessions;
    use crate::{
        ClientInfo, Error, Session, SessionConfig, SessionData,
        http::{CookieUpdate, RequestOutcome, SessionBackend},
    };

    impl<T: SessionData> SessionBackend<T> for CookieSessions {
        fn config(&self) -> &SessionConfig {
            &self.config
        }

        fn create(&self) -> Result<Session<T>, Error> {
            CookieSessions::create(self)
        }

        async fn load(&self, cookie: &str, client: &ClientInfo) -> Result<Option<Session<T>>, Error> {
            self.open_async(cookie, client).await
        }

        async fn commit(
            &self,
            session: &mut Session<T>,
            client: &ClientInfo,
            outcome: RequestOutcome,
        ) -> Result<CookieUpdate, Error> {
            if session.is_deleted() {
                return Ok(CookieUpdate::Remove);
            }
            // A cookie cannot be revoked, so a failed request's regeneration would only
            // reseal its dropped changes: keep the client's cookie.
            if !session.needs_save() || outcome == RequestOutcome::Failed {
                return Ok(CookieUpdate::Keep);
            }
            self.seal_async(session, client).await.map(CookieUpdate::Set)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyId, Secret};

    #[derive(crate::SessionData)]
    #[session(crate = "crate")]
    struct Account {
        #[session(index)]
        user: Option<String>,
    }

    fn sessions() -> CookieSessions {
        let ring = KeyRing::new(KeyId(1), Secret::generate().unwrap());
        CookieSessions::new(ring, SessionConfig::development().build().unwrap()).unwrap()
    }

    #[test]
    fn the_index_is_sealed_with_the_session_and_older_cookies_without_it_still_open() {
        let store = sessions();
        let client = ClientInfo::default();
        let mut session = store.create::<Account>().unwrap();
        session.set_user(Some("alice".into()));
        let cookie = store.seal(&mut session, &client).unwrap();
        let alice = IndexKey::of("user", "alice").unwrap();
        assert_eq!(session.meta().index, Some(alice));
        let opened = store.open::<Account>(&cookie, &client).unwrap();
        assert_eq!(opened.meta().index, Some(alice), "sealed and read back");

        // A cookie sealed before indexes: the payload alone, nothing after it.
        let meta = session.meta();
        let fields = codec::encode(session.data(), DirtySet::all(1)).unwrap();
        let payload = Payload::new(session.id(), meta, None, fields.as_bytes());
        let options = SealOptions {
            expires_at: meta.expires_ms().div_ceil(1000),
            compress_above: None,
            max_plaintext_len: MAX_PLAINTEXT,
        };
        let old = store
            .ring
            .seal(&store.purpose, &postcard::to_allocvec(&payload).unwrap(), &options)
            .unwrap();
        let opened = store.open::<Account>(&old, &client).expect("an older cookie opens");
        assert_eq!(opened.user().as_deref(), Some("alice"));
        assert_eq!(opened.meta().index, None, "with no index until it is sealed again");
    }

    /// Seals `plaintext` as a cookie of `store` living as long as `session`.
    fn seal_plaintext(store: &CookieSessions, session: &Session<Account>, plaintext: &[u8]) -> String {
        let options = SealOptions {
            expires_at: session.meta().expires_ms().div_ceil(1000),
            compress_above: None,
            max_plaintext_len: MAX_PLAINTEXT,
        };
        store.ring.seal(&store.purpose, plaintext, &options).unwrap()
    }

    #[test]
    fn cookies_sealed_before_revocation_are_generation_zero_of_their_index() {
        let store = sessions().with_revocation(crate::MemoryRevocationStore::new());
        let client = ClientInfo::default();
        let run = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut session = store.create::<Account>().unwrap();
        session.set_user(Some("alice".into()));
        let current = run.block_on(store.seal_async(&mut session, &client)).unwrap();

        // What this build seals is the older layout and one varint: the generation.
        let limits = OpenLimits {
            max_input_len: set_cookie::MAX_COOKIE_BYTES,
            max_plaintext_len: MAX_PLAINTEXT,
        };
        let opened = store
            .ring
            .open(&store.purpose, &current, store.config.now_ms() / 1000, &limits)
            .unwrap()
            .plaintext;
        let (_, rest) = postcard::take_from_bytes::<Payload>(&opened).unwrap();
        let (trailer, generation) = postcard::take_from_bytes::<Trailer>(rest).unwrap();
        assert_eq!(trailer.index, Some(*IndexKey::of("user", "alice").unwrap().as_bytes()));
        assert_eq!(generation, [0], "generation 0");
        let without_generation = seal_plaintext(&store, &session, &opened[..opened.len() - 1]);
        // Before indexes: the payload alone.
        let payload_len = opened.len() - rest.len();
        let without_index = seal_plaintext(&store, &session, &opened[..payload_len]);

        for old in [&without_generation, &without_index] {
            let opened = run.block_on(store.open_async::<Account>(old, &client)).unwrap();
            assert_eq!(opened.unwrap().user().as_deref(), Some("alice"));
        }
        run.block_on(store.revoke_index(&IndexKey::of("user", "alice").unwrap()))
            .unwrap();
        for old in [&current, &without_generation, &without_index] {
            assert!(
                run.block_on(store.open_async::<Account>(old, &client))
                    .unwrap()
                    .is_none()
            );
        }
    }
}
