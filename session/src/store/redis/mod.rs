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
    record::Written,
    scripts::Scripts,
};
use crate::{
    Error,
    clock::Clock,
    id::StoreKey,
    resilience::{BreakerState, CircuitBreaker, RetryPolicy},
    store::{Record, Rename, SessionStore, value::ValueCodec},
};

/// A session store in Redis (feature `redis`): one hash per session, one round trip per load
/// and per save, with a per-command timeout, retry and a circuit breaker.
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
/// | `m` | the session's metadata in the [metadata format](crate::store#the-metadata-format): its lifetimes, [lineage](crate::SessionMeta::lineage), flags and keys |
/// | `x` | the expiry (the earlier deadline) in decimal ms, read by the write scripts |
/// | `d`, `d1` … | the session's fields as created, those not at their default, in the [record format](crate::store#the-record-format) (each value as a field's value below), split between fields into pieces of at most 64 bytes (a longer field is a piece of its own) |
/// | `<tag>` | one per session field changed since: the name is the field tag as 4 bytes, big-endian; the value a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's postcard bytes, or empty for a field set back to its default |
///
/// A field's own hash field hides its packed copy. So a load reads the packed pieces plus
/// one hash field per field changed since the session was created, not one per session
/// field; and an update writes only the fields it changed, so overlapping saves of
/// different fields both persist, with no read-merge-write in Redis. The 64 bytes are
/// Redis's default `hash-max-listpack-value`: a hash whose values are all that short stays
/// in Redis's compact encoding (an index value `i`, sealed values and long fields are
/// longer, and take the hash out of it, as before).
///
/// Earlier versions wrote every field as its own hash field, some named `f:<tag>` with the
/// tag in 8 hex digits: such hashes are still read (a field written since hides its old
/// copy). Earlier versions neither read the packed fields nor leave the empty values alone
/// (they delete a removed field's hash field, which uncovers its packed copy): **stop every
/// instance of an earlier version before starting this one**, and do not roll back to one.
/// Sessions survive the upgrade.
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
/// With [`RedisStoreBuilder::encryption`], `m` and every field hold a sealed envelope
/// (marker `2`, then the envelope text; see [`crypto`](crate::crypto#the-envelope)) under
/// the purpose `store:redis`, so a stored value never opens as a cookie. Each sealed value
/// is bound to where it belongs: `m` to its key's digest, a field to its tag and to the
/// session's [`lineage`](crate::SessionMeta::lineage) (which `m` holds, and which a
/// regenerated ID keeps). A value copied into another session or field does not open (the
/// field takes its default; metadata copied to another key is no session), and a sealed
/// value expires with the session's absolute deadline. A dump of the database shows no
/// session data and no usable lifetimes: forged or plain values are not accepted. Left
/// visible: the digests, the field tags, value lengths and `x`. A party that can write to
/// Redis can still delete sessions, or put back an older value of a session's own field.
/// Keys rotate as with cookies
/// ([`KeyRing::with_previous`](crate::crypto::KeyRing::with_previous)): values are
/// re-sealed with the newest key as they are written, so keep a retired key in the ring for
/// one absolute timeout. Turning encryption on (or off) makes existing sessions unreadable.
///
/// # Round trips
///
/// - load: one `HGETALL` of a few hash fields; a record that is absent, expired by the
///   store's clock or has no readable metadata is no session;
/// - create, update (including a sliding refresh, which writes only `m`, `x` and the TTL)
///   and rename (regenerate): one `EVALSHA` of a Lua script that checks liveness and writes
///   only the given fields and the TTL atomically; the scripts are loaded when the store is
///   built and reloaded transparently after a Redis restart (on a Redis Cluster, a rename
///   is three, see [below](#redis-cluster));
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
///   fails, the call fails and the old ID lives until its TTL. A crash between the steps
///   leaves the source only (after the read) or both keys (after the write), never
///   neither; in the second case the orphan copy under the new ID, which was never handed
///   out, expires with its TTL, and the old ID lives until its own. If updates keep racing it, the last of four attempts freezes
///   the source as it reads it (its expiry field `x` set to 0: loads and writes then treat
///   it as gone, and a racing update fails as it would after an atomic rename); only a crash
///   between that read and the write would leave the session unusable (its data stays until
///   its TTL);
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
    fn index_args(&self, call: &mut ScriptCall<'_>, mode: &str, index: Option<&str>, record: &Record, now: u64) {
        call.arg(mode);
        match index {
            Some(value) => call.arg(value).arg(self.index_ttl(record, now)),
            None => call.arg("").arg(""),
        };
    }

    /// On a cluster, adds the session under `key` to the index of `record`, before the
    /// session's own write: a listing then never misses it, and a crash in between leaves
    /// only a member without a session, removed when listed.
    async fn add_to_index(&self, key: &StoreKey, record: &Record) -> Result<(), Error> {
        let Some(index) = record.meta.index else {
            return Ok(());
        };
        let mut call = ScriptCall::new(&self.scripts.index_add, &[self.keys.index(&index)]);
        call.arg(record.meta.absolute_deadline_ms)
            .arg(self.keys.key(key))
            .arg(self.index_ttl(record, self.clock.now_ms()));
        self.run_script::<i64>(true, &call).await.map(drop)
    }

    /// Runs a create (`Written::Whole`) or update script (`script`) for `record` under
    /// `key`, adding the session to its index first on a cluster when the script asks for
    /// it, or at once for a create. The script's answer, 2 ("add the index first") never.
    async fn write_indexed(
        &self,
        script: &redis::Script,
        key: &StoreKey,
        signature: Option<String>,
        record: &Record,
        written: Written,
    ) -> Result<i64, Error> {
        let index = record::index_value(record);
        let args = self.write_args(key, record, index.as_deref(), written)?;
        let mut mode = self.index_mode();
        if written == Written::Whole && self.backend.is_cluster() && index.is_some() {
            self.add_to_index(key, record).await?;
            mode = "!";
        }
        let name = self.keys.key(key);
        loop {
            let (now, ttl) = self.now_and_ttl(record);
            let mut call = ScriptCall::new(script, [Some(&name), signature.as_ref()].into_iter().flatten());
            call.arg(now).arg(ttl);
            self.index_args(&mut call, mode, index.as_deref(), record, now);
            call.arg(&args);
            match self.run_script::<i64>(false, &call).await? {
                2 if mode == "?" => {
                    self.add_to_index(key, record).await?;
                    mode = "!";
                }
                answer => return Ok(answer),
            }
        }
    }

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

impl SessionStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        let inner = &self.inner;
        let name = inner.keys.key(key);
        inner
            .observe("load", Some(key), async {
                let hash = inner
                    .call(true, |mut connection| {
                        let name = &name;
                        async move { redis::cmd("HGETALL").arg(name).query_async(&mut connection).await }
                    })
                    .await?;
                Ok(inner.decode(key, hash, inner.clock.now_ms()))
            })
            .await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .observe("create", Some(key), async {
                let created = inner
                    .write_indexed(&inner.scripts.create, key, self.signature(key), record, Written::Whole)
                    .await?;
                Ok(created == 1)
            })
            .await
    }

    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .observe("update", Some(key), async {
                let updated = inner
                    .write_indexed(
                        &inner.scripts.update,
                        key,
                        self.signature(key),
                        update,
                        Written::Changes,
                    )
                    .await?;
                Ok(updated == 1)
            })
            .await
    }

    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        let inner = &self.inner;
        if inner.backend.is_cluster() {
            return inner
                .observe(
                    "regenerate",
                    Some(from),
                    inner.move_between_slots(from, to, update, &self.writer),
                )
                .await;
        }
        inner
            .observe("regenerate", Some(from), async {
                let (now, ttl) = inner.now_and_ttl(update);
                let index = record::index_value(update);
                let (source, target) = (inner.keys.key(from), inner.keys.key(to));
                let signatures = (self.signature(from), self.signature(to));
                let keys = [
                    Some(&source),
                    Some(&target),
                    signatures.0.as_ref(),
                    signatures.1.as_ref(),
                ];
                let mut call = ScriptCall::new(&inner.scripts.rename, keys.into_iter().flatten());
                call.arg(now).arg(ttl);
                inner.index_args(&mut call, inner.index_mode(), index.as_deref(), update, now);
                call.arg(inner.write_args(to, update, index.as_deref(), Written::Changes)?);
                let outcome: i64 = inner.run_script(false, &call).await?;
                match outcome {
                    0 => Ok(Rename::Renamed),
                    1 => Ok(Rename::SourceMissing),
                    2 => Ok(Rename::TargetExists),
                    other => Err(Error::Store(format!("the rename script answered {other}").into())),
                }
            })
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .observe("delete", Some(key), inner.delete_one(key, &self.writer))
            .await
    }

    async fn expired(&self, key: &StoreKey) -> Result<bool, Error> {
        let inner = &self.inner;
        let name = inner.keys.key(key);
        inner
            .observe("expired", Some(key), async {
                let expiry: Option<u64> = inner
                    .call(true, |mut connection| {
                        let name = &name;
                        async move {
                            redis::cmd("HGET")
                                .arg(name)
                                .arg(layout::EXPIRY_FIELD)
                                .query_async(&mut connection)
                                .await
                        }
                    })
                    .await?;
                // 0 marks a record frozen by a cluster move, not an expired one.
                // Past the retention the key may still be there (its TTL runs to the end of
                // a minute), but the session is no longer told apart from an unknown one.
                let now = inner.clock.now_ms();
                Ok(expiry.is_some_and(|x| x > 0 && x <= now && now < x.saturating_add(inner.retention_ms)))
            })
            .await
    }
}
