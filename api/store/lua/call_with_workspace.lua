--@include call_with_workspace

-- A call with what its workspace says about it, in one step (a webhook's one-off
-- redelivery, api/store/redelivery.py).
-- Returns lib/call_with_workspace.lua's reply.
local kcall = KEYS[1]
local workspace_prefix = ARGV[1]

return call_with_workspace(kcall, workspace_prefix)
