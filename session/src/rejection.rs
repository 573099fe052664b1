//! Presented sessions refused for a reason worth an operator's attention: a forged or
//! tampered cookie, a session presented by another client, or a revoked cookie. The request
//! still gets a fresh session; this is only the report, through
//! [`Callbacks::on_rejected`](crate::Callbacks::on_rejected) and a rate-limited warning.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::clock::{Clock as _, SystemClock};

/// Why a presented session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// The cookie is not a well-formed session ID (server-side stores): truncated, edited
    /// or made up. IDs that are well-formed but unknown or expired are not reported: they
    /// are the everyday end of a session.
    MalformedId,
    /// A sealed cookie did not authenticate: tampered, truncated, forged, or sealed with a
    /// key no longer in the ring. Expired cookies are not reported.
    Tampered,
    /// The session is bound to client facts (User-Agent, IP address) that this request does
    /// not match, or the client's IP address is unknown while the session is bound to it.
    ClientMismatch,
    /// A client presented the ID of a server-only session, which no client should hold.
    ServerOnly,
    /// An authentic cookie session whose index was revoked after the cookie was sealed
    /// ([`CookieSessions::revoke_all_of`](crate::CookieSessions::revoke_all_of) and the
    /// like): a logged-out cookie presented again, or one of a device logged out from
    /// elsewhere.
    Revoked,
}

impl Rejection {
    fn index(self) -> usize {
        match self {
            Self::MalformedId => 0,
            Self::Tampered => 1,
            Self::ClientMismatch => 2,
            Self::ServerOnly => 3,
            Self::Revoked => 4,
        }
    }
}

/// At most one warning per kind per this many milliseconds: a flood of forged cookies
/// must not flood the logs.
const WARN_EVERY_MS: u64 = 10_000;

/// One slot per kind of rejection.
const KINDS: usize = 5;
static LAST_WARNED_MS: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];
static SUPPRESSED: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];

/// Logs a warning unless one of this kind was logged within the last ten seconds (it
/// then counts the ones it left out).
pub(crate) fn warn(rejection: Rejection) {
    let kind = rejection.index();
    let now = SystemClock.now_ms();
    let last = LAST_WARNED_MS[kind].load(Relaxed);
    if now.saturating_sub(last) >= WARN_EVERY_MS
        && LAST_WARNED_MS[kind]
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    {
        let suppressed = SUPPRESSED[kind].swap(0, Relaxed);
        tracing::warn!(
            ?rejection,
            suppressed,
            "a presented session was refused; a fresh session was started"
        );
    } else {
        SUPPRESSED[kind].fetch_add(1, Relaxed);
    }
}
