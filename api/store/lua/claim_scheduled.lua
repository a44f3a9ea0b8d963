--@include apply_event
--@include enqueue

-- Scheduled calls. Invariant: a call is `scheduled` exactly while its id is in the due set
-- (`keys.scheduled_due`, call id -> due ms) with no dispatch message; the one step that
-- takes it out (this script) moves it `scheduled -> queued` (compare-and-set) and writes
-- its dispatch message together, so it is enqueued once whatever crashes. A member whose
-- call is no longer `scheduled` (canceled, ended by the reconciler) is dropped by the
-- claim; cancel and move also fix the set in their own step (cancel_call.lua,
-- move_scheduled.lua). A scheduled call's deadline (lib/deadline.lua) is its due time plus
-- the dispatch timeout and the deadline margin: the claimer runs every ~0.05 s, so the
-- reconciler only meets a scheduled call nobody claimed (no worker ran): it fails
-- `DISPATCH_TIMEOUT` like a queued call that nobody dispatched.
--
-- Moves due scheduled calls to `queued` with their dispatch message, in one step. Each
-- member leaves the set; a call still `scheduled` gets `call.queued` (apply_event with
-- `queued` expected from `scheduled`, which also sets its queued deadline) and the message
-- under the id the accept gave it (`job_id`), and wakes the queue's workers (PUBLISH, see
-- `api.store.messages`); any other call is just dropped. Returns how many members left the
-- set (a full batch: the claimer claims again at once).
local kdue, kdial_msgs, kdial_queue = KEYS[1], KEYS[2], KEYS[3]
local kdeadlines, krelay_msgs, krelay_queue = KEYS[4], KEYS[5], KEYS[6]
local now_ms, limit = ARGV[1], tonumber(ARGV[2])
local body_template, msg_id_prefix = ARGV[3], ARGV[4]  -- the template's @@CALL@@, @@MSG@@
local timestamp, retention_s, relay_template = ARGV[5], tonumber(ARGV[6]), ARGV[7]
-- The call's keys, templates in @@CALL@@.
local call_template, events_template, eids_template = ARGV[8], ARGV[9], ARGV[10]
local delivery_template, relay_active_template = ARGV[11], ARGV[12]

local function of(template, call_id) return (string.gsub(template, '@@CALL@@', call_id)) end

local due = redis.call('ZRANGEBYSCORE', kdue, 0, now_ms, 'LIMIT', 0, limit)
for i, call_id in ipairs(due) do
  redis.call('ZREM', kdue, call_id)
  local kcall = of(call_template, call_id)
  local job_id = redis.call('HGET', kcall, 'job_id')
  if job_id and redis.call('HGET', kcall, 'status') == 'scheduled' then
    local relay_id = msg_id_prefix .. 'relay-' .. i
    local event_id = 'due-' .. call_id .. '-' .. now_ms
    local keys = {
      call = kcall, events = of(events_template, call_id), eids = of(eids_template, call_id),
      delivery = of(delivery_template, call_id),
      relay_active = of(relay_active_template, call_id), relay_msgs = krelay_msgs,
      relay_queue = krelay_queue, deadlines = kdeadlines,
    }
    local event = {
      event_id = event_id, new_status = 'queued', expected_status = 'scheduled',
      head = '{"id":"' .. event_id .. '","type":"call.queued","sequence":',
      tail = ',"timestamp":"' .. timestamp .. '","data":{}}', now_ms = now_ms,
      retention_s = retention_s, relay_msg_id = relay_id,
      relay_msg_body = (string.gsub(of(relay_template, call_id), '@@MSG@@', relay_id)),
      max_events = 0, max_bytes = 0, after_end_ms = '', fields = {},
    }
    local result = apply_event(keys, event)
    if result[1] == 'applied' then
      local body = string.gsub(of(body_template, call_id), '@@MSG@@', job_id)
      enqueue(kdial_msgs, kdial_queue, job_id, body)
    end
  end
end
return #due
