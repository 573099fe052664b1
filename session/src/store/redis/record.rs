//! A [`Record`] as the hash fields that write it, and a hash read back as a record.

use super::{
    Inner,
    layout::{self, EXPIRY_FIELD, INDEX_FIELD, MAX_PACKED_FIELDS, META_FIELD, PACKED_FIELD_BYTES},
};
use crate::{
    Error,
    codec::{self, FieldRecord, Fields},
    id::StoreKey,
    store::{Record, store_error},
};

/// The hash field `i` of an indexed session: the index digest and the absolute deadline.
pub(super) fn index_value(record: &Record) -> Option<String> {
    let index = record.meta.index?;
    Some(format!("{}:{}", index.to_hex(), record.meta.absolute_deadline_ms))
}

/// The hash field/value pairs of a write, as one buffer and where each ends: a write's
/// arguments go into the command without an allocation each.
#[derive(Debug, Default)]
pub(super) struct WriteArgs {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl WriteArgs {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(16),
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
    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| &self.bytes[start..end])
    }
}

impl redis::ToRedisArgs for WriteArgs {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        self.iter().for_each(|arg| out.write_arg(arg));
    }
}

/// Room for this many packed fields beyond one per hash member, so that reading a session's
/// packed fields seldom grows the list they are read into.
const PACKED_FIELDS_GUESS: usize = 24;

/// What the fields of a write's record are, which decides where they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// The whole session (a create): packed into a few hash fields (`d`, `d1` …, each of at
    /// most [`PACKED_FIELD_BYTES`] unless one field is longer), so a load reads a few hash
    /// fields, not one per session field.
    Whole,
    /// Changes over what is stored (an update, a rename): one hash field each, so saves of
    /// different fields never overwrite each other's; a removal is an empty value, which
    /// hides the field's packed copy.
    Changes,
}

/// Where a field's value was read from; of several copies of one field, the smallest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// Its own hash field: the last change.
    Own,
    /// The packed hash fields (`d`, `d1` …): as created.
    Packed,
    /// A hash field named as earlier versions named it (`f:<8 hex digits>`).
    Legacy,
}

impl Inner {
    /// The hash field/value pairs that write `record` under `key`, as the scripts' `write`
    /// reads them: metadata, expiry, its [`index_value`] if it has one (computed once by the
    /// caller, which also passes it to the script), then the fields as [`Written`] says. The
    /// update script reads the expiry's value as the fourth pair member: it comes second.
    pub(super) fn write_args(
        &self,
        key: &StoreKey,
        record: &Record,
        index: Option<&str>,
        written: Written,
    ) -> Result<WriteArgs, Error> {
        let meta = &record.meta;
        let mut args = WriteArgs::with_capacity(record.fields.as_bytes().len() + 128);
        args.push(META_FIELD);
        args.push(&self.values.encode_meta(key, meta).map_err(store_error)?);
        args.push(EXPIRY_FIELD);
        args.push_number(record.meta.expires_ms());
        if let Some(value) = index {
            args.push(INDEX_FIELD);
            args.push(value.as_bytes());
        }
        let mut packed: Vec<FieldRecord> = Vec::new();
        for field in record.fields.iter() {
            let (tag, value) = field.map_err(store_error)?;
            let stored = match value {
                [] => Vec::new(),
                value => self
                    .values
                    .encode_field(tag, value, &meta.lineage, meta.absolute_deadline_ms)
                    .map_err(store_error)?,
            };
            match written {
                // A new session has nothing to remove.
                Written::Whole if stored.is_empty() => {}
                Written::Whole => {
                    let full = packed.last().is_none_or(|piece| {
                        piece.as_bytes().len() + codec::field_len(stored.len()) > PACKED_FIELD_BYTES
                    });
                    if full && packed.len() < MAX_PACKED_FIELDS {
                        packed.push(FieldRecord::new());
                    }
                    if let Some(piece) = packed.last_mut() {
                        piece.push(tag, &stored);
                    }
                }
                Written::Changes => {
                    args.push(&layout::field_name(tag));
                    args.push(&stored);
                }
            }
        }
        for (n, piece) in packed.iter().enumerate() {
            args.push(&layout::packed_field_name(n));
            args.push(piece.as_bytes());
        }
        Ok(args)
    }

    /// The TTL in ms of the index key of `record` (see `INDEX` in `scripts.rs`): it outlasts
    /// every member, as they all end by their absolute deadline.
    pub(super) fn index_ttl(&self, record: &Record, now: u64) -> u64 {
        record
            .meta
            .absolute_deadline_ms
            .saturating_sub(now)
            .saturating_add(self.retention_ms)
            .max(1)
    }

    /// `now` and the TTL in ms (at least 1, as Redis refuses 0) of a record's key: until the
    /// end of its expiry's step ([`layout::ttl_end_ms`]), plus the expired-session retention.
    pub(super) fn now_and_ttl(&self, record: &Record) -> (u64, u64) {
        let now = self.clock.now_ms();
        let ttl = layout::ttl_end_ms(record.meta.expires_ms()).saturating_sub(now).max(1);
        (now, ttl.saturating_add(self.retention_ms))
    }

    /// Reads a record from its hash; `None` when absent, expired or unreadable.
    pub(super) fn decode(&self, key: &StoreKey, hash: Hash, now: u64) -> Option<Record> {
        if hash.is_empty() {
            return None;
        }
        let meta = hash
            .get(META_FIELD)
            .map(|stored| self.values.decode_meta(key, stored, now));
        let meta = match meta {
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
        // `x` is the expiry the scripts read; a cluster regenerate sets it to 0 to freeze a
        // session it is moving, which makes the session gone at once for loads too.
        let frozen = hash
            .get(EXPIRY_FIELD)
            .and_then(|x| std::str::from_utf8(x).ok()?.parse::<u64>().ok())
            .is_some_and(|x| x <= now);
        if meta.is_expired(now) || frozen {
            return None;
        }
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
        // Sized from the stored values: a plain value decodes to at most its stored length,
        // and the rare compressed one that decodes longer grows the buffer.
        let mut record =
            FieldRecord::with_capacity(stored.iter().map(|(.., value)| codec::field_len(value.len())).sum());
        for (tag, _, value) in stored {
            // An empty value is a removal: the field is back at its default.
            if value.is_empty() {
                continue;
            }
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
        Some(Record { meta, fields: record })
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
                if items.len() % 2 != 0 {
                    return Err("HGETALL answered an odd number of items".into());
                }
                let mut members = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(name), Some(value)) = (items.next(), items.next()) {
                    members.push((bytes(name)?, bytes(value)?));
                }
                Ok(Self(members))
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

    use super::Hash;

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
