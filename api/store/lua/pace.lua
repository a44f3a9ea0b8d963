--@include deadline
--@include pacing_limits
--@include pacing_slots
--@include enqueue

-- One pacer step for one trunk: admits waiting calls while the trunk's limits allow, each
-- from the least recently served workspace under its own limit, writing each admitted
-- call's dispatch message and deadline in the same step. A waiting call that is no longer
-- `queued` (canceled meanwhile) is dropped. The trunk stays in `pacing:trunks` while calls
-- wait, scored with when to look again. A pacer looks at a trunk held by concurrency at
-- least every `CONCURRENCY_LOOK_MS` (a lease may expire without a release; a wake-up
-- normally comes first).
-- Returns {admitted, ms to look again (-1: nobody waits)}.
local kpacing_trunks, kdial_msgs, kdial_queue, kdeadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, trunk, now_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local default_rate, default_trunk_concurrency = tonumber(ARGV[4]), tonumber(ARGV[5])
local default_workspace_concurrency = tonumber(ARGV[6])
local max_admissions = tonumber(ARGV[7])
local body_template, msg_id_prefix = ARGV[8], ARGV[9]  -- the template's @@CALL@@, @@MSG@@
local guard_ms = tonumber(ARGV[10])

-- The limits of the trunk and of `ws` (nil: the default workspace's).
local function limits_of(ws)
  return limits(prefix, trunk, ws, default_rate, default_trunk_concurrency,
                default_workspace_concurrency)
end

local kturns, kslots = trunk_key(prefix, trunk, 'turns'), trunk_key(prefix, trunk, 'slots')
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
  if redis.call('EXISTS', kwait) == 0 then redis.call('ZREM', kturns, chosen)
  elseif head then
    -- Served: after every other waiting workspace, even within the same ms.
    local last = redis.call('ZRANGE', kturns, -1, -1, 'WITHSCORES')
    redis.call('ZADD', kturns, math.max(now_ms, tonumber(last[2]) + 1), chosen)
  end
end
if redis.call('EXISTS', kturns) == 0 then
  redis.call('ZREM', kpacing_trunks, trunk)
  return {admitted, -1}
end
look = look or now_ms
redis.call('ZADD', kpacing_trunks, look, trunk)
return {admitted, look}
