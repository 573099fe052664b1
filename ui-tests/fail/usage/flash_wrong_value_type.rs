use session::{Flash, MemoryStore, SessionConfig, SessionData, SessionProvider};

#[derive(SessionData)]
struct AppSession {
    #[session(flash)]
    notice: Flash<String>,
}

fn main() {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build().unwrap());
    let mut session = provider.create().unwrap();
    session.set_notice(Some("saved".to_owned()));
}
