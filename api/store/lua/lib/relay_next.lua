-- The callback relay drains one call at a time under a lease (`relay:lock:{id}`), walking a
-- cursor (`cursor` in the delivery hash = last sequence delivered or given up). Each step
-- is one script (relay_begin.lua, relay_record.lua, relay_release.lua), and each returns
-- the drain's next move, so one event costs one round trip. A workspace's in-flight slots
-- are a zset of leases: a drain (or a redelivery) holds one per attempt, and a slot it
-- frees goes to the workspace's oldest waiting call (lib/wake_waiter.lua).

-- The event after the cursor, with a leased in-flight slot of the workspace. With nothing
-- left, the drain ends (flag and lease dropped in the same step, so a newer event's apply
-- either sees the flag and is drained here, or finds it gone and enqueues a new message).
-- Over the workspace's cap, the call waits in the workspace's `relay:waiting` set instead
-- of holding a thread or polling: the drain that frees a slot wakes the oldest waiter
-- (`wake_waiter`), and in case that never happens (its worker died) the call is also due
-- when the oldest slot's lease runs out.
-- `d`: kcall, kevents, kdelivery, klock, krelay_active, kin_flight, kwaiting, krelay_due,
-- cursor, lease_ms, now_ms, max_in_flight, call_id.
local function relay_next(d)
  local kcall = d.kcall
  if tonumber(redis.call('HGET', kcall, 'seq') or '0') <= d.cursor then
    redis.call('DEL', d.krelay_active, d.klock)
    return {'done'}
  end
  redis.call('PEXPIRE', d.klock, d.lease_ms)
  redis.call('ZREMRANGEBYSCORE', d.kin_flight, '-inf', d.now_ms)
  if not redis.call('ZSCORE', d.kin_flight, d.call_id)
     and redis.call('ZCARD', d.kin_flight) >= d.max_in_flight then
    redis.call('ZADD', d.kwaiting, 'NX', d.now_ms, d.call_id)
    redis.call('PEXPIRE', d.kwaiting, 2 * d.lease_ms)
    local oldest = redis.call('ZRANGE', d.kin_flight, 0, 0, 'WITHSCORES')
    redis.call('ZADD', d.krelay_due, tonumber(oldest[2]), d.call_id)
    redis.call('DEL', d.klock)
    return {'busy'}
  end
  redis.call('ZREM', d.kwaiting, d.call_id)
  redis.call('ZADD', d.kin_flight, d.now_ms + d.lease_ms, d.call_id)
  redis.call('PEXPIRE', d.kin_flight, d.lease_ms)
  local event = redis.call('LINDEX', d.kevents, d.cursor)
  local state = redis.call('HGET', d.kdelivery, tostring(d.cursor + 1))
  return {'event', event or '', state or ''}
end
