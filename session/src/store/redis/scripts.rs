//! The Lua scripts that make each write one atomic round trip.
//!
//! Liveness is judged by the store's clock, not only by Redis's TTL: the caller passes
//! `now` (ms) and a record whose expiry field `x` is not after it counts as absent. That
//! keeps the store exact under a manual clock and under clock skew between app servers
//! and Redis.
//!
//! Common arguments: `ARGV[1]` now, `ARGV[2]` the TTL in ms, `ARGV[3..]` hash field/value
//! pairs to write (always including the metadata, so never empty).

use redis::Script;

/// `KEYS[1]` the key. Returns 1 if created, 0 if a live record exists.
const CREATE: &str = r"
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
if x and x > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// `KEYS[1]` the key. Returns 1 if updated, 0 if no live record exists.
const UPDATE: &str = r"
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
if not x or x <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// `KEYS[1]` the source, `KEYS[2]` the target. Returns 0 renamed, 1 source missing,
/// 2 target exists.
const RENAME: &str = r"
local now = tonumber(ARGV[1])
local target = tonumber(redis.call('HGET', KEYS[2], 'x'))
if target and target > now then return 2 end
local source = tonumber(redis.call('HGET', KEYS[1], 'x'))
if not source or source <= now then return 1 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 0
";

/// The compiled scripts; `Script` keeps the SHA-1 and falls back to loading on `NOSCRIPT`.
pub(super) struct Scripts {
    pub(super) create: Script,
    pub(super) update: Script,
    pub(super) rename: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            create: Script::new(CREATE),
            update: Script::new(UPDATE),
            rename: Script::new(RENAME),
        }
    }

    pub(super) fn all(&self) -> [&Script; 3] {
        [&self.create, &self.update, &self.rename]
    }
}
