-- Every non-terminal call has a deadline in the `deadlines` zset (call id -> ms), set by
-- the same step that moves the call, from budgets stored on the call at accept time; a
-- terminal call has none. The reconciler looks at LiveKit when a deadline passes.
-- A call whose agent said it was ready (`agent_ready_at`) is covered by that agent and by
-- LiveKit's webhooks: dialing/ringing is checked once, at the ring timeout (plus a margin)
-- from the dial, and an answered call at its max duration (plus the margin). Without a
-- ready agent (dial mode `immediate`) nobody would report an answer, so dialing/ringing is
-- looked at every answer grace, and an answered call gets an agent check one grace later.
-- A scheduled call's is its due time plus the dispatch timeout and the margin
-- (`claim_scheduled.lua`); a call waiting for its trunk's or workspace's limits
-- (`waiting_since`, `admit.lua`) has its waiting budget plus the margin.
local function deadline_of(kcall, status, now)
  local dispatch_timeout, agent_ready_timeout, answer_grace, margin, ring_timeout, ts_dialing,
        max_duration, agent_ready_at, scheduled_at, waiting_since, max_waiting =
    unpack(redis.call('HMGET', kcall, 'dispatch_timeout_s', 'agent_ready_timeout_s',
                      'answer_grace_s', 'deadline_margin_s', 'ring_timeout_seconds',
                      'ts_dialing', 'max_duration_seconds', 'agent_ready_at', 'scheduled_at',
                      'waiting_since', 'max_waiting_s'))
  local function ms(seconds) return (tonumber(seconds) or 0) * 1000 end
  local covered = agent_ready_at ~= false
  if status == 'scheduled' then
    return (tonumber(scheduled_at) or now) + ms(dispatch_timeout) + ms(margin)
  end
  if status == 'queued' and waiting_since then
    local budget = ms(max_waiting)
    if budget == 0 then budget = ms(dispatch_timeout) end
    return tonumber(waiting_since) + budget + ms(margin)
  end
  if status == 'queued' or status == 'dispatching' then return now + ms(dispatch_timeout) end
  if status == 'waiting_for_agent' then return now + ms(agent_ready_timeout) end
  if status == 'dialing' or status == 'ringing' then
    local final = (tonumber(ts_dialing) or now) + ms(ring_timeout) + ms(margin)
    if covered then return final end
    return math.min(now + ms(answer_grace), final)
  end
  if covered then return now + ms(max_duration) + ms(margin) end
  return now + ms(answer_grace)
end
