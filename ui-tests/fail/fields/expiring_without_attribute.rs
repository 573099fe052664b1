use session::{Expiring, SessionData};

#[derive(SessionData)]
struct AppSession {
    code: Expiring<String>,
}

fn main() {}
