use std::time::Duration;

use session::{Expiring, Flash, MemoryStore, SessionConfig, SessionData, SessionProvider};

#[derive(SessionData)]
pub struct AppSession {
    plain: Option<String>,
    #[session(default = 7)]
    with_default: u64,
    #[session(rename = "stored")]
    renamed: String,
    #[session(rename = "both", default = vec![1, 2])]
    renamed_with_default: Vec<u8>,
    #[session(flash)]
    flash: Flash<String>,
    #[session(flash, rename = "flash_renamed")]
    flash_renamed: Flash<u32>,
    #[session(expiring)]
    expiring: Expiring<String>,
    #[session(expiring, rename = "code", version = 1)]
    expiring_renamed: Expiring<u32>,
    #[session(skip)]
    skipped: Vec<u8>,
    #[session(skip, default = 3)]
    skipped_with_default: i32,
    #[session(version = 2, rename = "prefs")]
    versioned: Vec<u32>,
}

fn main() {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build().unwrap());
    let mut session = provider.create().unwrap();
    session.set_plain(Some("a".into()));
    *session.with_default_mut() += 1;
    let renamed = session.renamed().clone();
    session.set_renamed(renamed);
    session.renamed_with_default_mut().push(3);
    session.set_flash("next".into());
    session.keep_flash();
    session.flash_now("now".into());
    let _: Option<&String> = session.flash();
    session.set_flash_renamed(5);
    let _: Option<&u32> = session.flash_renamed();
    session.set_expiring("code".into(), Duration::from_secs(60));
    let _: Option<&String> = session.expiring();
    let _: Option<Duration> = session.expiring_expires_in();
    let _: Option<String> = session.take_expiring();
    session.clear_expiring();
    session.set_expiring_renamed(7, Duration::from_millis(1));
    let _: Option<&u32> = session.expiring_renamed();
    session.skipped_mut().push(1);
    let skipped = *session.skipped_with_default();
    session.set_skipped_with_default(skipped + 1);
    assert_eq!(AppSession::FIELDS.len(), 9);
    assert_eq!(AppSession::FIELDS[7].name, "code");
    assert_eq!(AppSession::FIELDS[2].name, "stored");
}
