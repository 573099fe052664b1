//! The Lua scripts that make each write one atomic round trip.
//!
//! Liveness is judged by the store's clock, not only by Redis's TTL: the caller passes
//! `now` (ms) and a record whose expiry field `x` is not after it counts as absent. That
//! keeps the store exact under a manual clock and under clock skew between app servers
//! and Redis.
//!
//! Common arguments of create, update and rename: `ARGV[1]` now, `ARGV[2]` the TTL in ms,
//! the index arguments (see [`INDEX`]), `ARGV[6]` the revision the write expects (see
//! [`REVISION`]; empty, and not read, for a create), then from `ARGV[7]` the hash fields to
//! write as [`WRITE`] reads them: `x` and the expiry (`ARGV[8]`), `i` and the index value
//! for an indexed session, `w` and the whole value.
//!
//! Every script that changes a session key also sets and deletes that key's signature
//! (the last `KEYS`, see `Keys::signature`), so the broadcast invalidation Redis sends for
//! the event-loop cycle names every store that wrote the key in it.
//!
//! Redis Cluster refuses a script whose keys live in two slots, and a session's old and
//! new keys do (their hash tags differ). There a regenerate is the three `MOVE_*` scripts,
//! each in one slot: read the source, write the target, delete the source if unchanged.

use std::fmt::Write as _;

use redis::Script;

use super::layout;

/// Prepended to every script that writes.
const SIGN: &str = r"
local function sign(signature)
  redis.call('SET', signature, '')
  redis.call('DEL', signature)
end
";

/// Writes the hash field/value pairs from `ARGV[at]` on (always including the expiry and
/// the whole value, so never empty).
const WRITE: &str = r"
local function write(key, at)
  redis.call('HSET', key, unpack(ARGV, at))
end
";

/// A write is a compare-and-set: it writes the whole session only if the stored one is still
/// the revision the caller read (the first 8 bytes of `w`), and otherwise answers the
/// current `w` (empty if there is none), for the caller to merge its changes into it and
/// try again in one more round trip. A hash of an earlier version has no `w`: the caller
/// expects the empty revision, and the write replaces the hash whole.
const REVISION: &str = r"
local function revision_of(whole)
  return string.sub(whole or '', 1, 8)
end
";

/// Keeps a session's membership of its index, in the scripts that write the session.
///
/// Common arguments of create, update and rename after `now` and the TTL: `ARGV[3]` the
/// index mode, `ARGV[4]` the session's index value `<64 hex>:<absolute deadline ms>` and
/// `ARGV[5]` the index key's TTL in ms (both empty when it has none). The hash field `i`
/// holds the index value a session is a member under.
///
/// Modes: on one server, empty: the script keeps the index itself (a sorted set of session
/// key names scored by their absolute deadline, whose TTL outlasts them), under the store's
/// index key name prefix, which [`Scripts::new`] writes into the script as `INDEX_PREFIX`
/// (so no write sends it). On a cluster the index lives in another slot, so the caller adds
/// the session to its index *before* the write, which never lets a listing miss it: `?`
/// refuses (returns 2) a write whose index value the hash does not hold yet, for the caller
/// to add it and retry with `!`; `!` writes.
const INDEX: &str = r"
local function index_name(value)
  return INDEX_PREFIX .. '{' .. string.sub(value, 1, 64) .. '}'
end
local function index_pending(mode, old)
  return mode == '?' and ARGV[4] ~= '' and old ~= ARGV[4]
end
local function reindex(mode, old, old_member, new_member)
  local new = ARGV[4]
  if new == '' and old then redis.call('HDEL', new_member, 'i') end
  if mode ~= '' then return end
  if old and (string.sub(old, 1, 64) ~= string.sub(new, 1, 64) or old_member ~= new_member) then
    redis.call('ZREM', index_name(old), old_member)
  end
  if new ~= '' then
    local index = index_name(new)
    redis.call('ZADD', index, string.sub(new, 66), new_member)
    if redis.call('PTTL', index) < tonumber(ARGV[5]) then redis.call('PEXPIRE', index, ARGV[5]) end
  end
end
";

/// `KEYS[1]` the key, `KEYS[2]` its signature when writes are signed. Returns 1 if
/// created, 0 if a live record exists, 2 if the index must be added first (see [`INDEX`]).
const CREATE: &str = r"
local held = redis.call('HMGET', KEYS[1], 'x', 'i')
local x, old = tonumber(held[1]), held[2]
if x and x > tonumber(ARGV[1]) then return 0 end
if ARGV[3] == '?' and ARGV[4] ~= '' then return 2 end
redis.call('DEL', KEYS[1])
write(KEYS[1], 7)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
reindex(ARGV[3], old, KEYS[1], KEYS[1])
if KEYS[2] then sign(KEYS[2]) end
return 1
";

/// `KEYS[1]` the key, `KEYS[2]` its signature when writes are signed. Returns 1 if
/// updated, 0 if no live record exists, 2 if the index must be added first, the current
/// `w` if the session is no longer the expected revision.
const UPDATE: &str = r"
local held = redis.call('HMGET', KEYS[1], 'x', 'i', 'w')
local x, old, whole = tonumber(held[1]), held[2], held[3]
if not x or x <= tonumber(ARGV[1]) then return 0 end
if revision_of(whole) ~= ARGV[6] then return whole or '' end
if index_pending(ARGV[3], old) then return 2 end
if not whole then redis.call('DEL', KEYS[1]) end
write(KEYS[1], 7)
-- The TTL runs to the end of the step the expiry falls in (`layout::ttl_end_ms`): an
-- expiry (ARGV[8]) that stays in its step keeps it.
if not whole or math.floor(x / TTL_STEP_MS) ~= math.floor(tonumber(ARGV[8]) / TTL_STEP_MS) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
-- The same index value (index and absolute deadline): membership, score and the index
-- key's TTL are as they were; most updates of a logged-in session change none of them.
if (old or '') ~= ARGV[4] then reindex(ARGV[3], old, KEYS[1], KEYS[1]) end
if KEYS[2] then sign(KEYS[2]) end
return 1
";

/// `ARGV[1]` n, `ARGV[2]` the index mode (empty on one server, where the script removes a
/// deleted session from its index; `?` on a cluster, where stale index members are removed
/// when listed), `KEYS[1..n]` the keys, `KEYS[n+1..2n]`
/// their signatures when writes are signed (on a cluster, one key per call: a key and its
/// signature share a slot). Returns how many keys were deleted.
const DELETE: &str = r"
local n = tonumber(ARGV[1])
local deleted = 0
for i = 1, n do
  local old = ARGV[2] == '' and redis.call('HGET', KEYS[i], 'i')
  if redis.call('DEL', KEYS[i]) > 0 then
    deleted = deleted + 1
    if KEYS[n + i] then sign(KEYS[n + i]) end
    if old then redis.call('ZREM', index_name(old), KEYS[i]) end
  end
end
return deleted
";

/// `KEYS[1]` the source, `KEYS[2]` the target, `KEYS[3]` and `KEYS[4]` their signatures
/// when writes are signed; one server only. Returns 0 renamed, 1 source missing, 2 target
/// exists, the source's current `w` if it is no longer the expected revision.
const RENAME: &str = r"
local now = tonumber(ARGV[1])
local target = tonumber(redis.call('HGET', KEYS[2], 'x'))
if target and target > now then return 2 end
local held = redis.call('HMGET', KEYS[1], 'x', 'i', 'w')
local source, old = tonumber(held[1]), held[2]
if not source or source <= now then return 1 end
if revision_of(held[3]) ~= ARGV[6] then return held[3] or '' end
redis.call('DEL', KEYS[1], KEYS[2])
write(KEYS[2], 7)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
reindex(ARGV[3], old, KEYS[1], KEYS[2])
if KEYS[3] then
  sign(KEYS[3])
  sign(KEYS[4])
end
return 0
";

/// Adds a session to its index, in the index's slot (a cluster, before the session's own
/// write). `KEYS[1]` the index key; `ARGV[1]` the session's absolute deadline (the score),
/// `ARGV[2]` its key name, `ARGV[3]` the index key's TTL in ms.
const INDEX_ADD: &str = r"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
";

/// The members of an index, after removing those past their absolute deadline. `KEYS[1]`
/// the index key; `ARGV[1]` now.
const INDEX_MEMBERS: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// Reads a revocation generation (`KEYS[1]`), making sure it outlives every cookie sealed
/// with it: when less than `ARGV[1]` ms remain, the TTL becomes `ARGV[2]` ms (twice as
/// long, so the key is rewritten about once per `ARGV[1]`, not on every read). An absent
/// key is generation 0 and is not created.
const GENERATION: &str = r"
local generation = redis.call('GET', KEYS[1])
if generation and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return generation
";

/// Raises a revocation generation (`KEYS[1]`) and answers it; its TTL as in `GENERATION`.
const REVOKE: &str = r"
local generation = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return generation
";

/// Deletes every session of an index but one, on one server, atomically. `KEYS[1]` the
/// index key; `ARGV[1]` now, `ARGV[2]` the index value's 64 hex digits, `ARGV[3]` the key
/// name to keep (or empty), `ARGV[4]` the writer's name when writes are signed (or empty).
/// Returns the key names of the live sessions deleted.
const DELETE_INDEXED: &str = r"
local now = tonumber(ARGV[1])
local deleted = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if member ~= ARGV[3] then
    local i = redis.call('HGET', member, 'i')
    if i and string.sub(i, 1, 64) == ARGV[2] then
      local x = tonumber(redis.call('HGET', member, 'x'))
      redis.call('DEL', member)
      if ARGV[4] ~= '' then sign(member .. '!' .. ARGV[4]) end
      if x and x > now then deleted[#deleted + 1] = member end
    end
    redis.call('ZREM', KEYS[1], member)
  end
end
return deleted
";

/// Deletes one session if it is still a member of the index (a cluster's delete-by-index,
/// one session's slot at a time). `KEYS[1]` the key, `KEYS[2]` its signature when writes
/// are signed; `ARGV[1]` now, `ARGV[2]` the index value's 64 hex digits. Returns the outcome
/// (1 a live session was deleted, a copy frozen mid-move included; 0 an expired one was; -1
/// the key holds no session of this index: gone, in another index, or not written yet) and
/// the key the session was moved from, if it was (the `s` field a cluster move writes).
const DELETE_IF_INDEXED: &str = r"
local i = redis.call('HGET', KEYS[1], 'i')
if not i or string.sub(i, 1, 64) ~= ARGV[2] then return {-1, ''} end
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
local from = redis.call('HGET', KEYS[1], 's') or ''
redis.call('DEL', KEYS[1])
if KEYS[2] then sign(KEYS[2]) end
if x and (x == 0 or x > tonumber(ARGV[1])) then return {1, from} end
return {0, from}
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
/// `ARGV[2]` `1` to freeze the source: its expiry field and its revision become 0, so every
/// script and load treats it as gone while it keeps its data and TTL (the last attempt does
/// this, so a steady stream of updates cannot starve a regenerate). Returns nil when no
/// live record exists, else the content's digest and the hash's field/value pairs.
const MOVE_READ: &str = r"
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
if not x or x <= tonumber(ARGV[1]) then return false end
local h = redis.call('HGETALL', KEYS[1])
local out = {digest(h)}
for i = 1, #h do out[#out + 1] = h[i] end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'x', '0')
  local whole = redis.call('HGET', KEYS[1], 'w')
  if whole then redis.call('HSET', KEYS[1], 'w', string.rep('\0', 8) .. string.sub(whole, 9)) end
  sign(KEYS[2])
end
return out
";

/// Cluster move, step 2, in the target's slot. `KEYS[1]` the target, `KEYS[2]` its
/// signature; `ARGV[1]` now,
/// `ARGV[2]` the TTL, `ARGV[3]` `1` to replace the copy an earlier attempt wrote; then
/// from `ARGV[4]` the hash fields of the moved session as [`WRITE`] reads them. Returns 1
/// written, 0 a live record exists (and `ARGV[3]` is not `1`).
const MOVE_WRITE: &str = r"
if ARGV[3] ~= '1' then
  local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
  if x and x > tonumber(ARGV[1]) then return 0 end
end
redis.call('DEL', KEYS[1])
write(KEYS[1], 4)
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
    pub(super) index_add: Script,
    pub(super) index_members: Script,
    pub(super) delete_indexed: Script,
    pub(super) delete_if_indexed: Script,
    pub(super) generation: Script,
    pub(super) revoke: Script,
}

impl Scripts {
    /// The scripts of a store whose index key names start with `index_prefix`.
    pub(super) fn new(index_prefix: &str) -> Self {
        let index_prefix = lua_string(index_prefix);
        let ttl_step = layout::TTL_STEP_MS.to_string();
        let script = |parts: &[&str]| {
            Script::new(
                &parts
                    .concat()
                    .replace("INDEX_PREFIX", &index_prefix)
                    .replace("TTL_STEP_MS", &ttl_step),
            )
        };
        Self {
            create: script(&[SIGN, WRITE, INDEX, CREATE]),
            update: script(&[SIGN, WRITE, REVISION, INDEX, UPDATE]),
            delete: script(&[SIGN, INDEX, DELETE]),
            rename: script(&[SIGN, WRITE, REVISION, INDEX, RENAME]),
            move_read: script(&[SIGN, DIGEST, MOVE_READ]),
            move_write: script(&[SIGN, WRITE, MOVE_WRITE]),
            move_delete: script(&[SIGN, DIGEST, MOVE_DELETE]),
            index_add: script(&[INDEX_ADD]),
            index_members: script(&[INDEX_MEMBERS]),
            delete_indexed: script(&[SIGN, DELETE_INDEXED]),
            delete_if_indexed: script(&[SIGN, DELETE_IF_INDEXED]),
            generation: script(&[GENERATION]),
            revoke: script(&[REVOKE]),
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
                &self.index_add,
                &self.index_members,
                &self.delete_if_indexed,
            ]
        } else {
            vec![
                &self.create,
                &self.update,
                &self.delete,
                &self.rename,
                &self.index_members,
                &self.delete_indexed,
            ]
        }
    }
}

/// `text` as a Lua string literal: every byte a decimal escape, so no prefix can end the
/// literal or run code.
fn lua_string(text: &str) -> String {
    let mut literal = String::with_capacity(2 + 4 * text.len());
    literal.push('"');
    for byte in text.bytes() {
        let _ = write!(literal, "\\{byte:03}");
    }
    literal.push('"');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_becomes_a_literal_no_byte_of_it_escapes() {
        assert_eq!(lua_string(""), r#""""#);
        assert_eq!(lua_string("a\"\n"), r#""\097\034\010""#);
    }
}
