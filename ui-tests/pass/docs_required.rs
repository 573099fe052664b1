//! Generated public items are documented, so `deny(missing_docs)` crates can derive.
#![deny(missing_docs)]

use session::{Flash, SessionData};

/// A documented session.
#[derive(SessionData)]
pub struct AppSession {
    /// The user.
    pub user: Option<String>,
    /// A flash.
    #[session(flash)]
    pub notice: Flash<String>,
}

fn main() {}
