//! The sealed envelope: sealing and opening (the byte layout is in the parent module's docs).

use std::fmt;
use std::io;

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::compress::{self, DecompressError};
use super::keys::{DerivedKey, KeyId, KeyRing};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The envelope format version this module writes and accepts.
pub const ENVELOPE_VERSION: u8 = 1;

/// Longest [`Purpose`] label, in bytes (its length is MAC'd as one byte).
pub const MAX_PURPOSE_LEN: usize = 255;

/// Default for [`OpenLimits::max_input_len`], in characters.
pub const DEFAULT_MAX_INPUT_LEN: usize = 8192;

/// Default for [`OpenLimits::max_plaintext_len`] and
/// [`SealOptions::max_plaintext_len`], in bytes.
pub const DEFAULT_MAX_PLAINTEXT_LEN: usize = 64 * 1024;

const FLAG_GZIP: u8 = 0b0000_0001;
const KNOWN_FLAGS: u8 = FLAG_GZIP;

const IV_LEN: usize = 16;
const BLOCK_LEN: usize = 16;
const TAG_LEN: usize = 32;
/// version, key id, expires, flags, IV.
const PREFIX_LEN: usize = 1 + 1 + 8 + 1 + IV_LEN;
const MIN_LEN: usize = PREFIX_LEN + BLOCK_LEN + TAG_LEN;

/// Strict in both directions: exactly one text encodes a given envelope,
/// so tokens can be compared and cached by their text.
const STRICT_B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// What a sealed value is for; part of the MAC, never stored.
///
/// Use one purpose per cookie name or storage backend so that a value
/// cannot be replayed from one context into another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Purpose(String);

impl Purpose {
    /// An arbitrary label of 1 to 255 bytes.
    ///
    /// Prefer [`Purpose::cookie`] and [`Purpose::store`]; a hand-made label
    /// that starts with `cookie:` or `store:` shares their namespace.
    pub fn new(label: impl Into<String>) -> Result<Self, InvalidPurpose> {
        let label = label.into();
        if label.is_empty() || label.len() > MAX_PURPOSE_LEN {
            return Err(InvalidPurpose { len: label.len() });
        }
        Ok(Self(label))
    }

    /// `cookie:<name>`, for a value carried in the cookie called `name`.
    pub fn cookie(name: &str) -> Result<Self, InvalidPurpose> {
        Self::new(format!("cookie:{name}"))
    }

    /// `store:<name>`, for a value kept by the storage backend `name`
    /// (for example `"redis"`).
    pub fn store(name: &str) -> Result<Self, InvalidPurpose> {
        Self::new(format!("store:{name}"))
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn len_byte(&self) -> u8 {
        u8::try_from(self.0.len()).expect("length checked by Purpose::new")
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A [`Purpose`] label was empty or longer than 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("purpose label is {len} bytes; it must be 1 to 255 bytes: shorten the cookie or store name")]
pub struct InvalidPurpose {
    /// Length of the refused label, in bytes.
    pub len: usize,
}

/// How [`KeyRing::seal`] should seal a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealOptions {
    /// Unix time, in seconds, from which the value no longer opens; `0` for
    /// no expiry.
    pub expires_at: u64,
    /// gzip the payload when it is longer than this many bytes and
    /// compression actually shrinks it; `None` never compresses.
    pub compress_above: Option<usize>,
    /// Refuse to seal plaintexts longer than this; keep it no larger than
    /// the [`OpenLimits::max_plaintext_len`] used to open.
    pub max_plaintext_len: usize,
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            expires_at: 0,
            compress_above: None,
            max_plaintext_len: DEFAULT_MAX_PLAINTEXT_LEN,
        }
    }
}

/// Resource bounds for [`KeyRing::open`], applied to untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenLimits {
    /// Longest accepted envelope text, checked before decoding.
    pub max_input_len: usize,
    /// Longest plaintext returned; also bounds decompression.
    pub max_plaintext_len: usize,
}

impl Default for OpenLimits {
    fn default() -> Self {
        Self {
            max_input_len: DEFAULT_MAX_INPUT_LEN,
            max_plaintext_len: DEFAULT_MAX_PLAINTEXT_LEN,
        }
    }
}

/// A successfully opened envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// The original plaintext (decompressed if it was compressed).
    pub plaintext: Vec<u8>,
    /// The key that sealed it.
    pub key_id: KeyId,
    /// Its authenticated expiry, unix seconds (`0`: none).
    pub expires_at: u64,
    /// Sealed with a key other than the ring's newest: re-seal it so the
    /// old key can eventually be retired.
    pub sealed_with_old_key: bool,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The plaintext is session data; keep it out of logs.
        f.debug_struct("Opened")
            .field("plaintext_len", &self.plaintext.len())
            .field("key_id", &self.key_id)
            .field("expires_at", &self.expires_at)
            .field("sealed_with_old_key", &self.sealed_with_old_key)
            .finish()
    }
}

/// Why a value could not be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The plaintext exceeds [`SealOptions::max_plaintext_len`].
    #[error(
        "plaintext is {len} bytes, over the {max}-byte limit: keep less data in the \
         value, or raise SealOptions::max_plaintext_len and OpenLimits::max_plaintext_len together"
    )]
    PlaintextTooLarge {
        /// Length of the plaintext, in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// gzip compression failed.
    #[error("compressing the payload failed; retry without compression")]
    Compression(#[source] io::Error),
    /// The operating system's random number generator failed (only the first seal of a
    /// process asks it: later IVs come from the generator it seeded).
    #[error("the OS random number generator failed to seed the IV generator")]
    Rng,
}

/// The envelope did not open. Deliberately says nothing about why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenError;

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid, tampered or expired envelope")
    }
}

impl std::error::Error for OpenError {}

/// The internal cause behind an [`OpenError`]; logged, never returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reject {
    TooLong,
    Base64,
    Length,
    Version,
    UnknownKey,
    Mac,
    Flags,
    Expired,
    Padding,
    TooLarge,
    Corrupt,
}

impl Reject {
    fn as_str(self) -> &'static str {
        match self {
            Self::TooLong => "input too long",
            Self::Base64 => "not canonical base64url",
            Self::Length => "bad length",
            Self::Version => "unknown version",
            Self::UnknownKey => "unknown key id",
            Self::Mac => "bad tag",
            Self::Flags => "unknown flags",
            Self::Expired => "expired",
            Self::Padding => "bad padding",
            Self::TooLarge => "plaintext over limit",
            Self::Corrupt => "corrupt compressed payload",
        }
    }
}

impl KeyRing {
    /// Seals `plaintext` for `purpose` with the ring's newest key and a
    /// fresh random IV, returning URL-safe base64 without padding.
    pub fn seal(&self, purpose: &Purpose, plaintext: &[u8], opts: &SealOptions) -> Result<String, SealError> {
        self.seal_under_iv(purpose, plaintext, opts, super::iv::fresh_iv()?)
    }

    /// [`KeyRing::seal`] with a caller-chosen IV, for golden test vectors only
    /// (feature `insecure-test-hooks`): reusing an IV under one key leaks
    /// plaintext structure.
    #[cfg(any(test, feature = "insecure-test-hooks"))]
    #[doc(hidden)]
    pub fn seal_with_iv(
        &self,
        purpose: &Purpose,
        plaintext: &[u8],
        opts: &SealOptions,
        iv: [u8; IV_LEN],
    ) -> Result<String, SealError> {
        self.seal_under_iv(purpose, plaintext, opts, iv)
    }

    fn seal_under_iv(
        &self,
        purpose: &Purpose,
        plaintext: &[u8],
        opts: &SealOptions,
        iv: [u8; IV_LEN],
    ) -> Result<String, SealError> {
        if plaintext.len() > opts.max_plaintext_len {
            return Err(SealError::PlaintextTooLarge {
                len: plaintext.len(),
                max: opts.max_plaintext_len,
            });
        }
        let packed = match opts.compress_above {
            Some(threshold) if plaintext.len() > threshold => {
                let packed = Zeroizing::new(compress::gzip(plaintext).map_err(SealError::Compression)?);
                (packed.len() < plaintext.len()).then_some(packed)
            }
            _ => None,
        };
        let (flags, body) = match &packed {
            Some(p) => (FLAG_GZIP, p.as_slice()),
            None => (0, plaintext),
        };
        let raw = seal_raw(
            self.newest(),
            purpose,
            ENVELOPE_VERSION,
            opts.expires_at,
            flags,
            &iv,
            body,
        );
        Ok(STRICT_B64URL.encode(raw))
    }

    /// Opens an envelope sealed for `purpose` by any key in the ring.
    ///
    /// `now_unix_secs` is the current time; the value no longer opens once
    /// it reaches the sealed expiry. Every failure returns the same
    /// [`OpenError`].
    pub fn open(
        &self,
        purpose: &Purpose,
        input: &str,
        now_unix_secs: u64,
        limits: &OpenLimits,
    ) -> Result<Opened, OpenError> {
        self.open_telling_expiry(purpose, input, now_unix_secs, limits)
            .map_err(|_| OpenError)
    }

    /// [`open`](Self::open), telling this crate whether the envelope was authentic and only
    /// expired (the everyday end of a session) or did not authenticate at all (worth
    /// reporting).
    pub(crate) fn open_telling_expiry(
        &self,
        purpose: &Purpose,
        input: &str,
        now_unix_secs: u64,
        limits: &OpenLimits,
    ) -> Result<Opened, OpenFailure> {
        open_inner(self, purpose, input, now_unix_secs, limits).map_err(|reason| {
            tracing::debug!(reason = reason.as_str(), "sealed envelope rejected");
            match reason {
                Reject::Expired => OpenFailure::Expired,
                _ => OpenFailure::Invalid,
            }
        })
    }
}

/// Why [`KeyRing::open_telling_expiry`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    /// Authentic, but past its expiry.
    Expired,
    /// Not authentic, malformed, or sealed with a key not in the ring.
    Invalid,
}

fn mac_for(key: &DerivedKey, purpose: &Purpose) -> HmacSha256 {
    let mut mac = key.mac().clone();
    mac.update(&[purpose.len_byte()]);
    mac.update(purpose.as_str().as_bytes());
    mac
}

/// Builds the binary envelope; header fields are parameters so tests can
/// produce correctly tagged envelopes that `seal` itself never would.
fn seal_raw(
    key: &DerivedKey,
    purpose: &Purpose,
    version: u8,
    expires_at: u64,
    flags: u8,
    iv: &[u8; IV_LEN],
    body: &[u8],
) -> Vec<u8> {
    // PKCS#7 always adds 1 to 16 bytes.
    let padded = (body.len() / BLOCK_LEN + 1) * BLOCK_LEN;
    let mut raw = Vec::with_capacity(PREFIX_LEN + padded + TAG_LEN);
    raw.push(version);
    raw.push(key.id.0);
    raw.extend_from_slice(&expires_at.to_be_bytes());
    raw.push(flags);
    raw.extend_from_slice(iv);
    raw.extend_from_slice(body);
    raw.resize(PREFIX_LEN + padded, 0);
    // Encrypted where it lies: no second buffer for the ciphertext.
    cbc::Encryptor::<Aes256>::inner_iv_init(key.cipher().clone(), iv.into())
        .encrypt_padded_mut::<Pkcs7>(&mut raw[PREFIX_LEN..], body.len())
        .expect("room for the padding is reserved above");
    let tag = mac_for(key, purpose).chain_update(&raw).finalize().into_bytes();
    raw.extend_from_slice(&tag);
    raw
}

fn open_inner(ring: &KeyRing, purpose: &Purpose, input: &str, now: u64, limits: &OpenLimits) -> Result<Opened, Reject> {
    if input.len() > limits.max_input_len {
        return Err(Reject::TooLong);
    }
    let mut raw = STRICT_B64URL.decode(input).map_err(|_| Reject::Base64)?;
    if raw.len() < MIN_LEN || !(raw.len() - PREFIX_LEN - TAG_LEN).is_multiple_of(BLOCK_LEN) {
        return Err(Reject::Length);
    }
    let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
    let (prefix, _ciphertext) = signed.split_first_chunk::<PREFIX_LEN>().ok_or(Reject::Length)?;
    let [version, key_id, e0, e1, e2, e3, e4, e5, e6, e7, flags, iv @ ..] = *prefix;

    if version != ENVELOPE_VERSION {
        return Err(Reject::Version);
    }
    let key_id = KeyId(key_id);
    let (key, newest) = ring.find(key_id).ok_or(Reject::UnknownKey)?;
    // Constant-time comparison; nothing below runs on unauthenticated bytes.
    mac_for(key, purpose)
        .chain_update(signed)
        .verify_slice(tag)
        .map_err(|_| Reject::Mac)?;

    if flags & !KNOWN_FLAGS != 0 {
        return Err(Reject::Flags);
    }
    // Authenticated, so checking it before decrypting saves the work.
    let expires_at = u64::from_be_bytes([e0, e1, e2, e3, e4, e5, e6, e7]);
    if expires_at != 0 && now >= expires_at {
        return Err(Reject::Expired);
    }

    // Decrypted in place, then moved to the front of the same buffer: no second buffer.
    let end = raw.len() - TAG_LEN;
    let body_len = cbc::Decryptor::<Aes256>::inner_iv_init(key.cipher().clone(), (&iv).into())
        .decrypt_padded_mut::<Pkcs7>(&mut raw[PREFIX_LEN..end])
        .map_err(|_| Reject::Padding)?
        .len();
    let mut body = raw;
    body.copy_within(PREFIX_LEN..PREFIX_LEN + body_len, 0);
    body.truncate(body_len);
    let plaintext = if flags & FLAG_GZIP != 0 {
        let body = Zeroizing::new(body);
        compress::gunzip_bounded(&body, limits.max_plaintext_len).map_err(|e| match e {
            DecompressError::TooLarge => Reject::TooLarge,
            DecompressError::Corrupt => Reject::Corrupt,
        })?
    } else if body.len() > limits.max_plaintext_len {
        return Err(Reject::TooLarge);
    } else {
        body
    };

    Ok(Opened {
        plaintext,
        key_id,
        expires_at,
        sealed_with_old_key: !newest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::Secret;
    use crate::crypto::test_hex as hex;
    use cbc::cipher::KeyIvInit;
    use cbc::cipher::block_padding::NoPadding;

    fn ring() -> KeyRing {
        KeyRing::new(KeyId(7), Secret::from_bytes((0u8..64).collect::<Vec<_>>()).unwrap())
    }

    fn purpose() -> Purpose {
        Purpose::cookie("id").unwrap()
    }

    fn reason(ring: &KeyRing, input: &str, now: u64, limits: &OpenLimits) -> Reject {
        open_inner(ring, &purpose(), input, now, limits).unwrap_err()
    }

    fn tagged(ring: &KeyRing, version: u8, expires: u64, flags: u8, body: &[u8]) -> String {
        STRICT_B64URL.encode(seal_raw(
            ring.newest(),
            &purpose(),
            version,
            expires,
            flags,
            &[9; IV_LEN],
            body,
        ))
    }

    // ---- Known-answer tests for the primitives as this module uses them.

    const NIST_KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const NIST_IV: &str = "000102030405060708090a0b0c0d0e0f";
    const NIST_PT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                           30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
    const NIST_CT: &str = "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                           39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b";
    const PKCS7_BLOCK: &str = "3f461796d6b0d6b2e0c2a72b4d80e644";

    fn nist_enc() -> cbc::Encryptor<Aes256> {
        cbc::Encryptor::<Aes256>::new_from_slices(&hex(NIST_KEY), &hex(NIST_IV)).unwrap()
    }

    fn nist_dec() -> cbc::Decryptor<Aes256> {
        cbc::Decryptor::<Aes256>::new_from_slices(&hex(NIST_KEY), &hex(NIST_IV)).unwrap()
    }

    #[test]
    fn aes256_cbc_sp800_38a_f25_unpadded() {
        let ct = nist_enc().encrypt_padded_vec_mut::<NoPadding>(&hex(NIST_PT));
        assert_eq!(ct, hex(NIST_CT));
        let pt = nist_dec().decrypt_padded_vec_mut::<NoPadding>(&hex(NIST_CT)).unwrap();
        assert_eq!(pt, hex(NIST_PT));
    }

    #[test]
    fn aes256_cbc_pkcs7_fifth_block() {
        let ct = nist_enc().encrypt_padded_vec_mut::<Pkcs7>(&hex(NIST_PT));
        let mut expected = hex(NIST_CT);
        expected.extend(hex(PKCS7_BLOCK));
        assert_eq!(ct, expected);
        let pt = nist_dec().decrypt_padded_vec_mut::<Pkcs7>(&ct).unwrap();
        assert_eq!(pt, hex(NIST_PT));
    }

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        <HmacSha256 as Mac>::new_from_slice(key)
            .unwrap()
            .chain_update(data)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    #[test]
    fn hmac_sha256_rfc4231() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the \
                  HMAC algorithm."
                    .to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (i, (key, data, mac)) in cases.iter().enumerate() {
            assert_eq!(hmac(key, data), hex(mac), "RFC 4231 case {}", [1, 2, 3, 4, 6, 7][i]);
            // The verification path `open` uses.
            <HmacSha256 as Mac>::new_from_slice(key)
                .unwrap()
                .chain_update(data)
                .verify_slice(&hex(mac))
                .unwrap();
        }
    }

    #[test]
    fn hmac_sha256_rfc4231_case5_truncated() {
        let key = [0x0c; 20];
        let data = b"Test With Truncation";
        let want = hex("a3b6167473100ee06e0c796c2955552b");
        assert_eq!(&hmac(&key, data)[..16], want.as_slice());
        <HmacSha256 as Mac>::new_from_slice(&key)
            .unwrap()
            .chain_update(data)
            .verify_truncated_left(&want)
            .unwrap();
    }

    // ---- Internal rejection reasons, which the public API hides.

    #[test]
    fn oversized_text_rejected_before_decoding() {
        let limits = OpenLimits::default();
        // Not base64 at all: only a pre-decode check can report TooLong.
        let junk = "!".repeat(limits.max_input_len + 1);
        assert_eq!(reason(&ring(), &junk, 0, &limits), Reject::TooLong);
        let junk = "!".repeat(limits.max_input_len);
        assert_eq!(reason(&ring(), &junk, 0, &limits), Reject::Base64);
    }

    #[test]
    fn unknown_version_rejected() {
        let r = ring();
        let token = tagged(&r, 2, 0, 0, b"hello");
        assert_eq!(reason(&r, &token, 0, &OpenLimits::default()), Reject::Version);
        let token = tagged(&r, 0, 0, 0, b"hello");
        assert_eq!(reason(&r, &token, 0, &OpenLimits::default()), Reject::Version);
    }

    #[test]
    fn unknown_flags_rejected_even_with_valid_tag() {
        let r = ring();
        for flags in [0b10, 0b100, 0x80, 0xff] {
            let token = tagged(&r, 1, 0, flags, b"hello");
            assert_eq!(reason(&r, &token, 0, &OpenLimits::default()), Reject::Flags);
        }
    }

    #[test]
    fn tag_checked_before_decryption() {
        let r = ring();
        let mut raw = STRICT_B64URL.decode(tagged(&r, 1, 0, 0, b"hello")).unwrap();
        // Corrupting the last ciphertext block would break the padding; the
        // tag must fail first.
        raw[PREFIX_LEN + 3] ^= 0x40;
        let token = STRICT_B64URL.encode(&raw);
        assert_eq!(reason(&r, &token, 0, &OpenLimits::default()), Reject::Mac);
    }

    #[test]
    fn bad_padding_behind_valid_tag_rejected() {
        let r = ring();
        let key = r.newest();
        let iv = [1u8; IV_LEN];
        // A block whose plaintext ends in 0x00 is invalid PKCS#7.
        let mut block = [0u8; 16];
        cbc::Encryptor::<Aes256>::inner_iv_init(key.cipher().clone(), (&iv).into())
            .encrypt_padded_mut::<NoPadding>(&mut block, 16)
            .unwrap();
        let mut raw = vec![1, key.id.0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        raw.extend_from_slice(&iv);
        raw.extend_from_slice(&block);
        let tag = mac_for(key, &purpose()).chain_update(&raw).finalize().into_bytes();
        raw.extend_from_slice(&tag);
        let token = STRICT_B64URL.encode(&raw);
        assert_eq!(reason(&r, &token, 0, &OpenLimits::default()), Reject::Padding);
    }

    #[test]
    fn expiry_boundary() {
        let r = ring();
        let token = tagged(&r, 1, 1000, 0, b"hello");
        let limits = OpenLimits::default();
        assert!(open_inner(&r, &purpose(), &token, 999, &limits).is_ok());
        assert_eq!(reason(&r, &token, 1000, &limits), Reject::Expired);
        assert_eq!(reason(&r, &token, u64::MAX, &limits), Reject::Expired);
    }

    #[test]
    fn bomb_hits_the_bound() {
        let r = ring();
        let packed = compress::gzip(&vec![b'a'; 1 << 20]).unwrap();
        let token = tagged(&r, 1, 0, FLAG_GZIP, &packed);
        assert!(token.len() < DEFAULT_MAX_INPUT_LEN);
        assert_eq!(reason(&r, &token, 0, &OpenLimits::default()), Reject::TooLarge);
    }

    #[test]
    fn flagged_but_not_gzip_rejected() {
        let r = ring();
        let token = tagged(&r, 1, 0, FLAG_GZIP, b"plain text, not gzip");
        assert_eq!(reason(&r, &token, 0, &OpenLimits::default()), Reject::Corrupt);
    }

    #[test]
    fn uncompressed_plaintext_bounded_too() {
        let r = ring();
        let token = tagged(&r, 1, 0, 0, &[7u8; 100]);
        let limits = OpenLimits {
            max_plaintext_len: 99,
            ..OpenLimits::default()
        };
        assert_eq!(reason(&r, &token, 0, &limits), Reject::TooLarge);
    }

    #[test]
    fn layout_offsets() {
        let r = ring();
        let raw = STRICT_B64URL
            .decode(tagged(&r, 1, 0x0102_0304_0506_0708, 0, &[0u8; 16]))
            .unwrap();
        assert_eq!(raw.len(), MIN_LEN + BLOCK_LEN); // 16 bytes pad to 32
        assert_eq!(raw[0], 1);
        assert_eq!(raw[1], 7);
        assert_eq!(&raw[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(raw[10], 0);
        assert_eq!(&raw[11..27], &[9; 16]);
        assert_eq!(MIN_LEN, 75);
    }
}
