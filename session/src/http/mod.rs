//! Tower, axum and actix-web integration (features `http`, `axum` and `actix`).
//!
//! [`SessionLayer`] puts a [`LazySession`] into every request. Nothing is read from the
//! store until a handler calls [`LazySession::load`]; after the handler, the layer writes
//! the session only if it is new and changed, changed, regenerated, deleted or due a
//! sliding refresh, and never after a 5xx response. It then sets or expires the cookie,
//! adding `Cache-Control: no-store` unless the response has its own.
//!
//! A bad, tampered, expired or unknown cookie starts a fresh session and never fails the
//! request. When the store is unreachable the layer answers 503 (the default), or, with
//! [`OutagePolicy::Degrade`], serves the request with an anonymous session it never saves.
//!
//! The `actix` module (feature `actix`) has the same behaviour for actix-web, from the same code: a
//! middleware, the same [`LazySession`] extractor, and a 401 guard.
//!
//! ```no_run
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use session::{Error, MemoryStore, SessionConfig, SessionData, SessionProvider};
//! use session::http::{LazySession, SessionLayer};
//!
//! #[derive(SessionData)]
//! struct AppSession {
//!     visits: u64,
//! }
//!
//! async fn visit(session: LazySession<AppSession>) -> Result<String, Error> {
//!     let mut session = session.load().await?;
//!     *session.visits_mut() += 1;
//!     Ok(format!("visit number {}", session.visits()))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::production().build()?);
//! let app = Router::new().route("/", get(visit)).layer(SessionLayer::new(provider));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! # }
//! ```

mod backend;
mod commit;
mod cookie;
mod guard;
mod layer;
mod lazy;
mod response;
mod shared;

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
mod axum;

pub use backend::{CookieUpdate, RequestOutcome, SessionBackend};
pub use guard::{RequireSession, RequireSessionLayer};
pub use layer::{SessionLayer, SessionService};
pub use lazy::{LazySession, OutagePolicy, SessionGuard};

#[cfg(any(feature = "axum", feature = "actix"))]
pub use lazy::MissingSessionLayer;
