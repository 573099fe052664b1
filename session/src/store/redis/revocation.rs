//! The revocation generations of cookie sessions, kept in Redis through a store's
//! connection.

use std::{fmt, sync::Arc, time::Duration};

use super::{Inner, RedisStore, call::ScriptCall};
use crate::{
    clock::duration_ms,
    index::IndexKey,
    revocation::{GenerationFuture, RevocationStore},
};

/// Revocation generations in Redis (feature `redis`), for
/// [`CookieSessions`](crate::CookieSessions) on several nodes: one integer per revoked
/// index under
///
/// ```text
/// {prefix}gen:{<64 hex digits>}     the index's digest (IndexKey::to_hex), never the value
/// ```
///
/// Revoking is one `INCR`; a lookup one `GET`. Both run as one short script that also keeps
/// the key's TTL above the `keep_for` [`CookieSessions`](crate::CookieSessions) asks for (as
/// long as its longest cookie can live), so a generation is never forgotten while a cookie
/// sealed with it lives, and an index nobody revokes again leaves Redis in the end. An
/// index never revoked has no key.
///
/// It shares the connection, prefix, command timeout, retry policy and circuit breaker of
/// the [`RedisStore`] it is made from (one server or a Cluster; the digest is the hash
/// tag). A Redis that cannot be reached fails lookups as it fails the store's loads
/// ([`Error::Timeout`](crate::Error::Timeout), [`Error::Unavailable`](crate::Error::Unavailable)
/// or [`Error::CircuitOpen`](crate::Error::CircuitOpen)), so the HTTP layer answers 503 by
/// default and never accepts a cookie it could not check. Both calls are retried under
/// the store's [`RetryPolicy`](crate::resilience::RetryPolicy): a revoke applied twice only
/// revokes more.
///
/// # Examples
///
/// ```no_run
/// use session::{CookieSessions, RedisRevocationStore, RedisStore, SessionConfig};
/// use session::crypto::{KeyId, KeyRing, Secret};
///
/// # async fn run(secret: Secret) -> Result<(), session::Error> {
/// let redis = RedisStore::builder("redis://127.0.0.1:6379/0").prefix("myapp:").build().await?;
/// let sessions = CookieSessions::new(KeyRing::new(KeyId(1), secret), SessionConfig::production().build()?)?
///     .with_revocation(RedisRevocationStore::new(&redis));
/// # let _ = sessions;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRevocationStore {
    inner: Arc<Inner>,
}

impl RedisRevocationStore {
    /// Generations kept through `store`'s connection, under its prefix.
    pub fn new(store: &RedisStore) -> Self {
        Self {
            inner: store.inner.clone(),
        }
    }
}

impl From<RedisStore> for RedisRevocationStore {
    fn from(store: RedisStore) -> Self {
        Self::new(&store)
    }
}

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("prefix", &self.inner.keys.prefix())
            .field("cluster", &self.inner.backend.is_cluster())
            .finish_non_exhaustive()
    }
}

impl RedisRevocationStore {
    async fn run(
        &self,
        op: &'static str,
        script: &redis::Script,
        index: &IndexKey,
        keep_for: Duration,
    ) -> Result<u64, crate::Error> {
        let inner = &self.inner;
        let keep_ms = duration_ms(keep_for).max(1);
        let mut call = ScriptCall::new(script, &[inner.keys.generation(index)]);
        call.arg(keep_ms).arg(keep_ms.saturating_mul(2));
        inner
            .observe(op, None, || async move {
                let generation: Option<u64> = inner.run_script(true, &call).await?;
                Ok(generation.unwrap_or(0))
            })
            .await
    }
}

impl RevocationStore for RedisRevocationStore {
    fn generation<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a> {
        Box::pin(self.run("generation", &self.inner.scripts.generation, index, keep_for))
    }

    fn revoke<'a>(&'a self, index: &'a IndexKey, keep_for: Duration) -> GenerationFuture<'a> {
        Box::pin(self.run("revoke", &self.inner.scripts.revoke, index, keep_for))
    }
}
