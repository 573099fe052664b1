//! Metrics (behind the `metrics` feature) of the Redis store's operations and breaker.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `session_store_operations_total` | counter | `store`, `op`, `outcome` (`ok`, `error`) |
//! | `session_store_errors_total` | counter | `store`, `op`, `kind` (`timeout`, `circuit_open`, `backend`, `other`) |
//! | `session_store_latency_seconds` | histogram | `store`, `op` |
//! | `session_store_breaker_transitions_total` | counter | `store`, `state` |
//! | `session_store_breaker_state` | gauge | `store` (0 closed, 1 open, 2 half-open) |
//!
//! `op` is one of `load`, `create`, `update`, `regenerate`, `delete`, `scan`, `count`,
//! `delete_many`, `clear`.

use std::time::Duration;

use crate::{Error, resilience::BreakerState};

/// The `store` label.
#[cfg(feature = "metrics")]
const STORE: &str = "redis";

/// The `kind` label of an error.
pub(super) fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Timeout(_) => "timeout",
        Error::CircuitOpen { .. } => "circuit_open",
        Error::Store(_) => "backend",
        _ => "other",
    }
}

/// Records one finished operation.
pub(super) fn operation(op: &'static str, elapsed: Duration, error: Option<&Error>) {
    #[cfg(feature = "metrics")]
    {
        let outcome = if error.is_some() { "error" } else { "ok" };
        metrics::counter!("session_store_operations_total", "store" => STORE, "op" => op, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("session_store_latency_seconds", "store" => STORE, "op" => op)
            .record(elapsed.as_secs_f64());
        if let Some(error) = error {
            metrics::counter!("session_store_errors_total", "store" => STORE, "op" => op, "kind" => error_kind(error))
                .increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (op, elapsed, error);
}

/// Records a breaker state change.
pub(super) fn breaker_changed(state: BreakerState) {
    match state {
        BreakerState::Open => tracing::warn!(
            state = state.as_str(),
            "Redis session store circuit opened: calls fail fast until the reset timeout"
        ),
        _ => tracing::info!(state = state.as_str(), "Redis session store circuit changed state"),
    }
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("session_store_breaker_transitions_total", "store" => STORE, "state" => state.as_str())
            .increment(1);
        let value = match state {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        };
        metrics::gauge!("session_store_breaker_state", "store" => STORE).set(value);
    }
}
