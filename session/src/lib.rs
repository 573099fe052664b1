//! Typed, secure, fast sessions for Rust web applications.
//!
//! A session is your own struct with `#[derive(SessionData)]`: the derive generates typed
//! accessors, per-field change tracking and flash slots, so a typo is a compile error, a
//! store writes only the fields that changed, and two overlapping requests that change
//! different fields both keep their change.
//!
//! ```
//! use session::{Flash, MemoryStore, SessionConfig, SessionData, SessionProvider};
//!
//! #[derive(SessionData)]
//! struct AppSession {
//!     user: Option<String>,
//!     visits: u64,
//!     #[session(flash)]
//!     notice: Flash<String>,
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build()?);
//!
//! // Request 1: log in.
//! let mut session = provider.create()?;
//! session.set_user(Some("alice".into()));
//! session.set_notice("Welcome alice".into());
//! provider.save(&mut session).await?;
//! let cookie = session.id().expose();
//!
//! // Request 2: the flash notice is visible once.
//! let mut session = provider.load(&cookie).await?.expect("live session");
//! *session.visits_mut() += 1;
//! assert_eq!(session.notice().map(String::as_str), Some("Welcome alice"));
//! provider.save(&mut session).await?;
//!
//! // Request 3: it is gone.
//! let session = provider.load(&cookie).await?.expect("live session");
//! assert_eq!(session.notice(), None);
//! assert_eq!(*session.visits(), 1);
//! # Ok::<(), session::Error>(())
//! # }).unwrap();
//! ```
//!
//! The parts:
//!
//! - [`SessionData`] (derived), [`Flash`] and [`Expiring`]: the typed data;
//! - [`Session`]: one user's session, dereferencing to the generated accessors;
//! - [`SessionProvider`]: create, load, save, regenerate, delete, query, and, for a type
//!   with an `#[session(index)]` field, list or end every session of one user
//!   ([`IndexedSession`], [`Device`]);
//! - [`SessionConfig`]: lifetimes (idle, absolute, sliding refresh) and cookie attributes,
//!   with presets;
//! - the stores: [`MemoryStore`]; with the `redis` feature, `RedisStore` (one server or a
//!   Redis Cluster) with retry and a circuit breaker (`resilience`); with the `clustered`
//!   feature, `ClusteredStore`, a local cache per application node in front of it, kept
//!   coherent by invalidations pushed by Redis;
//! - [`CookieSessions`]: the whole session in an encrypted cookie, no server-side state;
//!   optionally revocable by index ([`revocation`]: "log out everywhere" for cookies);
//! - [`http`] (features `http`, `axum`, `actix`): the tower layer, the axum extractor and the
//!   actix-web middleware;
//! - [`crypto`]: secrets, the key ring and the sealed envelope;
//! - [`store`]: what a store implements, for writing your own; with the `test-util`
//!   feature, `test_util` and `store_contract!`: the suite every built-in store passes.
//!
//! `ARCHITECTURE.md` in the repository maps the modules and follows one request and one
//! field's bytes through them.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod callbacks;
mod client;
mod clock;
mod codec;
mod config;
mod cookie_sessions;
pub mod crypto;
mod data;
mod device;
mod error;
mod expiring;
mod expiry;
mod field;
mod flash;
#[cfg(feature = "http")]
pub mod http;
mod id;
mod index;
mod provider;
mod rejection;
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub mod resilience;
pub mod revocation;
mod session;
mod set_cookie;
pub mod store;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use callbacks::Callbacks;
pub use client::{ClientBinding, ClientInfo};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    CookieConfig, DEFAULT_MAX_PERSISTENT, DEFAULT_MAX_RECORD_BYTES, SameSite, SessionConfig, SessionConfigBuilder,
};
pub use cookie_sessions::CookieSessions;
pub use data::SessionData;
pub use device::Device;
pub use error::{Error, Result};
pub use expiring::Expiring;
pub use expiry::{CookieLifetime, Expiry};
pub use field::FieldError;
pub use flash::Flash;
pub use id::SessionId;
pub use provider::{IndexedSession, LoadOutcome, SaveOutcome, SessionProvider, StoredSession};
pub use rejection::Rejection;
pub use revocation::MemoryRevocationStore;
pub use session::{Session, SessionMeta};
pub use session_derive::SessionData;
pub use set_cookie::MAX_COOKIE_BYTES;
#[cfg(feature = "clustered")]
pub use store::clustered::{ClusteredStats, ClusteredStore, ClusteredStoreBuilder};
pub use store::memory::{MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
pub use store::redis::{RedisRevocationStore, RedisStore, RedisStoreBuilder};
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub use store::sql::ExpiryTask;
#[cfg(feature = "mysql")]
pub use store::sql::mysql::{MySqlStore, MySqlStoreBuilder};
#[cfg(feature = "postgres")]
pub use store::sql::postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use store::sql::sqlite::{SqliteStore, SqliteStoreBuilder};

/// What generated code reaches, and the internals the project's own tests inspect; not a
/// public API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::{
        data::{DirtySet, FieldDef, FieldsOf, Tracked},
        expiring::ExpiringSlot,
        field::{FieldCodec, StoredField, expiring_codec, flash_codec, no_such_field, value_codec},
        flash::FlashSlot,
        index::{IndexValue, index_key},
    };

    /// The record codec, for the project's own codec tests.
    pub mod codec {
        pub use crate::codec::{decode, encode};
    }
}
