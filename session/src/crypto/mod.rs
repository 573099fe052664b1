//! Cookie and store cryptography: validated secrets, a rotating key ring and
//! the sealed envelope (AES-256-CBC + HMAC-SHA256, encrypt-then-MAC).
//!
//! ```
//! use session::crypto::{KeyId, KeyRing, OpenLimits, Purpose, SealOptions, Secret};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ring = KeyRing::new(KeyId(1), Secret::generate()?);
//! let purpose = Purpose::cookie("session")?;
//! let opts = SealOptions { expires_at: 2_000_000_000, ..SealOptions::default() };
//!
//! let token = ring.seal(&purpose, b"user=42", &opts)?;
//! let opened = ring.open(&purpose, &token, 1_700_000_000, &OpenLimits::default())?;
//! assert_eq!(opened.plaintext, b"user=42");
//! assert!(!opened.sealed_with_old_key);
//! # Ok(())
//! # }
//! ```
//!
//! Keys are derived once, when the [`KeyRing`] is built; sealing and opening
//! only run AES and HMAC. The byte layout is [below](#the-envelope).
//!
//! # Keys
//!
//! A [`Secret`] is the raw material an application configures. A [`KeyRing`]
//! turns one or more secrets into per-purpose keys exactly once, at
//! construction, so no key derivation ever happens on the request path.
//!
//! Derivation: for every secret, HKDF-SHA256 with the fixed salt
//! `b"session/keyring/v1"` expands a 32-byte AES-256 key (`info = b"enc"`) and
//! a 32-byte HMAC-SHA256 key (`info = b"mac"`).
//!
//! # The envelope
//!
//! The sealed envelope: authenticated encryption of small values such as
//! cookie payloads and server-side store entries.
//!
//! ## Wire format (version 1)
//!
//! All integers are big-endian. `n` is the length of the decoded envelope.
//!
//! | offset      | length | field       | meaning |
//! |-------------|--------|-------------|---------|
//! | 0           | 1      | version     | `0x01` |
//! | 1           | 1      | key id      | [`KeyId`] of the ring key that sealed it |
//! | 2           | 8      | expires     | `u64` unix seconds; `0` means no expiry |
//! | 10          | 1      | flags       | bit 0: payload is gzip-compressed; bits 1–7 must be 0 |
//! | 11          | 16     | IV          | random: AES-256 of a counter under a key from the OS CSPRNG |
//! | 27          | n − 59 | ciphertext  | AES-256-CBC, PKCS#7 padded; non-empty, multiple of 16 |
//! | n − 32      | 32     | tag         | HMAC-SHA256, see below |
//!
//! The smallest envelope is therefore 75 bytes (one ciphertext block).
//!
//! The tag is `HMAC-SHA256(mac_key, len(purpose) as u8 || purpose || bytes[0 .. n-32])`:
//! it covers the header, the IV and the ciphertext (encrypt-then-MAC), and
//! binds the [`Purpose`] without storing it, so a value sealed for one
//! purpose never opens under another. The length prefix keeps the
//! purpose/header boundary unambiguous.
//!
//! The bytes are encoded as URL-safe base64 without padding (RFC 4648 §5),
//! which is cookie-safe without further escaping.
//!
//! ## Opening
//!
//! [`KeyRing::open`] checks, in order: the text length against
//! [`OpenLimits::max_input_len`] (before decoding); strict base64url
//! (no padding, no non-zero trailing bits, no other alphabet); the minimum
//! length and block alignment; the version; the key id; the tag, in constant
//! time, before anything is decrypted; the flags; the expiry, read from the
//! now-authenticated header; then it decrypts and, for compressed payloads,
//! inflates at most [`OpenLimits::max_plaintext_len`] bytes.
//!
//! Every failure is the same opaque [`OpenError`], so a caller cannot be
//! turned into an oracle. The reason is logged at `debug` level without any
//! key or payload material.
//!
//! ## What it does not hide
//!
//! The key id, expiry, compression flag and (to within a block) the
//! plaintext length are visible. Compressing a payload that mixes
//! attacker-chosen data with secrets can leak those secrets through the
//! length; leave [`SealOptions::compress_above`] unset for such payloads.

mod compress;
mod envelope;
pub(crate) use envelope::OpenFailure;
mod iv;
mod keys;

pub use envelope::{
    DEFAULT_MAX_INPUT_LEN, DEFAULT_MAX_PLAINTEXT_LEN, ENVELOPE_VERSION, InvalidPurpose, MAX_PURPOSE_LEN, OpenError,
    OpenLimits, Opened, Purpose, SealError, SealOptions,
};
pub use keys::{
    KeyError, KeyId, KeyRing, MIN_PASSWORD_LEN, MIN_PBKDF2_ITERATIONS, MIN_PBKDF2_SALT_LEN, MIN_SECRET_LEN,
    Pbkdf2Params, Secret, pbkdf2_sha256,
};

/// Decodes the hex of published test vectors.
#[cfg(test)]
pub(crate) fn test_hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2));
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
