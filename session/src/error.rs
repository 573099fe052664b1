//! The one error type of the runtime crate.

use std::time::Duration;

/// Everything that can go wrong in a session operation.
///
/// Bad input from clients (garbage IDs, tampered cookies, unknown or expired sessions)
/// is not an error: it yields "no session" so the caller starts a fresh one. The variants
/// here are the failures a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration was refused when it was built; the message names the fix.
    #[error("invalid session configuration: {0}")]
    Config(String),

    /// No live session has this ID (never issued, expired or deleted).
    #[error("no such session (unknown, expired or deleted)")]
    NotFound,

    /// The session was deleted or expired in the store while this handle held it, so its
    /// changes were not written; the caller should start a new session.
    #[error("the session was deleted or expired before it could be saved; its changes were dropped")]
    Gone,

    /// The store kept reporting that freshly generated IDs were taken.
    #[error("could not allocate an unused session ID after {attempts} attempts")]
    IdCollision {
        /// How many IDs were tried.
        attempts: u32,
    },

    /// A field's value could not be encoded for storage.
    #[error("session field `{field}` could not be encoded: {source}")]
    Encode {
        /// The stored name of the field.
        field: &'static str,
        /// Why encoding failed.
        source: crate::FieldError,
    },

    /// The session cookie would exceed what browsers accept. The HTTP layer answers 413.
    #[error(
        "the session cookie would be {size} bytes (name, value and attributes); browsers accept at most {limit}: store less in the session or use a server-side store"
    )]
    CookieTooLarge {
        /// The size of the `Set-Cookie` value that was refused.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// The session would be larger than the store allows
    /// ([`SessionConfig::max_record_bytes`](crate::SessionConfig::max_record_bytes)); nothing
    /// was stored. The HTTP layer answers 413.
    #[error(
        "the session would be {size} bytes, over the limit of {limit}: store less in it, or raise max_record_bytes"
    )]
    RecordTooLarge {
        /// The size the session would have had, in bytes of encoded fields.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// Key material was refused (too short, low entropy, a known default, ...); the
    /// message says how to generate a good secret.
    #[error(transparent)]
    Key(#[from] crate::crypto::KeyError),

    /// A session could not be sealed.
    #[error("the session could not be sealed: {0}")]
    Seal(#[from] crate::crypto::SealError),

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),

    /// The store did not answer within its per-command timeout.
    #[error("session store timed out after {0:?}")]
    Timeout(Duration),

    /// The store's circuit breaker is open after repeated backend failures.
    #[error("session store unavailable (circuit open); next probe in {retry_in:?}")]
    CircuitOpen {
        /// Time until the breaker lets a probe through.
        retry_in: Duration,
    },

    /// The store's backend could not be reached or is failing: connection refused or
    /// dropped, I/O error, a server still loading or failing over. The HTTP layer answers
    /// 503 (or degrades, as configured).
    #[error("session store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The store answered, but with an error or an answer this crate does not expect (a
    /// refused command, a key of the wrong type, a script's unknown result). The HTTP layer
    /// answers 500 and logs it: retrying elsewhere would not help.
    #[error("session store failed: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Whether the error means the store is unreachable or failing ([`Timeout`],
    /// [`CircuitOpen`], [`Unavailable`]), as opposed to a store that answered with an error,
    /// a problem with this particular session, or the configuration.
    ///
    /// [`Timeout`]: Self::Timeout
    /// [`CircuitOpen`]: Self::CircuitOpen
    /// [`Unavailable`]: Self::Unavailable
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::CircuitOpen { .. } | Self::Unavailable(_))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
