//! Key material: validated secrets and the key ring derived from them (see the parent module's docs).

use aes::{Aes256, cipher::KeyInit as _};
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hkdf::Hkdf;
use hmac::Mac;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::envelope::HmacSha256;

/// Minimum length, in bytes, of a [`Secret`].
pub const MIN_SECRET_LEN: usize = 32;

/// Minimum PBKDF2 iteration count accepted by [`Pbkdf2Params::new`].
pub const MIN_PBKDF2_ITERATIONS: u32 = 600_000;

/// Minimum length, in characters, of a password for [`Secret::from_password`].
pub const MIN_PASSWORD_LEN: usize = 12;

/// Minimum PBKDF2 salt length, in bytes.
pub const MIN_PBKDF2_SALT_LEN: usize = 16;

/// Length of [`Secret::generate`] output, in bytes.
const GENERATED_LEN: usize = 64;

/// Length of the key material [`Secret::from_password`] derives.
const PASSWORD_KEY_LEN: usize = 32;

/// Inputs at least this long skip the known-default substring check: a long
/// passphrase may legitimately contain a word like "secret".
const DEFAULT_CHECK_BELOW: usize = 64;

/// Fewer distinct byte values than this means the material is a pattern,
/// not a key.
const MIN_DISTINCT_BYTES: usize = 8;

/// Lower-case fragments of secrets copied from tutorials and templates.
/// Kept to five characters or more so random keys do not trip them.
const KNOWN_DEFAULTS: &[&[u8]] = &[
    b"secret",
    b"changeme",
    b"change-me",
    b"change_me",
    b"password",
    b"default",
    b"your-secret-key",
    b"keyboard cat",
    b"insecure",
    b"example",
    // The published default of a widely copied session library's configuration.
    b"1sxc1anxghttzklk5cpcgufjaqgm4g13",
];

const HKDF_SALT: &[u8] = b"session/keyring/v1";
const HKDF_INFO_ENC: &[u8] = b"enc";
const HKDF_INFO_MAC: &[u8] = b"mac";

const FIX: &str = "generate one with `openssl rand -base64 48` or `Secret::generate()`";

/// Why key material or key-ring configuration was refused.
///
/// Every message names the fix, because these errors surface at start-up to
/// whoever configures the application.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret (or password) was empty.
    #[error("secret is empty: {FIX}")]
    Empty,
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("secret is {len} bytes, at least 32 are required: {FIX}")]
    TooShort {
        /// Length of the refused input, in bytes.
        len: usize,
    },
    /// The secret is a repeated pattern (one byte value, or fewer than 8
    /// distinct byte values).
    #[error("secret has too little entropy (repeated or patterned bytes): {FIX}")]
    LowEntropy,
    /// The secret or password contains a well-known placeholder value.
    #[error(
        "secret contains a well-known default such as \"secret\" or \"changeme\": \
         {FIX}; for passwords, choose one that is not a placeholder"
    )]
    KnownDefault,
    /// [`Secret::from_base64`] got text that is not standard or URL-safe base64.
    #[error(
        "secret is not valid base64 (standard or URL-safe alphabet expected): \
         {FIX}"
    )]
    InvalidBase64,
    /// PBKDF2 iteration count below [`MIN_PBKDF2_ITERATIONS`].
    #[error(
        "PBKDF2 iteration count {iterations} is too low: use at least 600000 (OWASP's \
         figure for PBKDF2-HMAC-SHA256), or configure a random secret instead"
    )]
    WeakPbkdf2 {
        /// The refused iteration count.
        iterations: u32,
    },
    /// A password shorter than [`MIN_PASSWORD_LEN`] characters.
    #[error(
        "password is {len} characters, at least 12 are required: choose a longer passphrase, \
         or configure a random secret instead"
    )]
    ShortPassword {
        /// Length of the refused password, in characters.
        len: usize,
    },
    /// PBKDF2 salt shorter than [`MIN_PBKDF2_SALT_LEN`].
    #[error(
        "PBKDF2 salt is {len} bytes, at least 16 are required: generate one with \
         `openssl rand -base64 16` and keep it stable"
    )]
    ShortSalt {
        /// Length of the refused salt, in bytes.
        len: usize,
    },
    /// Two keys in one [`KeyRing`] share an id.
    #[error("key id {0} is used twice in the key ring: give every secret its own id")]
    DuplicateKeyId(KeyId),
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed; retry, or supply a secret explicitly")]
    Rng,
}

/// Key material, zeroized when dropped.
///
/// Construct with [`Secret::generate`], [`Secret::from_base64`],
/// [`Secret::from_bytes`] or [`Secret::from_password`]. All but `generate`
/// refuse empty, short, patterned and placeholder material.
///
/// Only this copy is zeroized; buffers the caller passed in remain the
/// caller's responsibility.
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
}

impl Secret {
    /// Validates and wraps raw key material.
    ///
    /// Refuses material that is empty, shorter than 32 bytes, built from
    /// fewer than 8 distinct byte values, or (when shorter than 64 bytes)
    /// containing a known placeholder such as `"secret"` or `"changeme"`,
    /// case-insensitively.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(bytes.into());
        validate_secret(&bytes)?;
        Ok(Self { bytes })
    }

    /// Decodes standard or URL-safe base64 (padding optional, ASCII
    /// whitespace ignored, as `openssl rand -base64` wraps lines) and then
    /// applies the [`Secret::from_bytes`] checks.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let compact: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let decoded = LENIENT_STANDARD
            .decode(compact.as_bytes())
            .or_else(|_| LENIENT_URL_SAFE.decode(compact.as_bytes()))
            .map_err(|_| KeyError::InvalidBase64)?;
        Self::from_bytes(decoded)
    }

    /// Draws 64 bytes from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new(vec![0u8; GENERATED_LEN]);
        getrandom::fill(&mut bytes).map_err(|_| KeyError::Rng)?;
        Ok(Self { bytes })
    }

    /// Stretches a password into 32 bytes of key material with
    /// PBKDF2-HMAC-SHA256.
    ///
    /// This is slow on purpose; call it once at start-up and build the
    /// [`KeyRing`] from the result. The password must have at least
    /// [`MIN_PASSWORD_LEN`] characters and must not contain a known placeholder
    /// (when shorter than 64 bytes).
    pub fn from_password(password: &str, params: Pbkdf2Params) -> Result<Self, KeyError> {
        let pw = password.as_bytes();
        if pw.is_empty() {
            return Err(KeyError::Empty);
        }
        if contains_known_default(pw) {
            return Err(KeyError::KnownDefault);
        }
        let len = password.chars().count();
        if len < MIN_PASSWORD_LEN {
            return Err(KeyError::ShortPassword { len });
        }
        let mut bytes = Zeroizing::new(vec![0u8; PASSWORD_KEY_LEN]);
        pbkdf2_sha256(pw, &params.salt, params.iterations, &mut bytes);
        Ok(Self { bytes })
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Accepts both padded and unpadded input: secrets come from humans and
/// config files, so leniency here costs nothing.
const LENIENT_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT_CONFIG);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT_CONFIG);

fn validate_secret(bytes: &[u8]) -> Result<(), KeyError> {
    if bytes.is_empty() {
        return Err(KeyError::Empty);
    }
    if bytes.len() < MIN_SECRET_LEN {
        return Err(KeyError::TooShort { len: bytes.len() });
    }
    // Checked before entropy: "changemechangeme..." deserves the more
    // specific message.
    if contains_known_default(bytes) {
        return Err(KeyError::KnownDefault);
    }
    let mut seen = [false; 256];
    let mut distinct = 0;
    for &b in bytes {
        if !seen[usize::from(b)] {
            seen[usize::from(b)] = true;
            distinct += 1;
        }
    }
    if distinct < MIN_DISTINCT_BYTES {
        return Err(KeyError::LowEntropy);
    }
    Ok(())
}

fn contains_known_default(bytes: &[u8]) -> bool {
    if bytes.len() >= DEFAULT_CHECK_BELOW {
        return false;
    }
    let lower = Zeroizing::new(bytes.to_ascii_lowercase());
    KNOWN_DEFAULTS.iter().any(|d| lower.windows(d.len()).any(|w| w == *d))
}

/// PBKDF2 parameters for [`Secret::from_password`].
///
/// Fields are private so that every value in circulation has passed
/// [`Pbkdf2Params::new`].
#[derive(Clone, PartialEq, Eq)]
pub struct Pbkdf2Params {
    iterations: u32,
    salt: Vec<u8>,
}

impl Pbkdf2Params {
    /// Validates the parameters: at least [`MIN_PBKDF2_ITERATIONS`] (600 000)
    /// iterations and a salt of at least 16 bytes.
    pub fn new(iterations: u32, salt: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let salt = salt.into();
        if iterations < MIN_PBKDF2_ITERATIONS {
            return Err(KeyError::WeakPbkdf2 { iterations });
        }
        if salt.len() < MIN_PBKDF2_SALT_LEN {
            return Err(KeyError::ShortSalt { len: salt.len() });
        }
        Ok(Self { iterations, salt })
    }

    /// Skips the iteration floor so tests stay fast (feature `insecure-test-hooks`, for
    /// this crate's own tests). Never use in production.
    #[cfg(any(test, feature = "insecure-test-hooks"))]
    #[doc(hidden)]
    pub fn insecure_for_tests(iterations: u32, salt: impl Into<Vec<u8>>) -> Self {
        Self {
            iterations,
            salt: salt.into(),
        }
    }

    /// The iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }
}

impl fmt::Debug for Pbkdf2Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pbkdf2Params")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish()
    }
}

/// PBKDF2-HMAC-SHA256 without any parameter policy, filling all of `out`.
///
/// A thin wrapper over the `pbkdf2` crate, public so published test vectors
/// can be checked directly. Applications should use
/// [`Secret::from_password`], which enforces the policy. `iterations` should
/// be at least 1; 0 yields the same output as 1.
pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, out);
}

/// Identifies which key in a [`KeyRing`] sealed a value; stored in clear in
/// every envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u8);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u8> for KeyId {
    fn from(id: u8) -> Self {
        Self(id)
    }
}

/// 32 bytes of key material, zeroized on drop, boxed so it never moves.
type BoxedKey = Box<Zeroizing<[u8; 32]>>;

/// Keys derived from one [`Secret`].
///
/// Boxed so that growing the ring's `Vec` moves pointers, never key bytes,
/// leaving no stray copies behind.
#[derive(Clone)]
pub(crate) struct DerivedKey {
    pub(crate) id: KeyId,
    /// The HMAC-SHA256 key, kept only as the state after its inner and outer pads, so no
    /// MAC hashes the pads again.
    mac: Box<MacState>,
    /// The AES-256 key, kept only expanded into round keys (zeroized on drop by the `aes`
    /// crate), so no seal or open repeats the key schedule.
    cipher: Box<Aes256>,
}

/// A keyed HMAC-SHA256 state, overwritten on drop with the state of an all-zero key (the
/// `hmac` crate does not zeroize; `black_box` keeps the overwrite from being elided).
#[derive(Clone)]
struct MacState(HmacSha256);

impl Drop for MacState {
    fn drop(&mut self) {
        self.0 = <HmacSha256 as Mac>::new_from_slice(&[0; 32]).expect("HMAC accepts keys of any length");
        std::hint::black_box(&self.0);
    }
}

impl DerivedKey {
    fn derive(id: KeyId, secret: &Secret) -> Self {
        let (enc, mac) = Self::expand(secret);
        let key: &[u8; 32] = &enc;
        let cipher = Box::new(Aes256::new(key.into()));
        let mac = Box::new(MacState(
            <HmacSha256 as Mac>::new_from_slice(mac.as_slice()).expect("HMAC accepts keys of any length"),
        ));
        Self { id, mac, cipher }
    }

    /// The encryption and MAC keys of `secret` (HKDF-SHA256).
    fn expand(secret: &Secret) -> (BoxedKey, BoxedKey) {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.expose());
        let mut enc = Box::new(Zeroizing::new([0u8; 32]));
        let mut mac = Box::new(Zeroizing::new([0u8; 32]));
        hk.expand(HKDF_INFO_ENC, enc.as_mut_slice())
            .expect("32 bytes is within the HKDF-SHA256 output limit");
        hk.expand(HKDF_INFO_MAC, mac.as_mut_slice())
            .expect("32 bytes is within the HKDF-SHA256 output limit");
        (enc, mac)
    }

    /// The AES-256 key, expanded.
    pub(crate) fn cipher(&self) -> &Aes256 {
        &self.cipher
    }

    /// HMAC-SHA256 keyed with the MAC key, ready to clone for one MAC.
    pub(crate) fn mac(&self) -> &HmacSha256 {
        &self.mac.0
    }
}

/// An ordered set of keys, newest first.
///
/// The newest key seals; every key opens. Rotate by building a ring whose
/// newest key is the new secret and that keeps the old one via
/// [`KeyRing::with_previous`] until every value sealed with it has expired.
///
/// Cloning is cheap (the keys are shared behind an `Arc`).
#[derive(Clone)]
pub struct KeyRing {
    keys: Arc<Vec<DerivedKey>>,
}

impl KeyRing {
    /// Creates a ring whose newest (sealing) key is derived from `secret`.
    pub fn new(id: KeyId, secret: Secret) -> Self {
        Self {
            keys: Arc::new(vec![DerivedKey::derive(id, &secret)]),
        }
    }

    /// Appends an older key that still opens values but never seals.
    ///
    /// Call in order from newer to older. Fails with
    /// [`KeyError::DuplicateKeyId`] if `id` is already in the ring.
    pub fn with_previous(mut self, id: KeyId, secret: Secret) -> Result<Self, KeyError> {
        if self.contains(id) {
            return Err(KeyError::DuplicateKeyId(id));
        }
        let key = DerivedKey::derive(id, &secret);
        Arc::make_mut(&mut self.keys).push(key);
        Ok(self)
    }

    /// The id of the newest key, the one [`KeyRing::seal`] uses.
    pub fn current(&self) -> KeyId {
        self.newest().id
    }

    /// Whether a key with this id is in the ring.
    pub fn contains(&self, id: KeyId) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Key ids, newest first.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    pub(crate) fn newest(&self) -> &DerivedKey {
        // `new` always inserts one key and nothing removes keys.
        &self.keys[0]
    }

    /// The key for `id`, and whether it is the newest.
    pub(crate) fn find(&self, id: KeyId) -> Option<(&DerivedKey, bool)> {
        self.keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.id == id)
            .map(|(i, k)| (k, i == 0))
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_hex as hex;

    // RFC 5869 A.1: checks the HKDF crate is wired the way `derive` uses it.
    #[test]
    fn hkdf_sha256_rfc5869_case1() {
        let ikm = [0x0b_u8; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm).expand(&info, &mut okm).unwrap();
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
                 34007208d5b887185865")
        );
    }

    #[test]
    fn derivation_separates_enc_and_mac_and_is_deterministic() {
        let material: Vec<u8> = (0u8..64).collect();
        let (a_enc, a_mac) = DerivedKey::expand(&Secret::from_bytes(material.clone()).unwrap());
        let (b_enc, b_mac) = DerivedKey::expand(&Secret::from_bytes(material.clone()).unwrap());
        assert_ne!(**a_enc, **a_mac);
        assert_eq!(**a_enc, **b_enc);
        assert_eq!(**a_mac, **b_mac);
        let a = DerivedKey::derive(KeyId(1), &Secret::from_bytes(material.clone()).unwrap());
        let b = DerivedKey::derive(KeyId(9), &Secret::from_bytes(material).unwrap());
        let tag = |key: &DerivedKey| key.mac().clone().chain_update(b"data").finalize().into_bytes();
        assert_eq!(tag(&a), tag(&b));
        // The kept state is HMAC under the derived key.
        let direct = <HmacSha256 as Mac>::new_from_slice(a_mac.as_slice()).unwrap();
        assert_eq!(tag(&a), direct.chain_update(b"data").finalize().into_bytes());
    }

    #[test]
    fn find_reports_newest() {
        let s = |seed: u8| Secret::from_bytes((0u8..48).map(|i| i ^ seed).collect::<Vec<_>>());
        let ring = KeyRing::new(KeyId(3), s(1).unwrap())
            .with_previous(KeyId(2), s(2).unwrap())
            .unwrap();
        assert!(matches!(ring.find(KeyId(3)), Some((_, true))));
        assert!(matches!(ring.find(KeyId(2)), Some((_, false))));
        assert!(ring.find(KeyId(1)).is_none());
        assert_eq!(ring.newest().id, KeyId(3));
    }
}
