//! How a server-side store keeps one value (a session field, or the store's metadata
//! bytes): a marker byte, then the value as is, gzip-compressed, or sealed.
//!
//! With encryption at rest, every value is sealed with the crypto envelope under the
//! store's [`Purpose::store`], so no stored value ever opens as a cookie, and the envelope
//! expires at the session's absolute deadline. The sealed plaintext starts with what the
//! value is bound to, checked when it is opened:
//!
//! - metadata: `m`, then the session's [`StoreKey`] digest: it opens under no other key,
//!   so a session's metadata copied to another key is no session;
//! - a field: `f`, the field's tag, then the session's [`lineage`](SessionMeta::lineage),
//!   which the metadata holds: it opens in no other field and no other session, yet a
//!   regenerated ID (a new key, the same lineage) keeps every field readable.
//!
//! So a party that can write to the database cannot move a sealed value into another
//! session or field; it can still delete sessions, or put back an older value of the same
//! field of the same session. Plain values are refused when encryption is on (anyone with
//! write access could have written them), and sealed ones when it is off.

use std::borrow::Cow;
use std::io::{Read as _, Write as _};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};

use crate::{
    crypto::{KeyRing, OpenLimits, Purpose, SealError, SealOptions},
    expiry::CookieLifetime,
    id::StoreKey,
    index::IndexKey,
    session::SessionMeta,
};

/// The value follows as is.
const PLAIN: u8 = 0;
/// The value follows gzip-compressed.
const GZIP: u8 = 1;
/// The value follows as a sealed envelope (its base64 text).
const SEALED: u8 = 2;

/// What a sealed plaintext starts with: the metadata, or a field and its tag.
const META_DOMAIN: u8 = b'm';
const FIELD_DOMAIN: u8 = b'f';

/// The most bytes a stored value may decompress to: a corrupt or hostile value cannot
/// exhaust memory.
pub(crate) const MAX_VALUE_LEN: usize = 16 << 20;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("empty stored value")]
    Empty,
    #[error("unknown value marker {0}")]
    UnknownMarker(u8),
    #[error("gzip data is corrupt: {0}")]
    Gzip(#[from] std::io::Error),
    #[error("value decompresses to more than {MAX_VALUE_LEN} bytes")]
    TooLarge,
    #[error("a plain value where encryption at rest requires a sealed one")]
    NotSealed,
    #[error("a sealed value, but this store has no encryption key ring")]
    NoKeyRing,
    #[error("the sealed value did not open (tampered, expired, foreign key, or another session's or field's)")]
    Unsealed,
    #[error("malformed metadata")]
    Meta,
}

/// Encryption at rest: the key ring and the store's purpose.
#[derive(Clone)]
pub(crate) struct Sealing {
    pub(crate) ring: KeyRing,
    pub(crate) purpose: Purpose,
}

/// Encodes and decodes stored values.
#[derive(Clone, Default)]
pub(crate) struct ValueCodec {
    /// Values longer than this are compressed.
    pub(crate) compress_above: Option<usize>,
    /// Seal every value, if set.
    pub(crate) sealing: Option<Sealing>,
}

impl std::fmt::Debug for ValueCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueCodec")
            .field("compress_above", &self.compress_above)
            .field("encrypted", &self.sealing.is_some())
            .finish()
    }
}

impl ValueCodec {
    /// The stored form of a session field of the session whose lineage is `lineage`;
    /// `expires_ms` bounds a sealed value's life.
    pub(crate) fn encode_field(
        &self,
        tag: u32,
        value: &[u8],
        lineage: &[u8; 16],
        expires_ms: u64,
    ) -> Result<Vec<u8>, SealError> {
        match &self.sealing {
            Some(sealing) => {
                let binding = field_binding(tag, lineage);
                let mut plaintext = Vec::with_capacity(binding.len() + value.len());
                plaintext.extend_from_slice(&binding);
                plaintext.extend_from_slice(value);
                self.seal(sealing, &plaintext, expires_ms)
            }
            None => Ok(self.plain(value)),
        }
    }

    /// Reads a session field stored by [`encode_field`](Self::encode_field) for the same
    /// tag and lineage.
    pub(crate) fn decode_field<'a>(
        &self,
        tag: u32,
        stored: &'a [u8],
        lineage: &[u8; 16],
        now_ms: u64,
    ) -> Result<Cow<'a, [u8]>, ValueError> {
        let plaintext = self.decode(stored, now_ms)?;
        match self.sealing {
            Some(_) => strip_binding(plaintext, &field_binding(tag, lineage)),
            None => Ok(plaintext),
        }
    }

    /// The stored form of the metadata bytes of the session under `key`.
    pub(crate) fn encode_meta(&self, key: &StoreKey, meta: &SessionMeta) -> Result<Vec<u8>, SealError> {
        let bytes = meta_bytes(meta);
        let expires_ms = meta.absolute_deadline_ms;
        match &self.sealing {
            Some(sealing) => {
                let binding = meta_binding(key);
                let mut plaintext = Vec::with_capacity(binding.len() + bytes.len());
                plaintext.extend_from_slice(&binding);
                plaintext.extend_from_slice(&bytes);
                self.seal(sealing, &plaintext, expires_ms)
            }
            // Never compressed: the store may read it without this codec (e.g. a script).
            None => Ok(bytes),
        }
    }

    /// Reads the metadata stored by [`encode_meta`](Self::encode_meta) for `key`.
    pub(crate) fn decode_meta(&self, key: &StoreKey, stored: &[u8], now_ms: u64) -> Result<SessionMeta, ValueError> {
        let bytes = match self.sealing {
            Some(_) => strip_binding(self.decode(stored, now_ms)?, &meta_binding(key))?,
            None => Cow::Borrowed(stored),
        };
        meta_from_bytes(&bytes).ok_or(ValueError::Meta)
    }

    fn plain(&self, value: &[u8]) -> Vec<u8> {
        if self.compress_above.is_some_and(|limit| value.len() > limit)
            && let Some(compressed) = gzip(value)
            && compressed.len() < value.len()
        {
            return compressed;
        }
        let mut out = Vec::with_capacity(value.len() + 1);
        out.push(PLAIN);
        out.extend_from_slice(value);
        out
    }

    fn seal(&self, sealing: &Sealing, plaintext: &[u8], expires_ms: u64) -> Result<Vec<u8>, SealError> {
        let options = SealOptions {
            // Rounded up: the envelope must not expire before the session does.
            expires_at: expires_ms.div_ceil(1000),
            compress_above: self.compress_above,
            max_plaintext_len: MAX_VALUE_LEN,
        };
        let text = sealing.ring.seal(&sealing.purpose, plaintext, &options)?;
        let mut out = Vec::with_capacity(1 + text.len());
        out.push(SEALED);
        out.extend_from_slice(text.as_bytes());
        Ok(out)
    }

    // Borrowed when stored plain (the common case): a load decodes every field, and a copy
    // of each would be one more allocation per field.
    fn decode<'a>(&self, stored: &'a [u8], now_ms: u64) -> Result<Cow<'a, [u8]>, ValueError> {
        let (&marker, body) = stored.split_first().ok_or(ValueError::Empty)?;
        match (marker, &self.sealing) {
            (SEALED, Some(sealing)) => {
                let text = std::str::from_utf8(body).map_err(|_| ValueError::Unsealed)?;
                let limits = OpenLimits {
                    // base64 of the largest plaintext, with the envelope's overhead.
                    max_input_len: MAX_VALUE_LEN / 3 * 4 + 1024,
                    max_plaintext_len: MAX_VALUE_LEN,
                };
                let opened = sealing
                    .ring
                    .open(&sealing.purpose, text, now_ms / 1000, &limits)
                    .map_err(|_| ValueError::Unsealed)?;
                Ok(Cow::Owned(opened.plaintext))
            }
            (SEALED, None) => Err(ValueError::NoKeyRing),
            (PLAIN | GZIP, Some(_)) => Err(ValueError::NotSealed),
            (PLAIN, None) => Ok(Cow::Borrowed(body)),
            (GZIP, None) => gunzip(body, MAX_VALUE_LEN).map(Cow::Owned),
            (other, _) => Err(ValueError::UnknownMarker(other)),
        }
    }
}

/// The metadata as the stores keep it (see [`meta_bytes`]).
///
/// Every integer is a postcard varint: `created` in ms since the Unix epoch, then
/// `accessed`, the idle deadline and the absolute deadline as differences (wrapping, so
/// every value has a form; the usual ones take 4 bytes instead of 8), then the session's own
/// idle window.
#[derive(serde::Serialize, serde::Deserialize)]
struct CompactMeta {
    created_ms: u64,
    accessed_after_created: u64,
    idle_deadline_after_accessed: u64,
    absolute_deadline_after_created: u64,
    idle_window_ms: u64,
    lineage: [u8; 16],
    /// The flags (bits 0-2) and the cookie lifetime (bits 4-5).
    flags: u8,
}

/// The first byte of [`meta_bytes`]'s form. The older, fixed-width forms start with the
/// creation time's most significant byte, 0 until the year 2,280,000.
const COMPACT_FORM: u8 = 1;
/// The older forms: `created`, `accessed`, `idle deadline`, `absolute deadline`, 8 bytes
/// each, big-endian.
const LIFETIMES_LEN: usize = 32;
/// The lifetimes, then the lineage: the form before sessions chose their own lifetime.
const LINEAGE_END: usize = LIFETIMES_LEN + 16;
/// Then the session's own idle window (8 bytes), cookie lifetime (1 byte) and flags (1
/// byte): the form before the compact one.
const FIXED_META_LEN: usize = LINEAGE_END + 10;
/// A key that may follow: a sub-session's parent, an indexed session's index.
const KEY_LEN: usize = 32;
/// Flags: a server-only session.
const SERVER_ONLY: u8 = 1;
/// Flags: a sub-session; its parent's key follows.
const HAS_PARENT: u8 = 2;
/// Flags: an indexed session; its index key follows (after the parent's key, if any).
const HAS_INDEX: u8 = 4;
/// Where the cookie lifetime sits in the compact form's flags byte.
const COOKIE_SHIFT: u32 = 4;

/// The metadata as the stores keep it: the byte 1, then, as postcard varints, the creation
/// time (ms since the Unix epoch), the access time, idle deadline and absolute deadline as
/// differences from the creation, access and creation times, the session's own idle window
/// (ms; 0 for the configured one); the 16-byte lineage; one byte of flags (1 server-only, 2
/// sub-session, 4 indexed) and cookie lifetime (times 16: 0 configured, 1 browser session,
/// 2 persistent); then, for a sub-session, its parent's 32-byte key and, for an indexed
/// session, its 32-byte [`IndexKey`]. 33 bytes for a session of a 30-minute idle timeout
/// and a one-day absolute one, against 58 in the fixed-width form earlier versions wrote.
fn meta_bytes(meta: &SessionMeta) -> Vec<u8> {
    let mut flags = meta.cookie.to_byte() << COOKIE_SHIFT;
    if meta.server_only {
        flags |= SERVER_ONLY;
    }
    if meta.parent.is_some() {
        flags |= HAS_PARENT;
    }
    if meta.index.is_some() {
        flags |= HAS_INDEX;
    }
    let compact = CompactMeta {
        created_ms: meta.created_ms,
        accessed_after_created: meta.accessed_ms.wrapping_sub(meta.created_ms),
        idle_deadline_after_accessed: meta.idle_deadline_ms.wrapping_sub(meta.accessed_ms),
        absolute_deadline_after_created: meta.absolute_deadline_ms.wrapping_sub(meta.created_ms),
        idle_window_ms: meta.idle_window_ms,
        lineage: meta.lineage,
        flags,
    };
    let mut out = Vec::with_capacity(64);
    out.push(COMPACT_FORM);
    let mut out = postcard::to_extend(&compact, out).expect("a Vec grows as needed");
    if let Some(parent) = &meta.parent {
        out.extend_from_slice(parent.as_bytes());
    }
    if let Some(index) = &meta.index {
        out.extend_from_slice(index.as_bytes());
    }
    out
}

/// Reads what [`meta_bytes`] wrote, or one of the older fixed-width forms (the lifetimes
/// alone, with a zero lineage; the lifetimes and lineage, with the configured lifetime; the
/// lifetimes, lineage, idle window, cookie lifetime, flags and keys); `None` for anything
/// else.
fn meta_from_bytes(bytes: &[u8]) -> Option<SessionMeta> {
    match bytes.split_first() {
        Some((&COMPACT_FORM, rest)) => compact_meta_from_bytes(rest),
        _ => fixed_meta_from_bytes(bytes),
    }
}

fn compact_meta_from_bytes(bytes: &[u8]) -> Option<SessionMeta> {
    let (compact, keys) = postcard::take_from_bytes::<CompactMeta>(bytes).ok()?;
    let flags = compact.flags & !(3 << COOKIE_SHIFT);
    let meta = SessionMeta {
        created_ms: compact.created_ms,
        accessed_ms: compact.created_ms.wrapping_add(compact.accessed_after_created),
        lineage: compact.lineage,
        idle_window_ms: compact.idle_window_ms,
        cookie: CookieLifetime::from_byte(compact.flags >> COOKIE_SHIFT)?,
        ..SessionMeta::new(0, 0, 0)
    };
    let meta = SessionMeta {
        idle_deadline_ms: meta.accessed_ms.wrapping_add(compact.idle_deadline_after_accessed),
        absolute_deadline_ms: meta.created_ms.wrapping_add(compact.absolute_deadline_after_created),
        ..meta
    };
    with_flags_and_keys(meta, flags, keys)
}

fn fixed_meta_from_bytes(bytes: &[u8]) -> Option<SessionMeta> {
    if !matches!(bytes.len(), LIFETIMES_LEN | LINEAGE_END) && bytes.len() < FIXED_META_LEN {
        return None;
    }
    let mut parts = bytes[..LIFETIMES_LEN]
        .chunks_exact(8)
        .map(|chunk| u64::from_be_bytes(chunk.try_into().unwrap_or_default()));
    let mut meta = SessionMeta {
        created_ms: parts.next()?,
        accessed_ms: parts.next()?,
        idle_deadline_ms: parts.next()?,
        absolute_deadline_ms: parts.next()?,
        ..SessionMeta::new(0, 0, 0)
    };
    if let Some(lineage) = bytes.get(LIFETIMES_LEN..LINEAGE_END) {
        meta.lineage = lineage.try_into().ok()?;
    }
    match bytes.get(LINEAGE_END..FIXED_META_LEN) {
        Some(own) => {
            let (window, rest) = own.split_at(8);
            meta.idle_window_ms = u64::from_be_bytes(window.try_into().ok()?);
            meta.cookie = CookieLifetime::from_byte(rest[0])?;
            with_flags_and_keys(meta, rest[1], &bytes[FIXED_META_LEN..])
        }
        None => Some(meta),
    }
}

/// `meta` with the `flags` and the keys they say follow (exactly those).
fn with_flags_and_keys(mut meta: SessionMeta, flags: u8, keys: &[u8]) -> Option<SessionMeta> {
    if flags & !(SERVER_ONLY | HAS_PARENT | HAS_INDEX) != 0 {
        return None;
    }
    meta.server_only = flags & SERVER_ONLY != 0;
    let mut keys = keys.chunks(KEY_LEN);
    let mut key = |flag: u8| -> Option<Option<[u8; KEY_LEN]>> {
        match flags & flag {
            0 => Some(None),
            _ => keys.next()?.try_into().ok().map(Some),
        }
    };
    meta.parent = key(HAS_PARENT)?.map(StoreKey::from_bytes);
    meta.index = key(HAS_INDEX)?.map(IndexKey::from_bytes);
    if keys.next().is_some() {
        return None;
    }
    Some(meta)
}

/// What a sealed field's plaintext starts with.
fn field_binding(tag: u32, lineage: &[u8; 16]) -> [u8; 21] {
    let mut binding = [0u8; 21];
    binding[0] = FIELD_DOMAIN;
    binding[1..5].copy_from_slice(&tag.to_be_bytes());
    binding[5..].copy_from_slice(lineage);
    binding
}

/// What sealed metadata's plaintext starts with.
fn meta_binding(key: &StoreKey) -> [u8; 33] {
    let mut binding = [0u8; 33];
    binding[0] = META_DOMAIN;
    binding[1..].copy_from_slice(key.as_bytes());
    binding
}

/// The plaintext after `binding`; an error when it does not start with it.
fn strip_binding<'a>(mut plaintext: Cow<'a, [u8]>, binding: &[u8]) -> Result<Cow<'a, [u8]>, ValueError> {
    if !plaintext.starts_with(binding) {
        return Err(ValueError::Unsealed);
    }
    plaintext.to_mut().drain(..binding.len());
    Ok(plaintext)
}

/// The marker and the gzip stream; `None` if compression failed (then it is stored plain).
fn gzip(value: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![GZIP];
    let mut encoder = GzEncoder::new(&mut out, Compression::fast());
    encoder.write_all(value).ok()?;
    encoder.finish().ok()?;
    Some(out)
}

fn gunzip(body: &[u8], max_len: usize) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    GzDecoder::new(body).take(limit).read_to_end(&mut out)?;
    if out.len() > max_len {
        return Err(ValueError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINEAGE: [u8; 16] = [3; 16];

    /// The fixed-width form earlier versions wrote.
    fn fixed_meta_bytes(meta: &SessionMeta) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [
            meta.created_ms,
            meta.accessed_ms,
            meta.idle_deadline_ms,
            meta.absolute_deadline_ms,
        ] {
            out.extend_from_slice(&part.to_be_bytes());
        }
        out.extend_from_slice(&meta.lineage);
        out.extend_from_slice(&meta.idle_window_ms.to_be_bytes());
        out.push(meta.cookie.to_byte());
        let flags = u8::from(meta.server_only)
            | if meta.parent.is_some() { HAS_PARENT } else { 0 }
            | if meta.index.is_some() { HAS_INDEX } else { 0 };
        out.push(flags);
        out.extend(meta.parent.iter().flat_map(|key| *key.as_bytes()));
        out.extend(meta.index.iter().flat_map(|key| *key.as_bytes()));
        out
    }

    fn plain_meta() -> SessionMeta {
        SessionMeta {
            lineage: [7; 16],
            idle_window_ms: 86_400_000,
            cookie: CookieLifetime::Persistent,
            ..SessionMeta::new(1_700_000_000_000, 1_000, u64::MAX)
        }
    }

    fn variants() -> Vec<SessionMeta> {
        let meta = plain_meta();
        let child = SessionMeta {
            parent: Some(StoreKey::from_bytes([5; 32])),
            server_only: true,
            ..meta
        };
        let indexed = SessionMeta {
            index: Some(IndexKey::from_bytes([6; 32])),
            ..meta
        };
        let indexed_child = SessionMeta {
            index: Some(IndexKey::from_bytes([6; 32])),
            ..child
        };
        let extremes = SessionMeta {
            created_ms: u64::MAX,
            accessed_ms: 0,
            idle_deadline_ms: u64::MAX,
            absolute_deadline_ms: 1,
            idle_window_ms: u64::MAX,
            cookie: CookieLifetime::BrowserSession,
            ..meta
        };
        vec![meta, child, indexed, indexed_child, extremes]
    }

    #[test]
    fn meta_round_trips_in_the_compact_form_and_reads_the_fixed_forms() {
        for meta in variants() {
            let bytes = meta_bytes(&meta);
            assert_eq!(bytes[0], COMPACT_FORM);
            assert_eq!(meta_from_bytes(&bytes), Some(meta), "{meta:?}");
            if meta.created_ms < 1 << 56 {
                assert_eq!(meta_from_bytes(&fixed_meta_bytes(&meta)), Some(meta), "{meta:?}");
            }
        }
        // A session of the configured lifetimes, as the stores write most: 33 bytes
        // instead of the fixed form's 58.
        let now = SessionMeta::new(1_800_000_000_000, 1_800_000, 86_400_000);
        assert_eq!(
            meta_bytes(&SessionMeta {
                lineage: [9; 16],
                ..now
            })
            .len(),
            33
        );
        let meta = plain_meta();
        let legacy = &fixed_meta_bytes(&meta)[..32];
        assert_eq!(meta_from_bytes(legacy).map(|m| m.lineage), Some([0; 16]));
        let before_lifetimes = meta_from_bytes(&fixed_meta_bytes(&meta)[..48]).unwrap();
        assert_eq!(before_lifetimes.lineage, [7; 16]);
        assert_eq!(
            (before_lifetimes.idle_window_ms, before_lifetimes.cookie),
            (0, CookieLifetime::Configured)
        );
    }

    #[test]
    fn meta_with_unknown_flags_missing_or_extra_keys_is_refused_in_either_form() {
        let meta = plain_meta();
        let mut unknown_cookie = fixed_meta_bytes(&meta);
        unknown_cookie[56] = 9;
        assert_eq!(meta_from_bytes(&unknown_cookie), None);
        let mut unknown_flag = fixed_meta_bytes(&meta);
        unknown_flag[57] = 8;
        assert_eq!(meta_from_bytes(&unknown_flag), None);
        let compact = meta_bytes(&meta);
        let flags_at = compact.len() - 1;
        for bad in [8, 3 << COOKIE_SHIFT, 0x80] {
            let mut unknown = compact.clone();
            unknown[flags_at] = bad;
            assert_eq!(meta_from_bytes(&unknown), None, "flags {bad:#x}");
        }
        let indexed_child = variants()[3];
        for bytes in [fixed_meta_bytes(&indexed_child), meta_bytes(&indexed_child)] {
            let n = bytes.len();
            assert_eq!(&bytes[n - 64..n - 32], &[5; 32], "the parent's key first");
            assert_eq!(meta_from_bytes(&bytes[..n - 32]), None, "an index flag without its key");
            assert_eq!(meta_from_bytes(&bytes[..n - 1]), None, "a cut key");
            let mut trailing = bytes.clone();
            trailing.push(0);
            assert_eq!(meta_from_bytes(&trailing), None, "bytes after the keys");
        }
        for cut in 0..compact.len() {
            assert_eq!(meta_from_bytes(&compact[..cut]), None, "cut at {cut}");
        }
        assert_eq!(meta_from_bytes(&[0; 31]), None);
    }

    #[test]
    fn small_values_stay_plain_and_large_ones_are_compressed() {
        let codec = ValueCodec {
            compress_above: Some(64),
            sealing: None,
        };
        let small = b"short".to_vec();
        assert_eq!(codec.plain(&small)[0], PLAIN);
        let large = b"abc".repeat(100);
        let stored = codec.encode_field(7, &large, &LINEAGE, 0).unwrap();
        assert_eq!(stored[0], GZIP);
        assert!(stored.len() < large.len());
        assert_eq!(codec.decode_field(7, &stored, &LINEAGE, 0).unwrap(), large);
        assert_eq!(codec.decode(&codec.plain(&small), 0).unwrap(), small);
    }

    #[test]
    fn incompressible_values_stay_plain() {
        let codec = ValueCodec {
            compress_above: Some(0),
            sealing: None,
        };
        let mut noise = [0u8; 200];
        getrandom::fill(&mut noise).unwrap();
        assert_eq!(codec.plain(&noise)[0], PLAIN);
    }

    #[test]
    fn corrupt_values_are_errors_and_bombs_are_bounded() {
        let codec = ValueCodec::default();
        assert!(matches!(codec.decode(b"", 0), Err(ValueError::Empty)));
        assert!(matches!(codec.decode(&[9, 1], 0), Err(ValueError::UnknownMarker(9))));
        assert!(matches!(codec.decode(&[GZIP, 1, 2, 3], 0), Err(ValueError::Gzip(_))));
        let bomb = gzip(&[0u8; 4097]).unwrap();
        assert!(matches!(gunzip(&bomb[1..], 4096), Err(ValueError::TooLarge)));
        assert_eq!(gunzip(&bomb[1..], 4097).unwrap().len(), 4097);
    }

    fn sealed_codec() -> ValueCodec {
        use crate::crypto::{KeyId, Secret};
        ValueCodec {
            compress_above: Some(64),
            sealing: Some(Sealing {
                ring: KeyRing::new(KeyId(1), Secret::generate().unwrap()),
                purpose: Purpose::store("redis").unwrap(),
            }),
        }
    }

    #[test]
    fn sealed_values_are_bound_to_their_field_session_and_key_and_expire_with_the_session() {
        let codec = sealed_codec();
        let now_ms = 1_700_000_000_000;
        let stored = codec
            .encode_field(7, b"secret value", &LINEAGE, now_ms + 60_000)
            .unwrap();
        assert_eq!(stored[0], SEALED);
        assert!(!stored.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            &*codec.decode_field(7, &stored, &LINEAGE, now_ms).unwrap(),
            b"secret value"
        );
        assert!(
            matches!(
                codec.decode_field(8, &stored, &LINEAGE, now_ms),
                Err(ValueError::Unsealed)
            ),
            "another field"
        );
        assert!(
            matches!(
                codec.decode_field(7, &stored, &[4; 16], now_ms),
                Err(ValueError::Unsealed)
            ),
            "another session"
        );
        assert!(
            matches!(
                codec.decode_field(7, &stored, &LINEAGE, now_ms + 60_000),
                Err(ValueError::Unsealed)
            ),
            "expired"
        );
        let key = StoreKey::from_bytes([1; 32]);
        assert!(
            matches!(codec.decode_meta(&key, &stored, now_ms), Err(ValueError::Unsealed)),
            "not meta"
        );

        let meta = SessionMeta {
            lineage: LINEAGE,
            ..SessionMeta::new(now_ms, 60_000, 600_000)
        };
        let sealed_meta = codec.encode_meta(&key, &meta).unwrap();
        assert_eq!(codec.decode_meta(&key, &sealed_meta, now_ms).unwrap(), meta);
        assert!(
            matches!(
                codec.decode_meta(&StoreKey::from_bytes([2; 32]), &sealed_meta, now_ms),
                Err(ValueError::Unsealed)
            ),
            "metadata moved to another key"
        );

        let plain = ValueCodec::default();
        assert!(matches!(
            codec.decode_field(7, &plain.plain(b"x"), &LINEAGE, now_ms),
            Err(ValueError::NotSealed)
        ));
        assert!(matches!(
            plain.decode_field(7, &stored, &LINEAGE, now_ms),
            Err(ValueError::NoKeyRing)
        ));
        assert!(
            codec.decode_meta(&key, &meta_bytes(&meta), now_ms).is_err(),
            "plain metadata refused"
        );

        let other_key = sealed_codec();
        assert!(matches!(
            other_key.decode_field(7, &stored, &LINEAGE, now_ms),
            Err(ValueError::Unsealed)
        ));
    }
}
