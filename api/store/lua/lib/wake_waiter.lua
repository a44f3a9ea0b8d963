-- A freed slot of the workspace goes to its oldest waiting call: due now.
local function wake_waiter(kwaiting, krelay_due, now_ms)
  local first = redis.call('ZRANGE', kwaiting, 0, 0)[1]
  if first then
    redis.call('ZREM', kwaiting, first)
    redis.call('ZADD', krelay_due, now_ms, first)
  end
end
