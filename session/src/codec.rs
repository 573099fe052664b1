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
//! Decoding is forgiving by design, so a new deployment never logs anyone out: an unknown
//! tag is skipped, a missing field keeps its default, and a field stored under another
//! type (another fingerprint: the field was retyped) or whose bytes no longer decode keeps
//! its default and is reported through `tracing`. Postcard alone would misread a retyped
//! field (a `u64` 10 read as an `i64` is 5): the fingerprint is what notices.

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

    /// Appends a field.
    pub fn push(&mut self, tag: u32, value: &[u8]) {
        self.bytes.extend_from_slice(&tag.to_le_bytes());
        write_varint(&mut self.bytes, value.len());
        self.bytes.extend_from_slice(value);
    }

    /// The fields in order; a malformed field ends the iteration with an error.
    pub fn iter(&self) -> Fields<'_> {
        Fields {
            bytes: &self.bytes,
            offset: 0,
        }
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

    /// Replaces the fields that `update` holds and appends those it adds, keeping every
    /// other field: the field-level merge that lets overlapping saves both survive.
    ///
    /// # Errors
    ///
    /// When either record is malformed; `self` is then left unchanged.
    pub fn merge(&mut self, update: &FieldRecord) -> Result<(), CorruptRecord> {
        update.iter().try_for_each(|field| field.map(drop))?;
        // Validated above, so `Ok` is the only shape left; no list of tags to allocate.
        let updated = |tag: u32| update.iter().any(|field| matches!(field, Ok((t, _)) if t == tag));
        if self.overwrite_in_place(update)? {
            return Ok(());
        }
        // Sized exactly, so a store can keep the bytes as a boxed slice without copying.
        let mut kept = 0;
        for field in self.iter() {
            let (tag, value) = field?;
            if !updated(tag) {
                kept += 4 + varint_len(value.len()) + value.len();
            }
        }
        let mut merged = Vec::with_capacity(kept + update.bytes.len());
        for field in self.iter() {
            let (tag, value) = field?;
            if !updated(tag) {
                merged.extend_from_slice(&tag.to_le_bytes());
                write_varint(&mut merged, value.len());
                merged.extend_from_slice(value);
            }
        }
        merged.extend_from_slice(&update.bytes);
        self.bytes = merged;
        Ok(())
    }

    /// The common save (a counter, a flag) changes values without changing their length:
    /// then the new bytes replace the old where they are, with no allocation. Returns
    /// `false`, changing nothing, unless every updated tag is stored exactly once with a
    /// value of its new length.
    fn overwrite_in_place(&mut self, update: &FieldRecord) -> Result<bool, CorruptRecord> {
        let mut places = [(0usize, 0usize); 8];
        let mut count = 0;
        for field in update.iter() {
            let (tag, value) = field?;
            // A tag repeated in the update goes through the merge, which keeps the last.
            if count == places.len() || update.iter().take(count).any(|f| matches!(f, Ok((t, _)) if t == tag)) {
                return Ok(false);
            }
            let mut found = None;
            let mut offset = 0;
            for stored in self.iter() {
                let (stored_tag, stored_value) = stored?;
                // Lengths are minimal varints (the reader refuses others), so this is exact.
                let end = offset + 4 + varint_len(stored_value.len()) + stored_value.len();
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
            self.bytes[start..end].copy_from_slice(value);
        }
        Ok(true)
    }
}

/// The length [`FieldRecord::merge`] would give the record `stored`, computed without
/// merging (or copying) it.
///
/// # Errors
///
/// When either record is malformed.
pub(crate) fn merged_len(stored: &[u8], update: &FieldRecord) -> Result<usize, CorruptRecord> {
    update.iter().try_for_each(|field| field.map(drop))?;
    let updated = |tag: u32| update.iter().any(|field| matches!(field, Ok((t, _)) if t == tag));
    let mut kept = 0;
    for field in (Fields {
        bytes: stored,
        offset: 0,
    }) {
        let (tag, value) = field?;
        if !updated(tag) {
            kept += 4 + varint_len(value.len()) + value.len();
        }
    }
    Ok(kept + update.bytes.len())
}

/// Iterator over the `(tag, value)` fields of a [`FieldRecord`].
#[derive(Debug)]
pub struct Fields<'a> {
    bytes: &'a [u8],
    offset: usize,
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

fn write_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: usize) -> usize {
    (usize::BITS - (value | 1).leading_zeros()).div_ceil(7) as usize
}

fn read_varint(bytes: &[u8]) -> Option<(usize, usize)> {
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

/// Encodes the fields in `which` (indices of `T::FIELDS`) into a record.
///
/// # Errors
///
/// [`Error::Encode`] when a field's value cannot be serialized.
pub fn encode<T: SessionData>(data: &T, which: DirtySet) -> Result<FieldRecord, Error> {
    let mut record = FieldRecord::new();
    let mut scratch = Vec::new();
    for index in which.iter().take_while(|&index| index < T::FIELDS.len()) {
        let def = &T::FIELDS[index];
        scratch.clear();
        scratch.extend_from_slice(&def.fingerprint.to_le_bytes());
        data.encode_field(index, &mut scratch).map_err(|source| Error::Encode {
            field: def.name,
            source,
        })?;
        record.push(def.tag, &scratch);
    }
    Ok(record)
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
    for field in (Fields { bytes, offset: 0 }) {
        let (tag, value) = match field {
            Ok(field) => field,
            Err(error) => {
                tracing::warn!(%error, "session record is malformed; the remaining fields keep their defaults");
                break;
            }
        };
        let Some(index) = T::FIELDS.iter().position(|def| def.tag == tag) else {
            if tag == DEVICE_TAG
                && let Some((size, device)) = sizing.as_mut()
            {
                size.device = stored_len(value.len());
                **device = Device::decode(value);
            }
            continue;
        };
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
        for (tag, value) in record.iter().map_while(Result::ok) {
            if let Some(slot) = self.slot::<T>(tag) {
                *slot = stored_len(value.len());
            }
        }
    }

    /// The total after `update`'s fields replace the stored ones.
    pub(crate) fn after<T: SessionData>(&self, update: &FieldRecord) -> usize {
        let mut total = self.total;
        for (tag, value) in update.iter().map_while(Result::ok) {
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

/// The bytes a field of `len` value bytes takes in a record.
fn stored_len(len: usize) -> u32 {
    u32::try_from(4 + varint_len(len) + len).unwrap_or(u32::MAX)
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
        assert_eq!(base.iter().count(), 3);
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
