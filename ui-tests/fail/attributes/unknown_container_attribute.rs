use session::SessionData;

#[derive(SessionData)]
#[session(prefix = "app")]
struct AppSession {
    user: Option<String>,
}

fn main() {}
