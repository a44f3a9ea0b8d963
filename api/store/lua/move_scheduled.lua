--@include apply_event
--@include event_argv

-- Moves a scheduled call to another due time (PATCH), in one step: refused ('conflict')
-- unless the call is `scheduled`; else its due time, reason, due-set score and deadline
-- change together and `call.scheduled` is recorded (informational: the status stays).
local kcall, kdeadlines, kdue = KEYS[1], KEYS[8], KEYS[9]  -- KEYS 1-8: apply_event's
local due_ms, reason = ARGV[1], ARGV[2]
-- ARGV 3-: apply_event's arguments
local event = event_args(3)

local status = redis.call('HGET', kcall, 'status')
if not status then return {'missing', 0, ''} end
if status ~= 'scheduled' then return {'conflict', 0, status} end
-- The event first: a move it refuses (over its quota: a client looping PATCH) changes nothing.
local result = apply_event(event_keys(1), event)
if result[1] ~= 'applied' then return result end
local call_id = redis.call('HGET', kcall, 'id')
redis.call('HSET', kcall, 'scheduled_at', due_ms, 'scheduled_reason', reason)
redis.call('ZADD', kdue, due_ms, call_id)
redis.call('ZADD', kdeadlines, deadline_of(kcall, 'scheduled', tonumber(event.now_ms)), call_id)
return result
