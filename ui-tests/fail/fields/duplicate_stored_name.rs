use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    user: Option<String>,
    #[session(rename = "user")]
    login: Option<String>,
}

fn main() {}
