//! The per-field glue the generated code calls: how one field's value is encoded and
//! decoded (plain values, flash slots and expiring slots), and the check that a field's type can be
//! stored at all.

use serde::{Serialize, de::DeserializeOwned};

use crate::{expiring::ExpiringSlot, flash::FlashSlot};

/// Why one field's value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// postcard rejected the value or the bytes.
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
    /// The bytes decoded but left bytes over: the stored type differs from the field's type.
    #[error("{0} bytes left over after decoding: the stored value has another type")]
    TrailingBytes(usize),
    /// The index names no stored field.
    #[error("no stored field has index {0}")]
    NoSuchField(usize),
}

/// A type that can be a stored session field.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a session",
    label = "this field's type must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    note = "derive them with `#[derive(Serialize, Deserialize)]`, or mark the field `#[session(skip)]`"
)]
pub trait StoredField: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> StoredField for T {}

/// How one field is encoded and decoded; built once per field by generated code, so a
/// type that cannot be stored is reported once.
#[doc(hidden)]
pub struct FieldCodec<T> {
    pub encode: fn(&T, &mut Vec<u8>) -> Result<(), FieldError>,
    pub decode: fn(&mut T, &[u8]) -> Result<(), FieldError>,
}

/// The codec of a plain field.
#[doc(hidden)]
pub const fn value_codec<T: StoredField>() -> FieldCodec<T> {
    FieldCodec {
        encode: encode_value::<T>,
        decode: decode_value::<T>,
    }
}

/// The codec of a flash field.
#[doc(hidden)]
pub const fn flash_codec<F>() -> FieldCodec<F>
where
    F: FlashSlot,
    F::Value: StoredField,
{
    FieldCodec {
        encode: encode_flash::<F>,
        decode: decode_flash::<F>,
    }
}

/// The codec of an expiring field.
#[doc(hidden)]
pub const fn expiring_codec<E>() -> FieldCodec<E>
where
    E: ExpiringSlot,
    E::Value: StoredField,
{
    FieldCodec {
        encode: encode_expiring::<E>,
        decode: decode_expiring::<E>,
    }
}

/// Encodes a plain field value.
fn encode_value<T: StoredField>(value: &T, out: &mut Vec<u8>) -> Result<(), FieldError> {
    let buffer = std::mem::take(out);
    *out = postcard::to_extend(value, buffer)?;
    Ok(())
}

/// Decodes a plain field value, rejecting left-over bytes.
fn decode_value<T: StoredField>(slot: &mut T, bytes: &[u8]) -> Result<(), FieldError> {
    *slot = decode_exact(bytes)?;
    Ok(())
}

/// Encodes a flash slot as the optional value it stores.
fn encode_flash<F>(slot: &F, out: &mut Vec<u8>) -> Result<(), FieldError>
where
    F: FlashSlot,
    F::Value: StoredField,
{
    let buffer = std::mem::take(out);
    *out = postcard::to_extend(&slot.stored(), buffer)?;
    Ok(())
}

/// Decodes a stored flash value into the slot as this request's value.
fn decode_flash<F>(slot: &mut F, bytes: &[u8]) -> Result<(), FieldError>
where
    F: FlashSlot,
    F::Value: StoredField,
{
    slot.loaded(decode_exact(bytes)?);
    Ok(())
}

/// Encodes an expiring slot as its optional deadline and value, expired or not: the
/// deadline is checked on read.
fn encode_expiring<E>(slot: &E, out: &mut Vec<u8>) -> Result<(), FieldError>
where
    E: ExpiringSlot,
    E::Value: StoredField,
{
    let buffer = std::mem::take(out);
    *out = postcard::to_extend(&slot.stored(), buffer)?;
    Ok(())
}

/// Decodes a stored deadline and value into an expiring slot.
fn decode_expiring<E>(slot: &mut E, bytes: &[u8]) -> Result<(), FieldError>
where
    E: ExpiringSlot,
    E::Value: StoredField,
{
    slot.loaded(decode_exact(bytes)?);
    Ok(())
}

fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(FieldError::TrailingBytes(rest.len()))
    }
}

/// The error for an index outside `SessionData::FIELDS`.
#[doc(hidden)]
pub fn no_such_field(index: usize) -> Result<(), FieldError> {
    Err(FieldError::NoSuchField(index))
}
