-- A call with what its workspace says about it (the webhook secret its callbacks are signed
-- with, whether the operator disabled it). The workspace's key is only known from the
-- call's `workspace_id`, so it is built from its prefix (as in relay_begin.lua).
-- Returns {the call hash as HGETALL lists it ({} when gone), webhook secret or false,
-- disabled flag or false}.
local function call_with_workspace(kcall, workspace_prefix)
  local call = redis.call('HGETALL', kcall)
  local ws = redis.call('HGET', kcall, 'workspace_id')
  if not ws then return {call, false, false} end
  local secret, disabled = unpack(redis.call('HMGET', workspace_prefix .. ws, 'webhook_secret',
                                             'disabled'))
  return {call, secret, disabled}
end
