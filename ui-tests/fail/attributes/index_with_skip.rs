use session::{SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(skip, index)]
    user: Option<String>,
}

fn main() {}
