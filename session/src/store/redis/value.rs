//! How values are stored in a session's hash: a marker byte, then the value as is,
//! gzip-compressed, or sealed.
//!
//! With encryption at rest, every session field and the metadata are sealed with the
//! crypto envelope under [`Purpose::store`]`("redis")`, so no stored value ever opens as a
//! cookie. The sealed plaintext starts with what it is (`m`, or `f` and the field tag), so
//! a sealed value cannot be moved to another field or into the metadata; and the envelope
//! expires at the session's absolute deadline. Plain values are refused when encryption is
//! on (they could have been written by anyone with access to Redis), and sealed ones when
//! it is off.

use std::borrow::Cow;
use std::io::{Read as _, Write as _};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};

use crate::{
    crypto::{KeyRing, OpenLimits, Purpose, SealError, SealOptions},
    session::SessionMeta,
    store::redis::layout,
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
pub(super) const MAX_VALUE_LEN: usize = 16 << 20;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub(super) enum ValueError {
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
    #[error("the sealed value did not open (tampered, expired, foreign key or another field's)")]
    Unsealed,
    #[error("malformed metadata")]
    Meta,
}

/// Encryption at rest: the key ring and the store's purpose.
#[derive(Clone)]
pub(super) struct Sealing {
    pub(super) ring: KeyRing,
    pub(super) purpose: Purpose,
}

/// Encodes and decodes stored values.
#[derive(Clone, Default)]
pub(super) struct ValueCodec {
    /// Values longer than this are compressed.
    pub(super) compress_above: Option<usize>,
    /// Seal every value, if set.
    pub(super) sealing: Option<Sealing>,
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
    /// The stored form of a session field; `expires_ms` bounds a sealed value's life.
    pub(super) fn encode_field(&self, tag: u32, value: &[u8], expires_ms: u64) -> Result<Vec<u8>, SealError> {
        match &self.sealing {
            Some(sealing) => {
                let mut plaintext = Vec::with_capacity(5 + value.len());
                plaintext.push(FIELD_DOMAIN);
                plaintext.extend_from_slice(&tag.to_be_bytes());
                plaintext.extend_from_slice(value);
                self.seal(sealing, &plaintext, expires_ms)
            }
            None => Ok(self.plain(value)),
        }
    }

    /// Reads a session field stored by [`encode_field`](Self::encode_field).
    pub(super) fn decode_field<'a>(
        &self,
        tag: u32,
        stored: &'a [u8],
        now_ms: u64,
    ) -> Result<Cow<'a, [u8]>, ValueError> {
        let mut plaintext = self.decode(stored, now_ms)?;
        if self.sealing.is_some() {
            let mut binding = [FIELD_DOMAIN, 0, 0, 0, 0];
            binding[1..].copy_from_slice(&tag.to_be_bytes());
            if !plaintext.starts_with(&binding) {
                return Err(ValueError::Unsealed);
            }
            plaintext.to_mut().drain(..binding.len());
        }
        Ok(plaintext)
    }

    /// The stored metadata: 32 plain bytes (see [`layout::encode_meta`]), or sealed.
    pub(super) fn encode_meta(&self, meta: &SessionMeta) -> Result<Vec<u8>, SealError> {
        let bytes = layout::encode_meta(meta);
        match &self.sealing {
            Some(sealing) => {
                let mut plaintext = Vec::with_capacity(1 + bytes.len());
                plaintext.push(META_DOMAIN);
                plaintext.extend_from_slice(&bytes);
                self.seal(sealing, &plaintext, meta.absolute_deadline_ms)
            }
            None => Ok(bytes.to_vec()),
        }
    }

    /// Reads the metadata stored by [`encode_meta`](Self::encode_meta).
    pub(super) fn decode_meta(&self, stored: &[u8], now_ms: u64) -> Result<SessionMeta, ValueError> {
        match &self.sealing {
            Some(_) => {
                let plaintext = self.decode(stored, now_ms)?;
                match plaintext.split_first() {
                    Some((&META_DOMAIN, bytes)) => layout::decode_meta(bytes).ok_or(ValueError::Meta),
                    _ => Err(ValueError::Unsealed),
                }
            }
            None => layout::decode_meta(stored).ok_or(ValueError::Meta),
        }
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

    #[test]
    fn small_values_stay_plain_and_large_ones_are_compressed() {
        let codec = ValueCodec {
            compress_above: Some(64),
            sealing: None,
        };
        let small = b"short".to_vec();
        assert_eq!(codec.plain(&small)[0], PLAIN);
        let large = b"abc".repeat(100);
        let stored = codec.encode_field(7, &large, 0).unwrap();
        assert_eq!(stored[0], GZIP);
        assert!(stored.len() < large.len());
        assert_eq!(codec.decode_field(7, &stored, 0).unwrap(), large);
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
    fn sealed_values_are_bound_to_their_field_and_expire_with_the_session() {
        let codec = sealed_codec();
        let now_ms = 1_700_000_000_000;
        let stored = codec.encode_field(7, b"secret value", now_ms + 60_000).unwrap();
        assert_eq!(stored[0], SEALED);
        assert!(!stored.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*codec.decode_field(7, &stored, now_ms).unwrap(), b"secret value");
        assert!(
            matches!(codec.decode_field(8, &stored, now_ms), Err(ValueError::Unsealed)),
            "another field"
        );
        assert!(
            matches!(
                codec.decode_field(7, &stored, now_ms + 60_000),
                Err(ValueError::Unsealed)
            ),
            "expired"
        );
        assert!(
            matches!(codec.decode_meta(&stored, now_ms), Err(ValueError::Unsealed)),
            "not meta"
        );

        let meta = SessionMeta::new(now_ms, 60_000, 600_000);
        let sealed_meta = codec.encode_meta(&meta).unwrap();
        assert_eq!(codec.decode_meta(&sealed_meta, now_ms).unwrap(), meta);

        let plain = ValueCodec::default();
        assert!(matches!(
            codec.decode_field(7, &plain.plain(b"x"), now_ms),
            Err(ValueError::NotSealed)
        ));
        assert!(matches!(
            plain.decode_field(7, &stored, now_ms),
            Err(ValueError::NoKeyRing)
        ));
        assert!(
            codec.decode_meta(&layout::encode_meta(&meta), now_ms).is_err(),
            "plain metadata refused"
        );

        let other_key = sealed_codec();
        assert!(matches!(
            other_key.decode_field(7, &stored, now_ms),
            Err(ValueError::Unsealed)
        ));
    }
}
