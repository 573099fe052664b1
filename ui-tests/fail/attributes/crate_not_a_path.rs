use session::SessionData;

#[derive(SessionData)]
#[session(crate = "not a path")]
struct AppSession {
    user: Option<String>,
}

fn main() {}
