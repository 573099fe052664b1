use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(rename = "$device")]
    device: Option<String>,
}

fn main() {}
