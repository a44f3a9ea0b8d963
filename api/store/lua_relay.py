"""Lua scripts of the callback relay: each step of a call's drain is one atomic script.

The relay drains one call at a time under a lease (`relay:lock:{id}`), walking a cursor
(`cursor` in the delivery hash = last sequence delivered or given up). Each step is one
script, and each returns the drain's next move, so one event costs one round trip. A
workspace's in-flight slots are a zset of leases: a drain (or a redelivery) holds one per
attempt, and a slot it frees goes to the workspace's oldest waiting call.
"""

# The event after the cursor, with a leased in-flight slot of the workspace. With nothing
# left, the drain ends (flag and lease dropped in the same step, so a newer event's apply
# either sees the flag and is drained here, or finds it gone and enqueues a new message).
# Over the workspace's cap, the call waits in the workspace's `relay:waiting` set instead
# of holding a thread or polling: the drain that frees a slot wakes the oldest waiter
# (`WAKE_WAITER_FN`), and in case that never happens (its worker died) the call is also
# due when the oldest slot's lease runs out.
RELAY_NEXT_FN = """
local function relay_next(kcall, kevents, kdelivery, klock, kactive, kinflight, kwaiting, kdue,
                          cursor, lease, now, max_in_flight, call_id)
  if tonumber(redis.call('HGET', kcall, 'seq') or '0') <= cursor then
    redis.call('DEL', kactive, klock)
    return {'done'}
  end
  redis.call('PEXPIRE', klock, lease)
  redis.call('ZREMRANGEBYSCORE', kinflight, '-inf', now)
  if not redis.call('ZSCORE', kinflight, call_id)
     and redis.call('ZCARD', kinflight) >= max_in_flight then
    redis.call('ZADD', kwaiting, 'NX', now, call_id)
    redis.call('PEXPIRE', kwaiting, 2 * lease)
    local oldest = redis.call('ZRANGE', kinflight, 0, 0, 'WITHSCORES')
    redis.call('ZADD', kdue, tonumber(oldest[2]), call_id)
    redis.call('DEL', klock)
    return {'busy'}
  end
  redis.call('ZREM', kwaiting, call_id)
  redis.call('ZADD', kinflight, now + lease, call_id)
  redis.call('PEXPIRE', kinflight, lease)
  local event = redis.call('LINDEX', kevents, cursor)
  local state = redis.call('HGET', kdelivery, tostring(cursor + 1))
  return {'event', event or '', state or ''}
end
"""

# A freed slot of the workspace goes to its oldest waiting call: due now.
WAKE_WAITER_FN = """
local function wake_waiter(kwaiting, kdue, now)
  local first = redis.call('ZRANGE', kwaiting, 0, 0)[1]
  if first then
    redis.call('ZREM', kwaiting, first)
    redis.call('ZADD', kdue, now, first)
  end
end
"""

# Takes the call's drain lease and returns what every delivery of the call needs, plus the
# first step. When another drain holds the lease, the call goes (back) into `relay:due`
# without moving an earlier retry forward, so this message may end. The workspace's keys
# are only known here: they are built from the prefixes in ARGV (Outdial's scripts already
# assume a single Redis node, see APPLY_EVENT's broker keys).
# KEYS: call, events, delivery, lock, relay_active, relay_due.
# ARGV: token, lease_ms, call_id, locked_retry_at_ms, now_ms, max_in_flight,
#       workspace_key_prefix, in_flight_key_prefix, waiting_key_prefix.
RELAY_BEGIN = (
    RELAY_NEXT_FN
    + """
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('ZADD', KEYS[6], 'NX', ARGV[4], ARGV[3])
  return {'locked'}
end
local f = redis.call('HMGET', KEYS[1], 'workspace_id', 'callback_url', 'room_name', 'metadata')
if not f[1] or not f[2] then return {'gone'} end
local secret = redis.call('HGET', ARGV[7] .. f[1], 'webhook_secret') or ''
local cursor = tonumber(redis.call('HGET', KEYS[3], 'cursor') or '0')
local step = relay_next(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[8] .. f[1],
                        ARGV[9] .. f[1], KEYS[6], cursor, tonumber(ARGV[2]), tonumber(ARGV[5]),
                        tonumber(ARGV[6]), ARGV[3])
return {'ok', f[1], f[2], f[3] or '', f[4] or '{}', secret, cursor, step[1], step[2], step[3]}
"""
)

# Records one attempt and frees the in-flight slot. Final (delivered or given up): the
# cursor moves past it and the next step comes back. Otherwise the call waits in
# `relay:due` and the lease is dropped. A drain whose lease another drain took over stops.
# A slot this call does not take again goes to the workspace's oldest waiter.
# KEYS: call, events, delivery, lock, relay_active, inflight, waiting, relay_due.
# ARGV: token, sequence, state_json, final ('1'|'0'), next_attempt_ms, call_id, lease_ms,
#       now_ms, max_in_flight.
RELAY_RECORD = (
    RELAY_NEXT_FN
    + WAKE_WAITER_FN
    + """
local function record()
  local holder = redis.call('GET', KEYS[4])
  if holder and holder ~= ARGV[1] then return {'lost'} end
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
  if ARGV[4] ~= '1' then
    redis.call('ZADD', KEYS[8], ARGV[5], ARGV[6])
    redis.call('DEL', KEYS[4])
    return {'scheduled'}
  end
  local sequence = tonumber(ARGV[2])
  if sequence > tonumber(redis.call('HGET', KEYS[3], 'cursor') or '0') then
    redis.call('HSET', KEYS[3], 'cursor', sequence)
  end
  if not holder then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[7]) end
  return relay_next(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8],
                    sequence, tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[6])
end

redis.call('ZREM', KEYS[6], ARGV[6])
local step = record()
if step[1] ~= 'event' then wake_waiter(KEYS[7], KEYS[8], tonumber(ARGV[8])) end
return step
"""
)

# Ends a drain that cannot go on (its call is gone, its time budget is spent, or it hit an
# error): the lease and the drain's in-flight slot are dropped and, unless the call is
# gone, the call waits in `relay:due` (an earlier retry is kept), so the relay flag never
# stays set with no message anywhere.
# A freed slot goes to the workspace's oldest waiter.
# KEYS: lock, relay_due, relay_active, inflight, waiting (keys without members when the
# workspace is unknown).
# ARGV: token, call_id, retry_at_ms ('' = call gone), now_ms.
RELAY_RELEASE = (
    WAKE_WAITER_FN
    + """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('ZREM', KEYS[4], ARGV[2]) == 1 then
  wake_waiter(KEYS[5], KEYS[2], tonumber(ARGV[4]))
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[3])
else
  redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[2])
end
return 1
"""
)
