--@include wake_waiter

-- Ends a drain that cannot go on (its call is gone, its time budget is spent, or it hit an
-- error): the lease and the drain's in-flight slot are dropped and, unless the call is
-- gone, the call waits in `relay:due` (an earlier retry is kept), so the relay flag never
-- stays set with no message anywhere. A freed slot goes to the workspace's oldest waiter.
-- inflight and waiting are keys without members when the workspace is unknown.
local klock, kdue, kactive, kinflight, kwaiting = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token, call_id, retry_at, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

if redis.call('GET', klock) == token then redis.call('DEL', klock) end
if redis.call('ZREM', kinflight, call_id) == 1 then
  wake_waiter(kwaiting, kdue, now)
end
if retry_at == '' then  -- the call is gone
  redis.call('DEL', kactive)
else
  redis.call('ZADD', kdue, 'NX', retry_at, call_id)
end
return 1
