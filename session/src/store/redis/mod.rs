//! The Redis store. Its layout, round trips and failure handling are documented on
//! [`RedisStore`]; each file here has one job:
//!
//! - `builder.rs`: configuration and start-up (connect, load the scripts);
//! - `call.rs`: the call loop every command goes through (timeout, retry, breaker, metrics);
//! - `connection.rs`: one server or a Redis Cluster behind one connection type;
//! - `layout.rs`: key names, hash field names, the metadata bytes;
//! - `record.rs`: a [`Record`] to hash fields and back;
//! - `scripts.rs`: the Lua scripts that make each write one atomic round trip;
//! - `cluster.rs`: what differs on a Redis Cluster (regenerate across slots, scanning
//!   every primary);
//! - `query.rs`: the query and bulk operations;
//! - `revocation.rs`: the revocation generations of cookie sessions;
//! - `tracking.rs`: the narrow interface the clustered store uses;
//! - `telemetry.rs`: metrics and the breaker's log lines.

mod builder;
mod call;
mod cluster;
mod connection;
mod index;
mod layout;
mod query;
mod record;
mod revocation;
mod scripts;
mod telemetry;
#[cfg(feature = "clustered")]
pub(crate) mod tracking;

use std::{
    fmt,
    sync::{Arc, RwLock},
    time::Duration,
};

pub use self::{builder::RedisStoreBuilder, revocation::RedisRevocationStore};
use self::{
    call::ScriptCall,
    connection::{Backend, Connection},
    layout::Keys,
    record::{Hash, Whole, WholeWrite},
    scripts::Scripts,
};
use crate::{
    Error,
    clock::Clock,
    id::StoreKey,
    resilience::{BreakerState, CircuitBreaker, RetryPolicy},
    session::SessionMeta,
    store::{Record, Rename, Revision, SessionStore, value::ValueCodec},
};

/// A session store in Redis (feature `redis`): one hash per session, one round trip per load
/// of a stored session and per save (see [Round trips](#round-trips) for the exceptions),
/// with a per-command timeout, retry and a circuit breaker.
///
/// Cheap to clone; clones share one multiplexed, auto-reconnecting connection.
///
/// # Layout
///
/// A session is one Redis hash under the key
///
/// ```text
/// {prefix}{<digest>}          e.g.  session:{3f9a…c2}   (64 lowercase hex digits)
/// ```
///
/// where `<digest>` is the [`StoreKey`] (SHA-256 of the session ID, never the ID
/// itself). The digest is the key's Redis Cluster *hash tag*, so everything stored for one
/// session lives in one slot. The hash holds:
///
/// | field | value |
/// |---|---|
/// | `w` | the whole session, below |
/// | `x` | the expiry (the earlier deadline) in decimal ms, read by the write scripts |
/// | `i` | for a session in an index ([`IndexStore`](crate::store::IndexStore)), the index digest in hex, `:` and the absolute deadline in ms |
///
/// and `w`, the session's whole value:
///
/// ```text
/// revision  8 bytes, little-endian: 1 when created, one more at every write
///           (0: frozen by a Redis Cluster regenerate, see below)
/// meta len  unsigned LEB128 varint: the length of the metadata
/// meta      the metadata in the metadata format (crate::store)
/// fields    the fields not at their default, in the record format (crate::store); each
///           value a marker byte (0 plain, 1 gzip, 2 sealed) and the field's postcard bytes
/// ```
///
/// (The metadata and record formats are in the [`store`](crate::store#the-record-format)
/// module's documentation.) A load is one `HGET` of `w`: one value to read and decode,
/// whatever the number of fields. A save writes the whole value on condition that the
/// stored revision is still the one its load read (a compare-and-set in a Lua script); if
/// another save of the same session came first, the script answers the current value in
/// the same round trip, and the save merges its changed fields into it and tries again.
/// So overlapping saves of different fields both persist, and an unchanged field is
/// written back as it was read, never re-encoded. The hash is in Redis's hash-table
/// encoding once `w` is longer than `hash-max-listpack-value` (64 bytes by default): about
/// 470 bytes of Redis memory for a session whose `w` is 250 bytes.
///
/// Earlier versions wrote a session as one hash field per field (`m` the metadata, `d`,
/// `d1` … the fields as created, then one hash field per field changed since, named by its
/// tag as 4 bytes, big-endian, or `f:` and 8 hex digits). Such hashes are still read, and
/// the next save of one rewrites it whole in this layout. An earlier version does not read
/// this layout: **stop every instance of an earlier version before starting this one**, and
/// do not roll back to one. Sessions survive the upgrade.
///
/// The key's TTL (`PEXPIRE`) runs to the end of the minute (by the store's clock) in which
/// the session expires, plus the expired-session retention. Every write moves the expiry by
/// the time since the session's previous write; while it stays in its minute (writes less
/// than a minute apart) the update leaves the TTL alone, which spares Redis a command per
/// save. The key may so outlive its session by up to a minute; liveness is judged by the
/// expiry field `x`, never by the TTL. (A key written by an earlier version has a TTL that
/// ends at its expiry exactly: until its expiry next moves into another minute, such a
/// session may leave Redis up to a minute before its deadline.)
///
/// Under a clustered store (`ClusteredStore`, feature `clustered`), and only there, each
/// write also sets and deletes, inside its script, the key's *signature*
/// `{prefix}{<digest>}!<writer>` (`<writer>`: 16 random hex digits per store), which never
/// outlives the script and never matches a scan. It makes Redis's invalidation messages
/// name the writer, which the clustered store needs; a plain store does not pay for it.
/// (A Redis Cluster regenerate signs its three steps either way.)
///
/// # Encryption at rest
///
/// With [`RedisStoreBuilder::encryption`], the metadata and every field in `w` hold a sealed
/// envelope (marker `2`, then the envelope text; see [`crypto`](crate::crypto#the-envelope))
/// under the purpose `store:redis`, so a stored value never opens as a cookie. Each sealed
/// value is bound to where it belongs: the metadata to its key's digest, a field to its tag
/// and to the session's [`lineage`](crate::SessionMeta::lineage) (which the metadata holds,
/// and which a regenerated ID keeps). A value copied into another session or field does not open (the
/// field takes its default; metadata copied to another key is no session), and a sealed
/// value expires with the session's absolute deadline. A dump of the database shows no
/// session data and no usable lifetimes: forged or plain values are not accepted. Left
/// visible: the digests, the field tags, value lengths, the revision and `x`. A party that can write to
/// Redis can still delete sessions, or put back an older value of a session's own field.
/// Keys rotate as with cookies
/// ([`KeyRing::with_previous`](crate::crypto::KeyRing::with_previous)): values are sealed
/// with the newest key as they are written (the metadata at every save, a field when it
/// changes), so keep a retired key in the ring for one absolute timeout. Turning encryption on (or off) makes existing sessions unreadable.
///
/// # Round trips
///
/// - load: one `HGET` of `w`; where there is none, an `HGETALL` too, to tell a hash an
///   earlier version wrote from no session (so a load of an unknown or deleted session is
///   two round trips); a record that is absent, expired by the store's clock or has no
///   readable metadata is no session;
/// - create, update (including a sliding refresh) and rename (regenerate): one `EVALSHA` of
///   a Lua script that checks liveness and the revision and writes the session and its
///   TTL atomically, plus one more per save of the same session that came first (see
///   above); the scripts are loaded when the store is built and reloaded transparently
///   after a Redis restart (on a Redis Cluster, a rename is three, see
///   [below](#redis-cluster)). A save of a session the caller did not load through the
///   provider ([`SessionStore::update`] rather than
///   [`SessionStore::update_revision`]) reads it first: two round trips;
/// - delete: one `EVALSHA` (a `DEL`, and the signature when writes are signed);
/// - scan: `SCAN MATCH {prefix}{…} COUNT n` (never `KEYS`) plus one pipelined round trip
///   for the page's records; count, clear and delete_many work in batches the same way.
///
/// # Failures
///
/// Every command is bounded by the command timeout. Loads, deletes and the query
/// operations are retried with capped exponential backoff and full jitter
/// ([`RetryPolicy`]); writes are not, since a write that timed out may still have been
/// applied. A [circuit breaker](crate::resilience::BreakerConfig) counts backend failures (unreachable,
/// timeout, `LOADING`, `READONLY`, …, never "not found"), and while open fails calls at
/// once with [`Error::CircuitOpen`]. When it opens, the connection is replaced, so a
/// silently dead TCP connection is not reused.
///
/// # Redis Cluster
///
/// [`RedisStore::cluster_builder`] connects to a Redis Cluster through the redis crate's
/// cluster client, which routes each command to the primary of its key's slot and follows
/// redirections and failovers. The layout is the same: the digest is the hash tag, so one
/// session is one slot, and load, create, update and delete are the same single commands
/// and scripts, one round trip each.
///
/// What differs:
///
/// - **regenerate** (rename) cannot move a session between two slots in one script. It
///   takes three scripts (three round trips), each in one slot: read the live source and a
///   digest of its content; write the target, refusing to overwrite a live one; delete the
///   source only if its content still matches the digest, else copy again, as a concurrent
///   request updated it meanwhile (so no acknowledged update is lost). The old ID is dead
///   when the call returns. The last step is retried under the store's
///   [`RetryPolicy`] (3 attempts by default, each within the command timeout): it leaves
///   a marker `{prefix}{<digest>}!moved` naming the target for a minute, so a retry of a
///   delete that ran but whose answer was lost knows the move is done. If every attempt
///   fails, the call fails and the old ID lives until its TTL (unless the source was
///   frozen, below). A crash between the steps leaves the source only (after the read) or
///   both keys (after the write), never neither; in the second case the orphan copy under
///   the new ID, which was never handed out, expires with its TTL, and the old ID lives
///   until its own. If updates keep racing it, the last of four attempts freezes the source
///   as it reads it (its expiry field `x` and its revision set to 0: loads and writes then
///   treat it as gone, and a racing update fails as it would after an atomic rename); a
///   crash or a failed step after that read leaves the session unusable (its data stays
///   until its TTL);
/// - **delete_many** deletes key by key, concurrently, instead of multi-key `DEL`s;
/// - **scan, count, clear** run `SCAN` on every primary in turn (found with
///   `CLUSTER NODES`), and read or delete the found keys with single-key commands. A scan
///   cursor holds the primary's index in its top 16 bits, so a failover during a scan may
///   skip or repeat sessions.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use session::{RedisStore, SessionConfig, SessionProvider, SessionData};
///
/// #[derive(SessionData)]
/// struct AppSession {
///     user: Option<String>,
/// }
///
/// # async fn run() -> Result<(), session::Error> {
/// let store = RedisStore::builder("redis://:password@127.0.0.1:6380/0")
///     .prefix("myapp:session:")
///     .command_timeout(Duration::from_millis(500))
///     .compress_above(Some(1024))
///     .build()
///     .await?;
/// let provider = SessionProvider::<AppSession, _>::new(store, SessionConfig::production().build()?);
/// # let _ = provider;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
    /// This handle's name in the signatures of its writes: 16 random hex digits.
    writer: Arc<str>,
}

/// What every clone of a store shares.
struct Inner {
    connection: RwLock<Connection>,
    backend: Backend,
    keys: Keys,
    /// Whether every write also sets and deletes its key's signature: only when a
    /// clustered store needs to tell its own writes' invalidations from others'.
    signed: bool,
    scripts: Scripts,
    values: ValueCodec,
    /// How long past its deadline an expired session's key is kept (ms).
    retention_ms: u64,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out: it may hold a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.keys.prefix())
            .field("cluster", &self.inner.backend.is_cluster())
            .field("db", &self.inner.backend.seed().redis_settings().db())
            .field("command_timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .field("breaker", &self.inner.breaker)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The circuit breaker's state, e.g. for a health check.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.backend.is_cluster()
    }

    /// The signature of this handle's writes of `key`, when writes are signed.
    fn signature(&self, key: &StoreKey) -> Option<String> {
        self.inner.signed.then(|| self.inner.keys.signature(key, &self.writer))
    }
}

impl Inner {
    /// The index mode of the scripts that write or delete sessions (see `INDEX` in
    /// `scripts.rs`): empty on one server, where a script keeps a session's index with its
    /// own write; `?` on a cluster, where the index lives in another slot.
    pub(super) fn index_mode(&self) -> &'static str {
        if self.backend.is_cluster() { "?" } else { "" }
    }

    /// Appends a write script's index arguments: the `mode`, then the session's index
    /// value and the index key's TTL, both empty for a session in no index.
    fn index_args(&self, call: &mut ScriptCall<'_>, mode: &str, index: Option<&str>, meta: &SessionMeta, now: u64) {
        call.arg(mode);
        match index {
            Some(value) => call.arg(value).arg(self.index_ttl(meta, now)),
            None => call.arg("").arg(""),
        };
    }

    /// On a cluster, adds the session under `key` to the index of `meta`, before the
    /// session's own write: a listing then never misses it, and a crash in between leaves
    /// only a member without a session, removed when listed.
    async fn add_to_index(&self, key: &StoreKey, meta: &SessionMeta) -> Result<(), Error> {
        let Some(index) = meta.index else {
            return Ok(());
        };
        let mut call = ScriptCall::new(&self.scripts.index_add, &[self.keys.index(&index)]);
        call.arg(meta.absolute_deadline_ms)
            .arg(self.keys.key(key))
            .arg(self.index_ttl(meta, self.clock.now_ms()));
        self.run_script::<i64>(true, &call).await.map(drop)
    }

    /// Runs a create (`create`) or update script (`script`) writing `write` under `key`,
    /// on condition that it is still the revision `expected`
    /// (see `REVISION` in `scripts.rs`), adding the session to its index first on a cluster
    /// when the script asks for it, or at once for a create. The script's answer, never
    /// "add the index first".
    async fn write_indexed(
        &self,
        script: &redis::Script,
        key: &StoreKey,
        signature: Option<&String>,
        expected: &[u8],
        write: &WholeWrite,
        create: bool,
    ) -> Result<Answer, Error> {
        let (meta, index) = (&write.meta, write.index.as_deref());
        let mut mode = self.index_mode();
        if create && self.backend.is_cluster() && index.is_some() {
            self.add_to_index(key, meta).await?;
            mode = "!";
        }
        let name = self.keys.key(key);
        loop {
            let (now, ttl) = self.now_and_ttl(meta);
            let keys = [Some(&name), signature].into_iter().flatten();
            let mut call = ScriptCall::with_room(script, keys, write.arg_bytes());
            call.arg(now).arg(ttl);
            self.index_args(&mut call, mode, index, meta, now);
            call.arg(expected).arg(write);
            match self.run_script::<Answer>(false, &call).await? {
                Answer::Code(2) if mode == "?" => {
                    self.add_to_index(key, meta).await?;
                    mode = "!";
                }
                answer => return Ok(answer),
            }
        }
    }

    /// One hash field of the session under `key` (retried: a read).
    async fn hget<T: redis::FromRedisValue>(&self, key: &StoreKey, field: &[u8]) -> Result<T, Error> {
        let name = self.keys.key(key);
        self.call(true, |mut connection| {
            let name = &name;
            async move {
                let mut command = redis::Cmd::with_capacity(3, 4 + name.len() + field.len());
                command.arg("HGET").arg(name).arg(field);
                command.query_async(&mut connection).await
            }
        })
        .await
    }

    /// Reads what is stored under `key`: one `HGET` of its whole value, or, for a hash an
    /// earlier version wrote (or no hash), an `HGETALL` too.
    async fn fetch(&self, key: &StoreKey) -> Result<Stored, Error> {
        let whole: Option<Vec<u8>> = self.hget(key, layout::WHOLE_FIELD).await?;
        if let Some(whole) = whole {
            return Ok(Stored::Whole(whole));
        }
        let name = self.keys.key(key);
        let hash = self
            .call(true, |mut connection| {
                let name = &name;
                async move { redis::cmd("HGETALL").arg(name).query_async(&mut connection).await }
            })
            .await?;
        Ok(Stored::Hash(hash))
    }

    /// Reads the session under `key` with its revision.
    async fn load_revision(&self, key: &StoreKey) -> Result<Option<(Record, Revision)>, Error> {
        let stored = self.fetch(key).await?;
        let now = self.clock.now_ms();
        Ok(match stored {
            Stored::Whole(whole) => self.decode_whole(key, whole, now),
            Stored::Hash(hash) => self.decode(key, hash, now),
        })
    }

    /// The revision of the session under `key`, for a save that was not given one: its
    /// whole value as stored, not decoded (liveness is the write script's to judge).
    async fn read_revision(&self, key: &StoreKey) -> Result<Option<Revision>, Error> {
        match self.fetch(key).await? {
            Stored::Whole(whole) => {
                let parsed = Whole::parse(&whole).ok_or_else(not_whole)?;
                Ok((parsed.revision != 0).then(|| Revision::new(whole)))
            }
            Stored::Hash(hash) => Ok(self
                .decode(key, hash, self.clock.now_ms())
                .map(|(_, revision)| revision)),
        }
    }

    /// Creates `record` under `key`; the revision it is stored as, or `None` when a live
    /// record exists.
    async fn create(
        &self,
        key: &StoreKey,
        signature: Option<&String>,
        record: &Record,
    ) -> Result<Option<Revision>, Error> {
        let fields = self.stored_fields(&record.meta, &record.fields)?;
        let write = self.whole_write(key, &record.meta, &fields, 1)?;
        let created = self
            .write_indexed(&self.scripts.create, key, signature, &[], &write, true)
            .await?;
        match created {
            Answer::Code(1) => Ok(Some(write.revision)),
            Answer::Code(0) => Ok(None),
            _ => Err(Error::Store("the create script gave an answer it never gives".into())),
        }
    }

    /// Applies `update` to the session under `key`, read as `revision` (or not read:
    /// [`Revision::none`]): see [`write_merged`](Self::write_merged). `None` when no live
    /// record exists.
    async fn update(
        &self,
        key: &StoreKey,
        signature: Option<&String>,
        revision: &Revision,
        update: &Record,
    ) -> Result<Option<Updated>, Error> {
        let script = MergedScript::Update { signature };
        let Some((code, write, first)) = self.write_merged(key, key, revision, update, script).await? else {
            return Ok(None);
        };
        match code {
            1 => Ok(Some(Updated {
                revision: write.revision,
                as_read: first && !revision.is_none(),
            })),
            0 => Ok(None),
            other => Err(Error::Store(format!("the update script answered {other}").into())),
        }
    }

    /// Writes `update` merged into the session under `from` as `revision` holds it (read
    /// first when it is [`Revision::none`]) to `to`, by `script`: the whole session is
    /// written if it is still that revision, else the script answers the current value and
    /// `update` is merged into that. Returns the script's answer, the write it answered, and
    /// whether it came at the first attempt; `None` when there was no session to read.
    async fn write_merged(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        revision: &Revision,
        update: &Record,
        script: MergedScript<'_>,
    ) -> Result<Option<(i64, WholeWrite, bool)>, Error> {
        let changes = self.stored_fields(&update.meta, &update.fields)?;
        let mut current = (!revision.is_none()).then(|| revision.clone());
        for attempt in 0..WRITE_ATTEMPTS {
            let base = match current.take() {
                Some(base) => base,
                None => match self.read_revision(from).await? {
                    Some(read) => read,
                    None => return Ok(None),
                },
            };
            let whole = Whole::parse(base.as_bytes()).ok_or_else(not_whole)?;
            let write = self.merged_write(to, &whole, &update.meta, &changes)?;
            let expected = whole.expected();
            let answer = match script {
                MergedScript::Update { signature } => {
                    self.write_indexed(&self.scripts.update, to, signature, expected.as_bytes(), &write, false)
                        .await?
                }
                MergedScript::Rename { keys } => {
                    let (now, ttl) = self.now_and_ttl(&update.meta);
                    let mut call =
                        ScriptCall::with_room(&self.scripts.rename, keys.into_iter().flatten(), write.arg_bytes());
                    call.arg(now).arg(ttl);
                    self.index_args(&mut call, self.index_mode(), write.index.as_deref(), &update.meta, now);
                    call.arg(expected).arg(&write);
                    self.run_script(false, &call).await?
                }
            };
            match answer {
                Answer::Code(code) => return Ok(Some((code, write, attempt == 0))),
                // Empty: a hash of an earlier version, which is read again.
                Answer::Current(value) => current = (!value.is_empty()).then(|| Revision::new(value)),
            }
        }
        Err(kept_changing(WRITE_ATTEMPTS))
    }
}

/// The script of a [`Inner::write_merged`]: the update of one session, with its signature
/// when writes are signed; or a rename on one server, with the source's and the target's
/// key names and signatures.
#[derive(Clone, Copy)]
enum MergedScript<'a> {
    Update { signature: Option<&'a String> },
    Rename { keys: [Option<&'a String>; 4] },
}

/// A write script's answer: a code, or, when the session is no longer the revision the
/// write expected, its current whole value (empty if it has none).
enum Answer {
    Code(i64),
    Current(Vec<u8>),
}

impl redis::FromRedisValue for Answer {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        match value {
            redis::Value::Int(code) => Ok(Self::Code(code)),
            redis::Value::BulkString(current) => Ok(Self::Current(current)),
            other => Err(format!("a write script answered {other:?}").into()),
        }
    }
}

/// The error of a revision that does not parse as a whole value: a stored `w` that is
/// malformed, or a revision this store did not make.
pub(super) fn not_whole() -> Error {
    Error::Store("a Redis session value (stored, or a revision given back) is malformed".into())
}

/// What [`Inner::fetch`] read.
enum Stored {
    /// The whole value `w`.
    Whole(Vec<u8>),
    /// The hash, without `w`: one of an earlier version, or none (empty).
    Hash(Hash),
}

/// What a successful update left.
pub(crate) struct Updated {
    /// The revision the session is stored as now.
    pub(crate) revision: Revision,
    /// Whether the write applied to the revision the caller read, with no newer change
    /// merged in: then what is stored is that revision's record with the update applied.
    pub(crate) as_read: bool,
}

/// Attempts of a write whose session keeps changing between its read and its write: each
/// failed one means another write of the same session succeeded meanwhile, and the next
/// starts from that write's value, in the same round trip.
const WRITE_ATTEMPTS: usize = 64;

/// The error of a write that lost `attempts` compare-and-sets in a row.
fn kept_changing(attempts: usize) -> Error {
    Error::Store(format!("the session kept changing during {attempts} attempts to write it").into())
}

impl Inner {
    /// Deletes `key`, signed by `writer` when writes are signed; whether it existed.
    async fn delete_one(&self, key: &StoreKey, writer: &str) -> Result<bool, Error> {
        let name = self.keys.key(key);
        let signature = self.signed.then(|| self.keys.signature(key, writer));
        let mut call = ScriptCall::new(
            &self.scripts.delete,
            [Some(&name), signature.as_ref()].into_iter().flatten(),
        );
        call.arg(1).arg(self.index_mode());
        let deleted: i64 = self.run_script(true, &call).await?;
        Ok(deleted > 0)
    }
}

impl RedisStore {
    /// Updates as [`SessionStore::update_revision`] does, and tells whether the write
    /// applied to `revision` as it was read.
    pub(crate) async fn update_at(
        &self,
        key: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<Option<Updated>, Error> {
        let inner = &self.inner;
        let signature = self.signature(key);
        inner
            .observe("update", Some(key), || {
                inner.update(key, signature.as_ref(), revision, update)
            })
            .await
    }
}

impl SessionStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        Ok(self.load_revision(key).await?.map(|(record, _)| record))
    }

    async fn load_revision(&self, key: &StoreKey) -> Result<Option<(Record, Revision)>, Error> {
        let inner = &self.inner;
        inner.observe("load", Some(key), || inner.load_revision(key)).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        Ok(self.create_revision(key, record).await?.is_some())
    }

    async fn create_revision(&self, key: &StoreKey, record: &Record) -> Result<Option<Revision>, Error> {
        let inner = &self.inner;
        let signature = self.signature(key);
        inner
            .observe("create", Some(key), || inner.create(key, signature.as_ref(), record))
            .await
    }

    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        Ok(self.update_at(key, &Revision::none(), update).await?.is_some())
    }

    async fn update_revision(
        &self,
        key: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<Option<Revision>, Error> {
        Ok(self
            .update_at(key, revision, update)
            .await?
            .map(|updated| updated.revision))
    }

    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        Ok(self.rename_revision(from, to, &Revision::none(), update).await?.0)
    }

    async fn rename_revision(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<(Rename, Revision), Error> {
        let inner = &self.inner;
        if inner.backend.is_cluster() {
            return inner
                .observe("regenerate", Some(from), || {
                    inner.move_between_slots(from, to, update, &self.writer)
                })
                .await;
        }
        inner
            .observe("regenerate", Some(from), || async move {
                let (source, target) = (inner.keys.key(from), inner.keys.key(to));
                let signatures = (self.signature(from), self.signature(to));
                let keys = [
                    Some(&source),
                    Some(&target),
                    signatures.0.as_ref(),
                    signatures.1.as_ref(),
                ];
                let renamed = inner
                    .write_merged(from, to, revision, update, MergedScript::Rename { keys })
                    .await?;
                match renamed {
                    None | Some((1, ..)) => Ok((Rename::SourceMissing, Revision::none())),
                    Some((0, write, _)) => Ok((Rename::Renamed, write.revision)),
                    Some((2, ..)) => Ok((Rename::TargetExists, Revision::none())),
                    Some((other, ..)) => Err(Error::Store(format!("the rename script answered {other}").into())),
                }
            })
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .observe("delete", Some(key), || inner.delete_one(key, &self.writer))
            .await
    }

    async fn expired(&self, key: &StoreKey) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .observe("expired", Some(key), || async move {
                let expiry: Option<u64> = inner.hget(key, layout::EXPIRY_FIELD).await?;
                // 0 marks a record frozen by a cluster move, not an expired one.
                // Past the retention the key may still be there (its TTL runs to the end of
                // a minute), but the session is no longer told apart from an unknown one.
                let now = inner.clock.now_ms();
                Ok(expiry.is_some_and(|x| x > 0 && x <= now && now < x.saturating_add(inner.retention_ms)))
            })
            .await
    }
}
