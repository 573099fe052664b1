//! The field-tagged record format: a session's data as bytes, field by field.
//!
//! A record is a sequence of fields, each written as
//!
//! ```text
//! tag     u32, little-endian: FieldDef::tag of the stored name
//! length  unsigned LEB128 varint: byte length of what follows
//! type    u16, little-endian: FieldDef::fingerprint of the field's type
//! value   the field's postcard encoding
//! ```
//!
//! A field whose value is at its default (equal, encoded, to the field of a fresh session)
//! is not stored: absent, it decodes to that default. An update sets a field back to its
//! default with a *removal*: the field's tag with an empty value (a stored value is never
//! empty, as it starts with the type), which a merge applies by dropping the stored field.
//!
//! Decoding is forgiving by design, so a new deployment never logs anyone out: an unknown
//! tag is skipped, a missing field keeps its default, and a field stored under another
//! type (another fingerprint: the field was retyped) or whose bytes no longer decode keeps
//! its default and is reported through `tracing`. Postcard alone would misread a retyped
//! field (a `u64` 10 read as an `i64` is 5): the fingerprint is what notices.

use std::{
    any::TypeId,
    sync::{PoisonError, RwLock},
};

use crate::{
    Error,
    data::{DirtySet, SessionData},
    device::{DEVICE_TAG, Device},
};

/// The bytes of a record are not a sequence of well-formed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed session record at byte {offset}")]
pub struct CorruptRecord {
    /// Where the first malformed field starts.
    pub offset: usize,
}

/// An encoded record: the field-tagged bytes of some or all fields of a session.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FieldRecord {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for FieldRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldRecord")
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl FieldRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty record with room for `bytes` bytes of fields.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
        }
    }

    /// Wraps stored bytes; they are validated as they are read.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Whether the record holds no field.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends a removal of the field under `tag`: in an update, the stored field is dropped
    /// (the field is back at its default). A removal is a field with an empty value.
    pub fn push_removal(&mut self, tag: u32) {
        self.push(tag, &[]);
    }

    /// Appends a field.
    pub fn push(&mut self, tag: u32, value: &[u8]) {
        push_field(&mut self.bytes, tag, value);
    }

    /// The fields in order; a malformed field ends the iteration with an error.
    pub fn iter(&self) -> Fields<'_> {
        Fields::over(&self.bytes)
    }

    /// The value stored under `tag`, if any (the last one wins).
    ///
    /// # Errors
    ///
    /// When the record is malformed before the field is found.
    pub fn get(&self, tag: u32) -> Result<Option<&[u8]>, CorruptRecord> {
        let mut found = None;
        for field in self.iter() {
            let (field_tag, value) = field?;
            if field_tag == tag {
                found = Some(value);
            }
        }
        Ok(found)
    }

    /// Replaces the fields that `update` holds, appends those it adds and drops those it
    /// removes (an empty value, see [`push_removal`](Self::push_removal)), keeping every
    /// other field: the field-level merge that lets overlapping saves both survive. A tag
    /// repeated in `update` takes its last value.
    ///
    /// # Errors
    ///
    /// When either record is malformed; `self` is then left unchanged.
    pub fn merge(&mut self, update: &FieldRecord) -> Result<(), CorruptRecord> {
        update.iter().try_for_each(|field| field.map(drop))?;
        if overwrite_in_place(&mut self.bytes, update)? {
            return Ok(());
        }
        // Sized exactly, so a store can keep the bytes as a boxed slice without copying.
        let mut merged = Vec::with_capacity(merged_len(&self.bytes, update)?);
        for field in self.iter() {
            let (tag, value) = field?;
            if !update.holds(tag) {
                push_field(&mut merged, tag, value);
            }
        }
        for (tag, value) in update.written() {
            push_field(&mut merged, tag, value);
        }
        self.bytes = merged;
        Ok(())
    }

    /// Whether this (validated) record holds a field or a removal under `tag`.
    fn holds(&self, tag: u32) -> bool {
        self.iter().any(|field| matches!(field, Ok((t, _)) if t == tag))
    }

    /// Each tag's last value in this update, removals (empty values) included; a malformed
    /// field ends it.
    fn last_values(&self) -> impl Iterator<Item = (u32, &[u8])> {
        let fields = || self.iter().map_while(Result::ok);
        fields()
            .enumerate()
            .filter(move |&(at, (tag, _))| !fields().skip(at + 1).any(|(later, _)| later == tag))
            .map(|(_, field)| field)
    }

    /// The fields of this (validated) update that a merge writes.
    fn written(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.last_values().filter(|(_, value)| !value.is_empty())
    }
}

/// The common save (a counter, a flag) changes values without changing their length: then
/// the new bytes replace the old in `stored` where they are, with no allocation, and the
/// merge of `update` is done. Returns `false`, changing nothing, unless every updated tag is
/// stored exactly once with a value of its new length. A store that accounts for its bytes
/// tries this before measuring what a full merge would add.
///
/// # Errors
///
/// When either record is malformed; `stored` is then unchanged.
pub(crate) fn overwrite_in_place(stored: &mut [u8], update: &FieldRecord) -> Result<bool, CorruptRecord> {
    let mut places = [(0usize, 0usize); 8];
    let mut count = 0;
    for field in update.iter() {
        let (tag, value) = field?;
        if value.is_empty() {
            return Ok(false);
        }
        // A tag repeated in the update goes through the merge, which keeps the last.
        if count == places.len() || update.iter().take(count).any(|f| matches!(f, Ok((t, _)) if t == tag)) {
            return Ok(false);
        }
        let mut found = None;
        let mut offset = 0;
        for field in Fields::over(stored) {
            let (stored_tag, stored_value) = field?;
            // Lengths are minimal varints (the reader refuses others), so this is exact.
            let end = offset + field_len(stored_value.len());
            if stored_tag == tag {
                if found.is_some() || stored_value.len() != value.len() {
                    return Ok(false);
                }
                found = Some((end - value.len(), end));
            }
            offset = end;
        }
        let Some(place) = found else { return Ok(false) };
        places[count] = place;
        count += 1;
    }
    for (&(start, end), field) in places[..count].iter().zip(update.iter()) {
        let (_, value) = field?;
        stored[start..end].copy_from_slice(value);
    }
    Ok(true)
}

/// The length [`FieldRecord::merge`] would give the record `stored`, computed without
/// merging (or copying) it.
///
/// # Errors
///
/// When either record is malformed.
pub(crate) fn merged_len(stored: &[u8], update: &FieldRecord) -> Result<usize, CorruptRecord> {
    update.iter().try_for_each(|field| field.map(drop))?;
    let mut len = 0;
    for field in (Fields {
        bytes: stored,
        offset: 0,
    }) {
        let (tag, value) = field?;
        if !update.holds(tag) {
            len += field_len(value.len());
        }
    }
    Ok(len + update.written().map(|(_, value)| field_len(value.len())).sum::<usize>())
}

fn push_field(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    out.extend_from_slice(&tag.to_le_bytes());
    write_varint(out, value.len());
    out.extend_from_slice(value);
}

/// The bytes a field of `len` value bytes takes in a record.
pub(crate) fn field_len(len: usize) -> usize {
    4 + varint_len(len) + len
}

/// Iterator over the `(tag, value)` fields of a [`FieldRecord`].
#[derive(Debug)]
pub struct Fields<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Fields<'a> {
    /// The fields of record bytes held elsewhere (a store's reply), without copying them.
    pub(crate) fn over(bytes: &'a [u8]) -> Self {
        Self { bytes, offset: 0 }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, &'a [u8]), CorruptRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.bytes.len() {
            return None;
        }
        let start = self.offset;
        let corrupt = || CorruptRecord { offset: start };
        let parsed = (|| {
            let rest = &self.bytes[start..];
            let tag = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
            let (len, used) = read_varint(&rest[4..])?;
            let value_start = 4 + used;
            let value = rest.get(value_start..value_start.checked_add(len)?)?;
            Some((tag, value, value_start + len))
        })();
        match parsed {
            Some((tag, value, consumed)) => {
                self.offset = start + consumed;
                Some(Ok((tag, value)))
            }
            None => {
                self.offset = self.bytes.len();
                Some(Err(corrupt()))
            }
        }
    }
}

pub(crate) fn write_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn varint_len(value: usize) -> usize {
    (usize::BITS - (value | 1).leading_zeros()).div_ceil(7) as usize
}

/// A minimal varint at the start of `bytes`: its value and its length.
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value: usize = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // Reject non-minimal encodings so every length has exactly one form.
            if i > 0 && byte == 0 {
                return None;
            }
            return Some((value, i + 1));
        }
    }
    None
}

/// Encodes the fields in `which` (indices of `T::FIELDS`) into a record, every one of them
/// written whatever its value.
///
/// # Errors
///
/// [`Error::Encode`] when a field's value cannot be serialized.
pub fn encode<T: SessionData>(data: &T, which: DirtySet) -> Result<FieldRecord, Error> {
    encode_fields(data, which, None)
}

/// Encodes the fields in `which` for a save: those at their default (see [`Defaults`]) are
/// left out of a new record and written as removals in an update.
///
/// # Errors
///
/// [`Error::Encode`] when a field's value cannot be serialized.
pub(crate) fn encode_save<T: SessionData>(
    data: &T,
    which: DirtySet,
    at_default: AtDefault,
) -> Result<FieldRecord, Error> {
    encode_fields(data, which, Some((Defaults::of::<T>(), at_default)))
}

/// What a save writes for a field at its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtDefault {
    /// Nothing: the record is new, so the field is not stored yet.
    Omit,
    /// A removal, dropping the stored value.
    Remove,
}

fn encode_fields<T: SessionData>(
    data: &T,
    which: DirtySet,
    defaults: Option<(&Defaults, AtDefault)>,
) -> Result<FieldRecord, Error> {
    // Room for typical short values, so a full encode does not grow the record field by field.
    let mut record = FieldRecord::with_capacity(which.len() * 32);
    let mut scratch = Vec::with_capacity(64);
    for index in which.iter().take_while(|&index| index < T::FIELDS.len()) {
        let def = &T::FIELDS[index];
        scratch.clear();
        scratch.extend_from_slice(&def.fingerprint.to_le_bytes());
        data.encode_field(index, &mut scratch).map_err(|source| Error::Encode {
            field: def.name,
            source,
        })?;
        match defaults {
            Some((defaults, at_default)) if defaults.is_default(index, &scratch) => {
                if at_default == AtDefault::Remove {
                    record.push_removal(def.tag);
                }
            }
            _ => record.push(def.tag, &scratch),
        }
    }
    Ok(record)
}

/// Each field's stored bytes in a fresh session ([`SessionData::initial`]), computed once
/// per session type and process: a field whose value encodes to the same bytes is at its
/// default, which an absent field decodes to, so it need not be stored.
#[derive(Debug)]
pub(crate) struct Defaults {
    fields: Box<[Option<Box<[u8]>>]>,
}

impl Defaults {
    /// The defaults of `T`'s fields, computed on first use.
    pub(crate) fn of<T: SessionData>() -> &'static Self {
        // One entry per session type the process uses: a handful, so a list, kept for good.
        static CACHE: RwLock<Vec<(TypeId, &'static Defaults)>> = RwLock::new(Vec::new());
        let find = |cache: &[(TypeId, &'static Self)]| {
            cache
                .iter()
                .find(|(id, _)| *id == TypeId::of::<T>())
                .map(|&(_, defaults)| defaults)
        };
        if let Some(found) = find(&CACHE.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let computed = Self::compute::<T>();
        let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&cache) {
            return found;
        }
        let leaked: &'static Self = Box::leak(Box::new(computed));
        cache.push((TypeId::of::<T>(), leaked));
        leaked
    }

    /// One that cannot be encoded is never taken as default.
    fn compute<T: SessionData>() -> Self {
        let initial = T::initial();
        let fields = T::FIELDS
            .iter()
            .enumerate()
            .map(|(index, def)| {
                let mut bytes = def.fingerprint.to_le_bytes().to_vec();
                initial.encode_field(index, &mut bytes).ok()?;
                Some(bytes.into_boxed_slice())
            })
            .collect();
        Self { fields }
    }

    fn is_default(&self, index: usize, stored: &[u8]) -> bool {
        self.fields.get(index).and_then(Option::as_deref) == Some(stored)
    }
}

/// Decodes a record into a fresh `T`, field by field.
///
/// Never fails: unknown tags are skipped; fields that are missing, malformed or of a changed
/// type keep their default, and the latter two are reported through `tracing`.
pub fn decode<T: SessionData>(record: &FieldRecord) -> T {
    decode_bytes(&record.bytes)
}

/// [`decode`] of borrowed record bytes, so a caller holding them need not copy them.
pub(crate) fn decode_bytes<T: SessionData>(bytes: &[u8]) -> T {
    decode_sizing(bytes, None)
}

/// [`decode`], also measuring the record for the size checks of later saves and reading the
/// device stored with it, in the same pass.
pub(crate) fn decode_with_size<T: SessionData>(record: &FieldRecord) -> (T, RecordSize, Option<Device>) {
    let mut size = RecordSize {
        total: record.bytes.len(),
        fields: vec![0; T::FIELDS.len()],
        device: 0,
    };
    let mut device = None;
    let data = decode_sizing(&record.bytes, Some((&mut size, &mut device)));
    (data, size, device)
}

fn decode_sizing<T: SessionData>(bytes: &[u8], mut sizing: Option<(&mut RecordSize, &mut Option<Device>)>) -> T {
    let mut data = T::initial();
    // Records are mostly in field order (a full encode writes them so): the next field is
    // looked at first.
    let mut next = 0;
    for field in (Fields { bytes, offset: 0 }) {
        let (tag, value) = match field {
            Ok(field) => field,
            Err(error) => {
                tracing::warn!(%error, "session record is malformed; the remaining fields keep their defaults");
                break;
            }
        };
        if value.is_empty() {
            continue; // a removal: the field keeps its default
        }
        let found = match T::FIELDS.get(next) {
            Some(def) if def.tag == tag => Some(next),
            _ => T::FIELDS.iter().position(|def| def.tag == tag),
        };
        let Some(index) = found else {
            if tag == DEVICE_TAG
                && let Some((size, device)) = sizing.as_mut()
            {
                size.device = stored_len(value.len());
                **device = Device::decode(value);
            }
            continue;
        };
        next = index + 1;
        if let Some((size, _)) = sizing.as_mut() {
            size.fields[index] = stored_len(value.len());
        }
        let def = &T::FIELDS[index];
        let Some(value) = value.strip_prefix(&def.fingerprint.to_le_bytes()) else {
            tracing::warn!(
                field = def.name,
                "stored session field was written under another type (was its type changed?); it keeps its default"
            );
            continue;
        };
        if let Err(error) = data.decode_field(index, value) {
            tracing::warn!(
                field = T::FIELDS[index].name,
                %error,
                "stored session field no longer decodes (was its type changed?); it keeps its default"
            );
        }
    }
    data
}

/// How many bytes a stored record takes, in total and per field of `T` (and the device),
/// so a save can tell the size the record will have after a field-level merge without the
/// stored bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordSize {
    total: usize,
    /// Per field of `T::FIELDS`: its bytes in the record (tag and length included).
    fields: Vec<u32>,
    /// The stored device's bytes (tag and length included).
    device: u32,
}

impl RecordSize {
    /// The size of `record`, read from its field headers only.
    pub(crate) fn of<T: SessionData>(record: &FieldRecord) -> Self {
        let mut size = Self {
            total: record.bytes.len(),
            fields: vec![0; T::FIELDS.len()],
            device: 0,
        };
        size.apply_sizes::<T>(record);
        size
    }

    /// The stored size of the field (or device) under `tag`, if it is one this size tracks.
    fn slot<T: SessionData>(&mut self, tag: u32) -> Option<&mut u32> {
        if tag == DEVICE_TAG {
            return Some(&mut self.device);
        }
        T::FIELDS
            .iter()
            .position(|def| def.tag == tag)
            .and_then(|index| self.fields.get_mut(index))
    }

    fn apply_sizes<T: SessionData>(&mut self, record: &FieldRecord) {
        for (tag, value) in record.last_values() {
            if let Some(slot) = self.slot::<T>(tag) {
                *slot = stored_len(value.len());
            }
        }
    }

    /// The total after `update`'s fields replace the stored ones.
    pub(crate) fn after<T: SessionData>(&self, update: &FieldRecord) -> usize {
        let mut total = self.total;
        for (tag, value) in update.last_values() {
            let old = if tag == DEVICE_TAG {
                self.device
            } else {
                T::FIELDS
                    .iter()
                    .position(|def| def.tag == tag)
                    .and_then(|index| self.fields.get(index))
                    .copied()
                    .unwrap_or(0)
            };
            total = total.saturating_sub(old as usize) + stored_len(value.len()) as usize;
        }
        total
    }

    /// Records that `update` was written.
    pub(crate) fn apply<T: SessionData>(&mut self, update: &FieldRecord) {
        self.total = self.after::<T>(update);
        self.apply_sizes::<T>(update);
    }
}

/// The bytes a field of `len` value bytes takes in a record; none for a removal.
fn stored_len(len: usize) -> u32 {
    if len == 0 {
        return 0;
    }
    u32::try_from(field_len(len)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_and_rejects_overlong_forms() {
        for value in [0usize, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as usize] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(read_varint(&out), Some((value, out.len())));
        }
        assert_eq!(read_varint(&[0x80, 0x00]), None);
        assert_eq!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
    }

    #[test]
    fn merge_replaces_updated_fields_and_keeps_the_rest() {
        let mut base = FieldRecord::new();
        base.push(1, b"one");
        base.push(2, b"two");
        let mut update = FieldRecord::new();
        update.push(2, b"TWO");
        update.push(3, b"three");
        base.merge(&update).unwrap();
        let fields: Vec<_> = base.iter().map(Result::unwrap).collect();
        assert_eq!(fields, vec![(1, &b"one"[..]), (2, &b"TWO"[..]), (3, &b"three"[..])]);
    }

    #[test]
    fn merged_len_is_the_length_merge_gives() {
        let mut base = FieldRecord::new();
        base.push(1, b"one");
        base.push(2, b"two");
        for pairs in [
            &[(2u32, &b"TWO"[..])][..],
            &[(2, b"a longer value"), (3, b"three")],
            &[(2, b"x"), (2, b"yz")],
        ] {
            let mut update = FieldRecord::new();
            for (tag, value) in pairs {
                update.push(*tag, value);
            }
            let expected = merged_len(base.as_bytes(), &update).unwrap();
            let mut merged = base.clone();
            merged.merge(&update).unwrap();
            assert_eq!(merged.as_bytes().len(), expected, "{pairs:?}");
        }
        assert!(merged_len(&[1, 2], &FieldRecord::new()).is_err());
    }

    #[test]
    fn merge_overwrites_same_length_values_in_place() {
        let mut base = FieldRecord::new();
        base.push(1, b"one");
        base.push(2, b"two");
        let mut update = FieldRecord::new();
        update.push(1, b"ONE");
        base.merge(&update).unwrap();
        let fields: Vec<_> = base.iter().map(Result::unwrap).collect();
        assert_eq!(fields, vec![(1, &b"ONE"[..]), (2, &b"two"[..])]);
        // A repeated tag in the update keeps its last value, as the general merge does.
        let mut update = FieldRecord::new();
        update.push(2, b"abc");
        update.push(2, b"xyz");
        base.merge(&update).unwrap();
        assert_eq!(base.get(2).unwrap(), Some(&b"xyz"[..]));
        assert_eq!(base.iter().count(), 2, "only the last value is stored");
    }

    #[test]
    fn removals_drop_stored_fields_and_are_never_stored() {
        let mut base = FieldRecord::new();
        base.push(1, b"one");
        base.push(2, b"two");
        type Fields<'a> = &'a [(u32, &'a [u8])];
        let cases: [(Fields, Fields); 4] = [
            (&[(2, b"")], &[(1, b"one")]),
            (&[(3, b"")], &[(1, b"one"), (2, b"two")]),
            (&[(2, b"x"), (2, b"")], &[(1, b"one")]),
            (&[(2, b""), (2, b"TWO")], &[(1, b"one"), (2, b"TWO")]),
        ];
        for (pairs, expected) in cases {
            let mut update = FieldRecord::new();
            for (tag, value) in pairs {
                update.push(*tag, value);
            }
            let mut merged = base.clone();
            merged.merge(&update).unwrap();
            let fields: Vec<_> = merged.iter().map(Result::unwrap).collect();
            assert_eq!(fields, expected, "{pairs:?}");
            assert_eq!(merged_len(base.as_bytes(), &update).unwrap(), merged.as_bytes().len());
        }
    }

    #[derive(crate::SessionData, Debug, PartialEq)]
    #[session(crate = "crate")]
    struct Prefs {
        name: String,
        #[session(default = "light".to_owned())]
        theme: String,
        visits: u64,
    }

    #[test]
    fn fields_at_their_default_are_omitted_from_new_records_and_removed_by_updates() {
        let data = Prefs {
            name: "alice".into(),
            theme: "light".into(),
            visits: 0,
        };
        let all = DirtySet::all(3);
        let new = encode_save(&data, all, AtDefault::Omit).unwrap();
        let tags: Vec<u32> = new.iter().map(|field| field.unwrap().0).collect();
        assert_eq!(
            tags,
            [Prefs::FIELDS[0].tag],
            "only the name differs from a fresh session"
        );
        assert_eq!(decode::<Prefs>(&new), data, "absent fields decode to their default");

        let update = encode_save(&data, all, AtDefault::Remove).unwrap();
        let removed: Vec<u32> = update
            .iter()
            .map(Result::unwrap)
            .filter(|(_, value)| value.is_empty())
            .map(|(tag, _)| tag)
            .collect();
        assert_eq!(removed, [Prefs::FIELDS[1].tag, Prefs::FIELDS[2].tag]);
        assert_eq!(decode::<Prefs>(&update), data, "a removal decodes as the default");

        let changed = Prefs {
            name: data.name.clone(),
            theme: "dark".into(),
            visits: 3,
        };
        let stored = encode(&changed, all).unwrap();
        let mut merged = stored.clone();
        merged.merge(&update).unwrap();
        assert_eq!(merged, new, "the update removed what the fresh record never held");
        assert_eq!(
            RecordSize::of::<Prefs>(&stored).after::<Prefs>(&update),
            new.as_bytes().len()
        );
        assert_eq!(
            encode(&data, all).unwrap().iter().count(),
            3,
            "encode writes every field"
        );
    }

    #[test]
    fn varint_lengths_match_the_writer() {
        for value in [0usize, 1, 127, 128, 16_383, 16_384, u32::MAX as usize] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(varint_len(value), out.len(), "{value}");
        }
    }

    #[derive(crate::SessionData, Debug)]
    #[session(crate = "crate")]
    struct Named {
        name: String,
    }

    #[test]
    fn the_device_is_read_in_the_decode_pass_and_counted_in_the_size() {
        let device = Device {
            user_agent: Some("agent".into()),
            ip: None,
        };
        let mut record = encode(&Named { name: "alice".into() }, DirtySet::all(1)).unwrap();
        record.push(DEVICE_TAG, &device.encode());
        let (data, size, read) = decode_with_size::<Named>(&record);
        assert_eq!((data.name.as_str(), read.as_ref()), ("alice", Some(&device)));
        assert_eq!(size, RecordSize::of::<Named>(&record), "measured as from the headers");

        let mut update = FieldRecord::new();
        let longer = Device {
            user_agent: Some("a longer agent".into()),
            ip: None,
        };
        update.push(DEVICE_TAG, &longer.encode());
        let mut merged = record.clone();
        merged.merge(&update).unwrap();
        assert_eq!(
            size.after::<Named>(&update),
            merged.as_bytes().len(),
            "a new device replaces the old"
        );
    }

    #[test]
    fn truncated_records_are_reported_not_panicked() {
        let mut record = FieldRecord::new();
        record.push(7, b"value");
        let bytes = record.as_bytes();
        for cut in 1..bytes.len() {
            let truncated = FieldRecord::from_bytes(bytes[..cut].to_vec());
            assert!(truncated.iter().any(|field| field.is_err()), "cut at {cut}");
        }
    }
}
