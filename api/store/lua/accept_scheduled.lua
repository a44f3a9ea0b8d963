--@include apply_event
--@include event_argv
--@include accept_record

-- Accept for later (see claim_scheduled.lua for the invariant): the accept script's
-- atomicity (record + idempotency + index + event together, or nothing) with the due set in
-- place of the dispatch message. The record is written `scheduled` (`scheduled_at`,
-- `scheduled_reason`), so `call.scheduled` is applied as an informational event, like
-- `call.queued` at the accept.
local kcall, kdeadlines = KEYS[1], KEYS[8]  -- KEYS 1-8: apply_event's
local kws_calls, kroom, kidempotency = KEYS[9], KEYS[10], KEYS[11]
local kdue, kbalance = KEYS[12], KEYS[13]
local idem_value, idem_ttl_s, created_ms, room_ttl_s = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local record_json, due_ms, reserve_s = ARGV[5], ARGV[6], tonumber(ARGV[7])
-- ARGV 8-: apply_event's arguments

local refused, call_id = accept_record({
  kcall = kcall, kws_calls = kws_calls, kroom = kroom, kidempotency = kidempotency,
  kbalance = kbalance, idem_value = idem_value, idem_ttl_s = idem_ttl_s,
  created_ms = created_ms, room_ttl_s = room_ttl_s, record_json = record_json,
  reserve_s = reserve_s,
})
if refused then return refused end
redis.call('ZADD', kdue, due_ms, call_id)
redis.call('ZADD', kdeadlines, deadline_of(kcall, 'scheduled', tonumber(created_ms)), call_id)
local result = apply_event(event_keys(1), event_args(8))
return {'created', result[2]}
