//! Indexed sessions: the digest of a session type's principal (its `#[session(index)]`
//! field), which stores keep in a session's metadata so that every session of one user can
//! be listed and ended together.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

/// What every index digest starts with, so it is never the digest of anything else.
const DOMAIN: &[u8] = b"session/index/v1\0";

/// The digest of a session's index value: SHA-256 over a domain-separation prefix, the
/// index field's stored name and the postcard encoding of the value inside its `Some`.
///
/// A store keeps this digest in the session's [`SessionMeta::index`](crate::SessionMeta::index)
/// and never sees the value itself, so a store dump does not list who is logged in. Two
/// session types that share a store and index fields of the same stored name share their
/// indexes too: an index names a principal, not a session type.
///
/// The derive computes it for a field marked `#[session(index)]`; [`of`](Self::of) computes
/// the same digest without a session (an administrator's "log alice out everywhere").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexKey([u8; 32]);

impl IndexKey {
    /// The index key of `value` in the index field stored under `stored_name` (the field
    /// name, or its `rename`): the key the derive computes for a session whose index field
    /// holds `Some(value)`.
    ///
    /// The value is hashed in its postcard encoding, so it must be of a type that encodes as
    /// the field's does: `&str` for a `String` field, any unsigned integer type for a `u64`
    /// field (postcard writes them all as the same varint), and so on.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the value cannot be serialized.
    ///
    /// # Examples
    ///
    /// ```
    /// use session::{SessionData, store::IndexKey};
    ///
    /// #[derive(SessionData)]
    /// struct AppSession {
    ///     #[session(index)]
    ///     user: Option<String>,
    /// }
    ///
    /// let key = IndexKey::of("user", "alice")?;
    /// assert_eq!(key, IndexKey::of("user", &String::from("alice"))?);
    /// assert_ne!(key, IndexKey::of("user", "bob")?);
    /// # Ok::<(), session::Error>(())
    /// ```
    pub fn of<V: Serialize + ?Sized>(stored_name: &str, value: &V) -> Result<Self, Error> {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update((stored_name.len() as u64).to_be_bytes());
        hasher.update(stored_name.as_bytes());
        let hasher = postcard::serialize_with_flavor(value, Hashing(hasher)).map_err(|error| Error::Encode {
            field: "<index>",
            source: error.into(),
        })?;
        Ok(Self(hasher.finalize().into()))
    }

    /// Wraps a digest read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl fmt::Debug for IndexKey {
    // A short prefix tells keys apart in logs and test failures; the full digest is noise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IndexKey({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A postcard output that hashes the bytes instead of keeping them: no allocation.
struct Hashing(Sha256);

impl postcard::ser_flavors::Flavor for Hashing {
    type Output = Sha256;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.update(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.update([data]);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Sha256> {
        Ok(self.0)
    }
}

/// A type that can be the value of a session's index field.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a session index",
    label = "the value inside an index field's `Option` must implement `serde::Serialize`",
    note = "an index is the SHA-256 of the value's postcard encoding; derive `Serialize` for it"
)]
pub trait IndexValue: Serialize {}

impl<T: Serialize> IndexValue for T {}

/// The index key of the field stored under `stored_name` (generated code, which names `T`
/// as written in the field's type, so an unmet bound is reported on it): `None` for `None`,
/// and for a value that cannot be serialized (its save fails on the same value).
#[doc(hidden)]
pub fn index_key<T: IndexValue>(stored_name: &str, value: &Option<T>) -> Option<IndexKey> {
    value.as_ref().and_then(|value| IndexKey::of(stored_name, value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_names_and_values_and_match_a_plain_hash() {
        let alice = IndexKey::of("user", "alice").unwrap();
        assert_eq!(index_key("user", &Some(String::from("alice"))), Some(alice));
        assert_eq!(index_key::<String>("user", &None), None);
        assert_ne!(alice, IndexKey::of("owner", "alice").unwrap(), "another field");
        assert_ne!(
            alice,
            IndexKey::of("use", "ralice").unwrap(),
            "the name is length-prefixed"
        );
        assert_eq!(IndexKey::of("id", &7u64).unwrap(), IndexKey::of("id", &7u32).unwrap());

        let mut expected = Sha256::new();
        expected.update(DOMAIN);
        expected.update(4u64.to_be_bytes());
        expected.update(b"user");
        expected.update(postcard::to_allocvec("alice").unwrap());
        assert_eq!(alice.as_bytes(), &<[u8; 32]>::from(expected.finalize()));
        assert_eq!(IndexKey::from_bytes(*alice.as_bytes()), alice);
        assert_eq!(alice.to_hex().len(), 64);
        assert!(format!("{alice:?}").starts_with(&format!("IndexKey({}", &alice.to_hex()[..8])));
    }
}
