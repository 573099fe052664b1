use session::store::IndexKey;
use session::{Flash, SessionData};

#[derive(SessionData)]
pub struct ByName {
    #[session(index)]
    user: Option<String>,
    #[session(flash)]
    notice: Flash<String>,
}

#[derive(SessionData)]
pub struct ById {
    visits: u64,
    #[session(index, rename = "uid", version = 2)]
    account: core::option::Option<u64>,
}

#[derive(SessionData)]
pub struct Unindexed {
    user: Option<String>,
}

fn main() {
    let mut by_name = ByName::initial();
    assert_eq!(by_name.index_key(), None, "None is not indexed");
    by_name.user = Some("alice".into());
    assert_eq!(by_name.index_key(), Some(IndexKey::of("user", "alice").unwrap()));

    let mut by_id = ById::initial();
    by_id.account = Some(7);
    assert_eq!(by_id.index_key(), Some(IndexKey::of("uid", &7u64).unwrap()), "under the stored name");

    let mut unindexed = Unindexed::initial();
    unindexed.user = Some("alice".into());
    assert_eq!(unindexed.index_key(), None, "a type without an index field");
}
