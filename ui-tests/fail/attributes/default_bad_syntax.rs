use session::SessionData;

#[derive(SessionData)]
struct AppSession {
    #[session(default = 1 +)]
    visits: u64,
}

fn main() {}
