--@include apply_event
--@include event_argv

-- The one step back in the status order: a `queued` call whose window closed before it
-- was dispatched goes back to `scheduled` until the next opening. Only from `queued` (a
-- dispatching call is already past its window check); pacing slots it may hold are given
-- back and its waiting mark dropped (`release_slots`), and it gets a new dispatch message
-- id, so the claim's message never meets the one being acknowledged now.
local kcall, kdeadlines, kdue = KEYS[1], KEYS[8], KEYS[9]  -- KEYS 1-8: apply_event's
local due_ms, reason, job_id = ARGV[1], ARGV[2], ARGV[3]
-- ARGV 4-: apply_event's arguments (informational `call.scheduled`)
local event = event_args(4)

local status = redis.call('HGET', kcall, 'status')
if not status then return {'missing', 0, ''} end
if status ~= 'queued' then return {'conflict', 0, status} end
local call_id = redis.call('HGET', kcall, 'id')
local now = tonumber(event.now_ms)
release_slots(kcall, call_id, now)
redis.call('HSET', kcall, 'status', 'scheduled', 'updated_at', now, 'ts_scheduled', now,
           'scheduled_at', due_ms, 'scheduled_reason', reason, 'job_id', job_id)
redis.call('HDEL', kcall, 'waiting_for', 'waiting_since')
redis.call('ZADD', kdue, due_ms, call_id)
redis.call('ZADD', kdeadlines, deadline_of(kcall, 'scheduled', now), call_id)
return apply_event(event_keys(1), event)
