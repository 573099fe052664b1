//! A [`Record`] as the hash fields that write it, and a hash read back as a record.

use std::{borrow::Cow, collections::HashMap};

use super::{
    Inner,
    call::store_error,
    layout::{self, EXPIRY_FIELD, INDEX_FIELD, META_FIELD},
};

/// The hash field `i` of an indexed session: the index digest and the absolute deadline.
pub(super) fn index_value(record: &Record) -> Option<String> {
    let index = record.meta.index?;
    Some(format!("{}:{}", index.to_hex(), record.meta.absolute_deadline_ms))
}
use crate::{Error, codec::FieldRecord, id::StoreKey, store::Record};

impl Inner {
    /// The fields that write `record` under `key`, as the scripts' `write` reads them: the
    /// number of removed fields and their names (both forms of each), then the hash
    /// field/value pairs: metadata, expiry, its [`index_value`] if it has one (computed once
    /// by the caller, which also passes it to the script), then each field.
    pub(super) fn write_args(
        &self,
        key: &StoreKey,
        record: &Record,
        index: Option<&str>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let meta = &record.meta;
        let fields = || record.fields.iter().map(|field| field.map_err(store_error));
        let mut removed = Vec::new();
        for field in fields() {
            let (tag, value) = field?;
            if value.is_empty() {
                removed.push(layout::field_name(tag).to_vec());
                removed.push(layout::legacy_field_name(tag));
            }
        }
        let mut args = Vec::with_capacity(1 + removed.len() + 6 + 2 * 8);
        args.push(removed.len().to_string().into_bytes());
        args.append(&mut removed);
        args.push(META_FIELD.to_vec());
        let stored_meta = self.values.encode_meta(key, meta);
        args.push(stored_meta.map_err(store_error)?);
        args.push(EXPIRY_FIELD.to_vec());
        args.push(record.meta.expires_ms().to_string().into_bytes());
        if let Some(value) = index {
            args.push(INDEX_FIELD.to_vec());
            args.push(value.as_bytes().to_vec());
        }
        for field in fields() {
            let (tag, value) = field?;
            if value.is_empty() {
                continue;
            }
            args.push(layout::field_name(tag).to_vec());
            let stored = self
                .values
                .encode_field(tag, value, &meta.lineage, meta.absolute_deadline_ms);
            args.push(stored.map_err(store_error)?);
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

    /// `now` and the TTL in ms (at least 1, as Redis refuses 0) of a record: until its
    /// deadline, plus the expired-session retention.
    pub(super) fn now_and_ttl(&self, record: &Record) -> (u64, u64) {
        let now = self.clock.now_ms();
        let ttl = record.meta.expires_ms().saturating_sub(now).max(1);
        (now, ttl.saturating_add(self.retention_ms))
    }

    /// Reads a record from its hash; `None` when absent, expired or unreadable.
    pub(super) fn decode(&self, key: &StoreKey, hash: HashMap<Vec<u8>, Vec<u8>>, now: u64) -> Option<Record> {
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
                    key = %layout::short(key),
                    %error,
                    "Redis session metadata is unreadable; treated as no session"
                );
                return None;
            }
            None => {
                tracing::warn!(key = %layout::short(key), "Redis session hash has no metadata; treated as no session");
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
        let mut fields: Vec<(u32, bool, Cow<'_, [u8]>)> = hash
            .iter()
            .filter_map(|(name, stored)| {
                let (tag, legacy) = layout::field_tag(name)?;
                match self.values.decode_field(tag, stored, &meta.lineage, now) {
                    Ok(value) => Some((tag, legacy, value)),
                    Err(error) => {
                        tracing::warn!(
                            key = %layout::short(key),
                            tag,
                            %error,
                            "stored session field is unreadable; it keeps its default"
                        );
                        None
                    }
                }
            })
            .collect();
        // Hash order is arbitrary; sorting makes equal records encode equally. A field
        // written since the names changed is newer than its legacy copy, which it hides.
        fields.sort_unstable_by_key(|&(tag, legacy, _)| (tag, legacy));
        fields.dedup_by_key(|(tag, ..)| *tag);
        let mut record = FieldRecord::with_capacity(fields.iter().map(|(.., value)| 4 + 5 + value.len()).sum());
        for (tag, _, value) in &fields {
            record.push(*tag, value);
        }
        Some(Record { meta, fields: record })
    }
}
