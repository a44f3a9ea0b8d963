--@include apply_event
--@include key_prefix
--@include pacing_limits

-- The `dialing` compare-and-set with the trunk's dial rate, two rules, both on this
-- script's clock: turns (1000 + guard)/rate ms apart, each taken once, in the order dials
-- ask (a reservation), so dials are spaced by their turns rather than by when their jobs
-- come back; and a window: at most floor(rate) (at least 1) dials in any 1000 + guard ms
-- (`dial-log`, the trunk's dials of the last window by when they were marked, or sent when
-- the send was late: `pacing.note_late_dial`), which a late dial cannot squeeze, and which
-- fractional rates need.
-- A dial without a turn takes the next free one: {'turn', ms} when it is later than now
-- (the job comes back then with it as `reserved`); at its turn, a dial the window still
-- holds gets {'turn', ms} again, keeping its reservation. Else `apply_event` runs and, when
-- it applied, the dial is logged. A call not in the expected status, or on a trunk without
-- a rate, goes straight to `apply_event` (a turn it held is left unused).
-- Returns apply_event's reply or {'turn', ms, status}.
local function paced_dial(k, event, default_rate, guard_ms, now_ms, reserved_turn_ms)
  local kcall = k.call
  local status, call_id, trunk = unpack(redis.call('HMGET', kcall, 'status', 'id',
                                                   'sip_trunk_id'))
  local klog, span = nil, 1000 + guard_ms
  if status and status == event.expected_status and trunk then
    local p = store_prefix(kcall, call_id)
    local rate = limits(p, trunk, nil, default_rate, 0, 0)
    local interval = interval_of(rate, guard_ms)
    if interval > 0 then
      if not reserved_turn_ms then
        local ktat = trunk_key(p, trunk, 'dial-tat')
        local turn = math.max(tonumber(redis.call('GET', ktat) or '0'), now_ms)
        redis.call('SET', ktat, string.format('%.3f', turn + interval), 'PX',
                   math.ceil(turn + interval - now_ms) + 60000)
        if turn > now_ms then return {'turn', math.ceil(turn), status} end
      elseif reserved_turn_ms > now_ms then
        -- Back before its turn (a step is sent to arrive early): it waits for it.
        return {'turn', math.ceil(reserved_turn_ms), status}
      end
      klog = trunk_key(p, trunk, 'dial-log')
      local most = math.max(1, math.floor(rate))
      redis.call('ZREMRANGEBYSCORE', klog, '-inf', now_ms - span)
      local counted = redis.call('ZCARD', klog)
      if counted >= most then
        local oldest = redis.call('ZRANGE', klog, counted - most, counted - most, 'WITHSCORES')
        return {'turn', math.ceil(tonumber(oldest[2]) + span), status}
      end
    end
  end
  local result = apply_event(k, event)
  if result[1] == 'applied' and klog then
    redis.call('ZADD', klog, now_ms, call_id)
    redis.call('PEXPIRE', klog, span + 60000)
  end
  return result
end
