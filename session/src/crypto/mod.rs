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
//! only run AES and HMAC. See [`envelope`] for the byte layout.

mod compress;
pub mod envelope;
pub mod keys;

pub use envelope::{InvalidPurpose, OpenError, OpenLimits, Opened, Purpose, SealError, SealOptions};
pub use keys::{KeyError, KeyId, KeyRing, Pbkdf2Params, Secret, pbkdf2_sha256};

/// Decodes the hex of published test vectors.
#[cfg(test)]
pub(crate) fn test_hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2));
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
