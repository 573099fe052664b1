use session::{Expiring, SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(skip, expiring)]
    code: Expiring<String>,
}

fn main() {}
