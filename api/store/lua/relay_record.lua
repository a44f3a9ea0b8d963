--@include relay_next
--@include wake_waiter

-- Records one attempt and frees the in-flight slot. Final (delivered or given up): the
-- cursor moves past it and the next step comes back. Otherwise the call waits in
-- `relay:due` and the lease is dropped. A drain whose lease another drain took over stops.
-- A slot this call does not take again goes to the workspace's oldest waiter.
local kcall, kevents, kdelivery, klock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local krelay_active, kin_flight, kwaiting, krelay_due = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local token, sequence, state_json = ARGV[1], ARGV[2], ARGV[3]
local final, next_attempt_at_ms, call_id = ARGV[4] == '1', ARGV[5], ARGV[6]
local lease_ms, now_ms, max_in_flight = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])

local function record()
  local holder = redis.call('GET', klock)
  if holder and holder ~= token then return {'lost'} end
  redis.call('HSET', kdelivery, sequence, state_json)
  local ttl = redis.call('PTTL', kcall)
  if ttl > 0 then redis.call('PEXPIRE', kdelivery, ttl) end
  if not final then
    redis.call('ZADD', krelay_due, next_attempt_at_ms, call_id)
    redis.call('DEL', klock)
    return {'scheduled'}
  end
  local delivered = tonumber(sequence)
  if delivered > tonumber(redis.call('HGET', kdelivery, 'cursor') or '0') then
    redis.call('HSET', kdelivery, 'cursor', delivered)
  end
  if not holder then redis.call('SET', klock, token, 'PX', lease_ms) end
  return relay_next({
    kcall = kcall, kevents = kevents, kdelivery = kdelivery, klock = klock,
    krelay_active = krelay_active, kin_flight = kin_flight, kwaiting = kwaiting,
    krelay_due = krelay_due, cursor = delivered, lease_ms = lease_ms, now_ms = now_ms,
    max_in_flight = max_in_flight, call_id = call_id,
  })
end

redis.call('ZREM', kin_flight, call_id)
local step = record()
if step[1] ~= 'event' then wake_waiter(kwaiting, krelay_due, now_ms) end
return step
