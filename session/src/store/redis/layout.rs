//! Key names, hash field names and the metadata encoding of the Redis layout.

use crate::{id::StoreKey, index::IndexKey};

/// The hash field holding the whole session (see [`Whole`](super::record::Whole)).
pub(super) const WHOLE_FIELD: &[u8] = b"w";
/// The hash field holding the lifetime data, in hashes of earlier versions.
pub(super) const META_FIELD: &[u8] = b"m";
/// The hash field holding the expiry in decimal milliseconds, for the Lua scripts.
pub(super) const EXPIRY_FIELD: &[u8] = b"x";
/// The hash field holding the index value a session is a member under (`<64 hex>:<absolute
/// deadline ms>`), for the Lua scripts; only indexed sessions have it.
pub(super) const INDEX_FIELD: &[u8] = b"i";
/// A session key's TTL runs to the end of the step its expiry falls in (see
/// [`ttl_end_ms`]); the update script is given the same step.
pub(super) const TTL_STEP_MS: u64 = 60_000;
/// The hash field naming the key a cluster move copied a session from.
pub(super) const MOVED_FROM_FIELD: &[u8] = b"s";
/// The prefix of a session field's hash field name as earlier versions wrote it (`f:` and
/// the tag in 8 hex digits), still read (a field's own hash field or its packed copy hides it).
const LEGACY_FIELD_PREFIX: &[u8] = b"f:";

/// Builds the Redis key names of one store.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
    /// `{prefix}idx:`, what every index key name starts with.
    index_prefix: String,
    pattern: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        let mut pattern = String::with_capacity(prefix.len() + 67);
        for c in prefix.chars() {
            // SCAN MATCH is a glob: a prefix with glob characters must match literally.
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('{');
        pattern.extend(std::iter::repeat_n('?', 64));
        pattern.push('}');
        Self {
            prefix: prefix.to_owned(),
            index_prefix: format!("{prefix}idx:"),
            pattern,
        }
    }

    /// `{prefix}{<64 hex digits>}`: the digest is the hash tag, so Redis Cluster puts every
    /// key of one session in one slot.
    pub(super) fn key(&self, key: &StoreKey) -> String {
        let mut name = String::with_capacity(self.prefix.len() + 66);
        name.push_str(&self.prefix);
        name.push('{');
        key.write_hex(&mut name);
        name.push('}');
        name
    }

    /// `{prefix}{<64 hex digits>}!<writer>`: the key a write of `key` by the store `writer`
    /// sets and deletes in the same script (in `clear`, the same pipeline), so Redis's
    /// broadcast invalidation of `key` also names who wrote it.
    pub(super) fn signature(&self, key: &StoreKey, writer: &str) -> String {
        let mut name = self.key(key);
        name.push('!');
        name.push_str(writer);
        name
    }

    /// `{prefix}{<64 hex digits>}!moved`: set for a minute when a Redis Cluster regenerate
    /// deletes its source, naming the target, so a retried delete knows it already ran.
    /// Never matches a scan.
    pub(super) fn moved_marker(&self, key: &StoreKey) -> String {
        self.signature(key, "moved")
    }

    /// `{prefix}idx:{<64 hex digits>}`: the sorted set of the key names of one index's
    /// sessions. Its own hash tag: on a cluster it lives apart from the sessions, and never
    /// matches a session key's pattern.
    pub(super) fn index(&self, index: &IndexKey) -> String {
        format!("{}{{{}}}", self.index_prefix, index.to_hex())
    }

    /// `{prefix}gen:{<64 hex digits>}`: the revocation generation of an index (cookie
    /// sessions), an integer. Never matches a session key's pattern.
    pub(super) fn generation(&self, index: &IndexKey) -> String {
        format!("{}gen:{{{}}}", self.prefix, index.to_hex())
    }

    /// What every index key name starts with, for the scripts to name one.
    pub(super) fn index_prefix(&self) -> &str {
        &self.index_prefix
    }

    /// The prefix of every key name.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The SCAN MATCH pattern of this store's keys.
    pub(super) fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The digest of a key name from SCAN, if it is one of this store's.
    pub(super) fn parse(&self, name: &[u8]) -> Option<StoreKey> {
        let hex = name
            .strip_prefix(self.prefix.as_bytes())?
            .strip_prefix(b"{")?
            .strip_suffix(b"}")?;
        StoreKey::from_hex_bytes(hex)
    }
}

/// When a session key whose expiry is `expires_ms` is to leave Redis (before the
/// expired-session retention): the end of the [`TTL_STEP_MS`] step the expiry falls in. All
/// expiries in one step share it, so an update that moves the expiry within its step keeps
/// the TTL it has (the update script skips its `PEXPIRE`), and the key outlives the session
/// by less than one step.
pub(super) fn ttl_end_ms(expires_ms: u64) -> u64 {
    (expires_ms / TTL_STEP_MS + 1).saturating_mul(TTL_STEP_MS)
}

/// Whether `name` holds session fields packed in the record format, in hashes of earlier
/// versions: `d`, then `d1`, `d2` … (never four bytes long, so never a field tag).
pub(super) fn is_packed_field(name: &[u8]) -> bool {
    match name {
        [b'd', digits @ ..] => digits.len() <= 2 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// The tag of a session field's own hash field name in hashes of earlier versions (its tag's
/// 4 bytes, big-endian; or, older still, `f:` and the tag in 8 hex digits), and whether the
/// name is the older form; `None` for other fields.
pub(super) fn field_tag(name: &[u8]) -> Option<(u32, bool)> {
    if let Ok(bytes) = <[u8; 4]>::try_from(name) {
        return Some((u32::from_be_bytes(bytes), false));
    }
    let hex = name.strip_prefix(LEGACY_FIELD_PREFIX)?;
    if hex.len() != 8 {
        return None;
    }
    let tag = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    Some((tag, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_outlives_its_expiry_by_less_than_a_step_and_expiries_in_one_step_share_it() {
        let step = TTL_STEP_MS;
        for expiry in [0, 1, step - 1, step, 5 * step + 123, u64::MAX / 2] {
            let end = ttl_end_ms(expiry);
            assert!(end > expiry && end - expiry <= step, "{expiry} → {end}");
            assert_eq!(end % step, 0);
        }
        assert_eq!(ttl_end_ms(7 * step), ttl_end_ms(8 * step - 1));
        assert_eq!(ttl_end_ms(u64::MAX), u64::MAX, "saturates, no overflow");
    }

    #[test]
    fn keys_carry_the_digest_as_hash_tag_and_parse_back() {
        let key = StoreKey::from_bytes([0xab; 32]);
        let keys = Keys::new("app*:");
        let name = keys.key(&key);
        assert_eq!(name, format!("app*:{{{}}}", "ab".repeat(32)));
        assert_eq!(keys.parse(name.as_bytes()), Some(key));
        assert_eq!(keys.parse(b"app*:{nothex}"), None);
        assert_eq!(keys.parse(b"other:{ab}"), None);
        assert!(keys.pattern().starts_with("app\\*:{?"));
        assert!(keys.pattern().ends_with("?}"));
    }

    #[test]
    fn field_names_of_earlier_versions_are_told_apart() {
        assert_eq!(field_tag(&[0xde, 0xad, 0xbe, 0xef]), Some((0xdead_beef, false)));
        assert_eq!(field_tag(b"f:deadbeef"), Some((0xdead_beef, true)));
        assert_eq!(field_tag(b"f:dead"), None);
        for name in [WHOLE_FIELD, META_FIELD, EXPIRY_FIELD, INDEX_FIELD, MOVED_FROM_FIELD] {
            assert_eq!(field_tag(name), None);
            assert!(!is_packed_field(name));
        }
        for name in [&b"d"[..], b"d1", b"d42", b"d99"] {
            assert!(is_packed_field(name), "{name:?}");
            assert_eq!(field_tag(name), None);
        }
        assert!(!is_packed_field(b"dx"));
        assert!(!is_packed_field(b"d100"));
    }
}
