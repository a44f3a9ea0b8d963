"""Lua scripts: each multi-key change of a call is one atomic script.

`APPLY_EVENT_FN` is the single place where a call changes state: it refuses backward and
post-terminal transitions, de-duplicates event ids, appends the event with the next
sequence number and, when the call has a callback URL and no relay message in flight,
enqueues one (the Dramatiq Redis broker layout: HSET `<queue>.msgs` id body + RPUSH).
"""

# Arguments of apply_event, in ARGV order starting at `base`:
#   event_id, new_status ('' = informational), expected_status ('' = any),
#   json_head, json_tail, now_ms, retention_s, relay_msg_id, relay_msg_body,
#   n_fields, then n_fields field/value pairs written to the call when applied.
APPLY_EVENT_ARGC = 10

APPLY_EVENT_FN = """
local RANK = {queued=0, dispatching=1, dialing=2, ringing=3, in_progress=4,
              completed=9, no_answer=9, busy=9, failed=9, canceled=9}

local function apply_event(kcall, kevents, keids, kdelivery, kactive, kmsgs, kqueue, base)
  local event_id, new_status, expected = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local head, tail, now = ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  local retention = tonumber(ARGV[base + 6])
  local msg_id, msg_body = ARGV[base + 7], ARGV[base + 8]
  local n_fields = tonumber(ARGV[base + 9])

  local current = redis.call('HGET', kcall, 'status')
  if not current then return {'missing', 0, ''} end
  local seen = redis.call('HGET', keids, event_id)
  if seen then return {'duplicate', tonumber(seen), current} end
  if expected ~= '' and current ~= expected then return {'conflict', 0, current} end

  local status = current
  if new_status ~= '' then
    if RANK[current] == 9 or RANK[new_status] <= RANK[current] then
      return {'stale', 0, current}
    end
    status = new_status
    redis.call('HSET', kcall, 'status', status, 'updated_at', now, 'ts_' .. status, now)
  end
  for i = 0, n_fields - 1 do
    local field = ARGV[base + 10 + 2 * i]
    local value = ARGV[base + 11 + 2 * i]
    if value == '' then redis.call('HDEL', kcall, field)
    else redis.call('HSET', kcall, field, value) end
  end

  local seq = redis.call('HINCRBY', kcall, 'seq', 1)
  redis.call('RPUSH', kevents, head .. seq .. ',"status":"' .. status .. '"' .. tail)
  redis.call('HSET', keids, event_id, seq)

  if new_status ~= '' and RANK[status] == 9 then
    redis.call('HSET', kcall, 'ended_at', now)
    for _, key in ipairs({kcall, kevents, keids, kdelivery}) do
      redis.call('EXPIRE', key, retention)
    end
  end

  if redis.call('HEXISTS', kcall, 'callback_url') == 1
     and redis.call('SET', kactive, '1', 'NX') then
    redis.call('HSET', kmsgs, msg_id, msg_body)
    redis.call('RPUSH', kqueue, msg_id)
  end
  return {'applied', seq, status}
end
"""

# KEYS: call, events, eids, delivery, relay_active, relay_msgs, relay_queue
APPLY_EVENT = (
    APPLY_EVENT_FN
    + """
return apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], 1)
"""
)

# KEYS: call, events, eids, delivery, relay_active, relay_msgs, relay_queue,
#       ws_calls, room, idempotency ('' when none), dial_msgs, dial_queue
# ARGV: idem_value, idem_ttl_s, created_ms, room_ttl_s, dial_msg_id, dial_msg_body,
#       n_fields, field/value pairs (the call record), then apply_event's arguments.
ACCEPT_CALL = (
    APPLY_EVENT_FN
    + """
if KEYS[10] ~= '' then
  local previous = redis.call('GET', KEYS[10])
  if previous then return {'existing', previous} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'collision', ''} end

local n_fields = tonumber(ARGV[7])
for i = 0, n_fields - 1 do
  redis.call('HSET', KEYS[1], ARGV[8 + 2 * i], ARGV[9 + 2 * i])
end
if KEYS[10] ~= '' then redis.call('SET', KEYS[10], ARGV[1], 'EX', ARGV[2]) end
local call_id = redis.call('HGET', KEYS[1], 'id')
-- Scores are created_ms * 1000 + rank within that ms: unique, so cursors never skip a call.
local base = tonumber(ARGV[3]) * 1000
local rank = redis.call('ZCOUNT', KEYS[8], base, base + 999)
redis.call('ZADD', KEYS[8], string.format('%.0f', base + rank), call_id)
redis.call('SET', KEYS[9], call_id, 'EX', ARGV[4])
redis.call('HSET', KEYS[11], ARGV[5], ARGV[6])
redis.call('RPUSH', KEYS[12], ARGV[5])
local result = apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                           8 + 2 * n_fields)
return {'created', result[2]}
"""
)

# Ends a relay drain: the in-flight flag is dropped only if no event arrived meanwhile.
# KEYS: call, relay_active. ARGV: delivered sequence.
FINISH_RELAY = """
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if seq <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

# Moves due relay retries into the relay queue in one step, so a claimed retry is never lost.
# KEYS: relay_due, relay_msgs, relay_queue. ARGV: now_ms, limit, body_template, id_prefix;
# the template's @@CALL@@ and @@MSG@@ take the call id and the new message id.
CLAIM_DUE_RELAYS = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i, call_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], call_id)
  local msg_id = ARGV[4] .. ARGV[1] .. '-' .. i
  local body = string.gsub(string.gsub(ARGV[3], '@@CALL@@', call_id), '@@MSG@@', msg_id)
  redis.call('HSET', KEYS[2], msg_id, body)
  redis.call('RPUSH', KEYS[3], msg_id)
end
return #due
"""


# Saves a caller number. The first number, one saved with default=1, or one that was
# the default is the default; the flag is cleared on every other number in the same step.
# KEYS: numbers hash. ARGV: number, record JSON, default ('1'|'0').
SAVE_NUMBER = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local was_default = existing and cjson.decode(existing)['default']
local make_default = ARGV[3] == '1' or redis.call('HLEN', KEYS[1]) == 0 or was_default
local record = cjson.decode(ARGV[2])
if make_default then
  for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
    local other = cjson.decode(raw)
    if other['default'] and other['number'] ~= ARGV[1] then
      other['default'] = false
      redis.call('HSET', KEYS[1], other['number'], cjson.encode(other))
    end
  end
end
record['default'] = make_default
local encoded = cjson.encode(record)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
return encoded
"""
