use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(flash)]
    notice: String,
}

fn main() {}
