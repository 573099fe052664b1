//! Sessions kept whole in the cookie: sealed on every change, opened on every request.

use serde::{Deserialize, Serialize};

use crate::{
    Callbacks, ClientBinding, ClientInfo, Error, LoadOutcome, Session, SessionConfig, SessionData, SessionId,
    clock::duration_ms,
    codec,
    crypto::{KeyRing, OpenFailure, OpenLimits, Purpose, SealOptions},
    data::DirtySet,
    expiry::CookieLifetime,
    id::StoreKey,
    index::IndexKey,
    provider,
    rejection::Rejection,
    session::{SessionMeta, Status},
    set_cookie,
};

/// The most bytes of plaintext a cookie may decompress to.
const MAX_PLAINTEXT: usize = 16 * 1024;
/// Envelope bytes around the ciphertext: header, IV and tag, plus a padding block.
const ENVELOPE_OVERHEAD: usize = 75;

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

/// What follows the [`Payload`] in the plaintext. Kept apart so that a cookie sealed before
/// it existed (nothing follows) still opens, and an older version ignores it.
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
/// fields      bytes      the field-tagged record of every stored field (codec)
/// index       Option<[u8; 32]>  the session's IndexKey (SessionMeta::index); absent from
///                        cookies sealed before indexes, read as none
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
        })
    }

    /// Sets the callbacks. Cookie sessions keep nothing server-side, so only
    /// [`on_rejected`](Callbacks::on_rejected) is called (tampered cookies, client
    /// mismatches).
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
    pub fn open<T: SessionData>(&self, value: &str, client: &ClientInfo) -> Option<Session<T>> {
        match self.open_outcome(value, client) {
            LoadOutcome::Live(session) => Some(session),
            LoadOutcome::Expired | LoadOutcome::Unknown => None,
        }
    }

    /// Opens a cookie value, telling an authentic cookie whose session expired
    /// ([`LoadOutcome::Expired`]: its sealed deadline passed) from anything else that does
    /// not open ([`LoadOutcome::Unknown`]).
    pub fn open_outcome<T: SessionData>(&self, value: &str, client: &ClientInfo) -> LoadOutcome<T> {
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
        let trailer = match rest {
            [] => Trailer { index: None },
            rest => match postcard::from_bytes::<Trailer>(rest) {
                Ok(trailer) => trailer,
                Err(_) => {
                    tracing::warn!("an authentic session cookie did not decode; starting a new session");
                    return LoadOutcome::Unknown;
                }
            },
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
        LoadOutcome::Live(Session::from_parts(
            SessionId::from_bytes(payload.id),
            data,
            meta,
            Status::Stored,
            refresh_due,
            self.config.clock().clone(),
        ))
    }

    /// Seals the whole session into a cookie value, sliding its idle deadline.
    ///
    /// # Errors
    ///
    /// [`Error::CookieTooLarge`] (with the actual size) when the `Set-Cookie` value would
    /// exceed 4096 bytes, [`Error::Encode`] when a field cannot be encoded, or
    /// [`Error::Seal`]. The session is unchanged on error.
    pub fn seal<T: SessionData>(&self, session: &mut Session<T>, client: &ClientInfo) -> Result<String, Error> {
        let meta = provider::next_meta(&self.config, session, self.config.now_ms(), true);
        let fields = codec::encode(session.data(), DirtySet::all(T::FIELDS.len()))?;
        let payload = Payload {
            id: *session.id().as_bytes(),
            created_ms: meta.created_ms,
            accessed_ms: meta.accessed_ms,
            idle_deadline_ms: meta.idle_deadline_ms,
            absolute_deadline_ms: meta.absolute_deadline_ms,
            lineage: meta.lineage,
            idle_window_ms: meta.idle_window_ms,
            cookie: meta.cookie.to_byte(),
            parent: meta.parent.map(|key| *key.as_bytes()),
            binding: self.binding.digest(client),
            fields: fields.as_bytes(),
        };
        let trailer = Trailer {
            index: meta.index.map(|key| *key.as_bytes()),
        };
        let plaintext = postcard::to_allocvec(&payload)
            .and_then(|plaintext| postcard::to_extend(&trailer, plaintext))
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
        Ok(value)
    }
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
            Ok(self.open(cookie, client))
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
            self.seal(session, client).map(CookieUpdate::Set)
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
        let payload = Payload {
            id: *session.id().as_bytes(),
            created_ms: meta.created_ms,
            accessed_ms: meta.accessed_ms,
            idle_deadline_ms: meta.idle_deadline_ms,
            absolute_deadline_ms: meta.absolute_deadline_ms,
            lineage: meta.lineage,
            idle_window_ms: meta.idle_window_ms,
            cookie: meta.cookie.to_byte(),
            parent: None,
            binding: None,
            fields: fields.as_bytes(),
        };
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
}
