//! The call loop every Redis command of the store goes through: the per-command timeout,
//! the circuit breaker, retries of idempotent commands, and the span and metrics of each
//! store operation.

use std::{future::Future, sync::PoisonError, time::Instant};

use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, Script, ServerErrorKind, ToRedisArgs};
use tracing::Instrument as _;

use super::{Inner, connection::Connection, telemetry};
use crate::{
    Error,
    id::StoreKey,
    resilience::{BreakerState, Outcome, Permit},
    store::store_error,
};

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
    pub(super) async fn call<T, F, Fut>(&self, idempotent: bool, attempt: F) -> Result<T, Error>
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
                    Error::Unavailable(Box::new(error))
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

    /// Runs a script through [`call`](Self::call).
    pub(super) async fn run_script<T: FromRedisValue>(
        &self,
        idempotent: bool,
        call: &ScriptCall<'_>,
    ) -> Result<T, Error> {
        self.call(idempotent, |mut connection| async move {
            call.invoke(&mut connection).await
        })
        .await
    }

    fn failed(&self, permit: Permit<'_>) {
        if permit.record(Outcome::Failed) == Some(BreakerState::Open) {
            self.reconnect();
        }
    }

    /// Runs the future `operation` makes in a span and records its metrics. The future is
    /// made here, not passed in: an `async fn` keeps its arguments for its whole run, so a
    /// future argument would take its room twice in this one, and so in every future
    /// awaiting it (the clustered store's requests held its saves four times over).
    pub(super) async fn observe<T, Fut>(
        &self,
        op: &'static str,
        key: Option<&StoreKey>,
        operation: impl FnOnce() -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Error>>,
    {
        let span = match key {
            Some(key) => {
                tracing::debug_span!("session_store", store = "redis", op, key = %key.short())
            }
            None => tracing::debug_span!("session_store", store = "redis", op),
        };
        let started = Instant::now();
        let result = operation().instrument(span.clone()).await;
        telemetry::operation(op, started.elapsed(), result.as_ref().err());
        if let Err(error) = &result {
            span.in_scope(|| {
                tracing::debug!(%error, kind = telemetry::error_kind(error), "Redis session store operation failed");
            });
        }
        result
    }
}

/// Room for a script call's arguments: the write scripts take up to 14.
const SCRIPT_ARGS_ROOM: usize = 16;
/// Room for a script call's digest, key count and small arguments (numbers, field names,
/// the index value), beyond its keys and what its caller adds.
const SCRIPT_BYTES_ROOM: usize = 192;

/// An `EVALSHA` of one of the store's scripts, its keys and arguments written straight into
/// the command (redis's `ScriptInvocation` keeps each in a vector of its own, then copies
/// them all into the command on every call): keys first, as `EVALSHA` takes them.
pub(super) struct ScriptCall<'a> {
    script: &'a Script,
    command: Cmd,
}

impl<'a> ScriptCall<'a> {
    /// `script` on `keys` (its `KEYS`, counted first: pass borrowed names, so the count's
    /// pass copies none); the arguments follow with [`arg`](Self::arg).
    pub(super) fn new<K: AsRef<str>>(script: &'a Script, keys: impl IntoIterator<Item = K, IntoIter: Clone>) -> Self {
        Self::with_room(script, keys, 0)
    }

    /// As [`new`](Self::new), with room for `bytes` of arguments beyond the small ones
    /// (the whole value a write sends): the command is built in one buffer, not grown by
    /// reallocation argument by argument.
    pub(super) fn with_room<K: AsRef<str>>(
        script: &'a Script,
        keys: impl IntoIterator<Item = K, IntoIter: Clone>,
        bytes: usize,
    ) -> Self {
        let keys = keys.into_iter();
        let key_bytes: usize = keys.clone().map(|key| key.as_ref().len()).sum();
        let mut command = Cmd::with_capacity(SCRIPT_ARGS_ROOM, SCRIPT_BYTES_ROOM + key_bytes + bytes);
        command.arg("EVALSHA").arg(script.get_hash()).arg(keys.clone().count());
        for key in keys {
            command.arg(key.as_ref());
        }
        Self { script, command }
    }

    /// Appends arguments (`ARGV`).
    pub(super) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.command.arg(arg);
        self
    }

    /// Runs the script, loading it first if the server does not hold it (a restart, a
    /// `SCRIPT FLUSH`, a new primary).
    async fn invoke<T: FromRedisValue>(&self, connection: &mut Connection) -> RedisResult<T> {
        match self.command.query_async(connection).await {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(connection).await?;
                self.command.query_async(connection).await
            }
            answer => answer,
        }
    }
}
