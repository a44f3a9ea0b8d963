--@include wake_waiter

-- Records the attempt (field '' = none), frees the slot (to the workspace's oldest waiting
-- call) and, when done, drops the pending flag, in one step.
local kcall, kdelivery, kinflight, kwaiting = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local kdue, kpending = KEYS[5], KEYS[6]
local field, state_json, member = ARGV[1], ARGV[2], ARGV[3]
local now, done = tonumber(ARGV[4]), ARGV[5] == '1'

if field ~= '' then
  redis.call('HSET', kdelivery, field, state_json)
  local ttl = redis.call('PTTL', kcall)
  if ttl > 0 then redis.call('PEXPIRE', kdelivery, ttl) end
end
if redis.call('ZREM', kinflight, member) == 1 then
  wake_waiter(kwaiting, kdue, now)
end
if done then redis.call('DEL', kpending) end
return 1
