--@include key_prefix
--@include reservation

-- Every call that ends is counted in its workspace's usage of the day it ended
-- (`keys.usage`: calls, billed_s, outcome:<status>), metered or not.

-- The call ended now: bill it (once: `billed_s` marks it), give back the rest of its
-- reservation and count it in its workspace's usage of the day. Returns the billed seconds.
local function settle_call(kcall, call_id, status, now)
  local ws, reserved_s, billed_s, ts_in_progress, increment, reserved_gen =
    unpack(redis.call('HMGET', kcall, 'workspace_id', 'reserved_s', 'billed_s',
                      'ts_in_progress', 'billing_increment_s', 'reserved_gen'))
  if billed_s or not ws then return 0 end
  local billed = 0
  if ts_in_progress then
    local step = math.max(tonumber(increment) or 1, 1)
    local elapsed = math.max(math.ceil((now - tonumber(ts_in_progress)) / 1000), 0)
    billed = math.ceil(elapsed / step) * step
  end
  local p = workspace_key_prefix(kcall, call_id, ws)
  if reserved_s then
    local reserved = tonumber(reserved_s)
    -- else the balance that paid the reservation is gone: nothing moves, and the call
    -- (unmetered since) is billed as an unlimited workspace's
    if reservation_live(p .. ':balance', reserved_gen) then
      billed = math.min(billed, reserved)
      redis.call('INCRBY', p .. ':balance', reserved - billed)
    end
  end
  redis.call('HSET', kcall, 'billed_s', billed)
  local kusage = p .. ':usage:' .. string.format('%d', math.floor(now / @DAY_MS@))
  redis.call('HINCRBY', kusage, 'calls', 1)
  redis.call('HINCRBY', kusage, 'billed_s', billed)
  redis.call('HINCRBY', kusage, 'outcome:' .. status, 1)
  redis.call('EXPIRE', kusage, @USAGE_TTL_SECONDS@)
  return billed
end
