//! Public-API tests for `session::crypto`: golden vector, tampering,
//! rotation, limits, secret validation and the PBKDF2 vectors.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use session::crypto::{
    KeyError, KeyId, KeyRing, OpenError, OpenLimits, Pbkdf2Params, Purpose, SealError, SealOptions, Secret,
    pbkdf2_sha256,
};

const NOW: u64 = 1_700_000_000;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Deterministic, valid 64-byte material; `seed` tells secrets apart.
fn material(seed: u8) -> Vec<u8> {
    (0u8..64).map(|i| i.wrapping_mul(7) ^ seed).collect()
}

fn ring(id: u8, seed: u8) -> KeyRing {
    KeyRing::new(KeyId(id), Secret::from_bytes(material(seed)).unwrap())
}

fn cookie(name: &str) -> Purpose {
    Purpose::cookie(name).unwrap()
}

fn opts() -> SealOptions {
    SealOptions::default()
}

fn limits() -> OpenLimits {
    OpenLimits::default()
}

fn decode(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token).unwrap()
}

fn encode(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

fn sample_token() -> (KeyRing, Purpose, String) {
    let r = ring(1, 0);
    let p = cookie("a");
    let t = r.seal(&p, b"user=42; role=admin", &opts()).unwrap();
    (r, p, t)
}

// ---------------------------------------------------------------- golden

const GOLDEN: &str = "AQEAAAAAZVPxAAAQERITFBUWFxgZGhscHR4fW32AQf360LMYF3O97e825E8xenGM5rPSo_Er3qoAVI3bkaeTnF7UOfPCExpNJlXu0WvrOSWNgDiFg7Gjn2VFfA";
const GOLDEN_PAYLOAD: &[u8] = br#"{"user_id":42,"role":"admin"}"#;

fn golden_ring() -> KeyRing {
    KeyRing::new(KeyId(1), Secret::from_bytes((0u8..64).collect::<Vec<_>>()).unwrap())
}

fn golden_iv() -> [u8; 16] {
    core::array::from_fn(|i| 0x10 + i as u8)
}

/// Any change to derivation, layout, MAC input or encoding breaks this.
#[test]
fn golden_vector() {
    let sealed = golden_ring()
        .seal_with_iv(
            &cookie("session"),
            GOLDEN_PAYLOAD,
            &SealOptions {
                expires_at: 1_700_000_000,
                ..opts()
            },
            golden_iv(),
        )
        .unwrap();
    assert_eq!(sealed, GOLDEN);

    let opened = golden_ring()
        .open(&cookie("session"), GOLDEN, 1_699_999_999, &limits())
        .unwrap();
    assert_eq!(opened.plaintext, GOLDEN_PAYLOAD);
    assert_eq!(opened.key_id, KeyId(1));
    assert_eq!(opened.expires_at, 1_700_000_000);
    assert!(!opened.sealed_with_old_key);
}

#[test]
fn golden_layout() {
    let raw = decode(GOLDEN);
    assert_eq!(raw.len(), 27 + 32 + 32);
    assert_eq!(raw[0], 1, "version");
    assert_eq!(raw[1], 1, "key id");
    assert_eq!(&raw[2..10], &1_700_000_000u64.to_be_bytes(), "expiry");
    assert_eq!(raw[10], 0, "flags");
    assert_eq!(&raw[11..27], &golden_iv(), "IV");
}

// ---------------------------------------------------------------- basics

#[test]
fn round_trip() {
    let r = ring(3, 1);
    let p = cookie("sid");
    for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 1000, 64 * 1024] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let t = r.seal(&p, &pt, &opts()).unwrap();
        assert!(!t.contains(['=', '+', '/']));
        let o = r
            .open(
                &p,
                &t,
                NOW,
                &OpenLimits {
                    max_input_len: usize::MAX,
                    ..limits()
                },
            )
            .unwrap();
        assert_eq!(o.plaintext, pt);
        assert_eq!(o.key_id, KeyId(3));
        assert_eq!(o.expires_at, 0);
    }
}

#[test]
fn fresh_iv_every_seal() {
    let r = ring(1, 0);
    let p = cookie("a");
    let a = r.seal(&p, b"same", &opts()).unwrap();
    let b = r.seal(&p, b"same", &opts()).unwrap();
    assert_ne!(a, b);
    assert_ne!(decode(&a)[11..27], decode(&b)[11..27]);
}

#[test]
fn plaintext_over_seal_limit_refused() {
    let r = ring(1, 0);
    let err = r
        .seal(
            &cookie("a"),
            &[0u8; 65],
            &SealOptions {
                max_plaintext_len: 64,
                ..opts()
            },
        )
        .unwrap_err();
    assert!(matches!(err, SealError::PlaintextTooLarge { len: 65, max: 64 }));
    assert!(err.to_string().contains("max_plaintext_len"));
}

#[test]
fn open_error_is_opaque() {
    assert_eq!(OpenError.to_string(), "invalid, tampered or expired envelope");
    let (r, p, _) = sample_token();
    assert_eq!(r.open(&p, "", NOW, &limits()).unwrap_err(), OpenError);
}

#[test]
fn debug_output_redacts() {
    let s = Secret::from_bytes(b"Zq8#vL2!pR5@tW9$xY3%bN6^cM1&dK4*".to_vec()).unwrap();
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    let r = KeyRing::new(KeyId(4), s);
    let dbg = format!("{r:?}");
    assert_eq!(dbg, "KeyRing { ids: [KeyId(4)], .. }");

    let (r, p, t) = sample_token();
    let o = r.open(&p, &t, NOW, &limits()).unwrap();
    let dbg = format!("{o:?}");
    assert!(dbg.contains("plaintext_len: 19"), "{dbg}");
    assert!(!dbg.contains("admin"));
}

#[test]
fn key_ring_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<KeyRing>();
    let r = ring(1, 0);
    let t = r.seal(&cookie("a"), b"x", &opts()).unwrap();
    let r2 = r.clone();
    std::thread::spawn(move || r2.open(&cookie("a"), &t, NOW, &limits()).unwrap())
        .join()
        .unwrap();
}

// ---------------------------------------------------------------- tampering

#[test]
fn every_bit_flip_rejected() {
    let (r, p, t) = sample_token();
    let raw = decode(&t);
    for i in 0..raw.len() * 8 {
        let mut m = raw.clone();
        m[i / 8] ^= 1 << (i % 8);
        assert!(
            r.open(&p, &encode(&m), NOW, &limits()).is_err(),
            "bit {i} flip accepted"
        );
    }
}

#[test]
fn every_truncation_rejected() {
    let (r, p, t) = sample_token();
    for n in 0..t.len() {
        assert!(r.open(&p, &t[..n], NOW, &limits()).is_err(), "prefix {n}");
        assert!(r.open(&p, &t[t.len() - n..], NOW, &limits()).is_err(), "suffix {n}");
    }
    let raw = decode(&t);
    for n in 0..raw.len() {
        assert!(r.open(&p, &encode(&raw[..n]), NOW, &limits()).is_err());
    }
}

#[test]
fn appended_bytes_rejected() {
    let (r, p, t) = sample_token();
    let mut raw = decode(&t);
    raw.extend_from_slice(&[0u8; 16]);
    assert!(r.open(&p, &encode(&raw), NOW, &limits()).is_err());
}

#[test]
fn purpose_separation() {
    let r = ring(1, 0);
    let t = r.seal(&cookie("a"), b"hello", &opts()).unwrap();
    assert!(r.open(&cookie("a"), &t, NOW, &limits()).is_ok());
    assert!(r.open(&cookie("b"), &t, NOW, &limits()).is_err());
    assert!(r.open(&Purpose::store("redis").unwrap(), &t, NOW, &limits()).is_err());
    assert!(r.open(&Purpose::new("cookie:a ").unwrap(), &t, NOW, &limits()).is_err());

    let s = r.seal(&Purpose::store("redis").unwrap(), b"hello", &opts()).unwrap();
    assert!(r.open(&cookie("redis"), &s, NOW, &limits()).is_err());
}

#[test]
fn purpose_labels() {
    assert_eq!(cookie("sid").as_str(), "cookie:sid");
    assert_eq!(Purpose::store("redis").unwrap().to_string(), "store:redis");
    assert!(Purpose::new("").is_err());
    assert!(Purpose::new("x".repeat(255)).is_ok());
    let err = Purpose::new("x".repeat(256)).unwrap_err();
    assert_eq!(err.len, 256);
    assert!(Purpose::cookie(&"n".repeat(249)).is_err());
}

#[test]
fn wrong_key_rejected() {
    let t = ring(1, 0).seal(&cookie("a"), b"hello", &opts()).unwrap();
    // Same id, different secret.
    assert!(ring(1, 9).open(&cookie("a"), &t, NOW, &limits()).is_err());
}

#[test]
fn unknown_key_id_rejected() {
    let t = ring(1, 0).seal(&cookie("a"), b"hello", &opts()).unwrap();
    assert!(ring(2, 0).open(&cookie("a"), &t, NOW, &limits()).is_err());
}

#[test]
fn unknown_version_rejected() {
    let (r, p, t) = sample_token();
    let mut raw = decode(&t);
    for v in [0u8, 2, 0xff] {
        raw[0] = v;
        assert!(r.open(&p, &encode(&raw), NOW, &limits()).is_err());
    }
}

#[test]
fn empty_and_garbage_rejected() {
    let (r, p, _) = sample_token();
    for input in ["", "A", "====", "not a token", "\u{0}", "AAAA\n", " "] {
        assert!(r.open(&p, input, NOW, &limits()).is_err(), "{input:?}");
    }
    let zeros = encode(&[0u8; 91]);
    assert!(r.open(&p, &zeros, NOW, &limits()).is_err());
}

// ---------------------------------------------------------------- base64

/// The golden token's last character carries 4 unused bits.
#[test]
fn non_canonical_trailing_bits_rejected() {
    let r = golden_ring();
    let p = cookie("session");
    assert_eq!(GOLDEN.len() % 4, 2);
    assert!(GOLDEN.ends_with('A'));
    let variant = format!("{}B", &GOLDEN[..GOLDEN.len() - 1]);
    // A lenient decoder sees the same bytes, so only strictness rejects it.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    assert_eq!(lenient.decode(&variant).unwrap(), decode(GOLDEN));
    assert!(r.open(&p, &variant, 0, &limits()).is_err());
}

#[test]
fn padding_rejected() {
    let r = golden_ring();
    let p = cookie("session");
    let padded = URL_SAFE.encode(decode(GOLDEN));
    assert!(padded.ends_with("=="));
    assert!(r.open(&p, &padded, 0, &limits()).is_err());
    assert!(r.open(&p, &format!("{GOLDEN}="), 0, &limits()).is_err());
}

#[test]
fn standard_alphabet_rejected() {
    let r = golden_ring();
    let p = cookie("session");
    assert!(GOLDEN.contains('_'));
    let std_alpha = STANDARD.encode(decode(GOLDEN));
    let std_alpha = std_alpha.trim_end_matches('=');
    assert!(std_alpha.contains('/'));
    assert!(r.open(&p, std_alpha, 0, &limits()).is_err());
}

#[test]
fn whitespace_rejected() {
    let r = golden_ring();
    let p = cookie("session");
    for variant in [
        format!(" {GOLDEN}"),
        format!("{GOLDEN}\n"),
        format!("{}\n{}", &GOLDEN[..60], &GOLDEN[60..]),
    ] {
        assert!(r.open(&p, &variant, 0, &limits()).is_err());
    }
}

#[test]
fn oversized_input_rejected() {
    let r = ring(1, 0);
    let p = cookie("a");
    let t = r.seal(&p, &[5u8; 5000], &opts()).unwrap();
    assert!(t.len() > 6000);
    let tight = OpenLimits {
        max_input_len: t.len() - 1,
        ..limits()
    };
    assert!(r.open(&p, &t, NOW, &tight).is_err());
    let exact = OpenLimits {
        max_input_len: t.len(),
        ..limits()
    };
    assert!(r.open(&p, &t, NOW, &exact).is_ok());
    assert!(r.open(&p, &"A".repeat(1 << 20), NOW, &limits()).is_err());
}

// ---------------------------------------------------------------- expiry

#[test]
fn expiry() {
    let r = ring(1, 0);
    let p = cookie("a");
    let t = r
        .seal(
            &p,
            b"x",
            &SealOptions {
                expires_at: NOW,
                ..opts()
            },
        )
        .unwrap();
    assert_eq!(r.open(&p, &t, NOW - 1, &limits()).unwrap().expires_at, NOW);
    assert!(r.open(&p, &t, NOW, &limits()).is_err());
    assert!(r.open(&p, &t, NOW + 3600, &limits()).is_err());

    // Moving the expiry forward breaks the tag.
    let mut raw = decode(&t);
    raw[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(r.open(&p, &encode(&raw), NOW, &limits()).is_err());

    let forever = r.seal(&p, b"x", &opts()).unwrap();
    assert!(r.open(&p, &forever, u64::MAX, &limits()).is_ok());
}

// ---------------------------------------------------------------- rotation

#[test]
fn rotation() {
    let old = ring(1, 0);
    let p = cookie("a");
    let old_token = old.seal(&p, b"hello", &opts()).unwrap();

    let rotated = KeyRing::new(KeyId(2), Secret::from_bytes(material(50)).unwrap())
        .with_previous(KeyId(1), Secret::from_bytes(material(0)).unwrap())
        .unwrap();
    assert_eq!(rotated.current(), KeyId(2));
    assert_eq!(rotated.ids().collect::<Vec<_>>(), [KeyId(2), KeyId(1)]);
    assert!(rotated.contains(KeyId(1)));

    let o = rotated.open(&p, &old_token, NOW, &limits()).unwrap();
    assert_eq!(o.plaintext, b"hello");
    assert_eq!(o.key_id, KeyId(1));
    assert!(o.sealed_with_old_key);

    let new_token = rotated.seal(&p, &o.plaintext, &opts()).unwrap();
    assert_eq!(decode(&new_token)[1], 2);
    let o = rotated.open(&p, &new_token, NOW, &limits()).unwrap();
    assert_eq!(o.key_id, KeyId(2));
    assert!(!o.sealed_with_old_key);
    // The old ring cannot read values sealed after rotation.
    assert!(old.open(&p, &new_token, NOW, &limits()).is_err());
}

#[test]
fn duplicate_key_id_refused() {
    let err = ring(1, 0)
        .with_previous(KeyId(1), Secret::from_bytes(material(3)).unwrap())
        .unwrap_err();
    assert_eq!(err, KeyError::DuplicateKeyId(KeyId(1)));
    assert!(err.to_string().contains("own id"));
    let err = ring(1, 0)
        .with_previous(KeyId(2), Secret::from_bytes(material(3)).unwrap())
        .unwrap()
        .with_previous(KeyId(2), Secret::from_bytes(material(4)).unwrap())
        .unwrap_err();
    assert_eq!(err, KeyError::DuplicateKeyId(KeyId(2)));
}

#[test]
fn key_id_display() {
    assert_eq!(KeyId(42).to_string(), "42");
    assert_eq!(KeyId::from(7), KeyId(7));
}

// ---------------------------------------------------------------- compression

#[test]
fn compressed_round_trip() {
    let r = ring(1, 0);
    let p = cookie("a");
    let pt = b"{\"cart\":[\"apple\",\"apple\",\"apple\"]}".repeat(60);
    let with = SealOptions {
        compress_above: Some(256),
        ..opts()
    };
    let packed = r.seal(&p, &pt, &with).unwrap();
    let plain = r.seal(&p, &pt, &opts()).unwrap();
    assert_eq!(decode(&packed)[10], 0b1, "gzip flag");
    assert_eq!(decode(&plain)[10], 0);
    assert!(packed.len() * 4 < plain.len());
    assert_eq!(r.open(&p, &packed, NOW, &limits()).unwrap().plaintext, pt);
}

#[test]
fn compression_skipped_when_small_or_useless() {
    let r = ring(1, 0);
    let p = cookie("a");
    let with = SealOptions {
        compress_above: Some(256),
        ..opts()
    };
    // At the threshold: not compressed.
    let t = r.seal(&p, &[b'a'; 256], &with).unwrap();
    assert_eq!(decode(&t)[10], 0);
    // Incompressible: gzip would grow it, so it is stored plain.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..2000)
        .map(|_| {
            // xorshift64: no byte patterns for deflate to find.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let t = r.seal(&p, &noise, &with).unwrap();
    assert_eq!(decode(&t)[10], 0);
    assert_eq!(r.open(&p, &t, NOW, &limits()).unwrap().plaintext, noise);
}

/// A validly sealed, small token that inflates past the open limit.
#[test]
fn decompression_bomb_rejected() {
    let r = ring(1, 0);
    let p = cookie("a");
    let bomb = SealOptions {
        compress_above: Some(0),
        max_plaintext_len: 8 << 20,
        ..opts()
    };
    let t = r.seal(&p, &vec![0u8; 4 << 20], &bomb).unwrap();
    assert!(t.len() < DEFAULT_INPUT, "bomb is {} chars", t.len());
    assert_eq!(decode(&t)[10], 1);
    assert!(r.open(&p, &t, NOW, &limits()).is_err());
    // Just over and exactly at the bound.
    let t = r.seal(&p, &vec![0u8; 64 * 1024 + 1], &bomb).unwrap();
    assert!(r.open(&p, &t, NOW, &limits()).is_err());
    let t = r.seal(&p, &vec![0u8; 64 * 1024], &bomb).unwrap();
    assert!(r.open(&p, &t, NOW, &limits()).is_ok());
}

const DEFAULT_INPUT: usize = 8192;

#[test]
fn defaults() {
    assert_eq!(limits().max_input_len, DEFAULT_INPUT);
    assert_eq!(limits().max_plaintext_len, 64 * 1024);
    assert_eq!(opts().expires_at, 0);
    assert_eq!(opts().compress_above, None);
}

// ---------------------------------------------------------------- secrets

const FIX: &str = "openssl rand -base64 48";

#[test]
fn secret_validation() {
    let cases: Vec<(Vec<u8>, KeyError)> = vec![
        (vec![], KeyError::Empty),
        (material(0)[..31].to_vec(), KeyError::TooShort { len: 31 }),
        (vec![0u8; 64], KeyError::LowEntropy),
        (vec![b'a'; 128], KeyError::LowEntropy),
        (b"abcdefgabcdefgabcdefgabcdefgabcdefg".to_vec(), KeyError::LowEntropy),
        (b"my-SECRET-0123456789-abcdefghijklmn".to_vec(), KeyError::KnownDefault),
        (b"ChangeMe!ChangeMe!0123456789abcdefg".to_vec(), KeyError::KnownDefault),
        (b"your-secret-key-goes-here-0123456789".to_vec(), KeyError::KnownDefault),
        (
            b"DEFAULT_session_key_1234567890_abcdef".to_vec(),
            KeyError::KnownDefault,
        ),
        (b"Password123456789012345678901234567".to_vec(), KeyError::KnownDefault),
    ];
    for (input, want) in cases {
        let got = Secret::from_bytes(input.clone()).unwrap_err();
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&input));
        assert!(got.to_string().contains(FIX), "{got}");
    }
    // Boundaries that pass.
    assert!(Secret::from_bytes(material(0)[..32].to_vec()).is_ok());
    assert!(Secret::from_bytes(b"abcdefghabcdefghabcdefghabcdefgh".to_vec()).is_ok());
    // Long passphrases may contain common words.
    let long = b"correct horse battery staple, a secret passphrase long enough ok";
    assert_eq!(long.len(), 64);
    assert!(Secret::from_bytes(&long[..]).is_ok());
    assert!(Secret::from_bytes(&long[..63]).is_err());
}

#[test]
fn secret_from_base64() {
    let raw = material(0);
    let s = STANDARD.encode(&raw);
    let u = URL_SAFE_NO_PAD.encode(&raw);
    assert_ne!(s.trim_end_matches('='), u, "sample must differ between alphabets");
    for text in [
        s.clone(),
        u.clone(),
        s.trim_end_matches('=').to_string(),
        format!("{}\n{}\n", &s[..40], &s[40..]),
    ] {
        let a = KeyRing::new(KeyId(1), Secret::from_base64(&text).unwrap());
        let b = KeyRing::new(KeyId(1), Secret::from_bytes(raw.clone()).unwrap());
        let t = a.seal(&cookie("a"), b"x", &opts()).unwrap();
        assert!(b.open(&cookie("a"), &t, NOW, &limits()).is_ok(), "{text}");
    }
    assert_eq!(Secret::from_base64("").unwrap_err(), KeyError::Empty);
    let err = Secret::from_base64("not base64 at all!").unwrap_err();
    assert_eq!(err, KeyError::InvalidBase64);
    assert!(err.to_string().contains(FIX));
    assert_eq!(
        Secret::from_base64(&STANDARD.encode([1u8; 20])).unwrap_err(),
        KeyError::TooShort { len: 20 }
    );
}

#[test]
fn secret_generate() {
    let a = KeyRing::new(KeyId(1), Secret::generate().unwrap());
    let b = KeyRing::new(KeyId(1), Secret::generate().unwrap());
    let t = a.seal(&cookie("a"), b"x", &opts()).unwrap();
    assert!(a.open(&cookie("a"), &t, NOW, &limits()).is_ok());
    assert!(b.open(&cookie("a"), &t, NOW, &limits()).is_err());
}

// ---------------------------------------------------------------- PBKDF2

#[test]
fn pbkdf2_params_validation() {
    let salt = [7u8; 16];
    assert_eq!(
        Pbkdf2Params::new(599_999, salt).unwrap_err(),
        KeyError::WeakPbkdf2 { iterations: 599_999 }
    );
    assert_eq!(
        Pbkdf2Params::new(600_000, [7u8; 15]).unwrap_err(),
        KeyError::ShortSalt { len: 15 }
    );
    let p = Pbkdf2Params::new(600_000, salt).unwrap();
    assert_eq!(p.iterations(), 600_000);
    assert_eq!(p.salt(), &salt);
    assert!(!format!("{p:?}").contains("7, 7"));
}

#[test]
fn secret_from_password() {
    let params = || Pbkdf2Params::insecure_for_tests(1000, b"0123456789abcdef".to_vec());
    assert_eq!(Secret::from_password("", params()).unwrap_err(), KeyError::Empty);
    for pw in ["password", "changeme", "MySecret2024", "default"] {
        assert_eq!(
            Secret::from_password(pw, params()).unwrap_err(),
            KeyError::KnownDefault,
            "{pw}"
        );
    }
    assert_eq!(
        Secret::from_password("tr0ub4dor&3", params()).unwrap_err(),
        KeyError::ShortPassword { len: 11 },
        "at least 12 characters"
    );
    // Same password and parameters give the same key, which equals the raw
    // PBKDF2 output.
    let mut expected = [0u8; 32];
    pbkdf2_sha256(b"tr0ub4dor&3-horse", b"0123456789abcdef", 1000, &mut expected);
    let a = KeyRing::new(KeyId(1), Secret::from_password("tr0ub4dor&3-horse", params()).unwrap());
    let b = KeyRing::new(KeyId(1), Secret::from_bytes(expected.to_vec()).unwrap());
    let t = a.seal(&cookie("a"), b"x", &opts()).unwrap();
    assert!(b.open(&cookie("a"), &t, NOW, &limits()).is_ok());
    let c = KeyRing::new(KeyId(1), Secret::from_password("tr0ub4dor&4-horse", params()).unwrap());
    assert!(c.open(&cookie("a"), &t, NOW, &limits()).is_err());
}

fn pbkdf2_hex(pw: &[u8], salt: &[u8], iterations: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    pbkdf2_sha256(pw, salt, iterations, &mut out);
    out
}

#[test]
fn pbkdf2_rfc7914_passwd_salt_1() {
    assert_eq!(
        pbkdf2_hex(b"passwd", b"salt", 1, 64),
        hex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
    );
}

#[test]
fn pbkdf2_rfc7914_password_nacl_80000() {
    assert_eq!(
        pbkdf2_hex(b"Password", b"NaCl", 80_000, 64),
        hex("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
             a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d")
    );
}

#[test]
fn pbkdf2_password_salt_1_and_4096() {
    assert_eq!(
        pbkdf2_hex(b"password", b"salt", 1, 32),
        hex("120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b")
    );
    assert_eq!(
        pbkdf2_hex(b"password", b"salt", 4096, 32),
        hex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a")
    );
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn open_never_panics_on_arbitrary_text(s in any::<String>()) {
        let (r, p, _) = sample_token();
        prop_assert!(r.open(&p, &s, NOW, &limits()).is_err());
    }

    #[test]
    fn open_never_panics_on_base64url_text(s in "[A-Za-z0-9_-]{0,400}") {
        let (r, p, _) = sample_token();
        prop_assert!(r.open(&p, &s, NOW, &limits()).is_err());
    }

    #[test]
    fn any_byte_mutation_rejected(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        extra in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let (r, p, t) = sample_token();
        let original = decode(&t);
        let mut m = original.clone();
        for (at, x) in &edits {
            let i = at.index(m.len());
            m[i] ^= x;
        }
        if let Some(c) = cut {
            m.truncate(c.index(m.len()));
        }
        m.extend_from_slice(&extra);
        let result = r.open(&p, &encode(&m), NOW, &limits());
        if m == original {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err());
        }
    }
}
