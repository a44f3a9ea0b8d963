--@include apply_event
--@include pacing_hold

-- One pacer step for one trunk: admits waiting calls while the trunk's limits allow, each
-- from the least recently served workspace under its own limit, writing each admitted
-- call's dispatch message and deadline in the same step. A waiting call that is no longer
-- `queued` (canceled meanwhile) is dropped. The trunk stays in `pacing:trunks` while calls
-- wait, scored with when to look again. A pacer looks at a trunk held by concurrency at
-- least every `CONCURRENCY_LOOK_MS` (a lease may expire without a release; a wake-up
-- normally comes first).
-- Calls left waiting show the limit that holds them now: when a workspace's calls are held
-- by another limit than the one they last showed (`held`: workspace -> that limit, which
-- admit.lua clears when a call joins with another), the first `WAITING_REFRESH_MAX` of them
-- get it as `waiting_for`, each with `call.waiting` when it changed (a call further back
-- gets it when a later change reaches it, or keeps the one it showed).
-- Returns {admitted, ms to look again (-1: nobody waits)}.
local kpacing_trunks, kdial_msgs, kdial_queue, kdeadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local krelay_msgs, krelay_queue = KEYS[5], KEYS[6]
local prefix, trunk, now_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local default_rate, default_trunk_concurrency = tonumber(ARGV[4]), tonumber(ARGV[5])
local default_workspace_concurrency = tonumber(ARGV[6])
local max_admissions = tonumber(ARGV[7])
local body_template, msg_id_prefix = ARGV[8], ARGV[9]  -- the template's @@CALL@@, @@MSG@@
local guard_ms = tonumber(ARGV[10])
-- `call.waiting`'s ISO time, the calls' retention and relay message (@@CALL@@, @@MSG@@)
local timestamp, retention_s, relay_template = ARGV[11], tonumber(ARGV[12]), ARGV[13]
-- The call's keys, templates in @@CALL@@.
local call_template, events_template, eids_template = ARGV[14], ARGV[15], ARGV[16]
local delivery_template, relay_active_template = ARGV[17], ARGV[18]

local function of(template, call_id) return (string.gsub(template, '@@CALL@@', call_id)) end

-- The limits of the trunk and of `ws` (nil: the default workspace's).
local function limits_of(ws)
  return limits(prefix, trunk, ws, default_rate, default_trunk_concurrency,
                default_workspace_concurrency)
end

local kturns, kslots = trunk_key(prefix, trunk, 'turns'), trunk_key(prefix, trunk, 'slots')
local kheld = trunk_key(prefix, trunk, 'held')
local admitted, look = 0, nil
local full = {}
while admitted < max_admissions do
  local turns = redis.call('ZRANGE', kturns, 0, -1)
  if #turns == 0 then break end
  local rate, tconc = limits_of(nil)
  if tconc > 0 and in_use(prefix, kslots, now_ms, trunk) >= tconc then
    look = now_ms + @CONCURRENCY_LOOK_MS@
    break
  end
  local interval = interval_of(rate, guard_ms)
  local wait = gcra_wait(trunk_key(prefix, trunk, 'admit-tat'), interval, now_ms)
  if wait > 0 then
    look = now_ms + wait
    break
  end
  local chosen = nil
  for _, ws in ipairs(turns) do
    if not full[ws] then
      local _, _, wconc = limits_of(ws)
      if wconc > 0 and in_use(prefix, ws_slots_key(prefix, ws), now_ms) >= wconc then
        full[ws] = true
      else chosen = ws break end
    end
  end
  if not chosen then
    look = now_ms + @CONCURRENCY_LOOK_MS@
    break
  end
  local kwait = trunk_key(prefix, trunk, 'waiting:' .. chosen)
  local head = redis.call('ZRANGE', kwait, 0, 0)[1]
  if head then
    redis.call('ZREM', kwait, head)
    local kcall = prefix .. ':call:' .. head
    if redis.call('HGET', kcall, 'status') == 'queued' then
      take_slots(prefix, kcall, head, trunk, chosen, interval, now_ms)
      redis.call('ZADD', kdeadlines, deadline_of(kcall, 'queued', now_ms), head)
      admitted = admitted + 1
      local msg_id = msg_id_prefix .. admitted
      local body = string.gsub(string.gsub(body_template, '@@CALL@@', head), '@@MSG@@', msg_id)
      enqueue(kdial_msgs, kdial_queue, msg_id, body)
    end
  end
  if redis.call('EXISTS', kwait) == 0 then
    redis.call('ZREM', kturns, chosen)
    redis.call('HDEL', kheld, chosen)
  elseif head then
    -- Served: after every other waiting workspace, even within the same ms.
    local last = redis.call('ZRANGE', kturns, -1, -1, 'WITHSCORES')
    redis.call('ZADD', kturns, math.max(now_ms, tonumber(last[2]) + 1), chosen)
  end
end
-- `call.waiting` for a call now held by `reason`, as admit.lua records it.
local refreshed = 0
local function note_waiting(call_id, reason)
  refreshed = refreshed + 1
  local relay_id = msg_id_prefix .. 'waiting-' .. refreshed
  local event_id = 'held-' .. call_id .. '-' .. now_ms
  local keys = {
    call = of(call_template, call_id), events = of(events_template, call_id),
    eids = of(eids_template, call_id), delivery = of(delivery_template, call_id),
    relay_active = of(relay_active_template, call_id), relay_msgs = krelay_msgs,
    relay_queue = krelay_queue, deadlines = kdeadlines,
  }
  apply_event(keys, {
    event_id = event_id, new_status = '', expected_status = 'queued',
    head = '{"id":"' .. event_id .. '","type":"call.waiting","sequence":',
    tail = ',"timestamp":"' .. timestamp .. '","data":{"reason":"' .. reason .. '"}}',
    now_ms = now_ms, retention_s = retention_s, relay_msg_id = relay_id,
    relay_msg_body = (string.gsub(of(relay_template, call_id), '@@MSG@@', relay_id)),
    max_events = 0, max_bytes = 0, after_end_ms = '', fields = {{'waiting_for', reason}},
  })
end

for _, ws in ipairs(redis.call('ZRANGE', kturns, 0, -1)) do
  local rate, tconc, wconc = limits_of(ws)
  local reason = holding(prefix, trunk, ws, rate, tconc, wconc, now_ms, guard_ms)
  -- A rate holds calls for a turn at most: shown when it held the admission itself, never
  -- refreshed to, or a trunk at both limits would flip its waiting calls' reason (and
  -- write their `call.waiting` events) at every admission.
  if reason and reason ~= 'trunk_rate' and redis.call('HGET', kheld, ws) ~= reason then
    redis.call('HSET', kheld, ws, reason)
    local kwait = trunk_key(prefix, trunk, 'waiting:' .. ws)
    for _, call_id in ipairs(redis.call('ZRANGE', kwait, 0, @WAITING_REFRESH_MAX@ - 1)) do
      local kcall = of(call_template, call_id)
      local status, shown = unpack(redis.call('HMGET', kcall, 'status', 'waiting_for'))
      if status == 'queued' and shown ~= reason then note_waiting(call_id, reason) end
    end
  end
end

if redis.call('EXISTS', kturns) == 0 then
  redis.call('ZREM', kpacing_trunks, trunk)
  redis.call('DEL', kheld)
  return {admitted, -1}
end
look = look or now_ms
redis.call('ZADD', kpacing_trunks, look, trunk)
return {admitted, look}
