use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(rename = "u", rename = "usr")]
    user: Option<String>,
    #[session(skip)]
    #[session(skip)]
    scratch: Vec<u8>,
}

fn main() {}
