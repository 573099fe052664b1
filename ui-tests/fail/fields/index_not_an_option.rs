use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(index)]
    user: String,
}

fn main() {}
