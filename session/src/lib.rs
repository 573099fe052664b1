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
//! let cookie = session.id().to_string();
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
//! - [`SessionData`] (derived) and [`Flash`]: the typed data;
//! - [`Session`]: one user's session, dereferencing to the generated accessors;
//! - [`SessionProvider`]: create, load, save, regenerate, delete, query;
//! - [`SessionConfig`]: lifetimes (idle, absolute, sliding refresh) and cookie attributes,
//!   with presets;
//! - [`store`]: the store contract and [`MemoryStore`]; with the `redis` feature,
//!   `RedisStore` (`store::redis`), with retry and a circuit breaker (`resilience`);
//! - [`codec`]: the field-tagged record format.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod callbacks;
mod client;
mod clock;
pub mod codec;
mod config;
pub mod crypto;
mod data;
mod error;
mod flash;
mod id;
mod provider;
#[cfg(feature = "redis")]
pub mod resilience;
mod session;
mod set_cookie;
pub mod store;

pub use callbacks::Callbacks;
pub use client::{ClientBinding, ClientInfo};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{FieldError, FieldRecord};
pub use config::{CookieConfig, SameSite, SessionConfig, SessionConfigBuilder};
pub use data::{DirtySet, FieldDef, SessionData};
pub use error::{Error, Result};
pub use flash::Flash;
pub use id::{SessionId, StoreKey};
pub use provider::{SaveOutcome, SessionProvider, StoredSession};
pub use session::{Session, SessionMeta};
pub use session_derive::SessionData;
pub use set_cookie::MAX_COOKIE_BYTES;
#[cfg(feature = "redis")]
pub use store::redis::{RedisStore, RedisStoreBuilder};
pub use store::{QueryStore, SessionStore, cookie::CookieStore, memory::MemoryStore};

/// What generated code reaches; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::{
        codec::{FieldCodec, StoredField, flash_codec, no_such_field, value_codec},
        data::{FieldsOf, Tracked},
        flash::FlashSlot,
    };
}

#[cfg(feature = "http")]
pub mod http;
