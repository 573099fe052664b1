use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(rename = user_name)]
    user: Option<String>,
}

fn main() {}
