use session::{Expiring, SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(index, expiring)]
    user: Expiring<String>,
}

fn main() {}
