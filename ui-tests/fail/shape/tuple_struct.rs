use session::SessionData;

#[derive(SessionData)]
struct Pair(String, u64);

fn main() {}
