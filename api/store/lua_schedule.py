"""Lua scripts of scheduled calls: each change of a scheduled call is one atomic script.

Invariant: a call is `scheduled` exactly while its id is in the due set (`keys.
scheduled_due`, call id -> due ms) with no dispatch message; the one step that takes it out
(`CLAIM_SCHEDULED`) moves it `scheduled -> queued` (compare-and-set) and writes its
dispatch message together, so it is enqueued once whatever crashes. A member whose call is
no longer `scheduled` (canceled, ended by the reconciler) is dropped by the claim; cancel
and move also fix the set in their own step. A scheduled call's deadline (`lua.DEADLINE_FN`)
is its due time plus the dispatch timeout and the deadline margin: the claimer runs every
~0.05 s, so the reconciler only meets a scheduled call nobody claimed (no worker ran): it
fails `DISPATCH_TIMEOUT` like a queued call that nobody dispatched.
"""

from api.store.lua import ACCEPT_RECORD_FN, APPLY_EVENT_FN

# Accept for later: the accept script's atomicity (record + idempotency + index + event
# together, or nothing) with the due set in place of the dispatch message. The record is
# written `scheduled` (`scheduled_at`, `scheduled_reason`), so `call.scheduled` is applied
# as an informational event, like `call.queued` at the accept.
# KEYS: call, events, eids, delivery, relay_active, relay_msgs, relay_queue, deadlines,
#       ws_calls, room, idempotency ('' when none), due, balance
# ARGV: idem_value, idem_ttl_s, created_ms, room_ttl_s, record JSON, due_ms, reserve_s,
#       then apply_event's arguments.
ACCEPT_SCHEDULED = (
    APPLY_EVENT_FN
    + ACCEPT_RECORD_FN
    + """
local refused, call_id = accept_record(ARGV[5], KEYS[13], tonumber(ARGV[7]))
if refused then return refused end
redis.call('ZADD', KEYS[12], ARGV[6], call_id)
redis.call('ZADD', KEYS[8], deadline_of(KEYS[1], 'scheduled', tonumber(ARGV[3])), call_id)
local result = apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                           KEYS[8], 8)
return {'created', result[2]}
"""
)

# Moves due scheduled calls to `queued` with their dispatch message, in one step. Each
# member leaves the set; a call still `scheduled` gets `call.queued` (apply_event with
# `queued` expected from `scheduled`, which also sets its queued deadline) and the message
# under the id the accept gave it (`job_id`), and wakes the queue's workers (PUBLISH, see
# `api.store.messages`); any other call is just dropped. Returns how many members left the
# set (a full batch: the claimer claims again at once).
# KEYS: due, dial_msgs, dial_queue, deadlines, relay_msgs, relay_queue
# ARGV: now_ms, limit, dispatch body template (@@CALL@@, @@MSG@@), message id prefix,
#       lease (unused: '0'), event timestamp ISO, retention_s, relay body template,
#       then the key templates (@@CALL@@) of call, events, eids, delivery, relay_active.
CLAIM_SCHEDULED = (
    APPLY_EVENT_FN
    + """
local now = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, now, 'LIMIT', 0, tonumber(ARGV[2]))
local base = #ARGV + 1
for i, call_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], call_id)
  local k = {}
  for j = 9, 13 do k[j - 8] = string.gsub(ARGV[j], '@@CALL@@', call_id) end
  local job_id = redis.call('HGET', k[1], 'job_id')
  if job_id and redis.call('HGET', k[1], 'status') == 'scheduled' then
    local relay_id = ARGV[4] .. 'relay-' .. i
    local event = {'due-' .. call_id .. '-' .. now, 'queued', 'scheduled',
                   '{"id":"due-' .. call_id .. '-' .. now .. '","type":"call.queued","sequence":',
                   ',"timestamp":"' .. ARGV[6] .. '","data":{}}', now, ARGV[7], relay_id,
                   string.gsub(string.gsub(ARGV[8], '@@CALL@@', call_id), '@@MSG@@', relay_id),
                   '0', '0', '', '0'}
    for j, value in ipairs(event) do ARGV[base + j - 1] = value end
    local result = apply_event(k[1], k[2], k[3], k[4], k[5], KEYS[5], KEYS[6], KEYS[4], base)
    if result[1] == 'applied' then
      local body = string.gsub(string.gsub(ARGV[3], '@@CALL@@', call_id), '@@MSG@@', job_id)
      redis.call('HSET', KEYS[2], job_id, body)
      redis.call('RPUSH', KEYS[3], job_id)
      redis.call('PUBLISH', KEYS[3], '')
    end
  end
end
return #due
"""
)

# Moves a scheduled call to another due time (PATCH), in one step: refused ('conflict')
# unless the call is `scheduled`; else its due time, reason, due-set score and deadline
# change together and `call.scheduled` is recorded (informational: the status stays).
# KEYS: apply_event's 8, due. ARGV: due_ms, reason, then apply_event's arguments.
MOVE_SCHEDULED = (
    APPLY_EVENT_FN
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', 0, ''} end
if status ~= 'scheduled' then return {'conflict', 0, status} end
-- The event first: a move it refuses (over its quota: a client looping PATCH) changes nothing.
local result = apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                           KEYS[8], 3)
if result[1] ~= 'applied' then return result end
local call_id = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'scheduled_at', ARGV[1], 'scheduled_reason', ARGV[2])
redis.call('ZADD', KEYS[9], ARGV[1], call_id)
redis.call('ZADD', KEYS[8], deadline_of(KEYS[1], 'scheduled', tonumber(ARGV[3 + 5])), call_id)
return result
"""
)

# Cancels a call (any status) and takes it out of the due set in the same step.
# KEYS: apply_event's 8, due. ARGV: apply_event's arguments.
CANCEL_CALL = (
    APPLY_EVENT_FN
    + """
local result = apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                           KEYS[8], 1)
if result[1] == 'applied' then
  redis.call('ZREM', KEYS[9], redis.call('HGET', KEYS[1], 'id'))
end
return result
"""
)

# The one step back in the status order: a `queued` call whose window closed before it
# was dispatched goes back to `scheduled` until the next opening. Only from `queued` (a
# dispatching call is already past its window check); pacing slots it may hold are given
# back and its waiting mark dropped (`release_slots`), and it gets a new dispatch message
# id, so the claim's message never meets the one being acknowledged now.
# KEYS: apply_event's 8, due. ARGV: due_ms, reason, new job id, then apply_event's
# arguments (informational `call.scheduled`).
RESCHEDULE_QUEUED = (
    APPLY_EVENT_FN
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', 0, ''} end
if status ~= 'queued' then return {'conflict', 0, status} end
local call_id = redis.call('HGET', KEYS[1], 'id')
local now = tonumber(ARGV[4 + 5])
release_slots(KEYS[1], call_id, now)
redis.call('HSET', KEYS[1], 'status', 'scheduled', 'updated_at', now, 'ts_scheduled', now,
           'scheduled_at', ARGV[1], 'scheduled_reason', ARGV[2], 'job_id', ARGV[3])
redis.call('HDEL', KEYS[1], 'waiting_for', 'waiting_since')
redis.call('ZADD', KEYS[9], ARGV[1], call_id)
redis.call('ZADD', KEYS[8], deadline_of(KEYS[1], 'scheduled', now), call_id)
return apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], 4)
"""
)
