//! How one session field's bytes are stored in its hash field: a marker byte, then the
//! value as is, gzip-compressed, or sealed.

use std::io::{Read as _, Write as _};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};

/// The value follows as is.
const PLAIN: u8 = 0;
/// The value follows gzip-compressed.
const GZIP: u8 = 1;

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
}

/// Encodes and decodes stored values.
#[derive(Debug, Clone, Default)]
pub(super) struct ValueCodec {
    /// Values longer than this are compressed.
    pub(super) compress_above: Option<usize>,
}

impl ValueCodec {
    pub(super) fn encode(&self, value: &[u8]) -> Vec<u8> {
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

    pub(super) fn decode(&self, stored: &[u8]) -> Result<Vec<u8>, ValueError> {
        let (&marker, body) = stored.split_first().ok_or(ValueError::Empty)?;
        match marker {
            PLAIN => Ok(body.to_vec()),
            GZIP => gunzip(body, MAX_VALUE_LEN),
            other => Err(ValueError::UnknownMarker(other)),
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
        };
        let small = b"short".to_vec();
        assert_eq!(codec.encode(&small)[0], PLAIN);
        let large = b"abc".repeat(100);
        let stored = codec.encode(&large);
        assert_eq!(stored[0], GZIP);
        assert!(stored.len() < large.len());
        assert_eq!(codec.decode(&stored).unwrap(), large);
        assert_eq!(codec.decode(&codec.encode(&small)).unwrap(), small);
    }

    #[test]
    fn incompressible_values_stay_plain() {
        let codec = ValueCodec {
            compress_above: Some(0),
        };
        let mut noise = [0u8; 200];
        getrandom::fill(&mut noise).unwrap();
        assert_eq!(codec.encode(&noise)[0], PLAIN);
    }

    #[test]
    fn corrupt_values_are_errors_and_bombs_are_bounded() {
        let codec = ValueCodec::default();
        assert!(matches!(codec.decode(b""), Err(ValueError::Empty)));
        assert!(matches!(codec.decode(&[9, 1]), Err(ValueError::UnknownMarker(9))));
        assert!(matches!(codec.decode(&[GZIP, 1, 2, 3]), Err(ValueError::Gzip(_))));
        let bomb = gzip(&[0u8; 4097]).unwrap();
        assert!(matches!(gunzip(&bomb[1..], 4096), Err(ValueError::TooLarge)));
        assert_eq!(gunzip(&bomb[1..], 4097).unwrap().len(), 4097);
    }
}
