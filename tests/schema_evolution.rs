//! A record written by an older struct decodes into a newer one: added,
//! removed, retyped and renamed fields never lose the other fields, never panic.

use session::{__private::DirtySet, __private::codec, Flash, SessionData};

mod v1 {
    use super::*;

    #[derive(SessionData, Debug)]
    pub struct Account {
        pub user: Option<String>,
        pub visits: u64,
        pub theme: String,
        pub legacy_flag: bool,
        #[session(flash)]
        pub notice: Flash<String>,
        pub small: u32,
    }
}

mod v2 {
    use super::*;

    #[derive(SessionData, Debug)]
    pub struct Account {
        /// Renamed in Rust, same stored name: keeps its data.
        #[session(rename = "user")]
        pub login: Option<String>,
        /// Retyped incompatibly: takes its default.
        #[session(default = "unknown".to_owned())]
        pub visits: String,
        pub theme: String,
        // `legacy_flag` removed: its stored bytes are skipped.
        /// Added: takes its default.
        #[session(default = 42)]
        pub added: u16,
        #[session(flash)]
        pub notice: Flash<String>,
        /// Widened compatibly (postcard varints): keeps its value.
        pub small: u64,
    }
}

fn old_record() -> session::store::FieldRecord {
    let mut old = v1::Account::initial();
    old.user = Some("alice".into());
    old.visits = 7;
    old.theme = "dark".into();
    old.legacy_flag = true;
    old.notice.set_next("hello".into());
    old.small = 300;
    codec::encode(&old, DirtySet::all(v1::Account::FIELDS.len())).unwrap()
}

#[test]
fn a_newer_struct_reads_an_older_record_and_keeps_every_compatible_field() {
    let new: v2::Account = codec::decode(&old_record());
    assert_eq!(
        new.login.as_deref(),
        Some("alice"),
        "renamed with `rename` keeps its data"
    );
    assert_eq!(new.visits, "unknown", "retyped field takes its default");
    assert_eq!(new.theme, "dark");
    assert_eq!(new.added, 42, "added field takes its default");
    assert_eq!(
        new.notice.get().map(String::as_str),
        Some("hello"),
        "flash survives the upgrade"
    );
    assert_eq!(new.small, 300, "u32 -> u64 is compatible");
}

#[test]
fn an_older_struct_reads_a_newer_record_too() {
    let mut new = v2::Account::initial();
    new.login = Some("bob".into());
    new.small = 5;
    let record = codec::encode(&new, DirtySet::all(v2::Account::FIELDS.len())).unwrap();
    let old: v1::Account = codec::decode(&record);
    assert_eq!(old.user.as_deref(), Some("bob"));
    assert_eq!(old.visits, 0, "a String where a u64 was stored reads as the default");
    assert_eq!(old.small, 5);
    assert!(!old.legacy_flag);
}

#[test]
fn a_truncated_or_garbled_record_keeps_what_it_can() {
    let bytes = old_record().into_bytes();
    for cut in 0..bytes.len() {
        let _: v2::Account = codec::decode(&session::store::FieldRecord::from_bytes(bytes[..cut].to_vec()));
    }
    let mut garbled = bytes.clone();
    let last = garbled.len() - 1;
    garbled[last] ^= 0xff;
    let new: v2::Account = codec::decode(&session::store::FieldRecord::from_bytes(garbled));
    assert_eq!(new.login.as_deref(), Some("alice"), "fields before the damage are kept");
}
