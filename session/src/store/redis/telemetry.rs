//! Metrics (behind the `metrics` feature) of the Redis store's operations and breaker.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `session_store_operations_total` | counter | `store`, `op`, `outcome` (`ok`, `error`) |
//! | `session_store_errors_total` | counter | `store`, `op`, `kind` (`timeout`, `circuit_open`, `unavailable`, `error`, `other`) |
//! | `session_store_latency_seconds` | histogram | `store`, `op` |
//! | `session_store_breaker_transitions_total` | counter | `store`, `state` |
//! | `session_store_breaker_state` | gauge | `store` (0 closed, 1 open, 2 half-open) |
//!
//! `op` is one of `load`, `create`, `update`, `regenerate`, `delete`, `scan`, `count`,
//! `delete_many`, `clear`, `list_by_index`, `delete_by_index`, and for a
//! `RedisRevocationStore` `generation` and `revoke`.

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
        Error::Unavailable(_) => "unavailable",
        Error::Store(_) => "error",
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

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

    use super::*;

    /// Remembers every metric registered, as `name{label=value,...}`.
    #[derive(Default, Clone)]
    struct Registered(Arc<Mutex<Vec<String>>>);

    impl Registered {
        fn note(&self, key: &Key) {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            self.0
                .lock()
                .unwrap()
                .push(format!("{}{{{}}}", key.name(), labels.join(",")));
        }
    }

    impl Recorder for Registered {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            self.note(key);
            Counter::noop()
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            self.note(key);
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            self.note(key);
            Histogram::noop()
        }
    }

    #[test]
    fn operations_errors_and_breaker_changes_are_counted() {
        let recorder = Registered::default();
        metrics::with_local_recorder(&recorder, || {
            operation("load", Duration::from_millis(1), None);
            operation(
                "update",
                Duration::from_millis(1),
                Some(&Error::Timeout(Duration::from_secs(1))),
            );
            breaker_changed(BreakerState::Open);
        });
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "session_store_operations_total{store=redis,op=load,outcome=ok}",
                "session_store_latency_seconds{store=redis,op=load}",
                "session_store_operations_total{store=redis,op=update,outcome=error}",
                "session_store_latency_seconds{store=redis,op=update}",
                "session_store_errors_total{store=redis,op=update,kind=timeout}",
                "session_store_breaker_transitions_total{store=redis,state=open}",
                "session_store_breaker_state{store=redis}",
            ]
        );
    }
}
