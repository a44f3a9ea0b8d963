--@include apply_event
--@include event_argv
--@include accept_record

-- The accept (`POST /v1/api/call`): the record, its idempotency answer, its reservation,
-- its dispatch message and `call.queued` together, or nothing (lib/accept_record.lua).
local kcall = KEYS[1]  -- KEYS 1-8: apply_event's
local kws_calls, kroom, kidempotency = KEYS[9], KEYS[10], KEYS[11]
local kdial_msgs, kdial_queue, kbalance = KEYS[12], KEYS[13], KEYS[14]
local kdeadlines = KEYS[8]
local idem_value, idem_ttl_s, created_ms, room_ttl_s = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dial_msg_id, dial_msg_body = ARGV[5], ARGV[6]
-- One JSON object of string fields: fewer arguments is faster to send.
local record_json, reserve_s = ARGV[7], tonumber(ARGV[8])
-- ARGV 9-: apply_event's arguments

local refused, call_id = accept_record({
  kcall = kcall, kws_calls = kws_calls, kroom = kroom, kidempotency = kidempotency,
  kbalance = kbalance, idem_value = idem_value, idem_ttl_s = idem_ttl_s,
  created_ms = created_ms, room_ttl_s = room_ttl_s, record_json = record_json,
  reserve_s = reserve_s,
})
if refused then return refused end
redis.call('HSET', kdial_msgs, dial_msg_id, dial_msg_body)
redis.call('RPUSH', kdial_queue, dial_msg_id)
redis.call('PUBLISH', kdial_queue, '')
redis.call('ZADD', kdeadlines, deadline_of(kcall, 'queued', tonumber(created_ms)), call_id)
local result = apply_event(event_keys(1), event_args(9))
return {'created', result[2]}
