--@include event_argv
--@include paced_dial
--@include call_with_workspace

-- The dial step's read and its `dialing` mark, in one step: the call with what its
-- workspace says about it (lib/call_with_workspace.lua), read before anything changes, and,
-- when the call is before its dial (`waiting_for_agent`, or `dispatching` in dial mode
-- `immediate`) and its workspace is not disabled, the paced mark (lib/paced_dial.lua)
-- expecting the status read. `call.dialing`'s data names the call's numbers: its tail holds
-- `"@@TO@@"` and `"@@FROM@@"`, filled from the record here.
-- Returns {the mark's reply, or {'read'} when nothing was marked, then
-- lib/call_with_workspace.lua's three values}.
local kcall = KEYS[1]  -- KEYS 1-8: apply_event's
local workspace_prefix = ARGV[1]
local default_rate, guard_ms, now_ms = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local reserved_turn_ms = tonumber(ARGV[5])  -- the turn reserved before ('' none)
-- ARGV 6-: apply_event's arguments (`call.dialing`, no expected status yet)
local event = event_args(6)

local call, secret, disabled = unpack(call_with_workspace(kcall, workspace_prefix))
local status, mode, to, from = unpack(redis.call('HMGET', kcall, 'status', 'dial_mode', 'to',
                                                 'from'))
local before_dial = status == 'waiting_for_agent' or (status == 'dispatching'
                                                      and mode == 'immediate')
if not before_dial or disabled == '1' then return {{'read'}, call, secret, disabled} end
local function literal(value)
  return function() return value and cjson.encode(value) or 'null' end
end
event.expected_status = status
event.tail = string.gsub(string.gsub(event.tail, '"@@TO@@"', literal(to)), '"@@FROM@@"',
                         literal(from))
local mark = paced_dial(event_keys(1), event, default_rate, guard_ms, now_ms, reserved_turn_ms)
return {mark, call, secret, disabled}
