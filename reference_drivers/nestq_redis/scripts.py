"""Lua scripts behind :class:`nestq_redis.store.RedisQueueStore`.

Every state change of a queue is one of these scripts, so each change is atomic and declares every key it
touches (all keys of a queue share the ``{queue}`` hash tag, hence one cluster slot).

Key layout handed to the scripts (``KEYS``), always in this order; the short hot-path scripts (ack,
heartbeat) receive only the first three:

    1 jobs      hash   id -> job bytes, written once, never modified
    2 meta      hash   "<id>:a" attempts, "<id>:t" lease token, "<id>:e" last error, "<id>:p" priority
    3 leases    zset   id -> lease deadline (ms, Redis server time)
    4 delayed   zset   id -> due time (ms)
    5 dead      zset   id -> failed-at time (ms); the data stays in ``jobs`` and the error in ``meta``
    6 signal    list   at most one token, wakes one idle worker
    7 lock      string sweep lock (SET NX PX)
    8.. ready   lists  one per priority level, lowest level first; LPUSH appends, RPOP takes the oldest

Invariant the scripts keep: a job has a lease token in ``meta`` exactly while it is in ``leases``. Token
checks therefore also prove the lease still exists.
"""

from __future__ import annotations

__all__ = [
    "ACK",
    "CLAIM",
    "DEAD_LIST",
    "DEPTH",
    "FAIL",
    "HEARTBEAT",
    "NEXT_DUE",
    "PRIORITY_LEVELS",
    "PURGE_DEAD",
    "PUSH",
    "PUSH_READY",
    "REDRIVE",
    "RELEASE",
    "SWEEP",
    "TRIM_DEAD",
]

#: Number of priority levels (0 .. PRIORITY_LEVELS - 1); each level is one ready list.
PRIORITY_LEVELS = 10

_PRELUDE = f"""
local K_JOBS, K_META, K_LEASES = KEYS[1], KEYS[2], KEYS[3]
local K_DELAYED, K_DEAD, K_SIGNAL, K_LOCK = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local READY0 = 8
local LEVELS = {PRIORITY_LEVELS}

-- Server time, so that deadlines do not depend on the clocks of the workers.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ready_key(id)
  local p = redis.call('HGET', K_META, id .. ':p')
  return KEYS[READY0 + (tonumber(p) or 0)]
end

-- One token at most: a backlog of pushes must not turn into a backlog of wake-ups.
local function signal()
  if redis.call('LLEN', K_SIGNAL) == 0 then
    redis.call('LPUSH', K_SIGNAL, '1')
  end
end

local function forget(id)
  redis.call('HDEL', K_JOBS, id)
  redis.call('HDEL', K_META, id .. ':a', id .. ':t', id .. ':e', id .. ':p')
end

local function promote_due(now, max)
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, max)
  for _, id in ipairs(due) do
    redis.call('ZREM', K_DELAYED, id)
    redis.call('LPUSH', ready_key(id), id)
  end
  return #due
end

local function any_ready()
  for level = 0, LEVELS - 1 do
    if redis.call('LLEN', KEYS[READY0 + level]) > 0 then
      return true
    end
  end
  return false
end
"""

# ARGV: delay_ms, priority, id1, data1, id2, data2, ...   -> number of jobs created
# HSETNX makes a caller-chosen id idempotent while that job is alive.
PUSH = (
    _PRELUDE
    + """
local delay = tonumber(ARGV[1])
local prio = tonumber(ARGV[2])
local ready = KEYS[READY0 + prio]
local due = 0
if delay > 0 then
  due = now_ms() + delay
end
local n = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HSETNX', K_JOBS, id, ARGV[i + 1]) == 1 then
    n = n + 1
    if prio ~= 0 then
      redis.call('HSET', K_META, id .. ':p', prio)
    end
    if delay > 0 then
      redis.call('ZADD', K_DELAYED, due, id)
    else
      redis.call('LPUSH', ready, id)
    end
  end
end
if n > 0 and delay <= 0 then
  signal()
end
return n
"""
)

# The hot path of PUSH (no delay, priority 0, one job), on purpose without the prelude and with only the three
# keys it touches: KEYS = jobs, ready (level 0), signal; ARGV = id, data. Same effect as PUSH for that case.
PUSH_READY = """
local id = ARGV[1]
if redis.call('HSETNX', KEYS[1], id, ARGV[2]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], id)
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('LPUSH', KEYS[3], '1')
end
return 1
"""

# ARGV: limit, lease_ms, token, promote_max   -> {id1, data1, attempt1, ...}
# Promoting due delayed jobs here (not only in the sweep) keeps retry latency independent of the sweep
# interval.
CLAIM = (
    _PRELUDE
    + """
local limit = tonumber(ARGV[1])
local token = ARGV[3]
local now = now_ms()
promote_due(now, tonumber(ARGV[4]))
local deadline = now + tonumber(ARGV[2])
local out = {}
local taken = 0
for level = LEVELS - 1, 0, -1 do
  local need = limit - taken
  if need <= 0 then
    break
  end
  local ids = redis.call('RPOP', KEYS[READY0 + level], need)
  if ids then
    taken = taken + #ids
    for _, id in ipairs(ids) do
      local data = redis.call('HGET', K_JOBS, id)
      if data then
        local attempt = redis.call('HINCRBY', K_META, id .. ':a', 1)
        redis.call('HSET', K_META, id .. ':t', token)
        redis.call('ZADD', K_LEASES, deadline, id)
        out[#out + 1] = id
        out[#out + 1] = data
        out[#out + 1] = attempt
      else
        -- An id without data can only come from outside tampering; drop it rather than wedge the queue.
        forget(id)
      end
    end
  end
end
-- The token means "work is ready". A full batch may leave more behind: hand the wake-up on to the next idle
-- worker. Otherwise every list is drained, and a leftover token would only cause a spurious wake-up (and
-- leave a key behind).
if taken >= limit and any_ready() then
  signal()
else
  redis.call('DEL', K_SIGNAL)
end
return out
"""
)

# ARGV: lease_ms, id1, token1, ...   -> ids whose lease is lost
HEARTBEAT = (
    _PRELUDE
    + """
local deadline = now_ms() + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', K_META, id .. ':t') == ARGV[i + 1] then
    redis.call('ZADD', K_LEASES, deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
"""
)

# ARGV: id1, token1, ...   -> number acked
ACK = (
    _PRELUDE
    + """
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', K_META, id .. ':t') == ARGV[i + 1] then
    redis.call('ZREM', K_LEASES, id)
    forget(id)
    n = n + 1
  end
end
return n
"""
)

# ARGV: id, token, error, retry_ms (-1: no retry), max_attempts   -> 'retry' | 'dead' | 'stale'
FAIL = (
    _PRELUDE
    + """
local id = ARGV[1]
if redis.call('HGET', K_META, id .. ':t') ~= ARGV[2] then
  return 'stale'
end
redis.call('ZREM', K_LEASES, id)
redis.call('HDEL', K_META, id .. ':t')
redis.call('HSET', K_META, id .. ':e', ARGV[3])
local attempts = tonumber(redis.call('HGET', K_META, id .. ':a') or '0')
local retry = tonumber(ARGV[4])
local now = now_ms()
if retry >= 0 and attempts < tonumber(ARGV[5]) then
  if retry > 0 then
    redis.call('ZADD', K_DELAYED, now + retry, id)
  else
    redis.call('LPUSH', ready_key(id), id)
    signal()
  end
  return 'retry'
end
redis.call('ZADD', K_DEAD, now, id)
return 'dead'
"""
)

# ARGV: id1, token1, ... in claim order   -> number released
# Walk backwards and push to the head so the released jobs keep their order and run next.
RELEASE = (
    _PRELUDE
    + """
local n = 0
for i = #ARGV - 1, 1, -2 do
  local id = ARGV[i]
  if redis.call('HGET', K_META, id .. ':t') == ARGV[i + 1] then
    redis.call('ZREM', K_LEASES, id)
    redis.call('HDEL', K_META, id .. ':t')
    if redis.call('HINCRBY', K_META, id .. ':a', -1) <= 0 then
      redis.call('HDEL', K_META, id .. ':a')
    end
    redis.call('RPUSH', ready_key(id), id)
    n = n + 1
  end
end
if n > 0 then
  signal()
end
return n
"""
)

# ARGV: lock_token, lock_ms, max_attempts, batch, first ('1' on the first call of a sweep)
#   -> {-1} when another sweep holds the lock, else {promoted, returned, dead, more}
# The lock only matters when a sweep needs several calls (more than `batch` entries): it keeps two sweepers
# from interleaving their chunks. It is released when the sweep is done.
SWEEP = (
    _PRELUDE
    + """
local token = ARGV[1]
local lock_ms = tonumber(ARGV[2])
if ARGV[5] == '1' then
  if not redis.call('SET', K_LOCK, token, 'NX', 'PX', lock_ms) then
    return {-1}
  end
else
  if redis.call('GET', K_LOCK) ~= token then
    return {-1}
  end
  redis.call('PEXPIRE', K_LOCK, lock_ms)
end
local max_attempts = tonumber(ARGV[3])
local batch = tonumber(ARGV[4])
local now = now_ms()
local promoted = promote_due(now, batch)
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, batch)
local returned, dead = 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', K_LEASES, id)
  redis.call('HDEL', K_META, id .. ':t')
  local attempts = tonumber(redis.call('HGET', K_META, id .. ':a') or '0')
  if attempts >= max_attempts then
    redis.call('HSET', K_META, id .. ':e',
      'lease expired after ' .. attempts .. ' attempt(s): the worker died or stopped heartbeating')
    redis.call('ZADD', K_DEAD, now, id)
    dead = dead + 1
  else
    -- Back to the head: it was taken first, so it should not wait behind the whole backlog again.
    redis.call('RPUSH', ready_key(id), id)
    returned = returned + 1
  end
end
if promoted + returned > 0 then
  signal()
end
local more = 0
if promoted >= batch or #expired >= batch then
  more = 1
else
  redis.call('DEL', K_LOCK)
end
return {promoted, returned, dead, more}
"""
)

# no ARGV   -> {ready, delayed, leased, dead}
DEPTH = (
    _PRELUDE
    + """
local ready = 0
for level = 0, LEVELS - 1 do
  ready = ready + redis.call('LLEN', KEYS[READY0 + level])
end
return {ready, redis.call('ZCARD', K_DELAYED), redis.call('ZCARD', K_LEASES), redis.call('ZCARD', K_DEAD)}
"""
)

# no ARGV   -> ms until the earliest delayed job is due (0 when overdue), or -1 when none is delayed
NEXT_DUE = (
    _PRELUDE
    + """
local first = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if #first == 0 then
  return -1
end
local wait = tonumber(first[2]) - now_ms()
if wait < 0 then
  return 0
end
return wait
"""
)

# ARGV: 'range', offset, stop  (newest first)  or  'ids', id1, id2, ...
#   -> {id1, data1, error1, attempts1, failed_at_ms1, ...}; unknown ids are left out
# Scores are returned as strings: Lua numbers would be truncated to integers on the way out.
DEAD_LIST = (
    _PRELUDE
    + """
local out = {}
local function emit(id, score)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', K_JOBS, id) or ''
  out[#out + 1] = redis.call('HGET', K_META, id .. ':e') or ''
  out[#out + 1] = redis.call('HGET', K_META, id .. ':a') or '0'
  out[#out + 1] = score
end
if ARGV[1] == 'range' then
  local r = redis.call('ZREVRANGE', K_DEAD, ARGV[2], ARGV[3], 'WITHSCORES')
  for i = 1, #r, 2 do
    emit(r[i], r[i + 1])
  end
else
  for i = 2, #ARGV do
    local score = redis.call('ZSCORE', K_DEAD, ARGV[i])
    if score then
      emit(ARGV[i], score)
    end
  end
end
return out
"""
)


def _select_dead() -> str:
    # Shared head of the scripts that act on a chosen set of dead letters: all (in chunks) or given ids.
    return """
local ids
if ARGV[1] == 'all' then
  ids = redis.call('ZRANGE', K_DEAD, 0, tonumber(ARGV[2]) - 1)
else
  ids = {}
  for i = 2, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end
"""


# ARGV: 'all', batch  or  'ids', id1, ...   -> number moved back to ready (attempts and error reset)
REDRIVE = (
    _PRELUDE
    + _select_dead()
    + """
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', K_DEAD, id) == 1 then
    redis.call('HDEL', K_META, id .. ':a', id .. ':e')
    redis.call('LPUSH', ready_key(id), id)
    n = n + 1
  end
end
if n > 0 then
  signal()
end
return n
"""
)

# ARGV: 'all', batch  or  'ids', id1, ...   -> number deleted
PURGE_DEAD = (
    _PRELUDE
    + _select_dead()
    + """
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', K_DEAD, id) == 1 then
    forget(id)
    n = n + 1
  end
end
return n
"""
)

# ARGV: retention_ms (-1: keep any age), max_items (-1: no cap), batch   -> number deleted (at most batch)
TRIM_DEAD = (
    _PRELUDE
    + """
local retention = tonumber(ARGV[1])
local max_items = tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
local n = 0
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', K_DEAD, id)
    forget(id)
    n = n + 1
  end
end
if retention >= 0 then
  drop(redis.call('ZRANGEBYSCORE', K_DEAD, '-inf', now_ms() - retention, 'LIMIT', 0, batch))
end
if max_items >= 0 and n < batch then
  local excess = redis.call('ZCARD', K_DEAD) - max_items
  if excess > 0 then
    drop(redis.call('ZRANGE', K_DEAD, 0, math.min(excess, batch - n) - 1))
  end
end
return n
"""
)
