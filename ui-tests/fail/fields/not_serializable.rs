use session::SessionData;

#[derive(Default)]
struct DatabaseHandle;

#[derive(SessionData)]
struct AppSession {
    user: Option<String>,
    handle: DatabaseHandle,
}

fn main() {}
