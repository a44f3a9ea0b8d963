-- The call a room belongs to, read in one step: the webhook intake learns a webhook's call
-- in the round trip that notes its arrival. The call's key is only known here, from the
-- room's value, so it is built from its prefix in ARGV (as in call_with_workspace.lua).
-- Returns {call id, the call hash as HGETALL lists it} or {} (no such room).
local kroom = KEYS[1]
local call_prefix = ARGV[1]

local call_id = redis.call('GET', kroom)
if not call_id then return {} end
return {call_id, redis.call('HGETALL', call_prefix .. call_id)}
