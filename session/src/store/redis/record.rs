//! A [`Record`] as the hash fields that write it, and a hash (or its whole value) read back
//! as a record with its [`Revision`].

use super::{
    Inner,
    layout::{self, EXPIRY_FIELD, INDEX_FIELD, META_FIELD, WHOLE_FIELD},
};
use crate::{
    Error,
    codec::{self, FieldRecord, Fields},
    id::StoreKey,
    session::SessionMeta,
    store::{Record, Revision, store_error},
};

/// The hash field `i` of an indexed session: the index digest and the absolute deadline.
pub(super) fn index_value(meta: &SessionMeta) -> Option<String> {
    let index = meta.index?;
    Some(format!("{}:{}", index.to_hex(), meta.absolute_deadline_ms))
}

/// A session's whole value, the hash field `w`, which is also what the store's
/// [`Revision`]s hold:
///
/// ```text
/// revision  8 bytes, little-endian: 1 when created, one more at every write; 0 marks a
///           copy frozen by a cluster move (and, in a Revision, a hash of an earlier
///           version, which has no `w`)
/// meta len  varint
/// meta      the metadata (sealed with encryption at rest)
/// fields    the fields in the record format, each value in its stored form
/// ```
///
/// A write compares the revision (the first 8 bytes, which the scripts read without
/// parsing the rest) and writes the whole value, so a load is one `HGET` of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Whole<'a> {
    pub(super) revision: u64,
    pub(super) meta: &'a [u8],
    pub(super) fields: &'a [u8],
}

const REVISION_LEN: usize = 8;

impl<'a> Whole<'a> {
    /// Reads a whole value; `None` when it is too short or its meta length overruns it.
    pub(super) fn parse(bytes: &'a [u8]) -> Option<Self> {
        let (revision, rest) = bytes.split_first_chunk::<REVISION_LEN>()?;
        let (meta_len, used) = codec::read_varint(rest)?;
        let (meta, fields) = rest[used..].split_at_checked(meta_len)?;
        Some(Self {
            revision: u64::from_le_bytes(*revision),
            meta,
            fields,
        })
    }

    /// The bytes of this value.
    pub(super) fn to_bytes(self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(REVISION_LEN + codec::varint_len(self.meta.len()) + self.meta.len() + self.fields.len());
        out.extend_from_slice(&self.revision.to_le_bytes());
        codec::write_varint(&mut out, self.meta.len());
        out.extend_from_slice(self.meta);
        out.extend_from_slice(self.fields);
        out
    }

    /// What a write compares the stored `w` with: its 8 revision bytes, or nothing for a
    /// hash of an earlier version.
    pub(super) fn expected(&self) -> Expected {
        Expected {
            bytes: self.revision.to_le_bytes(),
            len: if self.revision == 0 { 0 } else { REVISION_LEN },
        }
    }

    /// The revision the next write of this value stores.
    pub(super) fn next_revision(&self) -> u64 {
        self.revision.wrapping_add(1).max(1)
    }
}

/// The revision bytes a write expects to find (see [`Whole::expected`]).
#[derive(Clone, Copy)]
pub(super) struct Expected {
    bytes: [u8; REVISION_LEN],
    len: usize,
}

impl Expected {
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl redis::ToRedisArgs for Expected {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        out.write_arg(self.as_bytes());
    }
}

/// The hash field/value pairs of a write, as one buffer and where each ends: a write's
/// arguments go into the command without an allocation each.
pub(super) struct WriteArgs {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl WriteArgs {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(6),
        }
    }

    fn push(&mut self, arg: &[u8]) {
        self.bytes.extend_from_slice(arg);
        self.ends.push(self.bytes.len());
    }

    /// Pushes `number` in decimal, as Lua's `tonumber` reads it.
    fn push_number(&mut self, number: u64) {
        use std::io::Write as _;
        let _ = write!(self.bytes, "{number}");
        self.ends.push(self.bytes.len());
    }

    /// The arguments in order.
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| &self.bytes[start..end])
    }
}

impl redis::ToRedisArgs for WriteArgs {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        self.iter().for_each(|arg| out.write_arg(arg));
    }
}

/// A whole write: the hash fields for the scripts and the value `w`, which is also the
/// revision the write leaves. As a command's arguments, the pairs as the scripts' `write`
/// reads them: `x`, `i` for an indexed session, `w`.
pub(super) struct WholeWrite {
    /// The session's lifetimes.
    pub(super) meta: SessionMeta,
    /// The pairs before `w`'s value.
    pairs: WriteArgs,
    /// The index value (`i`), also passed to the script on its own.
    pub(super) index: Option<String>,
    /// `w`: the revision the write leaves, for the next save.
    pub(super) revision: Revision,
}

impl WholeWrite {
    /// The bytes of its arguments, to make room for them in a command.
    pub(super) fn arg_bytes(&self) -> usize {
        self.pairs.bytes.len() + self.revision.as_bytes().len()
    }
}

impl redis::ToRedisArgs for WholeWrite {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        self.pairs.write_redis_args(out);
        out.write_arg(self.revision.as_bytes());
    }
}

/// The write of the whole value `whole` of the session `meta` describes.
fn write_of(meta: &SessionMeta, whole: Vec<u8>) -> WholeWrite {
    let index = index_value(meta);
    let mut pairs = WriteArgs::with_capacity(64 + index.as_ref().map_or(0, String::len));
    pairs.push(EXPIRY_FIELD);
    pairs.push_number(meta.expires_ms());
    if let Some(value) = &index {
        pairs.push(INDEX_FIELD);
        pairs.push(value.as_bytes());
    }
    pairs.push(WHOLE_FIELD);
    WholeWrite {
        meta: *meta,
        pairs,
        index,
        revision: Revision::new(whole),
    }
}

/// Room for this many fields beyond one per hash member, so that reading the packed fields
/// of an earlier version's hash seldom grows the list they are read into.
const PACKED_FIELDS_GUESS: usize = 24;

/// Where a field's value was read from in a hash of an earlier version; of several copies
/// of one field, the smallest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// Its own hash field: the last change.
    Own,
    /// The packed hash fields (`d`, `d1` …): as created.
    Packed,
    /// A hash field named as still earlier versions named it (`f:<8 hex digits>`).
    Legacy,
}

impl Inner {
    /// The stored form of `fields` of the session `meta` describes: each value encoded
    /// (compressed, sealed) as the store keeps it; a removal stays an empty value.
    pub(super) fn stored_fields(&self, meta: &SessionMeta, fields: &FieldRecord) -> Result<FieldRecord, Error> {
        let mut stored = FieldRecord::with_capacity(fields.as_bytes().len() + 16);
        for field in fields.iter() {
            let (tag, value) = field.map_err(store_error)?;
            match value {
                [] => stored.push_removal(tag),
                value => stored.push(
                    tag,
                    &self
                        .values
                        .encode_field(tag, value, &meta.lineage, meta.absolute_deadline_ms)
                        .map_err(store_error)?,
                ),
            }
        }
        Ok(stored)
    }

    /// The whole write of the session `meta` describes under `key`, its fields in stored
    /// form, as revision `revision`.
    pub(super) fn whole_write(
        &self,
        key: &StoreKey,
        meta: &SessionMeta,
        fields: &FieldRecord,
        revision: u64,
    ) -> Result<WholeWrite, Error> {
        let whole = Whole {
            revision,
            meta: &self.values.encode_meta(key, meta).map_err(store_error)?,
            fields: fields.as_bytes(),
        };
        Ok(write_of(meta, whole.to_bytes()))
    }

    /// The whole write of `update` applied to the session as `base` holds it (the fields
    /// it had when read; `changes` are `update`'s fields in stored form), at the revision
    /// after `base`'s. Stored fields cut short or garbled are dropped from the first bad
    /// one on, as the load that gave them their defaults did.
    pub(super) fn merged_write(
        &self,
        key: &StoreKey,
        base: &Whole<'_>,
        update: &SessionMeta,
        changes: &FieldRecord,
    ) -> Result<WholeWrite, Error> {
        let merged = Whole {
            revision: base.next_revision(),
            meta: &self.values.encode_meta(key, update).map_err(store_error)?,
            fields: base.fields,
        };
        let mut whole = merged.to_bytes();
        let at = whole.len() - base.fields.len();
        // The common save (a counter) changes values in place: then the value built above
        // is the write, with no second copy.
        if codec::overwrite_in_place(&mut whole[at..], changes).ok() != Some(true) {
            let readable: usize = Fields::over(base.fields)
                .map_while(Result::ok)
                .map(|(_, value)| codec::field_len(value.len()))
                .sum();
            whole.truncate(at + readable);
            let mut fields = FieldRecord::from_bytes(whole.split_off(at));
            fields.merge(changes).map_err(store_error)?;
            whole.extend_from_slice(fields.as_bytes());
        }
        Ok(write_of(update, whole))
    }

    /// The TTL in ms of the index key of `meta` (see `INDEX` in `scripts.rs`): it outlasts
    /// every member, as they all end by their absolute deadline.
    pub(super) fn index_ttl(&self, meta: &SessionMeta, now: u64) -> u64 {
        meta.absolute_deadline_ms
            .saturating_sub(now)
            .saturating_add(self.retention_ms)
            .max(1)
    }

    /// `now` and the TTL in ms (at least 1, as Redis refuses 0) of a record's key: until the
    /// end of its expiry's step ([`layout::ttl_end_ms`]), plus the expired-session retention.
    pub(super) fn now_and_ttl(&self, meta: &SessionMeta) -> (u64, u64) {
        let now = self.clock.now_ms();
        let ttl = layout::ttl_end_ms(meta.expires_ms()).saturating_sub(now).max(1);
        (now, ttl.saturating_add(self.retention_ms))
    }

    /// Reads a session's whole value `w`; `None` when unreadable, expired or frozen by a
    /// cluster move. The value becomes the record's revision.
    pub(super) fn decode_whole(&self, key: &StoreKey, stored: Vec<u8>, now: u64) -> Option<(Record, Revision)> {
        let Some(whole) = Whole::parse(&stored) else {
            tracing::warn!(key = %key.short(), "Redis session value is malformed; treated as no session");
            return None;
        };
        if whole.revision == 0 {
            return None;
        }
        let meta = self.read_meta(key, Some(whole.meta), now)?;
        let fields = Fields::over(whole.fields).map_while(|field| match field {
            Ok(field) => Some(field),
            Err(error) => {
                tracing::warn!(
                    key = %key.short(),
                    %error,
                    "session fields are unreadable from here on; those fields keep their default"
                );
                None
            }
        });
        let fields = self.read_fields(key, &meta, fields, whole.fields.len(), now);
        Some((Record { meta, fields }, Revision::new(stored)))
    }

    /// Reads a session hash (from `HGETALL`): its whole value `w`, or the fields of a hash
    /// an earlier version wrote. `None` when absent, expired or unreadable. A hash of an
    /// earlier version has the revision 0, which its next write expects and replaces whole.
    pub(super) fn decode(&self, key: &StoreKey, hash: Hash, now: u64) -> Option<(Record, Revision)> {
        if hash.is_empty() {
            return None;
        }
        // `x` is the expiry the scripts read; a cluster regenerate sets it to 0 to freeze a
        // session it is moving, which makes the session gone at once for loads too.
        let frozen = hash
            .get(EXPIRY_FIELD)
            .and_then(|x| std::str::from_utf8(x).ok()?.parse::<u64>().ok())
            .is_some_and(|x| x <= now);
        if frozen {
            return None;
        }
        if let Some(whole) = hash.get(WHOLE_FIELD) {
            return self.decode_whole(key, whole.to_vec(), now);
        }
        let meta = self.read_meta(key, hash.get(META_FIELD), now)?;
        let mut stored: Vec<(u32, Source, &[u8])> = Vec::with_capacity(hash.0.len() + PACKED_FIELDS_GUESS);
        for (name, value) in &hash.0 {
            if layout::is_packed_field(name) {
                for field in Fields::over(value) {
                    match field {
                        Ok((tag, value)) => stored.push((tag, Source::Packed, value)),
                        Err(error) => {
                            tracing::warn!(
                                key = %key.short(),
                                %error,
                                "packed session fields are unreadable from here on; those fields keep their default"
                            );
                            break;
                        }
                    }
                }
            } else if let Some((tag, legacy)) = layout::field_tag(name) {
                let source = if legacy { Source::Legacy } else { Source::Own };
                stored.push((tag, source, value));
            }
        }
        // Hash order is arbitrary; sorting makes equal records encode equally, and puts the
        // copy that wins first.
        stored.sort_unstable_by_key(|&(tag, source, _)| (tag, source));
        stored.dedup_by_key(|(tag, ..)| *tag);
        // An empty value is a removal: the field is back at its default.
        stored.retain(|(.., value)| !value.is_empty());
        let mut base = FieldRecord::with_capacity(stored.iter().map(|(.., value)| codec::field_len(value.len())).sum());
        for &(tag, _, value) in &stored {
            base.push(tag, value);
        }
        let fields = self.read_fields(
            key,
            &meta,
            stored.iter().map(|&(tag, _, value)| (tag, value)),
            base.as_bytes().len(),
            now,
        );
        let revision = Whole {
            revision: 0,
            meta: &[],
            fields: base.as_bytes(),
        };
        Some((Record { meta, fields }, Revision::new(revision.to_bytes())))
    }

    /// A session's metadata from its stored form; `None`, with a warning, when it is missing
    /// or unreadable, and when the session expired.
    fn read_meta(&self, key: &StoreKey, stored: Option<&[u8]>, now: u64) -> Option<SessionMeta> {
        let meta = match stored.map(|stored| self.values.decode_meta(key, stored, now)) {
            Some(Ok(meta)) => meta,
            Some(Err(error)) => {
                tracing::warn!(
                    key = %key.short(),
                    %error,
                    "Redis session metadata is unreadable; treated as no session"
                );
                return None;
            }
            None => {
                tracing::warn!(key = %key.short(), "Redis session hash has no metadata; treated as no session");
                return None;
            }
        };
        (!meta.is_expired(now)).then_some(meta)
    }

    /// The session's fields from their stored forms (`stored_len` bytes of them): an
    /// unreadable one keeps its default, with a warning.
    fn read_fields<'v>(
        &self,
        key: &StoreKey,
        meta: &SessionMeta,
        stored: impl Iterator<Item = (u32, &'v [u8])>,
        stored_len: usize,
        now: u64,
    ) -> FieldRecord {
        // A plain value decodes to at most its stored length, and the rare compressed one
        // that decodes longer grows the buffer.
        let mut record = FieldRecord::with_capacity(stored_len);
        for (tag, value) in stored {
            match self.values.decode_field(tag, value, &meta.lineage, now) {
                Ok(value) => record.push(tag, &value),
                Err(error) => tracing::warn!(
                    key = %key.short(),
                    tag,
                    %error,
                    "stored session field is unreadable; it keeps its default"
                ),
            }
        }
        record
    }
}

/// A session hash as `HGETALL` returns it: its members in the server's order. A session
/// has a few dozen members at most, so finding the two named ones by scanning costs less
/// than hashing every name into a map.
#[derive(Debug, Default)]
pub(super) struct Hash(Vec<(Vec<u8>, Vec<u8>)>);

impl Hash {
    /// The value of member `name`.
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(member, _)| member == name)
            .map(|(_, value)| value.as_slice())
    }

    /// Whether the hash has no member (`HGETALL` of a missing key).
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A hash from its names and values alternating, as a script returns `HGETALL`'s reply;
    /// `None` for an odd count.
    pub(super) fn from_pairs(values: Vec<Vec<u8>>) -> Option<Self> {
        if !values.len().is_multiple_of(2) {
            return None;
        }
        let mut members = Vec::with_capacity(values.len() / 2);
        let mut values = values.into_iter();
        while let (Some(name), Some(value)) = (values.next(), values.next()) {
            members.push((name, value));
        }
        Some(Self(members))
    }
}

impl redis::FromRedisValue for Hash {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        fn bytes(value: redis::Value) -> Result<Vec<u8>, redis::ParsingError> {
            match value {
                redis::Value::BulkString(bytes) => Ok(bytes),
                redis::Value::SimpleString(text) => Ok(text.into_bytes()),
                other => Err(format!("a hash member is not a string: {other:?}").into()),
            }
        }
        match value {
            redis::Value::Nil => Ok(Self::default()),
            // RESP2: names and values alternate.
            redis::Value::Array(items) => {
                let items = items.into_iter().map(bytes).collect::<Result<_, _>>()?;
                Self::from_pairs(items).ok_or_else(|| "HGETALL answered an odd number of items".into())
            }
            // RESP3.
            redis::Value::Map(pairs) => pairs
                .into_iter()
                .map(|(name, value)| Ok((bytes(name)?, bytes(value)?)))
                .collect::<Result<_, _>>()
                .map(Self),
            other => Err(format!("HGETALL answered {other:?}").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use redis::{FromRedisValue, Value};

    use super::{Hash, Whole};

    #[test]
    fn a_whole_value_round_trips_and_a_malformed_one_is_refused() {
        let meta = vec![7u8; 200];
        let whole = Whole {
            revision: 0x0102_0304_0506_0708,
            meta: &meta,
            fields: b"fields",
        };
        let bytes = whole.to_bytes();
        assert_eq!(bytes[..8], [8, 7, 6, 5, 4, 3, 2, 1], "the revision, little-endian");
        assert_eq!(bytes[8..10], [0xc8, 0x01], "the metadata's length, a varint");
        assert_eq!(Whole::parse(&bytes), Some(whole));
        assert_eq!(whole.expected().as_bytes(), &bytes[..8]);
        assert_eq!(whole.next_revision(), 0x0102_0304_0506_0709);

        let legacy = Whole {
            revision: 0,
            meta: &[],
            fields: b"",
        };
        assert_eq!(
            legacy.expected().as_bytes(),
            b"",
            "a hash of an earlier version has no `w`"
        );
        assert_eq!(Whole::parse(&legacy.to_bytes()), Some(legacy));
        let last = Whole {
            revision: u64::MAX,
            ..legacy
        };
        assert_eq!(last.next_revision(), 1, "0 is never written: it marks a frozen copy");

        for malformed in [&b""[..], b"1234567", b"12345678", b"12345678\x05meta", b"12345678\x80"] {
            assert_eq!(Whole::parse(malformed), None, "{malformed:?}");
        }
    }

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn a_hash_reads_from_resp2_pairs_and_resp3_maps() {
        let resp2 = Hash::from_redis_value(Value::Array(vec![bulk("m"), bulk("meta"), bulk("x"), bulk("9")])).unwrap();
        let resp3 =
            Hash::from_redis_value(Value::Map(vec![(bulk("m"), bulk("meta")), (bulk("x"), bulk("9"))])).unwrap();
        for hash in [resp2, resp3] {
            assert_eq!(hash.get(b"m"), Some(&b"meta"[..]));
            assert_eq!(hash.get(b"x"), Some(&b"9"[..]));
            assert_eq!(hash.get(b"y"), None);
        }
        assert!(Hash::from_redis_value(Value::Nil).unwrap().is_empty());
        assert!(Hash::from_redis_value(Value::Array(vec![])).unwrap().is_empty());
    }

    #[test]
    fn a_reply_that_is_no_hash_is_an_error_not_a_panic() {
        for reply in [
            Value::Array(vec![bulk("m")]),
            Value::Array(vec![bulk("m"), Value::Int(1)]),
            Value::Int(3),
        ] {
            assert!(Hash::from_redis_value(reply).is_err());
        }
    }
}
