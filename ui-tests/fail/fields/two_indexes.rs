use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(index)]
    user: Option<String>,
    #[session(index)]
    tenant: Option<u64>,
}

fn main() {}
