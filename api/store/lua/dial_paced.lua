--@include event_argv
--@include paced_dial

-- The `dialing` compare-and-set with the trunk's dial rate (lib/paced_dial.lua).
-- Returns apply_event's reply or {'turn', ms, status}.
-- KEYS 1-8: apply_event's
local default_rate, guard_ms, now_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reserved_turn_ms = tonumber(ARGV[4])  -- the turn reserved before ('' none)
-- ARGV 5-: apply_event's arguments
local event = event_args(5)

return paced_dial(event_keys(1), event, default_rate, guard_ms, now_ms, reserved_turn_ms)
