use session::{MemoryStore, SessionConfig, SessionData, SessionProvider};

#[derive(SessionData)]
struct AppSession {
    user: Option<String>,
}

fn main() {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build().unwrap());
    let mut session = provider.create().unwrap();
    session.set_usr(Some("alice".to_owned()));
}
