//! The Lua scripts uberpool runs on Redis. Each touches the keys of one shard (one slot), and
//! runs atomically: a settlement that reads the entry, acknowledges it and adds it elsewhere
//! cannot be cut in half by a crash, and a check of who owns an entry cannot race a claim.
//!
//! Sent with `EVAL` (the server caches them by digest); nothing is loaded ahead, so a node that
//! restarted or joined needs nothing. Time is the server's (`TIME`), so workers' clocks never
//! matter.
//!
//! Entry fields: `b` the body, `n` the deliveries before this entry was (re-)added.

/// Helpers every script starts with.
macro_rules! prelude {
    () => {
        r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function job(fields)
  local body, prior = '', 0
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'b' then body = fields[i + 1]
    elseif fields[i] == 'n' then prior = tonumber(fields[i + 1]) or 0 end
  end
  return body, prior
end
local function owned(stream, group, consumer, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if #p == 0 or p[1][2] ~= consumer then return nil end
  return tonumber(p[1][4]) or 1
end
"#
    };
}

/// Retry: KEYS = stream, delayed; ARGV = group, consumer, id, delay in ms. When the entry is
/// this consumer's: acknowledges and deletes it, and adds its body back with its deliveries so
/// far — to the stream at once (no delay), or to the delayed set, due after the delay. 1 done,
/// 0 the entry is not this consumer's (claimed by another, or acknowledged).
pub(crate) const RETRY: &str = concat!(
    prelude!(),
    r#"
local d = owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if not d then return 0 end
local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if #e == 0 then return 0 end
local body, prior = job(e[1][2])
local n = string.format('%d', prior + d)
redis.call('XDEL', KEYS[1], ARGV[3])
local delay = tonumber(ARGV[4]) or 0
if delay <= 0 then
  redis.call('XADD', KEYS[1], '*', 'b', body, 'n', n)
else
  redis.call('ZADD', KEYS[2], string.format('%d', now_ms() + delay), n .. ':' .. ARGV[3] .. ':' .. body)
end
return 1
"#
);

/// Dead letter: KEYS = stream, dead; ARGV = group, consumer, id, reason. When the entry is this
/// consumer's: adds it to the dead-letter stream (original id, body, deliveries, reason, group,
/// consumer), acknowledges and deletes it. 1 done, 0 not this consumer's.
pub(crate) const DEAD_LETTER: &str = concat!(
    prelude!(),
    r#"
local d = owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if not d then return 0 end
local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if #e == 0 then return 0 end
local body, prior = job(e[1][2])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'b', body, 'n', string.format('%d', prior + d),
  'reason', ARGV[4], 'group', ARGV[1], 'consumer', ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
"#
);

/// Lease extension: KEYS = stream; ARGV = group, consumer, id. When the entry is this
/// consumer's, resets its idle time (`XCLAIM … 0 id JUSTID`: deliveries unchanged). 1 done, 0
/// not this consumer's — a plain `XCLAIM` would take it back from the consumer that claimed it.
pub(crate) const EXTEND: &str = concat!(
    prelude!(),
    r#"
if not owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"#
);

/// Claim: KEYS = stream; ARGV = group, consumer, min idle ms, cursor, count. `XAUTOCLAIM`s up
/// to count entries idle past the lease (their consumer died or stalled), then reads each one's
/// delivery count. Returns `[next cursor, [id, deliveries, fields]…]`.
pub(crate) const CLAIM: &str = r#"
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {r[1]}
for _, e in ipairs(r[2]) do
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local d = 1
    if #p > 0 then d = p[1][4] end
    out[#out + 1] = {e[1], d, e[2]}
  end
end
return out
"#;

/// Move due: KEYS = delayed, stream; ARGV = limit. Adds up to limit retried jobs whose back-off
/// is over to the stream (body and deliveries so far) and removes them from the delayed set.
/// Returns how many moved.
pub(crate) const MOVE_DUE: &str = concat!(
    prelude!(),
    r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now_ms()),
  'LIMIT', 0, tonumber(ARGV[1]) or 100)
for _, m in ipairs(due) do
  local a = string.find(m, ':', 1, true)
  local b = a and string.find(m, ':', a + 1, true)
  if b then
    redis.call('XADD', KEYS[2], '*', 'b', string.sub(m, b + 1),
      'n', string.format('%d', tonumber(string.sub(m, 1, a - 1)) or 0))
  else
    redis.call('XADD', KEYS[2], '*', 'b', m, 'n', '0')
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
"#
);

/// Trim: KEYS = stream. Removes entries below the safe bound: over every group, its smallest
/// pending id, or (nothing pending) its last delivered id. Entries below it were delivered to
/// every group and acknowledged; nothing pending or undelivered is below it. `MINID ~` trims
/// whole nodes only, so somewhat less. No group: nothing is trimmed. Returns entries removed.
pub(crate) const TRIM: &str = r#"
local function lt(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return false end
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local bound = nil
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g - 1, 2 do f[g[i]] = g[i + 1] end
  local b = f['last-delivered-id']
  if (tonumber(f['pending']) or 0) > 0 then
    b = redis.call('XPENDING', KEYS[1], f['name'])[2]
  end
  if not b then return 0 end
  if bound == nil or lt(b, bound) then bound = b end
end
if bound == nil or bound == '0-0' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', bound)
"#;

/// Heartbeat: KEYS = members; ARGV = consumer, ttl ms, `join` or `leave`. Records the consumer
/// as alive now (or removes it), drops members silent for longer than the ttl, and returns the
/// live members.
pub(crate) const HEARTBEAT: &str = concat!(
    prelude!(),
    r#"
local now = now_ms()
if ARGV[3] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now - (tonumber(ARGV[2]) or 30000)))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"#
);

/// Stats: KEYS = stream, delayed, dead. Returns `[length, pending, ready, delayed, dead]`:
/// entries in the stream, pending in its groups, not yet delivered (the largest group lag),
/// waiting in the delayed set, and dead letters.
pub(crate) const STATS: &str = r#"
local length = redis.call('XLEN', KEYS[1])
local pending, ready = 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
  if #groups == 0 then ready = length end
  for _, g in ipairs(groups) do
    local f = {}
    for i = 1, #g - 1, 2 do f[g[i]] = g[i + 1] end
    pending = pending + (tonumber(f['pending']) or 0)
    local lag = f['lag']
    if type(lag) ~= 'number' then
      lag = #redis.call('XRANGE', KEYS[1], '(' .. f['last-delivered-id'], '+')
    end
    if lag > ready then ready = lag end
  end
end
return {length, pending, ready, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3])}
"#;

/// Prune: KEYS = stream; ARGV = group, idle ms. Removes the group's consumers that hold no
/// pending entry and have been idle longer than the given time (dead workers' names; a live
/// consumer removed this way is created again by its next read). Returns how many.
pub(crate) const PRUNE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers.err then return 0 end
local removed = 0
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c - 1, 2 do f[c[i]] = c[i + 1] end
  if tonumber(f['pending']) == 0 and (tonumber(f['idle']) or 0) > (tonumber(ARGV[2]) or 0) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed
"#;

/// Leave: KEYS = stream; ARGV = group, consumer. Removes the consumer from the group when it
/// holds no pending entry there (`DELCONSUMER` would drop them from the pending list). Returns
/// 1 removed, 0 kept or unknown.
pub(crate) const LEAVE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if type(p) ~= 'table' or p.err or #p > 0 then return 0 end
redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

/// Probe: KEYS = stream; ARGV = group, min idle ms (or empty). Returns `[ready, claimable]`:
/// entries not yet delivered to the group (its lag; counted when unknown), and 1 when some
/// pending entry is idle past the min idle time (0 when not asked). Reads nothing out.
pub(crate) const PROBE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if type(groups) ~= 'table' or groups.err then return {0, 0} end
local ready = 0
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g - 1, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[1] then
    local lag = f['lag']
    if type(lag) ~= 'number' then
      lag = #redis.call('XRANGE', KEYS[1], '(' .. f['last-delivered-id'], '+', 'COUNT', 100)
    end
    ready = lag
  end
end
local claimable = 0
if ARGV[2] ~= '' then
  local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], 'IDLE', tonumber(ARGV[2]) or 0, '-', '+', 1)
  if type(p) == 'table' and not p.err then claimable = #p end
end
return {ready, claimable}
"#;
