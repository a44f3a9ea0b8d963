--@include apply_event
--@include event_argv
--@include accept_record
--@include enqueue

-- The accept (`POST /v1/api/call`): the record, its idempotency answer, its reservation,
-- its dispatch message and `call.queued` together, or nothing (lib/accept_record.lua, which
-- reads KEYS 1-13 and ARGV 1-6).
local kdial_msgs, kdial_queue = KEYS[14], KEYS[15]
local dial_msg_id, dial_msg_body = ARGV[7], ARGV[8]
-- ARGV 9-: apply_event's arguments

local refused = accept_record('queued')
if refused then return refused end
enqueue(kdial_msgs, kdial_queue, dial_msg_id, dial_msg_body)
local result = apply_event(event_keys(1), event_args(9))
return {'created', result[2]}
