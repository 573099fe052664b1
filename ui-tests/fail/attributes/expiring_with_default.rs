use session::{Expiring, SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(expiring, default = Expiring::default())]
    code: Expiring<String>,
}

fn main() {}
