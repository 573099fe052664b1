mod framework {
    pub use session as sessions;
}

use framework::sessions::SessionData;

#[derive(SessionData)]
#[session(crate = "crate::framework::sessions")]
struct AppSession {
    user: Option<String>,
}

fn main() {
    assert_eq!(<AppSession as framework::sessions::SessionData>::FIELDS[0].name, "user");
}
