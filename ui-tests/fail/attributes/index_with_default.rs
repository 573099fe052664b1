use session::{SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(index, default = Some("guest".into()))]
    user: Option<String>,
}

fn main() {}
