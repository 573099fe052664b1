//! Retry with capped exponential backoff, and a circuit breaker: what keeps a remote store
//! from turning a slow or dead backend into slow or stuck requests.
//!
//! Both are generic over the operation; a store decides which failures are the backend's
//! (they count) and which operations are idempotent (only those are retried).

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use crate::Error;

/// How an idempotent operation is retried after a backend failure.
///
/// The delay before retry `n` (counted from 0) is drawn uniformly from
/// `0..=min(max_delay, base_delay * 2^n)` ("full jitter"), so clients that failed
/// together do not retry together.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session::resilience::RetryPolicy;
///
/// let policy = RetryPolicy { max_attempts: 4, ..RetryPolicy::default() };
/// assert!(policy.backoff_cap(10) <= policy.max_delay);
/// assert_eq!(RetryPolicy::none().max_attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `1` disables retry (`0` counts as `1`).
    pub max_attempts: u32,
    /// The backoff cap of the first retry.
    pub base_delay: Duration,
    /// The largest backoff cap.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, backing off from 25 ms up to 500 ms.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// One attempt: no retry.
    pub const fn none() -> Self {
        Self {
            max_attempts: 1,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The upper bound of the delay before retry `retry` (counted from 0):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .map_or(self.max_delay, |cap| cap.min(self.max_delay))
    }

    /// A random delay in `0..=backoff_cap(retry)`.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        jitter(self.backoff_cap(retry), random_u64())
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// Scales `cap` by `random / u64::MAX`.
fn jitter(cap: Duration, random: u64) -> Duration {
    let nanos = cap.as_nanos().min(u128::from(u64::MAX));
    let scaled = nanos * u128::from(random) / u128::from(u64::MAX);
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}

fn random_u64() -> u64 {
    // Jitter needs no cryptographic quality; a failing OS generator just means no jitter.
    getrandom::u64().unwrap_or(u64::MAX / 2)
}

/// When a store's circuit breaker opens and how long it stays open: closed, open after
/// `failure_threshold` consecutive backend failures, half-open after `reset_timeout`, when
/// one probe call decides between closed and open again.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session::resilience::BreakerConfig;
///
/// let config = BreakerConfig { failure_threshold: 3, reset_timeout: Duration::from_secs(5) };
/// assert_ne!(config, BreakerConfig::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive backend failures that open the breaker (`0` counts as `1`).
    pub failure_threshold: u32,
    /// How long the breaker stays open before it lets one probe through.
    pub reset_timeout: Duration,
}

impl Default for BreakerConfig {
    /// Opens after 5 consecutive failures, probes again after 10 seconds.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(10),
        }
    }
}

/// The state of a store's circuit breaker (see [`BreakerConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; consecutive backend failures are counted.
    Closed,
    /// Calls fail fast until the reset timeout has passed.
    Open,
    /// The reset timeout passed: one probe call decides between closed and open.
    HalfOpen,
}

impl BreakerState {
    /// A short name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl State {
    fn public(self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// How a call ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The backend answered (even with "not found" or a refused write).
    Answered,
    /// The backend failed: unreachable, timed out, or refusing service.
    Failed,
}

/// A circuit breaker: closed, open after `failure_threshold` consecutive backend failures,
/// half-open after `reset_timeout` (one probe goes through; its outcome closes or reopens).
///
/// Time is Tokio's, so tests can pause and advance it.
pub(crate) struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<State>,
    on_change: Box<dyn Fn(BreakerState) + Send + Sync>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A closed breaker that reports each state change to `on_change`.
    pub(crate) fn new(config: BreakerConfig, on_change: impl Fn(BreakerState) + Send + Sync + 'static) -> Self {
        Self {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
            on_change: Box::new(on_change),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single assignment: a panic cannot leave a torn state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state (an open breaker whose timeout passed reports half-open).
    pub(crate) fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            state => state.public(),
        }
    }

    /// Moves to `next`; returns the new state if it differs from the old.
    fn set(&self, state: &mut State, next: State) -> Option<BreakerState> {
        let changed = state.public() != next.public();
        *state = next;
        changed.then(|| {
            (self.on_change)(next.public());
            next.public()
        })
    }

    /// Asks to make a call; the permit must be given the call's outcome.
    ///
    /// # Errors
    ///
    /// [`Error::CircuitOpen`] while the breaker is open, or half-open with its probe in
    /// flight (then `retry_in` is zero).
    pub(crate) fn acquire(&self) -> Result<Permit<'_>, Error> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(Permit::new(self, false)),
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(Error::CircuitOpen { retry_in: until - now });
                }
                self.set(&mut state, State::HalfOpen { probing: true });
                Ok(Permit::new(self, true))
            }
            State::HalfOpen { probing: true } => Err(Error::CircuitOpen {
                retry_in: Duration::ZERO,
            }),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(Permit::new(self, true))
            }
        }
    }

    fn record(&self, probe: bool, outcome: Outcome) -> Option<BreakerState> {
        let mut state = self.lock();
        let next = match (outcome, *state) {
            (Outcome::Answered, _) => State::Closed { failures: 0 },
            // A call admitted before the breaker opened must not extend or close it.
            (Outcome::Failed, State::Open { .. }) => return None,
            (Outcome::Failed, State::HalfOpen { .. }) if !probe => return None,
            (Outcome::Failed, State::Closed { failures }) => {
                let failures = failures.saturating_add(1);
                if failures < self.config.failure_threshold.max(1) {
                    State::Closed { failures }
                } else {
                    self.open_state()
                }
            }
            (Outcome::Failed, State::HalfOpen { .. }) => self.open_state(),
        };
        self.set(&mut state, next)
    }

    fn open_state(&self) -> State {
        State::Open {
            until: Instant::now() + self.config.reset_timeout,
        }
    }

    /// A probe that ended without an outcome (its future was dropped) frees the slot.
    fn abandon_probe(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { probing: true } = *state {
            *state = State::HalfOpen { probing: false };
        }
    }
}

/// Leave to make one call; report how it ended with [`Permit::record`].
#[must_use = "report the call's outcome with .record()"]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, probe: bool) -> Self {
        Self {
            breaker,
            probe,
            recorded: false,
        }
    }

    /// Reports the call's outcome; returns the breaker's new state if it changed.
    pub(crate) fn record(mut self, outcome: Outcome) -> Option<BreakerState> {
        self.recorded = true;
        self.breaker.record(self.probe, outcome)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.breaker.abandon_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn breaker(threshold: u32) -> (CircuitBreaker, Arc<Mutex<Vec<BreakerState>>>) {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        let config = BreakerConfig {
            failure_threshold: threshold,
            reset_timeout: Duration::from_secs(10),
        };
        let breaker = CircuitBreaker::new(config, move |state| seen.lock().unwrap().push(state));
        (breaker, changes)
    }

    fn fail(breaker: &CircuitBreaker) {
        breaker.acquire().unwrap().record(Outcome::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let (breaker, _) = breaker(3);
        fail(&breaker);
        fail(&breaker);
        // An answer (even "not found") resets the count.
        breaker.acquire().unwrap().record(Outcome::Answered);
        fail(&breaker);
        fail(&breaker);
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&breaker);
        assert_eq!(breaker.state(), BreakerState::Open);
        match breaker.acquire() {
            Err(Error::CircuitOpen { retry_in }) => assert_eq!(retry_in, Duration::from_secs(10)),
            other => panic!("expected CircuitOpen, got {:?}", other.map(|_| ())),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let (breaker, changes) = breaker(1);
        fail(&breaker);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(matches!(
            breaker.acquire(),
            Err(Error::CircuitOpen { retry_in }) if retry_in == Duration::from_secs(6)
        ));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);

        let probe = breaker.acquire().expect("the probe goes through");
        assert!(
            matches!(breaker.acquire(), Err(Error::CircuitOpen { retry_in }) if retry_in.is_zero()),
            "only one probe at a time"
        );
        probe.record(Outcome::Failed);
        assert_eq!(breaker.state(), BreakerState::Open, "a failed probe reopens");

        tokio::time::advance(Duration::from_secs(10)).await;
        breaker.acquire().unwrap().record(Outcome::Answered);
        assert_eq!(breaker.state(), BreakerState::Closed, "an answered probe closes");
        assert_eq!(
            *changes.lock().unwrap(),
            [
                BreakerState::Open,
                BreakerState::HalfOpen,
                BreakerState::Open,
                BreakerState::HalfOpen,
                BreakerState::Closed
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_the_slot_and_late_failures_do_not_extend_the_open_state() {
        let (breaker, _) = breaker(1);
        let early = breaker.acquire().unwrap();
        fail(&breaker);
        // A call admitted before the breaker opened fails late: the open period stays as it was.
        tokio::time::advance(Duration::from_secs(5)).await;
        early.record(Outcome::Failed);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(breaker.acquire().expect("probe after the original 10 s"));
        assert!(breaker.acquire().is_ok(), "a dropped probe lets the next one through");
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        };
        let caps: Vec<_> = (0..6).map(|n| policy.backoff_cap(n).as_millis()).collect();
        assert_eq!(caps, [10, 20, 40, 80, 100, 100]);
        assert_eq!(policy.backoff_cap(200), Duration::from_millis(100), "no overflow");
        assert_eq!(jitter(Duration::from_millis(80), 0), Duration::ZERO);
        assert_eq!(jitter(Duration::from_millis(80), u64::MAX), Duration::from_millis(80));
        let half = jitter(Duration::from_millis(80), u64::MAX / 2);
        assert!(half.abs_diff(Duration::from_millis(40)) < Duration::from_micros(1));
        for retry in 0..8 {
            assert!(policy.backoff(retry) <= policy.backoff_cap(retry));
        }
        assert_eq!(RetryPolicy::none().attempts(), 1);
        assert_eq!(
            RetryPolicy {
                max_attempts: 0,
                ..policy
            }
            .attempts(),
            1
        );
    }
}
