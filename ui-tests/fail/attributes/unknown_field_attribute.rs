use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(flsh)]
    notice: Option<String>,
}

fn main() {}
