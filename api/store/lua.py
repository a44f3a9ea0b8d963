"""Lua scripts: each multi-key change of a call is one atomic script.

`APPLY_EVENT_FN` is the single place where a call changes state: it refuses backward and
post-terminal transitions, de-duplicates event ids, appends the event with the next
sequence number and, when the call has a callback URL and no relay message in flight,
enqueues one (the Dramatiq Redis broker layout: HSET `<queue>.msgs` id body + RPUSH, then
the queue's wake-up PUBLISH, see `api.store.messages`).
The callback relay's scripts are in `api.store.lua_relay`. The terminal branch also gives
back the call's pacing slots (`PACING_KEYS_FN`, `api.store.lua_pacing`), so no path that
ends a call can keep them, and settles the call's minutes (`lua_billing.settle_call`):
its fourth reply is the seconds billed. Every event it records is announced on its workspace's feed
(`FEED_FN`) in the same step, so the live stream misses none and shows none unrecorded.
"""

from agent_runtime.contract import STATUS_RANK, TERMINAL_RANK
from api.store.lua_billing import BILLING_FN

# Arguments of apply_event, in ARGV order starting at `base`:
#   event_id, new_status ('' = informational), expected_status ('' = any),
#   json_head, json_tail, now_ms, retention_s, relay_msg_id, relay_msg_body,
#   max_events, max_bytes, after_end_ms (the quota of an informational event: '0', '0', ''
#   for none), n_fields, then n_fields field/value pairs written to the call when applied.
APPLY_EVENT_ARGC = 13

# The status order is the contract's (`STATUS_RANK`), generated into the script.
_RANK_TABLE = "{" + ", ".join(f"{status}={rank}" for status, rank in STATUS_RANK.items()) + "}"

# Every non-terminal call has a deadline in the `deadlines` zset (call id -> ms), set by
# the same step that moves the call, from budgets stored on the call at accept time; a
# terminal call has none. The reconciler looks at LiveKit when a deadline passes.
# A call whose agent said it was ready (`agent_ready_at`) is covered by that agent and by
# LiveKit's webhooks: dialing/ringing is checked once, at the ring timeout (plus a margin)
# from the dial, and an answered call at its max duration (plus the margin). Without a
# ready agent (dial mode `immediate`) nobody would report an answer, so dialing/ringing is
# looked at every answer grace, and an answered call gets an agent check one grace later.
# A scheduled call's is its due time plus the dispatch timeout and the margin
# (`api.store.lua_schedule`); a call waiting for its trunk's or workspace's limits
# (`waiting_since`, `api.store.lua_pacing`) has its waiting budget plus the margin.
DEADLINE_FN = """
local function deadline_of(kcall, status, now)
  local f = redis.call('HMGET', kcall, 'dispatch_timeout_s', 'agent_ready_timeout_s',
                       'answer_grace_s', 'deadline_margin_s', 'ring_timeout_seconds', 'ts_dialing',
                       'max_duration_seconds', 'agent_ready_at', 'scheduled_at',
                       'waiting_since', 'max_waiting_s')
  local function ms(i) return (tonumber(f[i]) or 0) * 1000 end
  local covered = f[8] ~= false
  if status == 'scheduled' then return (tonumber(f[9]) or now) + ms(1) + ms(4) end
  if status == 'queued' and f[10] then
    local budget = ms(11)
    if budget == 0 then budget = ms(1) end
    return tonumber(f[10]) + budget + ms(4)
  end
  if status == 'queued' or status == 'dispatching' then return now + ms(1) end
  if status == 'waiting_for_agent' then return now + ms(2) end
  if status == 'dialing' or status == 'ringing' then
    local final = (tonumber(f[6]) or now) + ms(5) + ms(4)
    if covered then return final end
    return math.min(now + ms(3), final)
  end
  if covered then return now + ms(7) + ms(4) end
  return now + ms(3)
end
"""

# The pacing keys of a call (`keys.Keys.trunk_slots` etc.), built in Lua: a call names its
# trunk and workspace only in its record, so a script that holds the call's key learns them
# there. The prefix is the call key's, cut before `:call:<id>`. (Keys a script did not
# declare are fine on one Redis; Outdial does not run on Redis Cluster.)
# `release_slots` gives the call's slots back (and drops it from its waiting set): a second
# release finds nothing and changes nothing. Freeing a slot while calls wait wakes a pacer
# and makes the trunk due at once.
PACING_KEYS_FN = """
local function pacing_prefix(kcall, call_id) return string.sub(kcall, 1, #kcall - #call_id - 6) end
local function trunk_key(p, trunk, suffix)
  return p .. ':pacing:trunk:' .. trunk .. ':' .. suffix
end
local function ws_slots_key(p, ws) return p .. ':pacing:ws:' .. ws .. ':slots' end

local function release_slots(kcall, call_id, now)
  local f = redis.call('HMGET', kcall, 'sip_trunk_id', 'workspace_id')
  if not f[1] or not f[2] then return end
  local p = pacing_prefix(kcall, call_id)
  local freed = redis.call('ZREM', trunk_key(p, f[1], 'slots'), call_id)
              + redis.call('ZREM', ws_slots_key(p, f[2]), call_id)
  local kwait = trunk_key(p, f[1], 'waiting:' .. f[2])
  if redis.call('ZREM', kwait, call_id) == 1 and redis.call('EXISTS', kwait) == 0 then
    redis.call('ZREM', trunk_key(p, f[1], 'turns'), f[2])
  end
  if freed > 0 and redis.call('EXISTS', p .. ':pacing:trunks') == 1 then
    redis.call('ZADD', p .. ':pacing:trunks', 'XX', 'LT', now, f[1])
    redis.call('LPUSH', p .. ':pacing:wake', '1')
    redis.call('LTRIM', p .. ':pacing:wake', 0, 0)
  end
end
"""

# The workspace's event feed (`keys.Keys.feed`, read by `api.store.feed`): a capped stream
# whose entries name a recorded event by call id (`c`) and sequence (`s`); the event itself
# stays in the call's list, so the hot accept step writes two short fields rather than a
# second copy of every event (transcripts included). Built from the call key's prefix like
# the pacing keys; an idle workspace's feed expires.
FEED_MAXLEN = 5000
FEED_TTL_SECONDS = 86_400
FEED_FN = """
local function feed_append(kcall, seq)
  local f = redis.call('HMGET', kcall, 'id', 'workspace_id')
  if not f[1] or not f[2] then return end
  local kfeed = pacing_prefix(kcall, f[1]) .. ':ws:' .. f[2] .. ':feed'
  redis.call('XADD', kfeed, 'MAXLEN', '~', @MAXLEN@, '*', 'c', f[1], 's', seq)
  redis.call('EXPIRE', kfeed, @TTL@)
end
""".replace("@MAXLEN@", str(FEED_MAXLEN)).replace("@TTL@", str(FEED_TTL_SECONDS))

APPLY_EVENT_FN = (
    DEADLINE_FN
    + PACING_KEYS_FN
    + BILLING_FN
    + FEED_FN
    + """
local RANK = @RANK@
local TERMINAL = @TERMINAL@

local function apply_event(kcall, kevents, keids, kdelivery, kactive, kmsgs, kqueue, kdeadlines,
                           base)
  local event_id, new_status, expected = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local head, tail, now = ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  local retention = tonumber(ARGV[base + 6])
  local msg_id, msg_body = ARGV[base + 7], ARGV[base + 8]
  local max_events, max_bytes = tonumber(ARGV[base + 9]), tonumber(ARGV[base + 10])
  local after_end = ARGV[base + 11]
  local n_fields = tonumber(ARGV[base + 12])

  local current = redis.call('HGET', kcall, 'status')
  if not current then return {'missing', 0, ''} end
  local seen = redis.call('HGET', keids, event_id)
  if seen then return {'duplicate', tonumber(seen), current} end
  if expected ~= '' and current ~= expected then return {'conflict', 0, current} end
  if new_status ~= '' and (RANK[current] == TERMINAL or RANK[new_status] <= RANK[current]) then
    return {'stale', 0, current}
  end

  -- A quota binds informational events only (status events are bounded by the state
  -- order): after the call's end plus `after_end` ms they are refused, and they never take
  -- the call past `max_events` events or `max_bytes` stored bytes (all its events count).
  local size = #head + #tail
  if new_status == '' and after_end ~= '' then
    local ended_at = tonumber(redis.call('HGET', kcall, 'ended_at'))
    if ended_at and tonumber(now) > ended_at + tonumber(after_end) then
      return {'ended', 0, current}
    end
  end
  if new_status == '' and max_events > 0 then
    local stored = tonumber(redis.call('HGET', kcall, 'seq') or '0')
    local bytes = tonumber(redis.call('HGET', kcall, 'event_bytes') or '0')
    if stored >= max_events or bytes + size > max_bytes then
      return {'over_quota', 0, current}
    end
  end

  local status = current
  if new_status ~= '' then
    status = new_status
    redis.call('HSET', kcall, 'status', status, 'updated_at', now, 'ts_' .. status, now)
  end
  for i = 0, n_fields - 1 do
    local field = ARGV[base + 13 + 2 * i]
    local value = ARGV[base + 14 + 2 * i]
    if value == '' then redis.call('HDEL', kcall, field)
    else redis.call('HSET', kcall, field, value) end
  end

  local seq = redis.call('HINCRBY', kcall, 'seq', 1)
  redis.call('RPUSH', kevents, head .. seq .. ',"status":"' .. status .. '"' .. tail)
  redis.call('HSET', keids, event_id, seq)
  redis.call('HINCRBY', kcall, 'event_bytes', size)
  feed_append(kcall, seq)

  local billed = 0
  if new_status ~= '' then
    local call_id = redis.call('HGET', kcall, 'id')
    if RANK[status] == TERMINAL then
      redis.call('ZREM', kdeadlines, call_id)
      release_slots(kcall, call_id, now)
      billed = settle_call(kcall, call_id, status, tonumber(now))
      redis.call('HSET', kcall, 'ended_at', now)
      for _, key in ipairs({kcall, kevents, keids, kdelivery}) do
        redis.call('EXPIRE', key, retention)
      end
    else
      redis.call('ZADD', kdeadlines, deadline_of(kcall, status, tonumber(now)), call_id)
    end
  end

  if redis.call('HEXISTS', kcall, 'callback_url') == 1
     and redis.call('SET', kactive, '1', 'NX') then
    redis.call('HSET', kmsgs, msg_id, msg_body)
    redis.call('RPUSH', kqueue, msg_id)
    redis.call('PUBLISH', kqueue, '')
  end
  return {'applied', seq, status, billed}
end
""".replace("@RANK@", _RANK_TABLE).replace("@TERMINAL@", str(TERMINAL_RANK))
)

# KEYS: call, events, eids, delivery, relay_active, relay_msgs, relay_queue, deadlines
APPLY_EVENT = (
    APPLY_EVENT_FN
    + """
return apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], 1)
"""
)

# The agent is ready to talk: record `agent.ready` once, and when the call is waiting for
# it, enqueue the dial step in the same step. Before that (the agent can be faster than the
# dispatcher's `waiting_for_agent` mark) the mark finds `agent_ready_at` and dials itself.
# KEYS: apply_event's 8, dial_msgs, dial_queue. ARGV: dial_msg_id, dial_msg_body, then
# apply_event's arguments (informational, writing `agent_ready_at`).
AGENT_READY = (
    APPLY_EVENT_FN
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', 0, ''} end
if redis.call('HEXISTS', KEYS[1], 'agent_ready_at') == 1 then
  return {'duplicate', 0, status}
end
local result = apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                           KEYS[8], 3)
if result[1] == 'applied' and status == 'waiting_for_agent' then
  redis.call('HSET', KEYS[9], ARGV[1], ARGV[2])
  redis.call('RPUSH', KEYS[10], ARGV[1])
  redis.call('PUBLISH', KEYS[10], '')
  return {'dial', result[2], status}
end
return result
"""
)

# What both accepts (now: `ACCEPT_CALL`, later: `lua_schedule.ACCEPT_SCHEDULED`) write
# first, or why nothing: the idempotency key's earlier answer ({'existing', answer}), a
# call id already taken ({'collision', ''}); else the record (one JSON object of string
# fields), the idempotency answer, the workspace's index and the room's name, and the
# call id is returned second. A workspace with a balance (`kbalance`) that cannot cover
# `reserve` seconds is refused ({'insufficient', balance}) before anything is written;
# else the call holds them (`lua_billing.reserve_take`). An idempotent replay returns
# first: it reserves nothing. Both scripts share KEYS 1 (call), 9 (ws_calls), 10 (room),
# 11 (idempotency, '' when none) and ARGV 1-4 (idem_value, idem_ttl_s, created_ms,
# room_ttl_s).
ACCEPT_RECORD_FN = """
local function accept_record(record_json, kbalance, reserve)
  if KEYS[11] ~= '' then
    local previous = redis.call('GET', KEYS[11])
    if previous then return {'existing', previous} end
  end
  if redis.call('EXISTS', KEYS[1]) == 1 then return {'collision', ''} end
  local refused = reserve_check(kbalance, reserve)
  if refused then return refused end
  local record = cjson.decode(record_json)
  for field, value in pairs(record) do
    redis.call('HSET', KEYS[1], field, value)
  end
  reserve_take(kbalance, KEYS[1], reserve)
  local call_id = record['id']
  if KEYS[11] ~= '' then redis.call('SET', KEYS[11], ARGV[1], 'EX', ARGV[2]) end
  -- Scores are created_ms * 1000 + rank within that ms: unique, so cursors never skip one.
  local base = tonumber(ARGV[3]) * 1000
  local rank = redis.call('ZCOUNT', KEYS[9], base, base + 999)
  redis.call('ZADD', KEYS[9], string.format('%.0f', base + rank), call_id)
  redis.call('SET', KEYS[10], call_id, 'EX', ARGV[4])
  return nil, call_id
end
"""

# KEYS: call, events, eids, delivery, relay_active, relay_msgs, relay_queue, deadlines,
#       ws_calls, room, idempotency ('' when none), dial_msgs, dial_queue, balance
# ARGV: idem_value, idem_ttl_s, created_ms, room_ttl_s, dial_msg_id, dial_msg_body,
#       record (one JSON object of string fields: fewer arguments is faster to send),
#       reserve_s, then apply_event's arguments.
ACCEPT_CALL = (
    APPLY_EVENT_FN
    + ACCEPT_RECORD_FN
    + """
local refused, call_id = accept_record(ARGV[7], KEYS[14], tonumber(ARGV[8]))
if refused then return refused end
redis.call('HSET', KEYS[12], ARGV[5], ARGV[6])
redis.call('RPUSH', KEYS[13], ARGV[5])
redis.call('PUBLISH', KEYS[13], '')
redis.call('ZADD', KEYS[8], deadline_of(KEYS[1], 'queued', tonumber(ARGV[3])), call_id)
local result = apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                           KEYS[8], 9)
return {'created', result[2]}
"""
)

# A call with what its workspace says about it (the webhook secret its callbacks are signed
# with, whether the operator disabled it), in one step: the dispatcher and a redelivery
# learn both in the round trip that reads the call. The workspace's key is only known here,
# from the call's `workspace_id`, so it is built from its prefix in ARGV (as in
# `lua_relay.RELAY_BEGIN`).
# KEYS: call. ARGV: workspace key prefix.
# Returns {the call hash as HGETALL lists it ({} when gone), webhook secret or nil,
# disabled flag or nil}.
CALL_WITH_WORKSPACE = """
local call = redis.call('HGETALL', KEYS[1])
local ws = redis.call('HGET', KEYS[1], 'workspace_id')
if not ws then return {call, false, false} end
local f = redis.call('HMGET', ARGV[1] .. ws, 'webhook_secret', 'disabled')
return {call, f[1], f[2]}
"""

# Moves due members of a schedule (relay retries, call deadlines) into a Dramatiq queue in
# one step, so a claimed entry is never lost. With a lease, the entry stays in the schedule
# `lease_ms` later (it comes back if the job that handles it dies) and the message carries
# that score (@@CLAIM@@): a job whose entry was moved since (the call changed state) knows
# its claim is stale. Without a lease the entry is removed.
# KEYS: schedule, queue_msgs, queue. ARGV: now_ms, limit, body_template, id_prefix,
# lease_ms ('0' = remove); the template's @@CALL@@ and @@MSG@@ take the member and the
# new message id.
CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local lease = tonumber(ARGV[5])
local claim = string.format('%.0f', tonumber(ARGV[1]) + lease)
for i, call_id in ipairs(due) do
  if lease > 0 then
    redis.call('ZADD', KEYS[1], claim, call_id)
  else
    redis.call('ZREM', KEYS[1], call_id)
  end
  local msg_id = ARGV[4] .. ARGV[1] .. '-' .. i
  local body = string.gsub(ARGV[3], '@@CALL@@', call_id)
  body = string.gsub(string.gsub(body, '@@MSG@@', msg_id), '@@CLAIM@@', claim)
  redis.call('HSET', KEYS[2], msg_id, body)
  redis.call('RPUSH', KEYS[3], msg_id)
  redis.call('PUBLISH', KEYS[3], '')
end
return #due
"""


# Saves a caller number. A number belongs to at most one workspace: its holder key is set
# if absent, so a number another workspace holds is refused ('taken'). A raw trunk id is
# accepted only when the operator assigned it to the workspace ('unassigned' otherwise); a
# trunk Outdial just created is recorded as the workspace's. Re-registering a number whose
# trunk Outdial created for it drops that trunk's owner and returns its id (the caller
# deletes it at LiveKit). The first number, one saved with default=1, or one that was the
# default is the default; the flag is cleared on every other number in the same step.
# KEYS: numbers hash, number holder, workspace trunks, trunk owner (of the record's trunk).
# ARGV: number, record JSON, default ('1'|'0'), workspace id, trunk owner key prefix.
# Returns {'saved', record JSON, replaced trunk id or ''}, {'taken'} or {'unassigned'}.
SAVE_NUMBER = """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[4] then return {'taken'} end
local record = cjson.decode(ARGV[2])
local trunk = record['sip_trunk_id']
if not record['trunk_managed'] and redis.call('SISMEMBER', KEYS[3], trunk) == 0 then
  return {'unassigned'}
end
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local was_default = false
local replaced = ''
if existing then
  local previous = cjson.decode(existing)
  was_default = previous['default']
  if previous['trunk_managed'] and previous['sip_trunk_id'] ~= trunk then
    replaced = previous['sip_trunk_id']
    redis.call('DEL', ARGV[5] .. replaced)
  end
end
local make_default = ARGV[3] == '1' or redis.call('HLEN', KEYS[1]) == 0 or was_default
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
redis.call('SET', KEYS[2], ARGV[4])
if record['trunk_managed'] then redis.call('SET', KEYS[4], ARGV[4]) end
return {'saved', encoded, replaced}
"""

# Deletes a caller number with its holder key and, for a trunk Outdial created, the trunk's
# owner, so the number can be registered again (by any workspace) and nothing dangles.
# KEYS: numbers hash, number holder. ARGV: number, workspace id, trunk owner key prefix.
# Returns the deleted record JSON, or nil when the workspace has no such number.
DELETE_NUMBER = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
local record = cjson.decode(raw)
if record['trunk_managed'] then
  local owner = ARGV[3] .. record['sip_trunk_id']
  if redis.call('GET', owner) == ARGV[2] then redis.call('DEL', owner) end
end
return raw
"""

# The operator assigns a raw trunk id to a workspace. A trunk Outdial created for a number
# is refused: its credentials and bill are that number's workspace's, and it goes with it.
# KEYS: workspace hash, workspace trunks, trunk owner. ARGV: trunk id.
# Returns 'assigned', 'missing' (no such workspace) or 'owned'.
ASSIGN_TRUNK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'owned' end
redis.call('SADD', KEYS[2], ARGV[1])
return 'assigned'
"""
