use serde::{Deserialize, Serialize};
use session::SessionData;

#[derive(Serialize, Deserialize)]
struct Role(String);

#[derive(SessionData)]
struct AppSession {
    role: Role,
}

fn main() {}
