//! A record written by an older struct decodes into a newer one: added, removed, retyped
//! and renamed fields never lose the other fields, never panic, and a retyped field is
//! never misread: it takes its default.

use serde::{Deserialize, Serialize};
use session::{
    __private::{DirtySet, codec},
    Flash, SessionData,
};

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
        pub user_id: u64,
        pub avatar: String,
        pub address: Address,
        pub preferences: Preferences,
    }

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    pub struct Address {
        pub city: String,
    }

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    pub struct Preferences {
        pub font_size: u64,
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
        /// Widened: postcard could read it, but the type as written changed, so it takes
        /// its default; a retype is never guessed compatible.
        pub small: u64,
        /// Retyped u64 -> i64: postcard would read a stored 10 as 5; the fingerprint
        /// notices and it takes its default.
        pub user_id: i64,
        /// Retyped String -> Vec<u8>: takes its default.
        pub avatar: Vec<u8>,
        /// The nested struct gained a field: its own bytes no longer decode, so it takes
        /// its default (and is logged).
        pub address: Address,
        /// The nested struct's field was retyped (u64 -> i64), which postcard would misread
        /// and the fingerprint of `Preferences` cannot see: `version` marks the change.
        #[session(version = 2)]
        pub preferences: Preferences,
    }

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    pub struct Address {
        pub city: String,
        pub country: String,
    }

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    pub struct Preferences {
        pub font_size: i64,
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
    old.user_id = 10;
    old.avatar = "avatar.png".into();
    old.address = v1::Address { city: "Lyon".into() };
    old.preferences = v1::Preferences { font_size: 10 };
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
    assert_eq!(new.small, 0, "u32 -> u64: another type as written, the default");
    assert_eq!(new.user_id, 0, "u64 -> i64: the default, never the stored 10 read as 5");
    assert!(new.avatar.is_empty(), "String -> Vec<u8>: the default");
    assert_eq!(
        new.address,
        v2::Address::default(),
        "a nested struct that gained a field"
    );
    assert_eq!(
        new.preferences,
        v2::Preferences::default(),
        "a nested retype marked with `version`"
    );
}

#[test]
fn an_older_struct_reads_a_newer_record_too() {
    let mut new = v2::Account::initial();
    new.login = Some("bob".into());
    new.theme = "light".into();
    let record = codec::encode(&new, DirtySet::all(v2::Account::FIELDS.len())).unwrap();
    let old: v1::Account = codec::decode(&record);
    assert_eq!(old.user.as_deref(), Some("bob"));
    assert_eq!(old.visits, 0, "a String where a u64 was stored reads as the default");
    assert_eq!(old.theme, "light");
    assert_eq!(old.small, 0);
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
