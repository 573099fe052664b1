//! The server-side store contract, and the stores.
//!
//! A store keeps [`Record`]s (lifetime data plus a [`FieldRecord`] of field-tagged bytes)
//! keyed by the [`StoreKey`] digest of the session ID. It knows nothing of the session's
//! Rust type, so one store serves every `SessionData` type. The stores this crate ships
//! ([`MemoryStore`](crate::MemoryStore), `RedisStore`, `ClusteredStore`) are at the crate
//! root; this module is what a store of your own implements.
//!
//! # The record format
//!
//! A [`FieldRecord`] is a sequence of fields, each written as
//!
//! ```text
//! tag     u32, little-endian: a stable hash of the field's stored name
//! length  unsigned LEB128 varint: byte length of what follows
//! value   2 bytes of type fingerprint, then the field's postcard encoding
//! ```
//!
//! Fields at their default are not stored. An update that sets a field back to its default
//! carries a *removal*: the field's tag with an empty value (a stored value never is empty),
//! which drops the stored field ([`FieldRecord::push_removal`]).
//!
//! A store need not look inside: it keeps the bytes, and merges an update's fields into the
//! stored ones with [`FieldRecord::merge`]. A store that keeps each session as one value
//! and cannot merge in the backend (the Redis store) merges in the application instead:
//! its load hands out a [`Revision`] of what it read, which the provider passes back with
//! the session's changes, and the store writes the merged whole only if the stored session
//! is still that revision ([`SessionStore::load_revision`],
//! [`SessionStore::update_revision`]).
//!
//! # The metadata format
//!
//! The Redis and SQL stores keep a record's [`SessionMeta`] as bytes (sealed with
//! encryption at rest):
//!
//! ```text
//! form              1 byte: 1
//! created           varint: ms since the Unix epoch
//! accessed          varint: ms after created (wrapping, as are the two below)
//! idle deadline     varint: ms after accessed
//! absolute deadline varint: ms after created
//! idle window       varint: the session's own, in ms; 0 for the configured one
//! lineage           16 bytes
//! flags             1 byte: 1 server-only, 2 sub-session, 4 indexed; plus 16 times the
//!                   cookie lifetime (0 configured, 1 browser session, 2 persistent)
//! parent            32 bytes, for a sub-session: its parent's StoreKey digest
//! index             32 bytes, for an indexed session: its IndexKey digest
//! ```
//!
//! The varints are postcard's (unsigned LEB128). A session of the configured lifetimes
//! takes 33 bytes. Metadata written by earlier versions, fixed-width (the four times as
//! 8-byte big-endian integers, then the lineage, idle window, cookie lifetime, flags and
//! keys, its first byte 0), is still read.
//!
//! Stores that can enumerate their sessions also implement [`QueryStore`]; the provider's
//! query and bulk operations exist only for those, so asking a store that cannot do them
//! is a compile error rather than a runtime surprise. Likewise, stores that keep an index
//! of the sessions' [`SessionMeta::index`] implement [`IndexStore`], which the provider's
//! "where am I logged in" and "log me out everywhere" operations need.

use std::future::Future;

use crate::{Error, session::SessionMeta};

/// A store's own failure that is not the backend being unreachable: unreadable stored bytes,
/// an answer it does not expect.
pub(crate) fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store(Box::new(error))
}
pub use crate::{
    codec::{CorruptRecord, FieldRecord, Fields},
    id::StoreKey,
    index::IndexKey,
};

#[cfg(feature = "clustered")]
pub(crate) mod clustered;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub(crate) mod sql;
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub(crate) mod value;

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Lifetime data.
    pub meta: SessionMeta,
    /// The encoded fields.
    pub fields: FieldRecord,
}

/// What a store read a record as, handed back to it when the record's changes are saved:
/// a store that keeps each session as one value (the Redis store) writes the whole record
/// on condition that the stored one is still this revision, a compare-and-set, instead of
/// merging the changes in the store. Opaque to everything but the store that made it.
///
/// A store that merges changes itself (the memory and SQL stores) makes none and ignores
/// the one it is given: [`SessionStore::load_revision`] and
/// [`SessionStore::update_revision`] have defaults that do so.
///
/// Cheap to clone: the bytes are shared (a cache can hand out the revision it holds). Its
/// `Debug` shows their length only: they may hold session data.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Revision(bytes::Bytes);

impl std::fmt::Debug for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revision").field("len", &self.0.len()).finish()
    }
}

impl Revision {
    /// No revision: the save does not know what is stored (a store that needs one reads
    /// it first).
    pub const fn none() -> Self {
        Self(bytes::Bytes::new())
    }

    /// A revision of the store's own making (the bytes are kept, not copied).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes.into())
    }

    /// The bytes the store made it of; empty for [`none`](Self::none).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether this is [`none`](Self::none).
    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }
}

/// The outcome of [`SessionStore::rename`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rename {
    /// The record moved to the new key; the old key no longer exists.
    Renamed,
    /// There was no live record under the old key.
    SourceMissing,
    /// A live record already exists under the new key; nothing changed.
    TargetExists,
}

/// An asynchronous server-side session store.
///
/// Every operation is atomic with respect to the others on the same key. A store must
/// never return a record whose [`SessionMeta::is_expired`] is true by its clock; the
/// provider checks again with its own.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a server-side session store",
    note = "`CookieSessions` keeps the whole session in the cookie and is given to `SessionLayer` directly; `SessionProvider` and its query and bulk operations need a server-side store such as `MemoryStore`"
)]
pub trait SessionStore: Send + Sync + 'static {
    /// Loads the record under `key`.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn load(&self, key: &StoreKey) -> impl Future<Output = Result<Option<Record>, Error>> + Send;

    /// Loads the record under `key` with the [`Revision`] a later
    /// [`update_revision`](Self::update_revision) starts from. The default loads and
    /// makes none.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn load_revision(&self, key: &StoreKey) -> impl Future<Output = Result<Option<(Record, Revision)>, Error>> + Send {
        async move { Ok(self.load(key).await?.map(|record| (record, Revision::none()))) }
    }

    /// Stores a new record; never overwrites a live one.
    ///
    /// Returns `false`, changing nothing, when a live record exists under `key`.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn create(&self, key: &StoreKey, record: &Record) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Does what [`create`](Self::create) does; returns the [`Revision`] the record is
    /// stored as, for its next save, or `None`, changing nothing, when a live record exists
    /// under `key`. The default creates and makes none.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn create_revision(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<Option<Revision>, Error>> + Send {
        async move { Ok(self.create(key, record).await?.then(Revision::none)) }
    }

    /// Replaces the lifetime data and the fields present in `update.fields`, drops the
    /// fields it removes (empty values), keeping every other stored field.
    ///
    /// Returns `false`, changing nothing, when no live record exists under `key`.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn update(&self, key: &StoreKey, update: &Record) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Does what [`update`](Self::update) does, for a record loaded as `revision` (or
    /// [`Revision::none`]); returns the revision the record is stored as afterwards, for
    /// the next save, or `None`, changing nothing, when no live record exists under `key`.
    /// Changes stored since `revision` are kept, as `update` keeps them. The default
    /// updates and makes none.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn update_revision(
        &self,
        key: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> impl Future<Output = Result<Option<Revision>, Error>> + Send {
        let _ = revision;
        async move { Ok(self.update(key, update).await?.then(Revision::none)) }
    }

    /// Atomically moves the record from `from` to `to` and applies `update` as
    /// [`update`](Self::update) does; afterwards `from` no longer exists.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        update: &Record,
    ) -> impl Future<Output = Result<Rename, Error>> + Send;

    /// Does what [`rename`](Self::rename) does, for a record loaded as `revision` (or
    /// [`Revision::none`]), as [`update_revision`](Self::update_revision) does for an
    /// update; with [`Rename::Renamed`], also returns the revision the record is stored as
    /// under `to` (otherwise [`Revision::none`]). The default renames and makes none.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn rename_revision(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> impl Future<Output = Result<(Rename, Revision), Error>> + Send {
        let _ = revision;
        async move { Ok((self.rename(from, to, update).await?, Revision::none())) }
    }

    /// Deletes the record under `key`; returns whether one existed.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn delete(&self, key: &StoreKey) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Whether the session under `key` expired and the store still remembers it (its
    /// expired-session retention), so the provider can tell "your session expired" from
    /// "no such session". The default, for a store that keeps no such memory, is `false`.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn expired(&self, key: &StoreKey) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = key;
        std::future::ready(Ok(false))
    }
}

/// One page of a [`QueryStore::scan`].
#[derive(Debug, Clone, Default)]
pub struct ScanPage {
    /// Live records of this page.
    pub records: Vec<(StoreKey, Record)>,
    /// The cursor of the next page; `None` when the scan is complete.
    pub next: Option<u64>,
}

/// A store that can enumerate its sessions, in batches.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot enumerate its sessions",
    note = "query and bulk operations (for_each, find, count, delete_where, clear) need a store that implements `QueryStore`, such as `MemoryStore`"
)]
pub trait QueryStore: SessionStore {
    /// Reads a page of live records, starting at `cursor` (0 for the first page) with about
    /// `batch` records. Sessions created or deleted during a scan may or may not appear.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn scan(&self, cursor: u64, batch: usize) -> impl Future<Output = Result<ScanPage, Error>> + Send;

    /// Counts live sessions.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn count(&self) -> impl Future<Output = Result<usize, Error>> + Send;

    /// Deletes these records; returns how many existed.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn delete_many(&self, keys: &[StoreKey]) -> impl Future<Output = Result<usize, Error>> + Send;

    /// Deletes every session of this store; returns how many existed.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn clear(&self) -> impl Future<Output = Result<usize, Error>> + Send;
}

/// A store that keeps an index from each session's [`SessionMeta::index`] to its key, so
/// that every session of one principal (a user) can be listed and deleted together, at a
/// cost proportional to that principal's sessions, never to all sessions.
///
/// # What the store keeps
///
/// Only the [`IndexKey`] digest, which the provider puts in the metadata of every record it
/// writes (from the session type's `#[session(index)]` field; `None` when the field is
/// `None` or the type has no index). The store keeps the metadata as it keeps it today;
/// the index is a second structure over it (a map, a set per index key, a table column
/// with a database index), kept atomically with the record on every write:
///
/// - [`create`](SessionStore::create) with an index adds the key under it;
/// - [`update`](SessionStore::update) whose metadata carries another index (or none) moves
///   the key, or removes it;
/// - [`rename`](SessionStore::rename) moves the entry to the new key, under the index of
///   the update's metadata: the old key is in no index afterwards;
/// - [`delete`](SessionStore::delete), [`QueryStore::delete_many`], [`QueryStore::clear`],
///   expiry and eviction remove it (or leave an entry that the operations below skip and
///   clean up, as long as that costs no more than the index's own sessions).
///
/// # The race rule
///
/// A session whose index was `index` before [`delete_by_index`](Self::delete_by_index)
/// began is dead when it returns, even if it was updated or renamed (its ID regenerated)
/// concurrently: a rename either completed before the deletion saw the index (and the new
/// key is deleted) or runs after it and finds its source gone ([`Rename::SourceMissing`]).
/// "Log me out everywhere" is only worth its name if a session cannot slip out of it by
/// changing its ID at the same moment. Sessions created with the index while the deletion
/// runs may survive it. The store contract checks this under concurrency
/// (`index_contract!` with the `test-util` feature).
#[diagnostic::on_unimplemented(
    message = "`{Self}` keeps no index of its sessions",
    note = "listing or ending every session of one user (sessions_of, delete_all_of, delete_others_of) needs a store that implements `IndexStore`, such as `MemoryStore`"
)]
pub trait IndexStore: SessionStore {
    /// The live sessions whose metadata index is `index`, with their records.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn list_by_index(&self, index: &IndexKey) -> impl Future<Output = Result<Vec<(StoreKey, Record)>, Error>> + Send;

    /// Deletes every session whose index is `index`, except the one under `keep`; returns
    /// the keys of the live sessions it deleted. See the race rule above.
    ///
    /// # Errors
    ///
    /// When the backend fails; sessions deleted before the failure stay deleted.
    fn delete_by_index(
        &self,
        index: &IndexKey,
        keep: Option<&StoreKey>,
    ) -> impl Future<Output = Result<Vec<StoreKey>, Error>> + Send;
}
