//! The call loop every statement of the SQL stores goes through: the per-call timeout (pool
//! acquire included), the circuit breaker, retries of idempotent calls, and a span per
//! store operation; and the mapping of sqlx's errors onto the crate's.

use std::{future::Future, sync::Arc, time::Duration};

use tracing::Instrument as _;

use crate::{
    Error,
    clock::Clock,
    resilience::{BreakerState, CircuitBreaker, Outcome, RetryPolicy},
    store::{store_error, value::ValueCodec},
};

use super::table::Table;

/// What every SQL store holds besides its pool and statements.
pub(crate) struct Core {
    /// `postgres`, `sqlite` or `mysql`: for spans and logs.
    pub(crate) backend: &'static str,
    pub(crate) table: Table,
    pub(crate) clock: Arc<dyn Clock>,
    /// How long past its deadline an expired row is kept (ms).
    pub(crate) retention_ms: u64,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) values: ValueCodec,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .field("table", &self.table.display())
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("values", &self.values)
            .finish_non_exhaustive()
    }
}

/// How a failed attempt counts.
enum Failure {
    /// The database answered with an error: not the backend's failure.
    Answered(Error),
    /// The database could not be reached or is failing: counted by the breaker, retried
    /// when the call is idempotent.
    Backend(Error),
    /// The database rolled the statement back to break a deadlock or a serialization
    /// conflict with a concurrent statement: nothing of it was applied, so it is retried
    /// even when it writes; not the backend's failure.
    RolledBack(Error),
}

/// Whether a database error code means the statement was rolled back whole because of a
/// concurrent one: SQLSTATE `40001` (serialization failure; MySQL's deadlock, 1213) and
/// `40P01` (PostgreSQL's deadlock).
fn is_rolled_back_code(code: &str) -> bool {
    matches!(code, "40001" | "40P01")
}

/// Whether a database error code means the server is failing rather than refusing this
/// statement: SQLSTATE classes `08` (connection exception), `53` (insufficient resources:
/// too many connections, disk full, out of memory) and `57P` (shutting down, starting up);
/// SQLite's `SQLITE_BUSY`, `SQLITE_LOCKED` (after the busy timeout), `SQLITE_IOERR`,
/// `SQLITE_FULL` and `SQLITE_CANTOPEN`, with their extended codes.
fn is_failing_code(code: &str) -> bool {
    if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
        return true;
    }
    // SQLite reports its (extended) result code; the primary code is the low byte.
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 10 | 13 | 14))
}

fn classify(error: sqlx::Error, timeout: Duration) -> Failure {
    match error {
        sqlx::Error::Database(database) => {
            if database.code().is_some_and(|code| is_failing_code(&code)) {
                Failure::Backend(Error::Unavailable(Box::new(sqlx::Error::Database(database))))
            } else if database.code().is_some_and(|code| is_rolled_back_code(&code)) {
                Failure::RolledBack(Error::Store(Box::new(sqlx::Error::Database(database))))
            } else {
                Failure::Answered(Error::Store(Box::new(sqlx::Error::Database(database))))
            }
        }
        sqlx::Error::PoolTimedOut => Failure::Backend(Error::Timeout(timeout)),
        error @ (sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed) => Failure::Backend(Error::Unavailable(Box::new(error))),
        other => Failure::Answered(Error::Store(Box::new(other))),
    }
}

/// A column that did not decode as expected.
pub(crate) fn decode_error(error: sqlx::Error) -> Error {
    store_error(error)
}

/// An answer this crate does not expect from its own statements.
pub(crate) fn unexpected(what: impl Into<String>) -> Error {
    Error::Store(what.into().into())
}

/// How often a statement the database rolled back for a concurrent one is run at most.
const ROLLED_BACK_ATTEMPTS: u32 = 5;

impl Core {
    /// Runs one store operation: `attempt` (its statements, pool acquire included) under
    /// the timeout and the breaker, retried if `idempotent`, inside a span named `op`.
    pub(crate) async fn call<T, F, Fut>(&self, op: &'static str, idempotent: bool, attempt: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.call_within(op, idempotent, self.timeout, attempt).await
    }

    /// As [`call`](Self::call), under `timeout` instead of the command timeout.
    pub(crate) async fn call_within<T, F, Fut>(
        &self,
        op: &'static str,
        idempotent: bool,
        timeout: Duration,
        attempt: F,
    ) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let span = tracing::debug_span!("session_store", store = self.backend, op);
        let result = self
            .attempts(idempotent, timeout, attempt)
            .instrument(span.clone())
            .await;
        if let Err(error) = &result {
            span.in_scope(|| tracing::debug!(%error, "SQL session store operation failed"));
        }
        result
    }

    async fn attempts<T, F, Fut>(&self, idempotent: bool, timeout: Duration, attempt: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let attempts = if idempotent { self.retry.attempts() } else { 1 };
        let mut tried = 0;
        let mut rolled_back = 0;
        loop {
            let permit = self.breaker.acquire()?;
            let failure = match tokio::time::timeout(timeout, attempt()).await {
                Ok(Ok(value)) => {
                    permit.record(Outcome::Answered);
                    return Ok(value);
                }
                Ok(Err(error)) => classify(error, timeout),
                Err(_) => Failure::Backend(Error::Timeout(timeout)),
            };
            let error = match failure {
                Failure::Answered(error) => {
                    permit.record(Outcome::Answered);
                    return Err(error);
                }
                Failure::Backend(error) => {
                    permit.record(Outcome::Failed);
                    error
                }
                Failure::RolledBack(error) => {
                    permit.record(Outcome::Answered);
                    rolled_back += 1;
                    if rolled_back >= ROLLED_BACK_ATTEMPTS {
                        return Err(error);
                    }
                    tracing::debug!(%error, "a statement rolled back by a concurrent one; running it again");
                    tokio::time::sleep(self.retry.backoff(rolled_back - 1)).await;
                    continue;
                }
            };
            tried += 1;
            if tried >= attempts {
                return Err(error);
            }
            tracing::debug!(%error, attempt = tried, "retrying an idempotent SQL session store call");
            tokio::time::sleep(self.retry.backoff(tried - 1)).await;
        }
    }

    /// The current time by the store's clock, in ms as the database stores it.
    pub(crate) fn now(&self) -> i64 {
        db_ms(self.clock.now_ms())
    }
}

/// Milliseconds as a `BIGINT`: a deadline past `i64::MAX` ms (never, in practice) is
/// clamped, which keeps it in the future.
pub(crate) fn db_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Logs the breaker's state changes.
pub(crate) fn breaker_changed(backend: &'static str) -> impl Fn(BreakerState) + Send + Sync + 'static {
    move |state| match state {
        BreakerState::Open => {
            tracing::warn!(
                store = backend,
                "SQL session store circuit breaker opened: failing fast"
            );
        }
        BreakerState::HalfOpen => {
            tracing::info!(store = backend, "SQL session store circuit breaker half-open: probing");
        }
        BreakerState::Closed => tracing::info!(store = backend, "SQL session store circuit breaker closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_codes_are_the_backends_and_others_are_answers() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "53100", "5", "517", "6", "10", "3338", "13",
        ] {
            assert!(is_failing_code(code), "{code}");
        }
        for code in [
            "23505", "42601", "42P01", "40001", "HY000", "1555", "2067", "19", "1", "42000",
        ] {
            assert!(!is_failing_code(code), "{code}");
        }
        assert!(is_rolled_back_code("40001") && is_rolled_back_code("40P01"));
        assert!(!is_rolled_back_code("23505"));
        assert!(matches!(
            classify(sqlx::Error::PoolTimedOut, Duration::from_secs(1)),
            Failure::Backend(Error::Timeout(_))
        ));
        assert!(matches!(
            classify(
                sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
                Duration::from_secs(1)
            ),
            Failure::Backend(Error::Unavailable(_))
        ));
        assert!(matches!(
            classify(sqlx::Error::RowNotFound, Duration::from_secs(1)),
            Failure::Answered(Error::Store(_))
        ));
    }
}
