use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(skip, version = 2)]
    scratch: Vec<u8>,
}

fn main() {}
