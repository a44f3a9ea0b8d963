-- A call with what its workspace says about it (the webhook secret its callbacks are signed
-- with, whether the operator disabled it), in one step: the dispatcher and a redelivery
-- learn both in the round trip that reads the call. The workspace's key is only known here,
-- from the call's `workspace_id`, so it is built from its prefix in ARGV (as in
-- relay_begin.lua).
-- Returns {the call hash as HGETALL lists it ({} when gone), webhook secret or nil,
-- disabled flag or nil}.
local kcall = KEYS[1]
local workspace_prefix = ARGV[1]

local call = redis.call('HGETALL', kcall)
local ws = redis.call('HGET', kcall, 'workspace_id')
if not ws then return {call, false, false} end
local secret, disabled = unpack(redis.call('HMGET', workspace_prefix .. ws, 'webhook_secret',
                                           'disabled'))
return {call, secret, disabled}
