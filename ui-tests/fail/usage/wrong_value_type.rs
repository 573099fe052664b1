use session::{MemoryStore, SessionConfig, SessionData, SessionProvider};

#[derive(SessionData)]
struct AppSession {
    visits: u64,
}

fn main() {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build().unwrap());
    let mut session = provider.create().unwrap();
    session.set_visits("one");
}
