use session::{Flash, SessionData};

#[derive(SessionData)]
struct AppSession {
    #[session(flash, default = Flash::default())]
    notice: Flash<String>,
}

fn main() {}
