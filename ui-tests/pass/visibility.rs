mod model {
    #[derive(session::SessionData)]
    pub(crate) struct AppSession {
        user: Option<String>,
    }
}

fn main() {
    let provider = session::SessionProvider::<model::AppSession, _>::new(
        session::MemoryStore::new(),
        session::SessionConfig::development().build().unwrap(),
    );
    let mut session = provider.create().unwrap();
    // Accessors follow the struct's visibility, not the (private) fields'.
    session.set_user(Some("alice".into()));
    let _ = session.user();
}
