use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(default = "zero")]
    visits: u64,
}

fn main() {}
