"""Lua scripts of the dialer's pacing: admission, the pacer's step, the paced dial.

Invariants kept here, each by one atomic script:
- A call holds a slot in its trunk's and its workspace's slot sets (zsets call id -> lease
  expiry ms) from its admission to its end; a set never holds more calls than its limit
  (expired leases are pruned first). The release is `lua.PACING_KEYS_FN.release_slots`, in
  the step that records the end. A lease is the call's whole budget from its admission; one
  that runs out while its call still has a deadline (a reconciler that could not settle it
  yet) follows that deadline instead of being pruned, so a live call never loses its slot
  and a slot never outlives its call's deadline by more than `LEASE_RENEWAL_MS`.
- A trunk's dials keep its rate (`DIAL_PACED`): turns (1000 + guard)/rate ms apart, taken
  in order, and at most floor(rate) dials in any 1000 + guard ms, counted from when each
  request left the worker when it left late; the guard absorbs the jitter between then and
  the dial reaching the trunk. Admissions are spaced by the same turns (`admit-tat`) but
  may catch up to `ADMIT_CATCH_UP` turns at once after a late step: the dials' rules, not
  the admissions', keep the trunk's rate. Rate 0: unlimited. The clock is the callers'
  (`now` in ARGV): the worker processes of one deployment share the host's NTP time.
- A call that may not go now waits in its (trunk, workspace) waiting set, in arrival order;
  the trunk's `turns` zset orders its workspaces by their last admission, and a pacer's
  step admits round-robin from the least recently served workspace that is under its limit,
  so a workspace's backlog never holds another's call beyond that one's own limits.
  A waiting call's deadline is its waiting budget (`max_waiting_s`, `lua.DEADLINE_FN`) from
  when it started waiting; its admission gives it the dispatch deadline.
- The admitted call's dispatch message is written in the step that admits it (outbox).

Limits: the trunk's `limits` hash overrides the deployment's defaults; the workspace hash's
`max_concurrent_calls` overrides the default workspace limit. 0 means unlimited.
"""

from api.store.lua import APPLY_EVENT_FN, DEADLINE_FN, PACING_KEYS_FN

# How far past its call's deadline a renewed lease runs (the reconciler claims deadlines
# within a second or so; this is its slack).
LEASE_RENEWAL_MS = 60_000

# How many turns a late admission may catch up (see `gcra_take`).
ADMIT_CATCH_UP = 4

# Limits, GCRA and slots. `limits` gives (rate, trunk concurrency, workspace concurrency).
PACING_FN = """
local function limits(p, trunk, ws, d_rate, d_trunk, d_ws)
  local o = redis.call('HMGET', trunk_key(p, trunk, 'limits'), 'max_calls_per_second',
                       'max_concurrent_calls')
  local w = ws and redis.call('HGET', p .. ':ws:' .. ws, 'max_concurrent_calls')
  return tonumber(o[1]) or d_rate, tonumber(o[2]) or d_trunk, tonumber(w) or d_ws
end

local function gcra_wait(ktat, interval, now)
  if interval <= 0 then return 0 end
  local tat = tonumber(redis.call('GET', ktat) or '0')
  if tat > now then return math.ceil(tat - now) end
  return 0
end

-- Takes the turn. An admission less than `ADMIT_CATCH_UP` intervals after its opening (a
-- pacer step woke late, the worker was busy) keeps the schedule: the next ones may follow
-- at once until it is caught up, so the lateness of steps does not add up over a backlog.
-- The trunk's own rate is kept by the dial's turns, where such a catch-up waits.
local function gcra_take(ktat, interval, now)
  if interval <= 0 then return end
  local tat = tonumber(redis.call('GET', ktat) or '0')
  local next_turn = now + interval
  if now - tat < ADMIT_CATCH_UP * interval then next_turn = tat + interval end
  -- Kept a minute past its turn (the API bounds the rate, so the interval is finite).
  redis.call('SET', ktat, string.format('%.3f', next_turn), 'PX',
             math.ceil(next_turn - now) + 60000)
end

local function interval_of(rate, guard)
  if rate <= 0 then return 0 end
  return (1000 + guard) / rate
end

-- Slots in use. A lease that ran out is given back unless its call is still live (it has a
-- deadline: the reconciler has not settled it yet); then it follows that deadline.
local function in_use(p, kslots, now, trunk)
  local expired = redis.call('ZRANGEBYSCORE', kslots, '-inf', '(' .. now)
  for _, call_id in ipairs(expired) do
    local deadline = tonumber(redis.call('ZSCORE', p .. ':deadlines', call_id))
    if deadline then
      local lease = string.format('%.0f', math.max(deadline, now) + LEASE_RENEWAL)
      redis.call('ZADD', kslots, lease, call_id)
      -- /metrics finds a trunk's slots through this index (see `take_slots`).
      if trunk then redis.call('ZADD', p .. ':pacing:leased-trunks', 'GT', lease, trunk) end
    else
      redis.call('ZREM', kslots, call_id)
    end
  end
  return redis.call('ZCARD', kslots)
end

-- How long the call may live from now: every budget of its states plus their margins.
local function lease_until(kcall, now)
  local f = redis.call('HMGET', kcall, 'dispatch_timeout_s', 'agent_ready_timeout_s',
                       'ring_timeout_seconds', 'max_duration_seconds', 'answer_grace_s',
                       'deadline_margin_s')
  local total = 3 * (tonumber(f[6]) or 0)
  for i = 1, 5 do total = total + (tonumber(f[i]) or 0) end
  return string.format('%.0f', now + total * 1000)
end

local function take_slots(p, kcall, call_id, trunk, ws, interval, now)
  local lease = lease_until(kcall, now)
  redis.call('ZADD', trunk_key(p, trunk, 'slots'), lease, call_id)
  redis.call('ZADD', ws_slots_key(p, ws), lease, call_id)
  -- The index /metrics reads slots through (`keys.pacing_leased_trunks`), kept small.
  local kleased = p .. ':pacing:leased-trunks'
  redis.call('ZREMRANGEBYSCORE', kleased, '-inf', '(' .. now)
  redis.call('ZADD', kleased, 'GT', lease, trunk)
  gcra_take(trunk_key(p, trunk, 'admit-tat'), interval, now)
  redis.call('HDEL', kcall, 'waiting_for', 'waiting_since')
end

-- The limit holding a call of `ws` back now, or nil; with the ms to wait for a rate.
local function holding(p, trunk, ws, rate, tconc, wconc, now, guard)
  if tconc > 0 and in_use(p, trunk_key(p, trunk, 'slots'), now, trunk) >= tconc then
    return 'trunk_concurrency', 0
  end
  if wconc > 0 and in_use(p, ws_slots_key(p, ws), now) >= wconc then
    return 'workspace_concurrency', 0
  end
  local wait = gcra_wait(trunk_key(p, trunk, 'admit-tat'), interval_of(rate, guard), now)
  if wait > 0 then return 'trunk_rate', wait end
  return nil, 0
end
""".replace("LEASE_RENEWAL", str(LEASE_RENEWAL_MS)).replace("ADMIT_CATCH_UP", str(ADMIT_CATCH_UP))

_PACING = DEADLINE_FN + PACING_KEYS_FN + PACING_FN

# A pacer looks at a trunk held by concurrency at least this often (a lease may expire
# without a release; a wake-up normally comes first).
CONCURRENCY_LOOK_MS = 5000

# Admission of a `queued` call at the start of its dispatch job. Another status, or a call
# that already holds both slots (a redelivered job), passes; a call already waiting stays
# waiting (the pacer admits it). A call is admitted when no limit holds it and no call of
# its workspace waits on its trunk before it; else it waits, and `call.waiting` is recorded
# when its reason changed.
# KEYS: apply_event's 8. ARGV: default rate, default trunk concurrency, default workspace
# concurrency, now_ms, guard ms, then apply_event's arguments (informational
# `call.waiting`, its data reason written `@@REASON@@`).
# Returns {'admitted'}, {'pass', status}, {'waiting', reason}, or {'missing'}.
ADMIT = (
    APPLY_EVENT_FN
    + PACING_FN
    + """
local kcall = KEYS[1]
local now = tonumber(ARGV[4])
local f = redis.call('HMGET', kcall, 'status', 'id', 'sip_trunk_id', 'workspace_id',
                     'waiting_for')
if not f[1] then return {'missing'} end
if f[1] ~= 'queued' or not f[3] or not f[4] then return {'pass', f[1]} end
local call_id, trunk, ws = f[2], f[3], f[4]
local p = pacing_prefix(kcall, call_id)
if redis.call('ZSCORE', trunk_key(p, trunk, 'slots'), call_id)
   and redis.call('ZSCORE', ws_slots_key(p, ws), call_id) then
  return {'pass', f[1]}
end
local kwait = trunk_key(p, trunk, 'waiting:' .. ws)
if redis.call('ZSCORE', kwait, call_id) then
  -- A redelivery; a call that started waiting before waiting had a deadline gets its own.
  redis.call('ZADD', KEYS[8], 'NX', deadline_of(kcall, 'queued', now), call_id)
  return {'waiting', f[5] or ''}
end

local rate, tconc, wconc = limits(p, trunk, ws, tonumber(ARGV[1]), tonumber(ARGV[2]),
                                  tonumber(ARGV[3]))
local guard = tonumber(ARGV[5])
local reason, wait = holding(p, trunk, ws, rate, tconc, wconc, now, guard)
if not reason and redis.call('EXISTS', kwait) == 1 then
  -- Its workspace's earlier calls go first: this one waits behind them, for their reason.
  local head = redis.call('ZRANGE', kwait, 0, 0)[1]
  reason = redis.call('HGET', p .. ':call:' .. head, 'waiting_for') or 'trunk_rate'
end
if not reason then
  take_slots(p, kcall, call_id, trunk, ws, interval_of(rate, guard), now)
  return {'admitted'}
end

-- Arrival order, unique even within one ms: now * 1000, after the last one waiting.
local last = redis.call('ZRANGE', kwait, -1, -1, 'WITHSCORES')
local order = math.max(now * 1000, (tonumber(last[2]) or 0) + 1)
redis.call('ZADD', kwait, 'NX', string.format('%.0f', order), call_id)
redis.call('ZADD', trunk_key(p, trunk, 'turns'), 'NX', now, ws)
local look = now + CONCURRENCY_LOOK
if wait > 0 then look = now + wait end
if redis.call('ZADD', p .. ':pacing:trunks', 'LT', 'CH', look, trunk) == 1 then
  -- The trunk is due sooner than any pacer knew: wake one (it may sleep up to a second).
  redis.call('LPUSH', p .. ':pacing:wake', '1')
  redis.call('LTRIM', p .. ':pacing:wake', 0, 0)
end
redis.call('HSET', kcall, 'waiting_for', reason)
redis.call('HSETNX', kcall, 'waiting_since', now)
redis.call('ZADD', KEYS[8], deadline_of(kcall, 'queued', now), call_id)
if f[5] ~= reason then
  ARGV[10] = (string.gsub(ARGV[10], '@@REASON@@', reason))
  apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], 6)
end
return {'waiting', reason}
""".replace("CONCURRENCY_LOOK", str(CONCURRENCY_LOOK_MS))
)

# One pacer step for one trunk: admits waiting calls while the trunk's limits allow, each
# from the least recently served workspace under its own limit, writing each admitted
# call's dispatch message and deadline in the same step. A waiting call that is no longer
# `queued` (canceled meanwhile) is dropped. The trunk stays in `pacing:trunks` while calls
# wait, scored with when to look again.
# KEYS: pacing trunks, dial queue msgs, dial queue ids, deadlines.
# ARGV: prefix, trunk, now_ms, default rate, default trunk concurrency, default workspace
# concurrency, max admissions, message template (@@CALL@@, @@MSG@@), message id prefix,
# guard ms.
# Returns {admitted, ms to look again (-1: nobody waits)}.
PACE = (
    _PACING
    + """
local p, trunk, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local d_rate, d_trunk, d_ws = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local guard = tonumber(ARGV[10])
local kturns, kslots = trunk_key(p, trunk, 'turns'), trunk_key(p, trunk, 'slots')
local admitted, look = 0, nil
local full = {}
while admitted < tonumber(ARGV[7]) do
  local turns = redis.call('ZRANGE', kturns, 0, -1)
  if #turns == 0 then break end
  local rate, tconc = limits(p, trunk, nil, d_rate, d_trunk, d_ws)
  if tconc > 0 and in_use(p, kslots, now, trunk) >= tconc then
    look = now + CONCURRENCY_LOOK
    break
  end
  local wait = gcra_wait(trunk_key(p, trunk, 'admit-tat'), interval_of(rate, guard), now)
  if wait > 0 then
    look = now + wait
    break
  end
  local chosen = nil
  for _, ws in ipairs(turns) do
    if not full[ws] then
      local _, _, wconc = limits(p, trunk, ws, d_rate, d_trunk, d_ws)
      if wconc > 0 and in_use(p, ws_slots_key(p, ws), now) >= wconc then full[ws] = true
      else chosen = ws break end
    end
  end
  if not chosen then
    look = now + CONCURRENCY_LOOK
    break
  end
  local kwait = trunk_key(p, trunk, 'waiting:' .. chosen)
  local head = redis.call('ZRANGE', kwait, 0, 0)[1]
  if head then
    redis.call('ZREM', kwait, head)
    local kcall = p .. ':call:' .. head
    if redis.call('HGET', kcall, 'status') == 'queued' then
      take_slots(p, kcall, head, trunk, chosen, interval_of(rate, guard), now)
      redis.call('ZADD', KEYS[4], deadline_of(kcall, 'queued', now), head)
      admitted = admitted + 1
      local msg_id = ARGV[9] .. admitted
      local body = string.gsub(string.gsub(ARGV[8], '@@CALL@@', head), '@@MSG@@', msg_id)
      redis.call('HSET', KEYS[2], msg_id, body)
      redis.call('RPUSH', KEYS[3], msg_id)
      redis.call('PUBLISH', KEYS[3], '')
    end
  end
  if redis.call('EXISTS', kwait) == 0 then redis.call('ZREM', kturns, chosen)
  elseif head then
    -- Served: after every other waiting workspace, even within the same ms.
    local last = redis.call('ZRANGE', kturns, -1, -1, 'WITHSCORES')
    redis.call('ZADD', kturns, math.max(now, tonumber(last[2]) + 1), chosen)
  end
end
if redis.call('EXISTS', kturns) == 0 then
  redis.call('ZREM', KEYS[1], trunk)
  return {admitted, -1}
end
look = look or now
redis.call('ZADD', KEYS[1], look, trunk)
return {admitted, look}
""".replace("CONCURRENCY_LOOK", str(CONCURRENCY_LOOK_MS))
)

# The `dialing` compare-and-set with the trunk's dial rate, two rules, both on this
# script's clock: turns (1000 + guard)/rate ms apart, each taken once, in the order dials
# ask (a reservation), so dials are spaced by their turns rather than by when their jobs
# come back; and a window: at most floor(rate) (at least 1) dials in any 1000 + guard ms
# (`dial-log`, the trunk's dials of the last window by when they were marked, or sent when
# the send was late: `pacing.note_late_dial`), which a late dial cannot squeeze, and which
# fractional rates need.
# A dial without a turn takes the next free one: {'turn', ms} when it is later than now
# (the job comes back then with it as `reserved`); at its turn, a dial the window still
# holds gets {'turn', ms} again, keeping its reservation. Else `apply_event` runs and, when
# it applied, the dial is logged. A call not in the expected status, or on a trunk without
# a rate, goes straight to `apply_event` (a turn it held is left unused).
# KEYS: apply_event's 8. ARGV: default rate, guard ms, now_ms, reserved turn ms ('' none),
# then apply_event's arguments.
# Returns apply_event's reply or {'turn', ms, status}.
DIAL_PACED = (
    APPLY_EVENT_FN
    + PACING_FN
    + """
local kcall = KEYS[1]
local guard, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local reserved = tonumber(ARGV[4])
local f = redis.call('HMGET', kcall, 'status', 'id', 'sip_trunk_id')
local klog, span, most = nil, 1000 + guard, 0
if f[1] and f[1] == ARGV[7] and f[3] then
  local p = pacing_prefix(kcall, f[2])
  local rate = limits(p, f[3], nil, tonumber(ARGV[1]), 0, 0)
  local interval = interval_of(rate, guard)
  if interval > 0 then
    if not reserved then
      local ktat = trunk_key(p, f[3], 'dial-tat')
      local turn = math.max(tonumber(redis.call('GET', ktat) or '0'), now)
      redis.call('SET', ktat, string.format('%.3f', turn + interval), 'PX',
                 math.ceil(turn + interval - now) + 60000)
      if turn > now then return {'turn', math.ceil(turn), f[1]} end
    elseif reserved > now then
      -- Back before its turn (a step is sent to arrive early): it waits for it.
      return {'turn', math.ceil(reserved), f[1]}
    end
    klog = trunk_key(p, f[3], 'dial-log')
    most = math.max(1, math.floor(rate))
    redis.call('ZREMRANGEBYSCORE', klog, '-inf', now - span)
    local counted = redis.call('ZCARD', klog)
    if counted >= most then
      local oldest = redis.call('ZRANGE', klog, counted - most, counted - most, 'WITHSCORES')
      return {'turn', math.ceil(tonumber(oldest[2]) + span), f[1]}
    end
  end
end
local result = apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                           KEYS[8], 5)
if result[1] == 'applied' and klog then
  redis.call('ZADD', klog, now, f[2])
  redis.call('PEXPIRE', klog, span + 60000)
end
return result
"""
)
