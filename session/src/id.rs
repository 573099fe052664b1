//! Session IDs and the digests that server-side stores key records by.

use std::{
    fmt,
    hash::{BuildHasher, Hash, Hasher},
};

use base64::{
    Engine as _,
    alphabet::URL_SAFE,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use sha2::{Digest, Sha256};

use crate::Error;

/// URL-safe base64 without padding, rejecting every non-canonical form.
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

const ID_BYTES: usize = 32;
const ID_TEXT_LEN: usize = 43;

/// A session ID: 256 bits from the operating system's CSPRNG, written as 43 characters of
/// URL-safe base64.
///
/// Its `Debug` form is redacted, so IDs do not leak into logs by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId([u8; ID_BYTES]);

/// `N` random bytes from the operating system, as `2 * N` lowercase hex digits: names
/// that must not collide across processes (a store's writer name, a client name).
#[cfg(feature = "redis")]
pub(crate) fn random_hex<const N: usize>() -> Result<String, Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| Error::Random(error.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

impl SessionId {
    /// A new random ID.
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the operating system's random number generator fails.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| Error::Random(error.to_string()))?;
        Ok(Self(bytes))
    }

    /// The ID as the client holds it (43 characters of URL-safe base64), e.g. the cookie
    /// value. It is a bearer credential: whoever has it has the session, so never log it.
    /// (`SessionId` has no `Display`, and its `Debug` is redacted, so that printing one is
    /// always this explicit call.)
    pub fn expose(&self) -> String {
        BASE64URL.encode(self.0)
    }

    /// Parses an ID as a client sent it; anything but the canonical 43-character form is
    /// `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use session::SessionId;
    ///
    /// let id = SessionId::generate()?;
    /// assert_eq!(SessionId::parse(&id.expose()), Some(id));
    /// assert_eq!(SessionId::parse("not an id"), None);
    /// # Ok::<(), session::Error>(())
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != ID_TEXT_LEN {
            return None;
        }
        let mut bytes = [0u8; ID_BYTES];
        match BASE64URL.decode_slice(text, &mut bytes) {
            Ok(ID_BYTES) => Some(Self(bytes)),
            _ => None,
        }
    }

    pub(crate) const fn from_bytes(bytes: [u8; ID_BYTES]) -> Self {
        Self(bytes)
    }

    pub(crate) const fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }

    /// The digest that server-side stores key this session by.
    pub fn store_key(&self) -> StoreKey {
        StoreKey(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite", feature = "mysql"))]
/// See [`StoreKey::short`].
pub(crate) struct ShortKey<'a>(&'a StoreKey);

#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite", feature = "mysql"))]
impl fmt::Display for ShortKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.0[..4].iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// The SHA-256 digest of a session ID: what server-side stores key records by, so a
/// leaked store dump reveals no usable session ID.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreKey([u8; 32]);

impl Hash for StoreKey {
    // A digest's bytes are uniform: eight of them are as good a hash as all 32. Bytes 8..16,
    // because stores pick their lock shard by the first bytes.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[8..16]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// Builds [`KeyHasher`]s: for maps keyed by [`StoreKey`], whose hash is already uniform, so
/// no keyed hash (SipHash) is needed. Only server-generated IDs are ever inserted, so a
/// client cannot choose the keys a table holds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyHash;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// Passes a [`StoreKey`]'s hash word through; see [`KeyHash`].
#[derive(Debug)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = self.0.rotate_left(29) ^ word;
    }

    // Not reached by `StoreKey`; FNV-1a so any other input still hashes.
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A map keyed by store keys.
pub(crate) type KeyMap<V> = std::collections::HashMap<StoreKey, V, KeyHash>;

impl StoreKey {
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
        let mut hex = String::with_capacity(64);
        self.write_hex(&mut hex);
        hex
    }

    #[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite", feature = "mysql"))]
    /// A short, non-identifying label for logs and spans: the first 8 hex digits, formatted
    /// only when shown (a span's fields are built on every store operation even when nothing
    /// records them: tracing's `log` feature, which other crates turn on, does that).
    pub(crate) fn short(&self) -> ShortKey<'_> {
        ShortKey(self)
    }

    /// Appends the 64 hex digits to `out`; on every Redis command, so no formatting machinery.
    pub(crate) fn write_hex(&self, out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        // Into bytes first: pushing 64 chars one by one costs several times more, on every
        // Redis and SQL key name.
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        Self::from_hex_bytes(text.as_bytes())
    }

    /// Parses 64 hex digits given as bytes, as key names come from Redis (a clustered
    /// store parses two for every write it hears of): no UTF-8 check first.
    pub(crate) fn from_hex_bytes(text: &[u8]) -> Option<Self> {
        fn digit(byte: u8) -> Option<u8> {
            match byte {
                b'0'..=b'9' => Some(byte - b'0'),
                b'a'..=b'f' => Some(byte - b'a' + 10),
                b'A'..=b'F' => Some(byte - b'A' + 10),
                _ => None,
            }
        }
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite", feature = "mysql"))]
    #[test]
    fn a_short_label_is_the_first_8_hex_digits_of_the_digest() {
        let key = StoreKey::from_bytes(std::array::from_fn(|i| (i as u8).wrapping_mul(17)));
        assert_eq!(key.short().to_string(), key.to_hex()[..8]);
    }

    #[test]
    fn store_keys_of_one_shard_still_spread_over_a_table() {
        use std::collections::HashSet;
        // Stores pick a lock shard by the first digest bytes: keys that share them must
        // still hash apart, or one shard's table degrades into a list.
        let hashes: HashSet<u64> = (0..1000)
            .map(|_| {
                let mut key = *SessionId::generate().unwrap().store_key().as_bytes();
                key[..2].copy_from_slice(&[7, 7]);
                KeyHash.hash_one(StoreKey::from_bytes(key)) & 0xffff
            })
            .collect();
        assert!(hashes.len() > 950, "{} distinct low 16 bits of 1000", hashes.len());
        let mut map = KeyMap::default();
        let key = SessionId::generate().unwrap().store_key();
        map.insert(key, 1);
        assert_eq!(map.get(&key), Some(&1));
    }

    #[test]
    fn ids_are_distinct_and_round_trip() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), ID_TEXT_LEN);
        assert_eq!(SessionId::parse(&a.expose()), Some(a.clone()));
        assert_ne!(a.store_key(), b.store_key());
        assert_eq!(format!("{a:?}"), "SessionId(<redacted>)");
    }

    #[test]
    fn garbage_and_non_canonical_ids_are_refused() {
        let id = SessionId::generate().unwrap().expose();
        // The last character carries two unused bits; setting one is non-canonical.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET.iter().position(|&c| c == id.as_bytes()[42]).unwrap();
        let mut trailing_bits = id.clone().into_bytes();
        trailing_bits[42] = ALPHABET[last | 1];
        let trailing_bits = String::from_utf8(trailing_bits).unwrap();
        for bad in [
            String::new(),
            "x".repeat(42),
            format!("{id}="),
            format!("{}+", &id[..42]),
            id[..42].to_string(),
            "é".repeat(21) + "a",
            trailing_bits,
        ] {
            assert_eq!(SessionId::parse(&bad), None, "{bad:?}");
        }
        let key = SessionId::parse(&id).unwrap().store_key();
        assert_eq!(StoreKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(StoreKey::from_hex(&key.to_hex().to_uppercase()), Some(key));
        let hex = key.to_hex();
        for bad in [
            format!("+{}", &hex[1..]),
            format!("{}g", &hex[1..]),
            format!("{} ", &hex[1..]),
            hex[1..].to_string(),
            format!("{hex}0"),
            "é".repeat(32),
        ] {
            assert_eq!(StoreKey::from_hex(&bad), None, "{bad:?}");
        }
        let counting = StoreKey::from_bytes(std::array::from_fn(|i| (i as u8) * 8 + 7));
        assert_eq!(
            counting.to_hex(),
            "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff"
        );
    }
}
