--@include wake_waiter

-- Records the attempt (field '' = none), frees the slot (to the workspace's oldest waiting
-- call) and, when done, drops the pending flag, in one step.
local kcall, kdelivery, kin_flight, kwaiting = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local krelay_due, kpending = KEYS[5], KEYS[6]
local field, state_json, member = ARGV[1], ARGV[2], ARGV[3]
local now_ms, done = tonumber(ARGV[4]), ARGV[5] == '1'

if field ~= '' then
  redis.call('HSET', kdelivery, field, state_json)
  local ttl = redis.call('PTTL', kcall)
  if ttl > 0 then redis.call('PEXPIRE', kdelivery, ttl) end
end
if redis.call('ZREM', kin_flight, member) == 1 then
  wake_waiter(kwaiting, krelay_due, now_ms)
end
if done then redis.call('DEL', kpending) end
return 1
