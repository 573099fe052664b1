//! Helpers shared by the integration tests.
#![allow(dead_code, unused_imports, unused_macros, missing_docs)]

pub mod counting;
pub mod demo_process;
pub mod failing;
pub mod http;
pub mod lifetimes;
pub mod sql;

/// The private `redis-server` and Redis Cluster, from `session-test-support`.
pub use session_test_support::{redis_cluster, redis_server};

use session::{Flash, SessionData};

/// The session type most tests use: a user, a counter, preferences and a flash notice.
#[derive(SessionData, Debug, Clone, PartialEq)]
pub struct AppSession {
    pub user: Option<String>,
    pub visits: u64,
    #[session(default = "light".to_owned())]
    pub theme: String,
    pub language: Option<String>,
    #[session(flash)]
    pub notice: Flash<String>,
    #[session(skip)]
    pub scratch: Vec<u8>,
}
