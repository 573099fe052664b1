use session::SessionData;

#[derive(SessionData)]
enum State {
    Anonymous,
    LoggedIn(String),
}

fn main() {}
