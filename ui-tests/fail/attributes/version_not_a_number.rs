use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(version = "two")]
    preferences: Vec<u8>,
    #[session(version = 99999999999)]
    theme: String,
}

fn main() {}
