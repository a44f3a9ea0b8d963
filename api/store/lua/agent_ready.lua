--@include apply_event
--@include event_argv
--@include enqueue

-- The agent is ready to talk: record `agent.ready` once, and when the call is waiting for
-- it, enqueue the dial step in the same step. Before that (the agent can be faster than the
-- dispatcher's `waiting_for_agent` mark) the mark finds `agent_ready_at` and dials itself.
local kcall = KEYS[1]  -- KEYS 1-8: apply_event's
local kdial_msgs, kdial_queue = KEYS[9], KEYS[10]
local dial_msg_id, dial_msg_body = ARGV[1], ARGV[2]
-- ARGV 3-: apply_event's arguments (informational, writing `agent_ready_at`)

local status = redis.call('HGET', kcall, 'status')
if not status then return {'missing', 0, ''} end
if redis.call('HEXISTS', kcall, 'agent_ready_at') == 1 then
  return {'duplicate', 0, status}
end
local result = apply_event(event_keys(1), event_args(3))
if result[1] == 'applied' and status == 'waiting_for_agent' then
  -- At the head: its callee's agent is in the room now, and a backlog of dispatches
  -- queued behind would keep it there for as long as they take.
  enqueue(kdial_msgs, kdial_queue, dial_msg_id, dial_msg_body, true)
  return {'dial', result[2], status}
end
return result
