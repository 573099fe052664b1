use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(rename = "")]
    user: Option<String>,
}

fn main() {}
