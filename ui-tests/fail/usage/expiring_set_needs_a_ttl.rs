use session::{Expiring, MemoryStore, SessionConfig, SessionData, SessionProvider};

#[derive(SessionData)]
struct AppSession {
    #[session(expiring)]
    code: Expiring<String>,
}

fn main() {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build().unwrap());
    let mut session = provider.create().unwrap();
    session.set_code("123456".to_owned());
}
