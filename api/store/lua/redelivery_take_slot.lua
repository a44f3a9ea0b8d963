-- Takes one of the workspace's in-flight slots for `member` (see lib/relay_next.lua).
-- Returns 1 or 0 (busy).
local kinflight = KEYS[1]
local member, now, lease, max_in_flight = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

redis.call('ZREMRANGEBYSCORE', kinflight, '-inf', now)
if redis.call('ZCARD', kinflight) >= max_in_flight then return 0 end
redis.call('ZADD', kinflight, tonumber(now) + tonumber(lease), member)
redis.call('PEXPIRE', kinflight, lease)
return 1
