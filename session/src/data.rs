//! The contract between `#[derive(SessionData)]` and the runtime.

use std::{fmt, sync::Arc};

use crate::{clock::Clock, field::FieldError, index::IndexKey};

/// A typed session: a struct whose fields are stored, tracked and flashed field by field.
///
/// Derive it: the trait's items are the glue the derive generates for the runtime, hidden
/// from these docs and free to change in any release, so it is not meant to be implemented
/// by hand.
///
/// # Deriving
///
/// ```
/// use session::{Expiring, Flash, SessionData};
///
/// #[derive(SessionData)]
/// struct AppSession {
///     user: Option<String>,
///     #[session(default = 1)]
///     visits: u64,
///     #[session(flash)]
///     notice: Flash<String>,
///     #[session(expiring)]
///     code: Expiring<String>,
///     #[session(rename = "tz")]
///     timezone: String,
///     #[session(skip)]
///     scratch: Vec<u8>,
/// }
/// ```
///
/// Field attributes:
///
/// | attribute | effect |
/// |---|---|
/// | `#[session(default = EXPR)]` | the value of a new session, and of a field missing from (or no longer decodable in) a stored record; otherwise `Default::default()` |
/// | `#[session(flash)]` | a flash slot (type [`Flash<T>`](crate::Flash)): set for the next request, gone after it |
/// | `#[session(expiring)]` | an expiring slot (type [`Expiring<T>`](crate::Expiring)): set with a time to live, absent after it |
/// | `#[session(index)]` | the session's principal (type `Option<T>`, say the user ID): stores index sessions by it, to list or end all of one user's sessions (see below) |
/// | `#[session(rename = "name")]` | the stable stored name (default: the field name), so a Rust rename keeps stored data |
/// | `#[session(skip)]` | not stored: per-request scratch space, reset to its default on every load |
/// | `#[session(version = N)]` | marks a change inside the field's own type (see below) |
///
/// Container attribute: `#[session(crate = "path::to::session")]` when the runtime crate is
/// re-exported under another path.
///
/// # Changing a field's type
///
/// Each stored value carries a 16-bit fingerprint of its field's type as written (paths
/// reduced to their last segment) and of its `version`. A value stored under another
/// fingerprint takes the field's default and is logged, so a retyped field is never
/// misread, even where postcard would decode it (a `u64` 10 read as an `i64` is 5). A
/// widening counts as a retype too. A change inside the field's own type (a field of a
/// nested struct) does not change the type as written: bump the field's `version` with it.
///
/// # Generated accessors
///
/// The derive generates a type `<Name>Fields` that [`Session<Name>`](crate::Session)
/// dereferences to. For a stored field `user: T` it has `user(&self) -> &T`,
/// `set_user(&mut self, T)` and `user_mut(&mut self) -> &mut T`; the last two mark the field
/// changed, so the next save writes exactly the changed fields. A flash field `notice:
/// Flash<T>` gets `notice() -> Option<&T>` (the value visible in this request),
/// `set_notice(T)` (for the next request), `keep_notice()` and `notice_now(T)` (this request
/// only). An expiring field `code: Expiring<T>` gets `code() -> Option<&T>` (`None` once its
/// deadline passed on the provider's clock), `set_code(T, Duration)` (the value and its time
/// to live), `take_code() -> Option<T>`, `clear_code()` and `code_expires_in() ->
/// Option<Duration>`; `set_code`, `take_code` and `clear_code` mark the field changed, like
/// a setter.
///
/// A field of type `Expiring<T>` needs `#[session(expiring)]`, and a field with
/// `#[session(flash)]` or `#[session(expiring)]` needs the matching type; `expiring` does not
/// combine with `flash`, `skip` or `default`.
///
/// Every field type must implement `Default` (or have `#[session(default = ...)]`), and every
/// stored field type `serde::Serialize` and `serde::de::DeserializeOwned`; violations are
/// compile errors on the field.
///
/// # The index field
///
/// One field may be marked `#[session(index)]`: the principal the session belongs to, such
/// as `user: Option<String>` or `account: Option<u64>`. It is stored as any field, and on
/// every write the provider also puts its digest ([`IndexKey`](crate::store::IndexKey):
/// SHA-256 of the stored name and the value, never the value itself) in the session's
/// metadata, where a store implementing [`IndexStore`](crate::store::IndexStore) indexes
/// it. Then [`SessionProvider::sessions_of`](crate::SessionProvider::sessions_of) lists the
/// sessions of the same principal and
/// [`delete_all_of`](crate::SessionProvider::delete_all_of) and
/// [`delete_others_of`](crate::SessionProvider::delete_others_of) end them. `None` (nobody
/// logged in) is not indexed.
///
/// Its type must be `Option<T>` with `T: serde::Serialize`. At most one field of a type is
/// the index: a session belongs to one principal, and a second index would need a second
/// digest in every record and a second index in every store. `index` does not combine with
/// `flash`, `expiring` (the index must not vanish on its own), `skip` (an index is stored)
/// or `default` (a new session belongs to nobody).
pub trait SessionData: Sized + Send + Sync + 'static {
    /// The generated accessor type that `Session<Self>` dereferences to.
    #[doc(hidden)]
    type Fields: FieldsOf<Self>;

    /// The stored fields, in declaration order; a field's index is its position here.
    #[doc(hidden)]
    const FIELDS: &'static [FieldDef];

    /// A session's data before anything is stored in it.
    #[doc(hidden)]
    fn initial() -> Self;

    /// Appends the encoding of field `index` to `out`.
    ///
    /// # Errors
    ///
    /// When the value cannot be serialized, or `index` is not a field.
    #[doc(hidden)]
    fn encode_field(&self, index: usize, out: &mut Vec<u8>) -> Result<(), FieldError>;

    /// Replaces field `index` with the value decoded from `bytes`; on error the field is
    /// left as it was.
    ///
    /// # Errors
    ///
    /// When `bytes` do not decode as the field's current type, or `index` is not a field.
    #[doc(hidden)]
    fn decode_field(&mut self, index: usize, bytes: &[u8]) -> Result<(), FieldError>;

    /// The flash fields whose stored value must change at the next save.
    #[doc(hidden)]
    fn flash_dirty(&self) -> DirtySet {
        DirtySet::EMPTY
    }

    /// Records that every flash field's stored value was just written.
    #[doc(hidden)]
    fn flash_saved(&mut self) {}

    /// Forgets the values of expiring fields whose deadline passed by `now_ms`, without
    /// marking them changed.
    #[doc(hidden)]
    fn drop_expired(&mut self, now_ms: u64) {
        let _ = now_ms;
    }

    /// The digest of the `#[session(index)]` field's value; `None` when it is `None`, or
    /// the type has no index field.
    #[doc(hidden)]
    fn index_key(&self) -> Option<IndexKey> {
        None
    }
}

/// Describes one stored field of a [`SessionData`] type (generated code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// The stored name (the field name, or its `rename`).
    pub name: &'static str,
    /// The stable tag of the stored name, which identifies the field in encoded records.
    pub tag: u32,
    /// Whether the field is a flash slot.
    pub flash: bool,
    /// A 16-bit digest of the field's type as written (and its `version`), stored with its
    /// value, so a value stored under another type is noticed instead of misread.
    pub fingerprint: u16,
}

impl FieldDef {
    /// Describes a field.
    pub const fn new(name: &'static str, tag: u32, flash: bool, fingerprint: u16) -> Self {
        Self {
            name,
            tag,
            flash,
            fingerprint,
        }
    }

    /// The tag the derive gives a stored name: 32-bit FNV-1a of its UTF-8 bytes.
    pub const fn tag_of(name: &str) -> u32 {
        let bytes = name.as_bytes();
        let mut hash = 0x811c_9dc5_u32;
        let mut i = 0;
        while i < bytes.len() {
            hash = (hash ^ bytes[i] as u32).wrapping_mul(0x0100_0193);
            i += 1;
        }
        hash
    }
}

/// A set of field indices (at most 64, the limit the derive enforces).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DirtySet(u64);

impl DirtySet {
    /// No field.
    pub const EMPTY: Self = Self(0);

    /// Every field of a type with `count` fields.
    pub const fn all(count: usize) -> Self {
        if count >= 64 {
            Self(u64::MAX)
        } else {
            Self((1u64 << count) - 1)
        }
    }

    /// Adds field `index`.
    pub fn insert(&mut self, index: usize) {
        debug_assert!(index < 64, "a session has at most 64 fields");
        self.0 |= 1u64 << (index & 63);
    }

    /// Whether field `index` is in the set.
    pub const fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1u64 << index) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many fields are in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The fields in either set.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The indices in the set, in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let index = rest.trailing_zeros() as usize;
            // Clears the lowest set bit; at 64 (none left) the iteration ends.
            rest &= rest.wrapping_sub(1);
            (index < 64).then_some(index)
        })
    }
}

/// A session's data together with the fields changed since it was loaded or saved, and
/// the provider's clock, which the accessors of expiring fields read.
#[doc(hidden)]
#[derive(Clone)]
pub struct Tracked<T> {
    data: T,
    marked: DirtySet,
    clock: Arc<dyn Clock>,
}

impl<T: fmt::Debug> fmt::Debug for Tracked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("data", &self.data)
            .field("marked", &self.marked)
            .finish_non_exhaustive()
    }
}

#[doc(hidden)]
impl<T> Tracked<T> {
    pub fn new(data: T, clock: Arc<dyn Clock>) -> Self {
        Self {
            data,
            marked: DirtySet::EMPTY,
            clock,
        }
    }

    /// The provider's current time, in milliseconds since the Unix epoch.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    #[inline]
    pub fn data(&self) -> &T {
        &self.data
    }

    /// Access that does not mark anything: for skipped and flash fields.
    #[inline]
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }

    /// Marks field `index` changed and gives access to it.
    #[inline]
    pub fn mark(&mut self, index: usize) -> &mut T {
        self.marked.insert(index);
        &mut self.data
    }

    pub fn marked(&self) -> DirtySet {
        self.marked
    }

    pub fn clear_marks(&mut self) {
        self.marked = DirtySet::EMPTY;
    }

    pub fn into_data(self) -> T {
        self.data
    }
}

/// Connects the generated accessor type to the tracked data it wraps.
#[doc(hidden)]
pub trait FieldsOf<T>: Send + Sync + Sized + 'static {
    fn wrap(tracked: Tracked<T>) -> Self;
    fn tracked(&self) -> &Tracked<T>;
    fn tracked_mut(&mut self) -> &mut Tracked<T>;
    fn into_tracked(self) -> Tracked<T>;
}

#[cfg(test)]
mod tests {
    use super::DirtySet;

    #[test]
    fn a_dirty_set_iterates_its_indices_in_order() {
        assert_eq!(DirtySet::EMPTY.iter().count(), 0);
        let mut set = DirtySet::EMPTY;
        for index in [63, 0, 5, 6, 40] {
            set.insert(index);
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 5, 6, 40, 63]);
        assert_eq!(DirtySet::all(64).iter().count(), 64);
        assert_eq!(DirtySet::all(3).iter().collect::<Vec<_>>(), [0, 1, 2]);
    }
}
