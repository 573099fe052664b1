use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(skip, rename = "cache")]
    scratch: Vec<u8>,
}

fn main() {}
