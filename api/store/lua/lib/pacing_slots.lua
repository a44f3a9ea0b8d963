--@include pacing_keys

-- Admission turns (GCRA) and slots (see lib/pacing_limits.lua).

-- How long until the next admission: none while the turn is at most `ADMIT_AHEAD_MS`
-- away (the dials' own turns space the dials).
local function gcra_wait(ktat, interval, now)
  if interval <= 0 then return 0 end
  local tat = tonumber(redis.call('GET', ktat) or '0')
  local ahead = tat - now - @ADMIT_AHEAD_MS@
  if ahead > 0 then return math.ceil(ahead) end
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
  if now - tat < @ADMIT_CATCH_UP@ * interval then next_turn = tat + interval end
  -- Kept a minute past its turn (the API bounds the rate, so the interval is finite).
  redis.call('SET', ktat, string.format('%.3f', next_turn), 'PX',
             math.ceil(next_turn - now) + 60000)
end

-- Slots in use. A lease that ran out is given back unless its call is still live (it has a
-- deadline: the reconciler has not settled it yet); then it follows that deadline, plus
-- `LEASE_RENEWAL_MS` (the reconciler claims deadlines within a second or so; this is its
-- slack).
local function in_use(p, kslots, now, trunk)
  local expired = redis.call('ZRANGEBYSCORE', kslots, '-inf', '(' .. now)
  for _, call_id in ipairs(expired) do
    local deadline = tonumber(redis.call('ZSCORE', p .. ':deadlines', call_id))
    if deadline then
      local lease = string.format('%.0f', math.max(deadline, now) + @LEASE_RENEWAL_MS@)
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
  local dispatch_timeout, agent_ready_timeout, ring_timeout, max_duration, answer_grace,
        margin =
    unpack(redis.call('HMGET', kcall, 'dispatch_timeout_s', 'agent_ready_timeout_s',
                      'ring_timeout_seconds', 'max_duration_seconds', 'answer_grace_s',
                      'deadline_margin_s'))
  local total = 3 * (tonumber(margin) or 0)
  for _, budget in ipairs({dispatch_timeout, agent_ready_timeout, ring_timeout, max_duration,
                           answer_grace}) do
    total = total + (tonumber(budget) or 0)
  end
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
