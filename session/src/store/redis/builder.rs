//! Configuring a [`RedisStore`] and starting it: connect, then load the scripts.

use std::{
    fmt,
    sync::{Arc, RwLock},
    time::Duration,
};

use super::{Inner, RedisStore, connection::Backend, layout::Keys, scripts::Scripts, telemetry};
use crate::{
    Error,
    clock::{Clock, SystemClock},
    crypto::{KeyRing, Purpose},
    resilience::{BreakerConfig, CircuitBreaker, RetryPolicy},
    store::value::{Sealing, ValueCodec},
};

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use = "call .build().await to get a RedisStore"]
pub struct RedisStoreBuilder {
    pub(super) urls: Vec<String>,
    cluster: bool,
    prefix: String,
    command_timeout: Duration,
    retry: RetryPolicy,
    breaker: BreakerConfig,
    compress_above: Option<usize>,
    encryption: Option<KeyRing>,
    expired_retention: Duration,
    clock: Arc<dyn Clock>,
    /// PEM certificates trusted for `rediss://` instead of the system's roots.
    pub(super) tls_roots: Option<Vec<u8>>,
    /// Sign every write (for a clustered store in front); see `tracking.rs`.
    pub(super) signed: bool,
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
            expired_retention: Duration::ZERO,
            clock: Arc::new(SystemClock),
            tls_roots: None,
            signed: false,
        }
    }

    /// Configures a store for a Redis Cluster reached through any of these nodes
    /// (`redis://[[user]:password@]host:port`, or `rediss://…`); the others are discovered.
    /// The same defaults as [`builder`](Self::builder); see the
    /// [type documentation](RedisStore#redis-cluster) for what differs on a cluster.
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

    /// Keeps an expired session's key this much longer than its deadline (default zero),
    /// so that [`SessionProvider::load_outcome`](crate::SessionProvider::load_outcome) can
    /// tell "expired" from "unknown" for this long. The whole record stays until then (Redis
    /// expires keys whole, and a key's TTL runs to the end of its expiry's minute, up to a
    /// minute more), costing that much memory; it is never loaded, updated or counted. A
    /// retention raised between deployments reaches a key when its TTL is next set (its
    /// expiry moves into another minute).
    pub fn expired_retention(mut self, retention: Duration) -> Self {
        self.expired_retention = retention;
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
    /// [type documentation](RedisStore#encryption-at-rest)). Default: none.
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
    /// [`Error::Unavailable`] when the server cannot be reached or refuses the connection.
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
        let purpose = Purpose::store("redis").map_err(|error| Error::Config(error.to_string()))?;
        let connection = backend.connect_lazily()?;
        let keys = Keys::new(&self.prefix);
        let store = RedisStore {
            writer: crate::id::random_hex::<8>()?.into(),
            inner: Arc::new(Inner {
                connection: RwLock::new(connection),
                backend,
                scripts: Scripts::new(keys.index_prefix()),
                keys,
                signed: self.signed,
                values: ValueCodec {
                    compress_above: self.compress_above,
                    sealing: self.encryption.map(|ring| Sealing { ring, purpose }),
                },
                retention_ms: crate::clock::duration_ms(self.expired_retention),
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
