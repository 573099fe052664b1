use session::{Flash, SessionData};

// Three independent mistakes: all three are reported by one build.
#[derive(SessionData)]
struct AppSession {
    #[session(colour)]
    user: Option<String>,
    #[session(skip, flash)]
    notice: Flash<String>,
    #[session(rename = "user")]
    login: Option<String>,
}

fn main() {}
