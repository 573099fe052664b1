use session::crypto::{KeyId, KeyRing, Secret};
use session::{CookieSessions, SessionConfig, SessionData, SessionProvider};

#[derive(SessionData)]
struct AppSession {
    user: Option<String>,
}

async fn count_sessions() -> Result<usize, session::Error> {
    let ring = KeyRing::new(KeyId(1), Secret::generate()?);
    let store = CookieSessions::new(ring, SessionConfig::production().build()?)?;
    // A cookie store holds nothing server-side: it cannot back a provider, let alone count.
    let provider = SessionProvider::<AppSession, _>::new(store, SessionConfig::production().build()?);
    provider.count().await
}

fn main() {
    let _ = count_sessions();
}
