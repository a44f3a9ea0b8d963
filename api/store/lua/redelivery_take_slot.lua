-- Takes one of the workspace's in-flight slots for `member` (see lib/relay_next.lua).
-- Returns 1 or 0 (busy).
local kin_flight = KEYS[1]
local member, now_ms, lease_ms, max_in_flight = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

redis.call('ZREMRANGEBYSCORE', kin_flight, '-inf', now_ms)
if redis.call('ZCARD', kin_flight) >= max_in_flight then return 0 end
redis.call('ZADD', kin_flight, tonumber(now_ms) + tonumber(lease_ms), member)
redis.call('PEXPIRE', kin_flight, lease_ms)
return 1
