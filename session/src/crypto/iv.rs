//! Fresh IVs without a system call per seal: AES-256 under a random key of this process,
//! applied to a counter (the IV construction of NIST SP 800-38A, Appendix C, which is also
//! the CTR_DRBG generator of SP 800-90A). Distinct counters give distinct IVs that nobody
//! without the key can predict; the key and the counter's start come from the OS once.
//!
//! A process that forks after sealing shares the counter with its child: the two would
//! draw the same IVs. Fork before the first seal, or exec.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

use aes::{
    Aes256,
    cipher::{BlockEncrypt, KeyInit},
};
use zeroize::Zeroizing;

use super::envelope::SealError;

/// The generator: the key, a random half-block that tells this process's counter blocks
/// apart from any other's, and the counter.
struct IvSource {
    cipher: Aes256,
    prefix: [u8; 8],
    counter: AtomicU64,
}

static SOURCE: OnceLock<IvSource> = OnceLock::new();

impl IvSource {
    fn seeded() -> Result<Self, SealError> {
        let mut seed = Zeroizing::new([0u8; 48]);
        getrandom::fill(seed.as_mut_slice()).map_err(|_| SealError::Rng)?;
        let key: &[u8; 32] = seed[..32].try_into().expect("32 bytes");
        let prefix = seed[32..40].try_into().expect("8 bytes");
        let start = u64::from_be_bytes(seed[40..48].try_into().expect("8 bytes"));
        Ok(Self {
            cipher: Aes256::new(key.into()),
            prefix,
            counter: AtomicU64::new(start),
        })
    }
}

/// A fresh, unpredictable 16-byte IV.
pub(crate) fn fresh_iv() -> Result<[u8; 16], SealError> {
    let source = match SOURCE.get() {
        Some(source) => source,
        None => {
            let seeded = IvSource::seeded()?;
            SOURCE.get_or_init(|| seeded)
        }
    };
    let count = source.counter.fetch_add(1, Ordering::Relaxed);
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(&source.prefix);
    block[8..].copy_from_slice(&count.to_be_bytes());
    source.cipher.encrypt_block((&mut block).into());
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ivs_differ_across_calls_and_threads() {
        let draw = || (0..1000).map(|_| fresh_iv().unwrap()).collect::<Vec<_>>();
        let other = std::thread::spawn(draw);
        let mut seen: HashSet<[u8; 16]> = draw().into_iter().collect();
        for iv in other.join().unwrap() {
            assert!(seen.insert(iv), "an IV came twice");
        }
        assert_eq!(seen.len(), 2000);
    }
}
