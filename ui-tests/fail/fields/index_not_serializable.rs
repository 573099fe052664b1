use serde::Deserialize;
use session::SessionData;

/// Deserializable, so the field itself could be read back, but not serializable.
#[derive(Default, Deserialize)]
struct UserId(u64);

#[derive(SessionData)]
struct AppSession {
    #[session(index)]
    user: Option<UserId>,
}

fn main() {}
