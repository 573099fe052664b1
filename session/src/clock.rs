//! Time sources: the system clock, and a manual clock for tests.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Where the provider and the stores read the current time from.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        to_unix_ms(SystemTime::now())
    }
}

/// A clock that only moves when told to, for tests of expiry and refresh.
///
/// Clones share the same time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let start = clock.now_ms();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now_ms() - start, 90_000);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock set to the current system time.
    pub fn new() -> Self {
        Self::at_ms(SystemClock.now_ms())
    }

    /// A manual clock set to `unix_ms` milliseconds after the epoch.
    pub fn at_ms(unix_ms: u64) -> Self {
        Self {
            now_ms: Arc::new(AtomicU64::new(unix_ms)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(duration_ms(by), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

pub(crate) fn to_unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, duration_ms)
}

pub(crate) fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub(crate) fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
