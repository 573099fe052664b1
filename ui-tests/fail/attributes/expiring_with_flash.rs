use session::{Expiring, SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(flash, expiring)]
    code: Expiring<String>,
}

fn main() {}
