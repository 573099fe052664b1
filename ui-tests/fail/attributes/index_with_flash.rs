use session::{Flash, SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(index, flash)]
    user: Flash<String>,
}

fn main() {}
