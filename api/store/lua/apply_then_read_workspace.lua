--@include apply_event
--@include event_argv
--@include call_with_workspace

-- An event applied, then the call as it is afterwards with what its workspace says about it,
-- in one step: the dispatcher's `queued -> dispatching` learns where the call is (a
-- `conflict`: another run or a cancel got there first) and whether the operator disabled
-- its workspace in the round trip that marks it.
-- Returns {apply_event's reply, then lib/call_with_workspace.lua's three values}.
local kcall = KEYS[1]  -- KEYS 1-8: apply_event's
local workspace_prefix = ARGV[1]
-- ARGV 2-: apply_event's arguments

local result = apply_event(event_keys(1), event_args(2))
local call, secret, disabled = unpack(call_with_workspace(kcall, workspace_prefix))
return {result, call, secret, disabled}
