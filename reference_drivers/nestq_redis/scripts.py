"""Lua scripts behind :class:`nestq_redis.store.RedisQueueStore`.

Every state change of a queue is one of these scripts, so each change is atomic and declares every key it
touches (all keys of a queue share the ``{queue}`` hash tag, hence one cluster slot).

Key layout handed to the scripts (``KEYS``), always in this order; the short hot-path scripts (ack,
heartbeat) receive only the first three:

    1 jobs      hash   id -> job bytes, written once, never modified
    2 meta      hash   "<id>:a" attempts, "<id>:t" lease token, "<id>:e" last error, "<id>:p" priority,
                       "<id>:c" claimed but not yet confirmed started, "<id>:u" claims that expired unconfirmed
    3 leases    zset   id -> lease deadline (ms, Redis server time)
    4 delayed   zset   id -> due time (ms)
    5 dead      zset   id -> failed-at time (ms); the data stays in ``jobs`` and the error in ``meta``
    6 signal    list   at most one token, wakes one idle worker
    7 lock      string sweep lock (SET NX PX)
    8.. ready   lists  one per priority level, lowest level first; LPUSH appends, RPOP takes the oldest
    18 batches  zset   (PUSH only) "<batch id>:<chunk>" -> stored-at time (ms), for idempotent batch retries

Invariant the scripts keep: a job has a lease token in ``meta`` exactly while it is in ``leases``. Token
checks therefore also prove the lease still exists.

Redis does not roll a script back when a command fails inside it: whatever it wrote before the error stays.
So every script checks the types of its keys first, and validates each entry it reads (attempts and priority
fields) before writing anything about it; an entry that fails validation is quarantined (moved to the dead
letters with an error naming the corruption) so that it fails alone and never takes other jobs with it.
"""

from __future__ import annotations

__all__ = [
    "ACK",
    "CLAIM",
    "CONFIRM",
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
    "UNCONFIRMED_LIMIT",
]

#: How long a batch id is remembered (ms): a retry of the same batch within this window stores nothing twice.
#: The record key expires this long after the last batch push, so an idle queue keeps nothing behind.
BATCH_MEMORY_MS = 3600 * 1000

#: Number of priority levels (0 .. PRIORITY_LEVELS - 1); each level is one ready list.
PRIORITY_LEVELS = 10

#: Claims of one job whose reply never reached a worker (leases expired unconfirmed) before it is dead-lettered
#: as "never started" (or max_attempts, when higher). Such claims cost no attempt.
UNCONFIRMED_LIMIT = 10

_PRELUDE = f"""
local K_JOBS, K_META, K_LEASES = KEYS[1], KEYS[2], KEYS[3]
local K_DELAYED, K_DEAD, K_SIGNAL, K_LOCK = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local READY0 = 8
local LEVELS = {PRIORITY_LEVELS}
local UNCONFIRMED_LIMIT = {UNCONFIRMED_LIMIT}
local K_BATCHES = KEYS[READY0 + LEVELS]
local TYPES = {{'hash', 'hash', 'zset', 'zset', 'zset', 'list', 'string'}}
TYPES[READY0 + LEVELS] = 'zset'

-- A key of the wrong type makes a command fail part-way through a script, after earlier writes that Redis
-- does not roll back: check the keys (by index; none given: all) before the first write. A key the script reads
-- before its first write needs no check (the read fails first). Returns an error reply, or nil.
local function check_keys(...)
  local which = {{...}}
  if #which == 0 then
    for i = 1, #KEYS do
      which[i] = i
    end
  end
  for _, i in ipairs(which) do
    local want = TYPES[i] or 'list'
    local t = redis.call('TYPE', KEYS[i])['ok']
    if t ~= 'none' and t ~= want then
      return redis.error_reply('WRONGTYPE nestq key ' .. KEYS[i] .. ' holds a ' .. t .. ' where a ' .. want ..
        ' belongs; nothing was changed (delete or rename that key to repair the queue)')
    end
  end
  return nil
end

-- Server time, so that deadlines do not depend on the clocks of the workers.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function show(v)
  if #v > 40 then
    v = string.sub(v, 1, 40) .. '...'
  end
  return string.format('%q', v)
end

local function counter_ok(v)
  return v == false or (#v <= 12 and string.match(v, '^%d+$') ~= nil)
end

-- What is wrong with the metadata of job ``id`` (a field a script would do arithmetic or a lookup with), or
-- nil when it is sound.
local BAD = 'corrupt entry quarantined: meta field '
local function corrupt(id)
  local f = redis.call('HMGET', K_META, id .. ':a', id .. ':p', id .. ':u')
  if not counter_ok(f[1]) then
    return BAD .. id .. ':a (attempts) holds ' .. show(f[1]) .. ', not a non-negative integer'
  end
  if f[2] and not (counter_ok(f[2]) and tonumber(f[2]) < LEVELS) then
    return BAD .. id .. ':p (priority) holds ' .. show(f[2]) .. ', not a priority 0-' .. (LEVELS - 1)
  end
  if not counter_ok(f[3]) then
    return BAD .. id .. ':u (unconfirmed claims) holds ' .. show(f[3]) .. ', not a non-negative integer'
  end
  return nil
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
  redis.call('HDEL', K_META, id .. ':a', id .. ':t', id .. ':e', id .. ':p', id .. ':c', id .. ':u')
end

-- Add ``id`` to the dead letters and enforce the cap (dead_max < 0: none) on the spot, oldest first.
local function bury(id, now, dead_max)
  redis.call('ZADD', K_DEAD, now, id)
  if dead_max >= 0 then
    local excess = redis.call('ZCARD', K_DEAD) - dead_max
    if excess > 0 then
      for _, old in ipairs(redis.call('ZRANGE', K_DEAD, 0, excess - 1)) do
        redis.call('ZREM', K_DEAD, old)
        forget(old)
      end
    end
  end
end

-- A job whose metadata is corrupt (or that is too large to run) goes to the dead letters on its own with the
-- error ``why``, its bad fields dropped (their values are in the error). The caller has already taken it out
-- of the list or set it was read from.
local function quarantine(id, why, now, dead_max)
  redis.call('ZREM', K_LEASES, id)
  redis.call('HDEL', K_META, id .. ':a', id .. ':t', id .. ':p', id .. ':c', id .. ':u')
  redis.call('HSET', K_META, id .. ':e', why)
  bury(id, now, dead_max)
end

-- Returns the number promoted, or an error reply (a key of the wrong type; nothing changed).
local function promote_due(now, max, dead_max)
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, max)
  if #due == 0 then
    return 0
  end
  local wrong = check_keys()
  if wrong then
    return wrong
  end
  local bad = {{}}
  for i, id in ipairs(due) do
    bad[i] = corrupt(id)
  end
  for i, id in ipairs(due) do
    redis.call('ZREM', K_DELAYED, id)
    if bad[i] then
      quarantine(id, bad[i], now, dead_max)
    else
      redis.call('LPUSH', ready_key(id), id)
    end
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

# ARGV: delay_ms, priority, batch ('' or "<batch id>:<chunk>"), id1, data1, id2, data2, ...
#   -> {number of jobs created, 1 when the queue held no other job (register it again) else 0}
# HSETNX makes a caller-chosen id idempotent while that job is alive; a batch member (KEYS[18]) makes the whole
# chunk idempotent for BATCH_MEMORY_MS (an hour), even after its jobs have run and been deleted.
PUSH = (
    _PRELUDE
    + f"""
local bad = check_keys()
if bad then
  return bad
end
local delay = tonumber(ARGV[1])
local prio = tonumber(ARGV[2])
local batch = ARGV[3]
local ready = KEYS[READY0 + prio]
local now = now_ms()
if batch ~= '' then
  redis.call('ZREMRANGEBYSCORE', K_BATCHES, '-inf', now - {BATCH_MEMORY_MS})
  if redis.call('ZSCORE', K_BATCHES, batch) then
    return {{0, 0}}
  end
  redis.call('ZADD', K_BATCHES, now, batch)
  redis.call('PEXPIRE', K_BATCHES, {BATCH_MEMORY_MS})
end
local due = now + delay
local n = 0
for i = 4, #ARGV, 2 do
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
-- Fresh: the queue held no other job, so it may be new, or Redis may have lost its data (and the queues set).
local fresh = 0
if n > 0 and redis.call('HLEN', K_JOBS) == n then
  fresh = 1
end
return {{n, fresh}}
"""
)

# The hot path of PUSH (no delay, priority 0, one job), on purpose without the prelude and with only the three
# keys it touches: KEYS = jobs, ready (level 0), signal; ARGV = id, data. Same effect as PUSH for that case.
# The id goes on the ready list first: if that list has the wrong type nothing is written at all, and if the
# jobs hash has, the id left without data is dropped by the next claim. A duplicate id is popped back off.
PUSH_READY = """
local id = ARGV[1]
redis.call('LPUSH', KEYS[2], id)
if redis.call('HSETNX', KEYS[1], id, ARGV[2]) == 0 then
  redis.call('LPOP', KEYS[2])
  return 0
end
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('LPUSH', KEYS[3], '1')
end
-- 2: the queue held no other job (new, or Redis lost its data): the caller registers the queue again.
if redis.call('HLEN', KEYS[1]) == 1 then
  return 2
end
return 1
"""

# ARGV: limit, lease_ms, token, promote_max, dead_max (-1: no cap), max_bytes (0: no limit)
#   -> {quarantined, id1, data1, attempt1, ...}; quarantined counts corrupt and oversize jobs dead-lettered
# Promoting due delayed jobs here (not only in the sweep) keeps retry latency independent of the sweep
# interval. Each claimed job is marked "<id>:c" until the worker confirms it received the claim (CONFIRM): a
# lease that expires unconfirmed means the reply never reached a worker, so the job never started there.
CLAIM = (
    _PRELUDE
    + """
-- Written without being read first: the leases and the wake-up list. The ready lists, jobs and meta are read
-- before any write (below); the dead letters are checked when a job is to be quarantined.
local bad = check_keys(3, 6)
if bad then
  return bad
end
local limit = tonumber(ARGV[1])
local token = ARGV[3]
local dead_max = tonumber(ARGV[5])
local max_bytes = tonumber(ARGV[6])
local now = now_ms()
local promoted = promote_due(now, tonumber(ARGV[4]), dead_max)
if type(promoted) == 'table' then
  return promoted
end
local deadline = now + tonumber(ARGV[2])
-- Read and validate first: the oldest `need` ids of each level, highest level first.
local picked = {}
local taken = 0
for level = LEVELS - 1, 0, -1 do
  local need = limit - taken
  if need <= 0 then
    break
  end
  local ids = redis.pcall('LRANGE', KEYS[READY0 + level], -need, -1)
  if ids.err then
    return redis.error_reply('WRONGTYPE nestq key ' .. KEYS[READY0 + level] .. ' is not a list; nothing was ' ..
      'changed (delete or rename that key to repair the queue)')
  end
  if #ids > 0 then
    taken = taken + #ids
    picked[#picked + 1] = {level, ids}
  end
end
local checked = {}
for _, entry in ipairs(picked) do
  local ids = entry[2]
  -- LRANGE lists newest first; RPOP takes the oldest first.
  for i = #ids, 1, -1 do
    local id = ids[i]
    local size = redis.call('HSTRLEN', K_JOBS, id)
    local data = false
    local why = false
    if max_bytes > 0 and size > max_bytes then
      -- Refused without loading it into the worker: a job above the size limit cannot be a valid one.
      data = true
      why = 'job is ' .. size .. ' bytes, above max_payload_bytes=' .. max_bytes .. '; refused without running it'
    elseif size > 0 or redis.call('HEXISTS', K_JOBS, id) == 1 then
      data = redis.call('HGET', K_JOBS, id)
      why = corrupt(id) or false
    end
    checked[#checked + 1] = {id, data, why}
    if why then
      bad = check_keys(5)
      if bad then
        return bad
      end
    end
  end
end
for _, entry in ipairs(picked) do
  redis.call('RPOP', KEYS[READY0 + entry[1]], #entry[2])
end
local out = {0}
for _, entry in ipairs(checked) do
  local id, data, why = entry[1], entry[2], entry[3]
  if not data then
    -- An id without data can only come from outside tampering; drop it rather than wedge the queue.
    forget(id)
  elseif why then
    quarantine(id, why, now, dead_max)
    out[1] = out[1] + 1
  else
    local attempt = redis.call('HINCRBY', K_META, id .. ':a', 1)
    redis.call('HSET', K_META, id .. ':t', token, id .. ':c', '1')
    redis.call('ZADD', K_LEASES, deadline, id)
    out[#out + 1] = id
    out[#out + 1] = data
    out[#out + 1] = attempt
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

# ARGV: token, id1, id2, ...   -> number confirmed
# The worker received these jobs of one claim: from now on an expired lease means the job started (or was about
# to) and its worker died, so the attempt counts.
CONFIRM = (
    _PRELUDE
    + """
-- Only the meta hash (CONFIRM) or the leases (HEARTBEAT) are written, by commands that fail on their first
-- call if the key has the wrong type: no partial write is possible, no check needed.
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', K_META, id .. ':t') == ARGV[1] then
    redis.call('HDEL', K_META, id .. ':c')
    n = n + 1
  end
end
return n
"""
)

# ARGV: lease_ms, id1, token1, ...   -> ids whose lease is lost
HEARTBEAT = (
    _PRELUDE
    + """
-- Only the meta hash (CONFIRM) or the leases (HEARTBEAT) are written, by commands that fail on their first
-- call if the key has the wrong type: no partial write is possible, no check needed.
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
local bad = check_keys(1, 3)
if bad then
  return bad
end
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

# ARGV: id, token, error, retry_ms (-1: no retry), max_attempts, dead_max   -> 'retry' | 'dead' | 'stale'
FAIL = (
    _PRELUDE
    + """
local bad = check_keys()
if bad then
  return bad
end
local id = ARGV[1]
if redis.call('HGET', K_META, id .. ':t') ~= ARGV[2] then
  return 'stale'
end
local now = now_ms()
local dead_max = tonumber(ARGV[6])
local why = corrupt(id)
if why then
  quarantine(id, why .. ' (recorded when its failure was: ' .. ARGV[3] .. ')', now, dead_max)
  return 'dead'
end
redis.call('ZREM', K_LEASES, id)
redis.call('HDEL', K_META, id .. ':t', id .. ':c')
redis.call('HSET', K_META, id .. ':e', ARGV[3])
local attempts = tonumber(redis.call('HGET', K_META, id .. ':a') or '0')
local retry = tonumber(ARGV[4])
if retry >= 0 and attempts < tonumber(ARGV[5]) then
  if retry > 0 then
    redis.call('ZADD', K_DELAYED, now + retry, id)
  else
    redis.call('LPUSH', ready_key(id), id)
    signal()
  end
  return 'retry'
end
bury(id, now, dead_max)
return 'dead'
"""
)

# ARGV: dead_max, id1, token1, ... in claim order   -> number released
# Walk backwards and push to the head so the released jobs keep their order and run next.
RELEASE = (
    _PRELUDE
    + """
local bad = check_keys()
if bad then
  return bad
end
local dead_max = tonumber(ARGV[1])
local mine = {}
for i = #ARGV - 1, 2, -2 do
  local id = ARGV[i]
  if redis.call('HGET', K_META, id .. ':t') == ARGV[i + 1] then
    mine[#mine + 1] = {id, corrupt(id) or false}
  end
end
local now = now_ms()
local n = 0
for _, entry in ipairs(mine) do
  local id, why = entry[1], entry[2]
  if why then
    quarantine(id, why, now, dead_max)
  else
    redis.call('ZREM', K_LEASES, id)
    redis.call('HDEL', K_META, id .. ':t', id .. ':c')
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

# ARGV: lock_token, lock_ms, max_attempts, batch, first ('1' on the first call of a sweep), dead_max
#   -> {-1} when another sweep holds the lock, else {promoted, returned, dead, more, quarantined}
# The lock only matters when a sweep needs several calls (more than `batch` entries): it keeps two sweepers
# from interleaving their chunks. It is released when the sweep is done.
# An expired lease still marked unconfirmed ("<id>:c") belongs to a claim whose reply never reached a worker:
# the job never started, so its attempt is given back; only after max(UNCONFIRMED_LIMIT, max_attempts) such
# claims (a job that can never be delivered: too large for the link, say) is it dead-lettered, saying so.
# Otherwise the worker died (or stopped heartbeating) mid-job and the attempt counts.
SWEEP = (
    _PRELUDE
    + """
local bad = check_keys()
if bad then
  return bad
end
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
local dead_max = tonumber(ARGV[6])
local now = now_ms()
local promoted = promote_due(now, batch, dead_max)
if type(promoted) == 'table' then
  return promoted
end
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, batch)
local checked = {}
for i, id in ipairs(expired) do
  checked[i] = corrupt(id) or false
end
local returned, dead, quarantined = 0, 0, 0
for i, id in ipairs(expired) do
  if checked[i] then
    quarantine(id, checked[i], now, dead_max)
    quarantined = quarantined + 1
  else
    redis.call('ZREM', K_LEASES, id)
    local f = redis.call('HMGET', K_META, id .. ':a', id .. ':c', id .. ':u')
    redis.call('HDEL', K_META, id .. ':t', id .. ':c')
    local attempts = tonumber(f[1] or '0')
    local to_dead = false
    if f[2] then
      -- Claimed, never confirmed: the attempt never ran.
      attempts = math.max(0, attempts - 1)
      local unconfirmed = tonumber(f[3] or '0') + 1
      if attempts > 0 then
        redis.call('HSET', K_META, id .. ':a', attempts, id .. ':u', unconfirmed)
      else
        redis.call('HDEL', K_META, id .. ':a')
        redis.call('HSET', K_META, id .. ':u', unconfirmed)
      end
      if unconfirmed >= math.max(max_attempts, UNCONFIRMED_LIMIT) then
        redis.call('HSET', K_META, id .. ':e', 'claimed ' .. unconfirmed .. ' time(s) but never started: no ' ..
          'worker received the claim (lost replies: a dropping link, or a job too large to transfer in time); ' ..
          attempts .. ' attempt(s) actually ran')
        to_dead = true
      end
    elseif attempts >= max_attempts then
      redis.call('HSET', K_META, id .. ':e',
        'lease expired during attempt ' .. attempts .. ' of ' .. max_attempts .. ': the job started, then its ' ..
        'worker died or stopped heartbeating mid-job')
      to_dead = true
    end
    if to_dead then
      bury(id, now, dead_max)
      dead = dead + 1
    else
      -- Back to the head: it was taken first, so it should not wait behind the whole backlog again.
      redis.call('RPUSH', ready_key(id), id)
      returned = returned + 1
    end
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
return {promoted, returned, dead, more, quarantined}
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
# A corrupt priority field is dropped (the job goes back at priority 0): the operator asked for it to run.
REDRIVE = (
    _PRELUDE
    + _select_dead()
    + """
local bad = check_keys()
if bad then
  return bad
end
local dead, seen = {}, {}
for _, id in ipairs(ids) do
  if not seen[id] and redis.call('ZSCORE', K_DEAD, id) then
    seen[id] = true
    local p = redis.call('HGET', K_META, id .. ':p')
    dead[#dead + 1] = {id, p and not (counter_ok(p) and tonumber(p) < LEVELS)}
  end
end
local n = 0
for _, entry in ipairs(dead) do
  local id = entry[1]
  redis.call('ZREM', K_DEAD, id)
  redis.call('HDEL', K_META, id .. ':a', id .. ':e', id .. ':u', id .. ':c', id .. ':t')
  if entry[2] then
    redis.call('HDEL', K_META, id .. ':p')
  end
  redis.call('LPUSH', ready_key(id), id)
  n = n + 1
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
local bad = check_keys()
if bad then
  return bad
end
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
local bad = check_keys()
if bad then
  return bad
end
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
