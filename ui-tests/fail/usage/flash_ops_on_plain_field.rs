use session::{MemoryStore, SessionConfig, SessionData, SessionProvider};

#[derive(SessionData)]
struct AppSession {
    notice: Option<String>,
}

fn main() {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build().unwrap());
    let mut session = provider.create().unwrap();
    session.keep_notice();
}
