//! gzip helpers for the envelope's optional payload compression.
//!
//! Decompression is always bounded: the envelope authenticates its payload
//! before this runs, but a holder of a valid key (or a bug upstream) must
//! still not be able to make a small token expand without limit.

use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// Why bounded decompression failed.
#[derive(Debug)]
pub(crate) enum DecompressError {
    /// The output would exceed the caller's bound.
    TooLarge,
    /// Not a well-formed gzip stream (including a bad CRC or length trailer).
    Corrupt,
}

/// gzip-compresses `data` at the default level.
pub(crate) fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), Compression::default());
    enc.write_all(data)?;
    enc.finish()
}

/// Decompresses one gzip member, producing at most `max` bytes.
pub(crate) fn gunzip_bounded(data: &[u8], max: usize) -> Result<Vec<u8>, DecompressError> {
    // One byte past the bound tells "exactly max" apart from "more than max"
    // without ever buffering the excess.
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    GzDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| DecompressError::Corrupt)?;
    if out.len() > max {
        return Err(DecompressError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabc".repeat(10);
        let packed = gzip(&data).unwrap();
        assert!(packed.len() < data.len());
        assert_eq!(gunzip_bounded(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn bound_is_exact() {
        let data = vec![0u8; 1000];
        let packed = gzip(&data).unwrap();
        assert_eq!(gunzip_bounded(&packed, 1000).unwrap().len(), 1000);
        assert!(matches!(gunzip_bounded(&packed, 999), Err(DecompressError::TooLarge)));
    }

    #[test]
    fn bomb_stops_at_bound() {
        // 16 MiB of zeros packs to a few KiB.
        let packed = gzip(&vec![0u8; 16 << 20]).unwrap();
        assert!(packed.len() < 64 << 10);
        assert!(matches!(
            gunzip_bounded(&packed, 64 << 10),
            Err(DecompressError::TooLarge)
        ));
    }

    #[test]
    fn corrupt_input() {
        assert!(matches!(
            gunzip_bounded(b"not gzip at all", 100),
            Err(DecompressError::Corrupt)
        ));
        let mut packed = gzip(b"hello hello hello").unwrap();
        let n = packed.len();
        packed[n - 5] ^= 1; // CRC trailer
        assert!(matches!(gunzip_bounded(&packed, 100), Err(DecompressError::Corrupt)));
    }
}
