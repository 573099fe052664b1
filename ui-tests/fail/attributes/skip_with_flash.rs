use session::{Flash, SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(skip, flash)]
    notice: Flash<String>,
}

fn main() {}
