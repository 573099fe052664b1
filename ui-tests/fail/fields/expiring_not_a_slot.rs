use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(expiring)]
    code: String,
}

fn main() {}
