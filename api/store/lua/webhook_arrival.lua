-- A webhook's arrival, in one step: when a webhook last arrived (`lkhook:health`, for
-- /readyz), whether its id was seen (`lkhook:{id}`, '' when it has none) and the call its
-- room belongs to ('' when it names no room). The call's key is only known here, from the
-- room's value, so it is built from its prefix in ARGV (as in call_with_workspace.lua).
-- Returns {seen (0/1), call id or false, the call hash as HGETALL lists it ({}: none)}.
local khealth, kseen, kroom = KEYS[1], KEYS[2], KEYS[3]
local now_ms, call_prefix = ARGV[1], ARGV[2]

redis.call('HSET', khealth, 'last_received_ms', now_ms)
local seen = kseen ~= '' and redis.call('EXISTS', kseen) or 0
local call_id = kroom ~= '' and redis.call('GET', kroom)
if not call_id then return {seen, false, {}} end
return {seen, call_id, redis.call('HGETALL', call_prefix .. call_id)}
