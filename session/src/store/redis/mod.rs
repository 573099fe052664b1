//! The Redis store (feature `redis`): one hash per session, one round trip per load and
//! per save, with a per-command timeout, retry and a circuit breaker.
//!
//! # Layout
//!
//! A session is one Redis hash under the key
//!
//! ```text
//! {prefix}{<digest>}          e.g.  session:{3f9a…c2}   (64 lowercase hex digits)
//! ```
//!
//! where `<digest>` is the [`StoreKey`] (SHA-256 of the session ID, never the ID
//! itself). The digest is the key's Redis Cluster *hash tag*, so everything stored for one
//! session lives in one slot. The hash holds:
//!
//! | field | value |
//! |---|---|
//! | `m` | lifetime data: created, accessed, idle deadline, absolute deadline; ms since the Unix epoch, 4 × u64 big-endian |
//! | `x` | the expiry (the earlier deadline) in decimal ms, read by the write scripts |
//! | `f:<tag>` | one per session field, `<tag>` its [`FieldDef::tag`](crate::FieldDef) in 8 hex digits: a marker byte (`0` plain, `1` gzip, `2` sealed) and the field's postcard bytes |
//!
//! The key's TTL (`PEXPIRE`) follows the expiry, computed from the store's clock.
//!
//! Each write also sets and deletes, inside its script, the key's *signature*
//! `{prefix}{<digest>}!<writer>` (`<writer>`: 16 random hex digits per store), which never
//! outlives the script and never matches a scan. It makes Redis's invalidation messages
//! name the writer, which the [clustered store](crate::store::clustered) needs.
//!
//! # Encryption at rest
//!
//! With [`RedisStoreBuilder::encryption`], `m` and every `f:<tag>` hold a sealed envelope
//! (marker `2`, then the envelope text; see [`crypto::envelope`](crate::crypto::envelope))
//! under the purpose `store:redis`, so a stored value never opens as a cookie. Each sealed
//! value names what it is (the metadata, or the field's tag), so it cannot be moved to
//! another field, and expires with the session's absolute deadline. A dump of the database
//! then shows no session data and no usable lifetimes: forged or plain values are not
//! accepted. Left visible: the digests, the field tags, value lengths and `x`. A party that
//! can write to Redis can still delete sessions, or copy one session's sealed field into
//! another session. Keys rotate as with cookies ([`KeyRing::with_previous`]): values are
//! re-sealed with the newest key as they are written, so keep a retired key in the ring for
//! one absolute timeout. Turning encryption on (or off) makes existing sessions unreadable.
//!
//! # Round trips
//!
//! - load: one `HGETALL`; a record that is absent, expired by the store's clock or has no
//!   readable metadata is no session;
//! - create, update (including a sliding refresh, which writes only `m`, `x` and the TTL)
//!   and rename (regenerate): one `EVALSHA` of a Lua script that checks liveness and writes
//!   only the given fields and the TTL atomically; the scripts are loaded when the store is
//!   built and reloaded transparently after a Redis restart (on a Redis Cluster, a rename
//!   is three, see [below](#redis-cluster));
//! - delete: one `EVALSHA` (a `DEL` and the signature);
//! - scan: `SCAN MATCH {prefix}{…} COUNT n` (never `KEYS`) plus one pipelined round trip
//!   for the page's records; count, clear and delete_many work in batches the same way.
//!
//! # Failures
//!
//! Every command is bounded by the command timeout. Loads, deletes and the query
//! operations are retried with capped exponential backoff and full jitter
//! ([`RetryPolicy`]); writes are not, since a write that timed out may still have been
//! applied. A [`circuit breaker`](BreakerConfig) counts backend failures (unreachable,
//! timeout, `LOADING`, `READONLY`, …, never "not found"), and while open fails calls at
//! once with [`Error::CircuitOpen`]. When it opens, the connection is replaced, so a
//! silently dead TCP connection is not reused.
//!
//! # Redis Cluster
//!
//! [`RedisStore::cluster_builder`] connects to a Redis Cluster through the redis crate's
//! cluster client, which routes each command to the primary of its key's slot and follows
//! redirections and failovers. The layout is the same: the digest is the hash tag, so one
//! session is one slot, and load, create, update and delete are the same single commands
//! and scripts, one round trip each.
//!
//! What differs:
//!
//! - **regenerate** (rename) cannot move a session between two slots in one script. It
//!   takes three scripts (three round trips), each in one slot: read the live source and a
//!   digest of its content; write the target, refusing to overwrite a live one; delete the
//!   source only if its content still matches the digest, else copy again, as a concurrent
//!   request updated it meanwhile (so no acknowledged update is lost). The old ID is dead
//!   when the call returns. A crash between the steps leaves the source only (after the
//!   read) or both keys (after the write), never neither; in the second case the orphan
//!   copy under the new ID, which was never handed out, expires with its TTL, and the old
//!   ID lives until its own. If updates keep racing it, the last of four attempts freezes
//!   the source as it reads it (its expiry field `x` set to 0: loads and writes then treat
//!   it as gone, and a racing update fails as it would after an atomic rename); only a crash
//!   between that read and the write would leave the session unusable (its data stays until
//!   its TTL);
//! - **delete_many** deletes key by key, concurrently, instead of multi-key `DEL`s;
//! - **scan, count, clear** run `SCAN` on every primary in turn (found with
//!   `CLUSTER NODES`), and read or delete the found keys with single-key commands. A scan
//!   cursor holds the primary's index in its top 16 bits, so a failover during a scan may
//!   skip or repeat sessions.

mod connection;
mod layout;
mod scripts;
mod telemetry;
mod value;

use std::borrow::Cow;
use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use futures_util::future::try_join_all;
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};
use tracing::Instrument as _;

pub(crate) use self::connection::Node;
#[cfg(feature = "clustered")]
pub(crate) use self::connection::NodeSettings;
use self::{
    connection::{Backend, Connection},
    layout::{EXPIRY_FIELD, Keys, META_FIELD},
    scripts::Scripts,
    value::{Sealing, ValueCodec},
};
use crate::{
    Error,
    clock::{Clock, SystemClock},
    codec::FieldRecord,
    crypto::{KeyRing, Purpose},
    id::StoreKey,
    resilience::{BreakerConfig, BreakerState, CircuitBreaker, Outcome, RetryPolicy},
    store::{QueryStore, Record, Rename, ScanPage, SessionStore},
};

/// Keys asked of each `SCAN` by count, clear and delete_many.
const BATCH: usize = 500;
/// Attempts of a cluster regenerate whose source keeps changing under it.
const MOVE_ATTEMPTS: usize = 4;
/// A cluster scan cursor: the primary's index above these bits, its `SCAN` cursor below.
const NODE_SHIFT: u32 = 48;

/// A session store in Redis.
///
/// Cheap to clone; clones share one multiplexed, auto-reconnecting connection. See the
/// [module documentation](self) for the key layout and the failure handling.
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

struct Inner {
    connection: RwLock<Connection>,
    backend: Backend,
    #[cfg(feature = "clustered")]
    nodes: NodeSettings,
    keys: Keys,
    scripts: Scripts,
    values: ValueCodec,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out: it may hold a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.keys)
            .field("cluster", &self.inner.backend.is_cluster())
            .field("command_timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .field("breaker", &self.inner.breaker)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use = "call .build().await to get a RedisStore"]
pub struct RedisStoreBuilder {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    command_timeout: Duration,
    retry: RetryPolicy,
    breaker: BreakerConfig,
    compress_above: Option<usize>,
    encryption: Option<KeyRing>,
    clock: Arc<dyn Clock>,
    /// PEM certificates trusted for `rediss://` instead of the system's roots.
    tls_roots: Option<Vec<u8>>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("compress_above", &self.compress_above)
            .field("encrypted", &self.encryption.is_some())
            .field("private_tls_roots", &self.tls_roots.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Configures a store for the Redis server at `url`:
    /// `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS (feature
    /// `redis-tls`).
    ///
    /// Defaults: prefix `session:`, command timeout 1 s, [`RetryPolicy::default`] (3
    /// attempts), [`BreakerConfig::default`] (opens after 5 failures, probes after 10 s),
    /// no compression, no encryption at rest, the system clock.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            urls: vec![url.into()],
            cluster: false,
            prefix: "session:".to_owned(),
            command_timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            compress_above: None,
            encryption: None,
            clock: Arc::new(SystemClock),
            tls_roots: None,
        }
    }

    /// Configures a store for a Redis Cluster reached through any of these nodes
    /// (`redis://[[user]:password@]host:port`, or `rediss://…`); the others are discovered.
    /// The same defaults as [`builder`](Self::builder); see the
    /// [module documentation](self#redis-cluster) for what differs on a cluster.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use session::RedisStore;
    ///
    /// # async fn run() -> Result<(), session::Error> {
    /// let store = RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .prefix("myapp:session:")
    ///     .build()
    ///     .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cluster_builder<I, U>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        RedisStoreBuilder {
            urls: urls.into_iter().map(Into::into).collect(),
            cluster: true,
            ..Self::builder(String::new())
        }
    }

    /// The circuit breaker's state, e.g. for a health check.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.backend.is_cluster()
    }
}

/// What the clustered store needs to know of the Redis store it wraps.
#[cfg(feature = "clustered")]
impl RedisStore {
    /// A handle on the same store and connections that signs its writes with a name of its
    /// own, so they count as another writer's.
    pub(crate) fn with_own_writer(&self) -> Result<RedisStore, Error> {
        Ok(RedisStore {
            inner: self.inner.clone(),
            writer: crate::id::random_hex::<8>()?.into(),
        })
    }

    /// This store's name in the signatures of its writes.
    pub(crate) fn writer(&self) -> &str {
        &self.writer
    }

    /// A key name an invalidation mentions: one of this store's keys, and the writer when
    /// it is a signature.
    pub(crate) fn parse_mention<'a>(&self, name: &'a [u8]) -> Option<(StoreKey, Option<&'a [u8]>)> {
        self.inner.keys.parse_mention(name)
    }

    /// The prefix of this store's key names.
    pub(crate) fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// The store's clock.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The per-command timeout.
    pub(crate) fn command_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// How other connections reach the nodes: credentials, database, TLS.
    pub(crate) fn node_settings(&self) -> &NodeSettings {
        &self.inner.nodes
    }

    /// The nodes that accept writes: the one server, or every cluster primary that holds
    /// slots, sorted by address.
    ///
    /// # Errors
    ///
    /// When the cluster cannot be asked, or the server is a Unix socket.
    pub(crate) async fn primaries(&self) -> Result<Vec<Node>, Error> {
        if let Some(node) = self.inner.backend.standalone_node() {
            return Ok(vec![node]);
        }
        if !self.is_cluster() {
            return Err(Error::Config(
                "a Redis server on a Unix socket has no TCP address".into(),
            ));
        }
        Ok(self.inner.scan_nodes().await?.into_iter().flatten().collect())
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key of this store (default `session:`); stores with different
    /// prefixes share a Redis database without seeing each other's sessions.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest one command (one attempt) may take, connecting included (default 1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How loads, deletes and query operations are retried after a backend failure.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// When the circuit breaker opens and how long it stays open.
    pub fn circuit_breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = config;
        self
    }

    /// Gzip field values longer than this many bytes (default `None`: never). With
    /// encryption, values are compressed before sealing; then compressing a value that mixes
    /// attacker-chosen data with secrets can leak them through its length.
    pub fn compress_above(mut self, bytes: Option<usize>) -> Self {
        self.compress_above = bytes;
        self
    }

    /// Seals every stored value with this key ring (see the
    /// [module documentation](self#encryption-at-rest)). Default: none.
    ///
    /// # Examples
    ///
    /// ```
    /// use session::{RedisStore, crypto::{KeyId, KeyRing, Secret}};
    ///
    /// let ring = KeyRing::new(KeyId(1), Secret::generate().unwrap());
    /// let builder = RedisStore::builder("redis://127.0.0.1:6380/").encryption(ring);
    /// # let _ = builder;
    /// ```
    pub fn encryption(mut self, ring: KeyRing) -> Self {
        self.encryption = Some(ring);
        self
    }

    /// The clock that decides expiry and TTLs; share it with the provider's configuration.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Trusts these PEM certificates (e.g. a private CA's) for `rediss://` servers instead
    /// of the system's root certificates (feature `redis-tls`). Server certificates are
    /// always verified.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use session::RedisStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/ca.pem")?;
    /// let store = RedisStore::builder("rediss://:password@redis.internal:6380/")
    ///     .tls_root_certificates(ca)
    ///     .build()
    ///     .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis-tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_roots = Some(pem.into());
        self
    }

    /// Connects, and loads the scripts, so a wrong URL, password or unreachable server is
    /// reported at start-up rather than at the first request.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid URL or a zero timeout; [`Error::Timeout`] or
    /// [`Error::Store`] when the server cannot be reached or refuses the connection.
    pub async fn build(self) -> Result<RedisStore, Error> {
        if self.command_timeout.is_zero() {
            return Err(Error::Config(
                "the Redis command timeout must be greater than zero".into(),
            ));
        }
        let tls_roots = self.tls_roots.as_deref();
        let backend = if self.cluster {
            Backend::cluster(&self.urls, self.command_timeout, tls_roots)?
        } else {
            Backend::standalone(&self.urls[0], self.command_timeout, tls_roots)?
        };
        #[cfg(feature = "clustered")]
        let nodes = backend.node_settings(&self.urls[0])?;
        let purpose = Purpose::store("redis").map_err(|error| Error::Config(error.to_string()))?;
        let connection = backend.connect_lazily()?;
        let store = RedisStore {
            writer: crate::id::random_hex::<8>()?.into(),
            inner: Arc::new(Inner {
                connection: RwLock::new(connection),
                backend,
                #[cfg(feature = "clustered")]
                nodes,
                keys: Keys::new(&self.prefix),
                scripts: Scripts::new(),
                values: ValueCodec {
                    compress_above: self.compress_above,
                    sealing: self.encryption.map(|ring| Sealing { ring, purpose }),
                },
                clock: self.clock,
                timeout: self.command_timeout,
                retry: self.retry,
                breaker: CircuitBreaker::new(self.breaker, telemetry::breaker_changed),
            }),
        };
        let scripts = store.inner.scripts.used(store.is_cluster());
        let scripts = &scripts;
        store
            .inner
            .call(true, |mut connection| async move {
                for script in scripts {
                    script.load_async(&mut connection).await?;
                }
                Ok(())
            })
            .await?;
        Ok(store)
    }
}

/// Whether an error means the backend is failing, rather than refusing this command.
fn is_backend_failure(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        )
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store(Box::new(error))
}

impl Inner {
    fn connection(&self) -> Connection {
        self.connection.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Drops the current connection for a fresh one, connected at the next call.
    fn reconnect(&self) {
        match self.backend.connect_lazily() {
            Ok(fresh) => {
                *self.connection.write().unwrap_or_else(PoisonError::into_inner) = fresh;
            }
            Err(error) => tracing::warn!(%error, "could not replace the Redis connection"),
        }
    }

    /// Runs one command (`attempt` is called once per attempt) under the timeout, the
    /// breaker and, if `idempotent`, the retry policy.
    async fn call<T, F, Fut>(&self, idempotent: bool, attempt: F) -> Result<T, Error>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempts = if idempotent { self.retry.attempts() } else { 1 };
        let mut tried = 0;
        loop {
            let permit = self.breaker.acquire()?;
            let error = match tokio::time::timeout(self.timeout, attempt(self.connection())).await {
                Ok(Ok(value)) => {
                    permit.record(Outcome::Answered);
                    return Ok(value);
                }
                Ok(Err(error)) if !is_backend_failure(&error) => {
                    permit.record(Outcome::Answered);
                    return Err(store_error(error));
                }
                Ok(Err(error)) => {
                    self.failed(permit);
                    store_error(error)
                }
                Err(_) => {
                    self.failed(permit);
                    Error::Timeout(self.timeout)
                }
            };
            tried += 1;
            if tried >= attempts {
                return Err(error);
            }
            tracing::debug!(%error, attempt = tried, "retrying an idempotent Redis command");
            tokio::time::sleep(self.retry.backoff(tried - 1)).await;
        }
    }

    fn failed(&self, permit: crate::resilience::Permit<'_>) {
        if permit.record(Outcome::Failed) == Some(BreakerState::Open) {
            self.reconnect();
        }
    }

    /// The hash field/value pairs that write `record`: metadata, expiry, then each field.
    fn write_args(&self, record: &Record) -> Result<Vec<Vec<u8>>, Error> {
        let mut args = Vec::with_capacity(4 + 2 * 8);
        args.push(META_FIELD.to_vec());
        args.push(self.values.encode_meta(&record.meta).map_err(store_error)?);
        args.push(EXPIRY_FIELD.to_vec());
        args.push(record.meta.expires_ms().to_string().into_bytes());
        for field in record.fields.iter() {
            let (tag, value) = field.map_err(store_error)?;
            args.push(layout::field_name(tag));
            let stored = self.values.encode_field(tag, value, record.meta.absolute_deadline_ms);
            args.push(stored.map_err(store_error)?);
        }
        Ok(args)
    }

    /// `now` and the TTL in ms (at least 1, as Redis refuses 0) of a record.
    fn now_and_ttl(&self, record: &Record) -> (u64, u64) {
        let now = self.clock.now_ms();
        (now, record.meta.expires_ms().saturating_sub(now).max(1))
    }

    /// Reads a record from its hash; `None` when absent, expired or unreadable.
    fn decode(&self, key: &StoreKey, hash: HashMap<Vec<u8>, Vec<u8>>, now: u64) -> Option<Record> {
        if hash.is_empty() {
            return None;
        }
        let meta = match hash.get(META_FIELD).map(|bytes| self.values.decode_meta(bytes, now)) {
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
        let mut fields: Vec<(u32, Cow<'_, [u8]>)> = hash
            .iter()
            .filter_map(|(name, stored)| {
                let tag = layout::field_tag(name)?;
                match self.values.decode_field(tag, stored, now) {
                    Ok(value) => Some((tag, value)),
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
        // Hash order is arbitrary; sorting makes equal records encode equally.
        fields.sort_unstable_by_key(|(tag, _)| *tag);
        let mut record = FieldRecord::with_capacity(fields.iter().map(|(_, value)| 4 + 5 + value.len()).sum());
        for (tag, value) in &fields {
            record.push(*tag, value);
        }
        Some(Record { meta, fields: record })
    }

    /// Runs `operation` in a span and records its metrics.
    async fn observe<T>(
        &self,
        op: &'static str,
        key: Option<&StoreKey>,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let span = match key {
            Some(key) => {
                tracing::debug_span!("session_store", store = "redis", op, key = %layout::short(key))
            }
            None => tracing::debug_span!("session_store", store = "redis", op),
        };
        let started = Instant::now();
        let result = operation.instrument(span.clone()).await;
        telemetry::operation(op, started.elapsed(), result.as_ref().err());
        if let Err(error) = &result {
            span.in_scope(|| {
                tracing::debug!(%error, kind = telemetry::error_kind(error), "Redis session store operation failed");
            });
        }
        result
    }

    /// Keys of one `SCAN` page of this store on `node` (`None`: the one server), and the
    /// next cursor (0 when done).
    async fn scan_keys(
        connection: &mut Connection,
        node: Option<&Node>,
        keys: &Keys,
        cursor: u64,
        count: usize,
    ) -> RedisResult<(u64, Vec<(StoreKey, Vec<u8>)>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(keys.pattern())
            .arg("COUNT")
            .arg(count.max(1));
        let (next, names): (u64, Vec<Vec<u8>>) = connection.on_node(&cmd, node).await?;
        let found = names
            .into_iter()
            .filter_map(|name| keys.parse(&name).map(|key| (key, name)))
            .collect();
        Ok((next, found))
    }

    /// The nodes to scan: `[None]` for one server, every primary of a cluster.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the cluster does not have every slot served yet (e.g.
    /// mid-failover); not a backend failure for the breaker, as the node answered.
    async fn scan_nodes(&self) -> Result<Vec<Option<Node>>, Error> {
        if !self.backend.is_cluster() {
            return Ok(vec![None]);
        }
        let (nodes, complete) = self
            .call(true, |mut connection| async move { connection.primaries().await })
            .await?;
        if !complete {
            return Err(Error::Store(
                "the Redis Cluster does not have every slot served by a live primary yet".into(),
            ));
        }
        Ok(nodes)
    }

    /// Visits every `SCAN` page of this store (on every primary of a cluster) with `page`,
    /// one retried call per page; returns the sum of what the pages return.
    async fn for_each_page<F, Fut>(&self, page: F) -> Result<usize, Error>
    where
        F: Fn(Connection, Vec<(StoreKey, Vec<u8>)>) -> Fut,
        Fut: Future<Output = RedisResult<usize>>,
    {
        let mut total = 0;
        for node in self.scan_nodes().await? {
            let mut cursor = 0;
            loop {
                let (next, keys) = self
                    .call(true, |mut connection| {
                        let (node, keys) = (node.as_ref(), &self.keys);
                        async move { Self::scan_keys(&mut connection, node, keys, cursor, BATCH).await }
                    })
                    .await?;
                if !keys.is_empty() {
                    total += self.call(true, |connection| page(connection, keys.clone())).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(total)
    }

    /// The hashes of `found` keys: one pipeline on one server, concurrent single-key reads
    /// on a cluster (a pipeline there must stay in one slot).
    async fn read_hashes(
        connection: &mut Connection,
        found: Vec<(StoreKey, Vec<u8>)>,
    ) -> RedisResult<Vec<(StoreKey, HashMap<Vec<u8>, Vec<u8>>)>> {
        let hashes: Vec<HashMap<Vec<u8>, Vec<u8>>> = match connection {
            Connection::Standalone(_) => {
                let mut pipe = redis::pipe();
                for (_, name) in &found {
                    pipe.cmd("HGETALL").arg(name);
                }
                pipe.query_async(connection).await?
            }
            Connection::Cluster(_) => {
                try_join_all(found.iter().map(|(_, name)| {
                    let mut connection = connection.clone();
                    async move { redis::cmd("HGETALL").arg(name).query_async(&mut connection).await }
                }))
                .await?
            }
        };
        Ok(found.into_iter().map(|(key, _)| key).zip(hashes).collect())
    }

    /// The expiry (`x`) of each of `keys` (digest and key name, as a scan yields them), and,
    /// with `delete_as`, deletes them in the same round trip, each signed by that writer
    /// after its deletion (so a message that announces the deletion names the writer, or a
    /// later one does). On a cluster, one pipeline per key, as keys live in different slots.
    async fn expiries(
        &self,
        connection: &mut Connection,
        keys: &[(StoreKey, Vec<u8>)],
        delete_as: Option<&str>,
    ) -> RedisResult<Vec<Option<u64>>> {
        let per_key = |pipe: &mut redis::Pipeline, (key, name): &(StoreKey, Vec<u8>)| {
            pipe.cmd("HGET").arg(name).arg(EXPIRY_FIELD);
            if let Some(writer) = delete_as {
                let signature = self.keys.signature(key, writer);
                pipe.cmd("DEL").arg(name).ignore();
                // A pipeline is not atomic: should the DEL below be lost, the key expires.
                pipe.cmd("SET").arg(&signature).arg("").arg("PX").arg(1000).ignore();
                pipe.cmd("DEL").arg(&signature).ignore();
            }
        };
        match connection {
            Connection::Standalone(_) => {
                let mut pipe = redis::pipe();
                for key in keys {
                    per_key(&mut pipe, key);
                }
                pipe.query_async(connection).await
            }
            Connection::Cluster(_) => {
                let expiries = try_join_all(keys.iter().map(|key| {
                    let mut connection = connection.clone();
                    let mut pipe = redis::pipe();
                    per_key(&mut pipe, key);
                    async move { pipe.query_async::<(Option<u64>,)>(&mut connection).await }
                }))
                .await?;
                Ok(expiries.into_iter().map(|(expiry,)| expiry).collect())
            }
        }
    }

    /// Regenerate on a cluster: copy to the target's slot, then delete the unchanged source
    /// (see the [module documentation](self#redis-cluster)).
    async fn move_between_slots(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        update: &Record,
        writer: &str,
    ) -> Result<Rename, Error> {
        let (source, target) = (self.keys.key(from), self.keys.key(to));
        let update_args = self.write_args(update)?;
        for attempt in 0..MOVE_ATTEMPTS {
            let (now, ttl) = self.now_and_ttl(update);
            let freeze = attempt + 1 == MOVE_ATTEMPTS;
            let mut read = self.scripts.move_read.key(&source);
            read.key(self.keys.signature(from, writer))
                .arg(now)
                .arg(u8::from(freeze));
            let read = &read;
            // A freezing read writes: not retried.
            let copied: Option<Vec<Vec<u8>>> = self
                .call(!freeze, |mut connection| async move {
                    read.invoke_async(&mut connection).await
                })
                .await?;
            let Some(mut copied) = copied.filter(|values| !values.is_empty()) else {
                if attempt > 0 {
                    self.delete_one(to, writer).await?;
                }
                return Ok(Rename::SourceMissing);
            };
            let digest = copied.remove(0);

            let mut write = self.scripts.move_write.key(&target);
            write
                .key(self.keys.signature(to, writer))
                .arg(now)
                .arg(ttl)
                .arg(u8::from(attempt > 0))
                .arg(copied.len())
                .arg(copied)
                .arg(&update_args);
            let write = &write;
            let written: i64 = self
                .call(false, |mut connection| async move {
                    write.invoke_async(&mut connection).await
                })
                .await?;
            if written == 0 {
                return Ok(Rename::TargetExists);
            }

            // The copy exists: from here on a crash leaves both keys, never neither.
            let mut delete = self.scripts.move_delete.key(&source);
            delete
                .key(self.keys.signature(from, writer))
                .arg(self.clock.now_ms())
                .arg(digest)
                .arg(u8::from(freeze));
            let delete = &delete;
            let deleted: i64 = self
                .call(false, |mut connection| async move {
                    delete.invoke_async(&mut connection).await
                })
                .await?;
            match deleted {
                1 => return Ok(Rename::Renamed),
                -1 => {
                    // Deleted (e.g. logged out) meanwhile: that delete wins.
                    self.delete_one(to, writer).await?;
                    return Ok(Rename::SourceMissing);
                }
                _ => tracing::debug!(attempt, "session changed during a cluster regenerate; copying again"),
            }
        }
        // Not reached in practice: the last attempt froze the source, so it could not change.
        self.delete_one(to, writer).await?;
        Err(Error::Store(
            format!("the session kept changing during {MOVE_ATTEMPTS} attempts to regenerate its ID").into(),
        ))
    }

    /// Deletes `key`, signed by `writer`; whether it existed.
    async fn delete_one(&self, key: &StoreKey, writer: &str) -> Result<bool, Error> {
        let mut invocation = self.scripts.delete.key(self.keys.key(key));
        invocation.key(self.keys.signature(key, writer));
        let invocation = &invocation;
        let deleted: i64 = self
            .call(true, |mut connection| async move {
                invocation.invoke_async(&mut connection).await
            })
            .await?;
        Ok(deleted > 0)
    }
}

impl RedisStore {
    /// The signature of this handle's writes of `key`.
    fn signature(&self, key: &StoreKey) -> String {
        self.inner.keys.signature(key, &self.writer)
    }
}

impl SessionStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        let inner = &self.inner;
        let name = inner.keys.key(key);
        inner
            .observe("load", Some(key), async {
                let hash: HashMap<Vec<u8>, Vec<u8>> = inner
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
                let (now, ttl) = inner.now_and_ttl(record);
                let mut invocation = inner.scripts.create.key(inner.keys.key(key));
                invocation
                    .key(self.signature(key))
                    .arg(now)
                    .arg(ttl)
                    .arg(inner.write_args(record)?);
                let invocation = &invocation;
                let created: i64 = inner
                    .call(false, |mut connection| async move {
                        invocation.invoke_async(&mut connection).await
                    })
                    .await?;
                Ok(created == 1)
            })
            .await
    }

    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .observe("update", Some(key), async {
                let (now, ttl) = inner.now_and_ttl(update);
                let mut invocation = inner.scripts.update.key(inner.keys.key(key));
                invocation
                    .key(self.signature(key))
                    .arg(now)
                    .arg(ttl)
                    .arg(inner.write_args(update)?);
                let invocation = &invocation;
                let updated: i64 = inner
                    .call(false, |mut connection| async move {
                        invocation.invoke_async(&mut connection).await
                    })
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
                let mut invocation = inner.scripts.rename.key(inner.keys.key(from));
                invocation
                    .key(inner.keys.key(to))
                    .key(self.signature(from))
                    .key(self.signature(to))
                    .arg(now)
                    .arg(ttl)
                    .arg(inner.write_args(update)?);
                let invocation = &invocation;
                let outcome: i64 = inner
                    .call(false, |mut connection| async move {
                        invocation.invoke_async(&mut connection).await
                    })
                    .await?;
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
}

impl QueryStore for RedisStore {
    async fn scan(&self, cursor: u64, batch: usize) -> Result<ScanPage, Error> {
        let inner = &self.inner;
        inner
            .observe("scan", None, async {
                let nodes = inner.scan_nodes().await?;
                let (index, node_cursor) = if inner.backend.is_cluster() {
                    ((cursor >> NODE_SHIFT) as usize, cursor & ((1 << NODE_SHIFT) - 1))
                } else {
                    (0, cursor)
                };
                let Some(node) = nodes.get(index) else {
                    return Ok(ScanPage::default());
                };
                let (next, hashes) = inner
                    .call(true, |mut connection| {
                        let (node, keys) = (node.as_ref(), &inner.keys);
                        async move {
                            let (next, found) =
                                Inner::scan_keys(&mut connection, node, keys, node_cursor, batch).await?;
                            if found.is_empty() {
                                return Ok((next, Vec::new()));
                            }
                            Ok((next, Inner::read_hashes(&mut connection, found).await?))
                        }
                    })
                    .await?;
                let now = inner.clock.now_ms();
                let records = hashes
                    .into_iter()
                    .filter_map(|(key, hash)| Some((key, inner.decode(&key, hash, now)?)))
                    .collect();
                let next = match (next, inner.backend.is_cluster()) {
                    (0, false) => None,
                    (next, false) => Some(next),
                    (0, true) => (index + 1 < nodes.len()).then(|| ((index + 1) as u64) << NODE_SHIFT),
                    (next, true) if next >> NODE_SHIFT == 0 => Some(((index as u64) << NODE_SHIFT) | next),
                    (next, true) => {
                        return Err(Error::Store(
                            format!("a Redis SCAN cursor ({next}) too large to carry a cluster node index").into(),
                        ));
                    }
                };
                Ok(ScanPage { records, next })
            })
            .await
    }

    async fn count(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        inner
            .observe("count", None, async {
                let now = inner.clock.now_ms();
                inner
                    .for_each_page(|mut connection, keys| async move {
                        let expiries = inner.expiries(&mut connection, &keys, None).await?;
                        Ok(expiries.into_iter().flatten().filter(|&x| x > now).count())
                    })
                    .await
            })
            .await
    }

    async fn delete_many(&self, keys: &[StoreKey]) -> Result<usize, Error> {
        let inner = &self.inner;
        inner
            .observe("delete_many", None, async {
                let mut deleted = 0;
                for chunk in keys.chunks(BATCH) {
                    let count = if inner.backend.is_cluster() {
                        // Each key is its own slot: one script per key, concurrently.
                        try_join_all(chunk.iter().map(|key| inner.delete_one(key, &self.writer)))
                            .await?
                            .into_iter()
                            .filter(|&deleted| deleted)
                            .count()
                    } else {
                        // One script for the chunk: one round trip.
                        let mut invocation = inner.scripts.delete.prepare_invoke();
                        for key in chunk {
                            invocation.key(inner.keys.key(key));
                        }
                        for key in chunk {
                            invocation.key(self.signature(key));
                        }
                        let invocation = &invocation;
                        inner
                            .call(true, |mut connection| async move {
                                invocation.invoke_async::<usize>(&mut connection).await
                            })
                            .await?
                    };
                    deleted += count;
                }
                Ok(deleted)
            })
            .await
    }

    async fn clear(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        inner
            .observe("clear", None, async {
                let now = inner.clock.now_ms();
                inner
                    .for_each_page(|mut connection, keys| async move {
                        // Read each expiry and delete in the same round trip, so only live
                        // sessions are counted.
                        let expiries = inner.expiries(&mut connection, &keys, Some(&self.writer)).await?;
                        Ok(expiries.into_iter().flatten().filter(|&x| x > now).count())
                    })
                    .await
            })
            .await
    }
}
