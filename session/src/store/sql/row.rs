//! A [`Record`] as the columns that write it, and a row read back as a record.
//!
//! - `expires_at`: the expiry (the earlier deadline) in ms, a `BIGINT` the statements
//!   compare with the store's `now`;
//! - `meta`: the session's metadata in the [metadata
//!   format](crate::store#the-metadata-format); sealed with encryption at rest;
//! - `index_key`: the session's [`IndexKey`](crate::store::IndexKey) digest (null when it
//!   has none), written with `meta` by every write so it is always the digest `meta` holds;
//! - `fields`: a JSON object with one member per field, `"<tag in 8 hex digits>":
//!   "<base64 of the stored value>"`, the stored value being a marker byte and the plain,
//!   gzip or sealed bytes (`store::value`). An update merges its members into the stored
//!   object in SQL (`||` then `jsonb_strip_nulls` on PostgreSQL, `json_patch` on SQLite,
//!   `JSON_MERGE_PATCH` on MySQL), so it touches only the fields it carries; a removal (a
//!   field with an empty value) is a `null` member, which the merge drops. A stored member is
//!   never `null`.

use std::{borrow::Cow, collections::BTreeMap};

use base64::{Engine as _, engine::general_purpose::STANDARD};

use super::call::{Core, db_ms};
use crate::{
    Error,
    codec::FieldRecord,
    id::StoreKey,
    store::{Record, store_error},
};

/// The columns of one write.
#[derive(Debug)]
pub(crate) struct Columns {
    pub(crate) expires_at: i64,
    pub(crate) meta: Vec<u8>,
    /// The JSON object of the written fields, removals as `null`; `{}` when there are none.
    pub(crate) fields: String,
    /// The metadata's index digest.
    pub(crate) index: Option<[u8; 32]>,
}

impl Columns {
    /// Whether the write carries no field (a sliding refresh): then the stores' statements
    /// leave `fields` alone.
    pub(crate) fn has_fields(&self) -> bool {
        self.fields.len() > 2
    }

    /// The `index_key` column's value.
    pub(crate) fn index(&self) -> Option<&[u8]> {
        self.index.as_ref().map(|index| &index[..])
    }
}

/// The member name of a field: its tag in 8 lowercase hex digits.
fn member(tag: u32) -> String {
    format!("{tag:08x}")
}

impl Core {
    /// The columns that write `record` under `key`: for an update (`removals`), a removal (a
    /// field with an empty value) is a `null` member, which the merge drops; for a new row,
    /// it is left out.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] for a malformed record or a value that cannot be sealed.
    pub(crate) fn columns(&self, key: &StoreKey, record: &Record, removals: bool) -> Result<Columns, Error> {
        let meta = &record.meta;
        // The last value of a repeated tag wins, as in `FieldRecord::get`.
        let mut members = BTreeMap::new();
        for field in record.fields.iter() {
            let (tag, value) = field.map_err(store_error)?;
            if value.is_empty() {
                members.insert(tag, None);
                continue;
            }
            let stored = self
                .values
                .encode_field(tag, value, &meta.lineage, meta.absolute_deadline_ms)
                .map_err(store_error)?;
            members.insert(tag, Some(STANDARD.encode(stored)));
        }
        if !removals {
            members.retain(|_, value| value.is_some());
        }
        let mut fields = String::with_capacity(
            2 + members
                .values()
                .map(|v| v.as_ref().map_or(4, String::len) + 14)
                .sum::<usize>(),
        );
        fields.push('{');
        for (i, (tag, value)) in members.iter().enumerate() {
            if i > 0 {
                fields.push(',');
            }
            // Hex digits and base64: nothing to escape.
            fields.push('"');
            fields.push_str(&member(*tag));
            match value {
                Some(value) => {
                    fields.push_str("\":\"");
                    fields.push_str(value);
                    fields.push('"');
                }
                None => fields.push_str("\":null"),
            }
        }
        fields.push('}');
        let stored_meta = self.values.encode_meta(key, meta).map_err(store_error)?;
        Ok(Columns {
            expires_at: db_ms(meta.expires_ms()),
            meta: stored_meta,
            fields,
            index: meta.index.map(|index| *index.as_bytes()),
        })
    }

    /// Reads the record of a row the statement found live; `None` when its metadata is
    /// unreadable or it expired by the store's clock. A field that does not read back is
    /// left out (it takes its default) and logged.
    pub(crate) fn record(&self, key: &StoreKey, meta: &[u8], fields: &str, now_ms: u64) -> Option<Record> {
        let meta = match self.values.decode_meta(key, meta, now_ms) {
            Ok(meta) => meta,
            Err(error) => {
                tracing::warn!(store = self.backend, key = %key.short(), %error, "session metadata is unreadable; treated as no session");
                return None;
            }
        };
        if meta.is_expired(now_ms) {
            return None;
        }
        let members: BTreeMap<String, String> = match serde_json::from_str(fields) {
            Ok(members) => members,
            Err(error) => {
                tracing::warn!(store = self.backend, key = %key.short(), %error, "session fields are not a JSON object of strings; every field keeps its default");
                BTreeMap::new()
            }
        };
        let mut decoded: Vec<(u32, Vec<u8>)> = members
            .iter()
            .filter_map(|(name, value)| {
                let tag = (name.len() == 8).then(|| u32::from_str_radix(name, 16).ok()).flatten()?;
                let read = STANDARD
                    .decode(value.as_bytes())
                    .map_err(|error| error.to_string())
                    .and_then(|stored| {
                        self.values
                            .decode_field(tag, &stored, &meta.lineage, now_ms)
                            .map(Cow::into_owned)
                            .map_err(|error| error.to_string())
                    });
                match read {
                    Ok(value) => Some((tag, value)),
                    Err(error) => {
                        tracing::warn!(store = self.backend, key = %key.short(), tag, %error, "stored session field is unreadable; it keeps its default");
                        None
                    }
                }
            })
            .collect();
        decoded.sort_unstable_by_key(|(tag, _)| *tag);
        let mut record = FieldRecord::with_capacity(decoded.iter().map(|(_, value)| 9 + value.len()).sum());
        for (tag, value) in &decoded {
            record.push(*tag, value);
        }
        Some(Record { meta, fields: record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_name_the_tag_in_hex() {
        assert_eq!(member(0xdead_beef), "deadbeef");
        assert_eq!(member(1), "00000001");
    }
}
