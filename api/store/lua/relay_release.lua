--@include wake_waiter

-- Ends a drain that cannot go on (its call is gone, its time budget is spent, or it hit an
-- error): the lease and the drain's in-flight slot are dropped and, unless the call is
-- gone, the call waits in `relay:due` (an earlier retry is kept), so the relay flag never
-- stays set with no message anywhere. A freed slot goes to the workspace's oldest waiter.
-- inflight and waiting are keys without members when the workspace is unknown.
local klock, krelay_due, krelay_active = KEYS[1], KEYS[2], KEYS[3]
local kin_flight, kwaiting = KEYS[4], KEYS[5]
local token, call_id, retry_at_ms, now_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

if redis.call('GET', klock) == token then redis.call('DEL', klock) end
if redis.call('ZREM', kin_flight, call_id) == 1 then
  wake_waiter(kwaiting, krelay_due, now_ms)
end
if retry_at_ms == '' then  -- the call is gone
  redis.call('DEL', krelay_active)
else
  redis.call('ZADD', krelay_due, 'NX', retry_at_ms, call_id)
end
return 1
