--@include apply_event
--@include event_argv

-- The dispatcher's `dispatching -> waiting_for_agent` mark (apply_event, a compare-and-set
-- from `dispatching`), returning whether the agent's readiness came first: agent_ready.lua
-- records `agent_ready_at` and queues the dial only for a call already waiting, so when
-- this mark applies and finds it, the dispatcher dials. Both are atomic on the call, so
-- whichever comes second continues it, once.
-- Returns apply_event's outcome, sequence and status, then `agent_ready_at` or ''.
local kcall = KEYS[1]  -- KEYS 1-8: apply_event's
-- ARGV 1-: apply_event's arguments (`call.waiting_for_agent`)

local result = apply_event(event_keys(1), event_args(1))
local ready_at = redis.call('HGET', kcall, 'agent_ready_at')
return {result[1], result[2], result[3], ready_at or ''}
