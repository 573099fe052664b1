//! Feeds arbitrary text to `KeyRing::open`; it must never panic, and
//! anything it accepts must be the seed token's payload (the fuzzer cannot
//! forge a tag).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use session::crypto::{KeyId, KeyRing, OpenLimits, Purpose, Secret};

/// The golden-vector ring, so the seed corpus holds a token that opens.
static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    KeyRing::new(
        KeyId(1),
        Secret::from_bytes((0u8..64).collect::<Vec<_>>()).expect("valid test secret"),
    )
});
static PURPOSE: LazyLock<Purpose> =
    LazyLock::new(|| Purpose::cookie("session").expect("short label"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(opened) = RING.open(&PURPOSE, text, 0, &OpenLimits::default()) {
        assert_eq!(opened.plaintext, br#"{"user_id":42,"role":"admin"}"#);
    }
});
