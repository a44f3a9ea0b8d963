--@include apply_event
--@include event_argv
--@include accept_record

-- Accept for later (see claim_scheduled.lua for the invariant): the accept script's
-- atomicity (record + idempotency + index + event together, or nothing) with the due set in
-- place of the dispatch message. The record is written `scheduled` (`scheduled_at`,
-- `scheduled_reason`), so `call.scheduled` is applied as an informational event, like
-- `call.queued` at the accept. KEYS 1-13 and ARGV 1-6: lib/accept_record.lua's.
local kdue = KEYS[14]
local due_ms = ARGV[7]
-- ARGV 8-: apply_event's arguments

local refused, call_id = accept_record('scheduled')
if refused then return refused end
redis.call('ZADD', kdue, due_ms, call_id)
local result = apply_event(event_keys(1), event_args(8))
return {'created', result[2]}
