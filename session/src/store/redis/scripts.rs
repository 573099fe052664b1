//! The Lua scripts that make each write one atomic round trip.
//!
//! Liveness is judged by the store's clock, not only by Redis's TTL: the caller passes
//! `now` (ms) and a record whose expiry field `x` is not after it counts as absent. That
//! keeps the store exact under a manual clock and under clock skew between app servers
//! and Redis.
//!
//! Common arguments of create, update and rename: `ARGV[1]` now, `ARGV[2]` the TTL in ms,
//! `ARGV[3..]` hash field/value pairs to write (always including the metadata, so never
//! empty).
//!
//! Every script that changes a session key also sets and deletes that key's signature
//! (the last `KEYS`, see `Keys::signature`), so the broadcast invalidation Redis sends for
//! the event-loop cycle names every store that wrote the key in it.
//!
//! Redis Cluster refuses a script whose keys live in two slots, and a session's old and
//! new keys do (their hash tags differ). There a regenerate is the three `MOVE_*` scripts,
//! each in one slot: read the source, write the target, delete the source if unchanged.

use redis::Script;

/// Prepended to every script that writes.
const SIGN: &str = r"
local function sign(signature)
  redis.call('SET', signature, '')
  redis.call('DEL', signature)
end
";

/// `KEYS[1]` the key, `KEYS[2]` its signature when writes are signed. Returns 1 if
/// created, 0 if a live record exists.
const CREATE: &str = r"
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
if x and x > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if KEYS[2] then sign(KEYS[2]) end
return 1
";

/// `KEYS[1]` the key, `KEYS[2]` its signature when writes are signed. Returns 1 if
/// updated, 0 if no live record exists.
const UPDATE: &str = r"
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
if not x or x <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if KEYS[2] then sign(KEYS[2]) end
return 1
";

/// `ARGV[1]` n, `KEYS[1..n]` the keys, `KEYS[n+1..2n]` their signatures when writes are
/// signed (on a cluster, one key per call: a key and its signature share a slot). Returns
/// how many keys were deleted.
const DELETE: &str = r"
local n = tonumber(ARGV[1])
local deleted = 0
for i = 1, n do
  if redis.call('DEL', KEYS[i]) > 0 then
    deleted = deleted + 1
    if KEYS[n + i] then sign(KEYS[n + i]) end
  end
end
return deleted
";

/// `KEYS[1]` the source, `KEYS[2]` the target, `KEYS[3]` and `KEYS[4]` their signatures
/// when writes are signed. Returns 0 renamed, 1 source missing, 2 target exists.
const RENAME: &str = r"
local now = tonumber(ARGV[1])
local target = tonumber(redis.call('HGET', KEYS[2], 'x'))
if target and target > now then return 2 end
local source = tonumber(redis.call('HGET', KEYS[1], 'x'))
if not source or source <= now then return 1 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if KEYS[3] then
  sign(KEYS[3])
  sign(KEYS[4])
end
return 0
";

/// A digest of a hash's content (from `HGETALL`), independent of field order: the
/// cluster move deletes its source only if nothing changed it since it was copied.
const DIGEST: &str = r"
local function digest(h)
  local names, values, parts = {}, {}, {}
  for i = 1, #h, 2 do
    names[#names + 1] = h[i]
    values[h[i]] = h[i + 1]
  end
  table.sort(names)
  for _, name in ipairs(names) do
    parts[#parts + 1] = #name .. ':' .. name .. #values[name] .. ':' .. values[name]
  end
  return redis.sha1hex(table.concat(parts))
end
";

/// Cluster move, step 1, in the source's slot. `KEYS[1]` the source, `KEYS[2]` its
/// signature, `ARGV[1]` now,
/// `ARGV[2]` `1` to freeze the source: its expiry field becomes 0, so every script and
/// load treats it as gone while it keeps its data and TTL (the last attempt does this, so
/// a steady stream of updates cannot starve a regenerate). Returns nil when no live record
/// exists, else the content's digest and the hash's field/value pairs.
const MOVE_READ: &str = r"
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
if not x or x <= tonumber(ARGV[1]) then return false end
local h = redis.call('HGETALL', KEYS[1])
local out = {digest(h)}
for i = 1, #h do out[#out + 1] = h[i] end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'x', '0')
  sign(KEYS[2])
end
return out
";

/// Cluster move, step 2, in the target's slot. `KEYS[1]` the target, `KEYS[2]` its
/// signature; `ARGV[1]` now,
/// `ARGV[2]` the TTL, `ARGV[3]` `1` to replace the copy an earlier attempt wrote, `ARGV[4]`
/// how many of the following values are copied pairs; then the copied pairs, then the
/// update's pairs. Returns 1 written, 0 a live record exists (and `ARGV[3]` is not `1`).
const MOVE_WRITE: &str = r"
if ARGV[3] ~= '1' then
  local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
  if x and x > tonumber(ARGV[1]) then return 0 end
end
redis.call('DEL', KEYS[1])
local n = tonumber(ARGV[4])
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + n)) end
redis.call('HSET', KEYS[1], unpack(ARGV, 5 + n))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
sign(KEYS[2])
return 1
";

/// Cluster move, step 3, in the source's slot. `KEYS[1]` the source, `KEYS[2]` its
/// signature, `KEYS[3]` its moved marker; `ARGV[1]` now, `ARGV[2]` the digest step 1 read,
/// `ARGV[3]` `1` if step 1 froze the source, `ARGV[4]` the target's key name. Returns 1
/// deleted (or deleted by an earlier run of this step, as the marker says: the step is
/// retried), 0 changed since step 1 or frozen by another move (kept), -1 gone or expired
/// meanwhile.
const MOVE_DELETE: &str = r"
local function delete(outcome)
  redis.call('DEL', KEYS[1])
  sign(KEYS[2])
  if outcome == 1 then redis.call('SET', KEYS[3], ARGV[4], 'PX', 60000) end
  return outcome
end
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
if not x then
  if redis.call('GET', KEYS[3]) == ARGV[4] then return 1 end
  return -1
end
if ARGV[3] == '1' then return delete(1) end
if x == 0 then return 0 end
if x <= tonumber(ARGV[1]) then return delete(-1) end
if digest(redis.call('HGETALL', KEYS[1])) ~= ARGV[2] then return 0 end
return delete(1)
";

/// The compiled scripts; `Script` keeps the SHA-1 and falls back to loading on `NOSCRIPT`.
pub(super) struct Scripts {
    pub(super) create: Script,
    pub(super) update: Script,
    pub(super) delete: Script,
    pub(super) rename: Script,
    pub(super) move_read: Script,
    pub(super) move_write: Script,
    pub(super) move_delete: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            create: Script::new(&format!("{SIGN}{CREATE}")),
            update: Script::new(&format!("{SIGN}{UPDATE}")),
            delete: Script::new(&format!("{SIGN}{DELETE}")),
            rename: Script::new(&format!("{SIGN}{RENAME}")),
            move_read: Script::new(&format!("{SIGN}{DIGEST}{MOVE_READ}")),
            move_write: Script::new(&format!("{SIGN}{MOVE_WRITE}")),
            move_delete: Script::new(&format!("{SIGN}{DIGEST}{MOVE_DELETE}")),
        }
    }

    /// The scripts a deployment uses: the one-script rename on one server, the three-step
    /// move on a cluster.
    pub(super) fn used(&self, cluster: bool) -> Vec<&Script> {
        if cluster {
            vec![
                &self.create,
                &self.update,
                &self.delete,
                &self.move_read,
                &self.move_write,
                &self.move_delete,
            ]
        } else {
            vec![&self.create, &self.update, &self.delete, &self.rename]
        }
    }
}
