-- The accept's side of a minute balance (see lib/reservation.lua).

-- Refusal of an accept the balance cannot cover ({'insufficient', balance}), else nil.
local function reserve_check(kbalance, reserve)
  local balance = redis.call('GET', kbalance)
  if balance and tonumber(balance) < reserve then return {'insufficient', balance} end
  return nil
end

-- After the record is written: a metered workspace's call holds `reserve` seconds of its
-- balance as it is now (its generation: '0' before any removal).
local function reserve_take(kbalance, kcall, reserve)
  if redis.call('EXISTS', kbalance) == 1 then
    redis.call('DECRBY', kbalance, reserve)
    local gen = redis.call('GET', kbalance .. '@GENERATION_SUFFIX@') or '0'
    redis.call('HSET', kcall, 'reserved_s', reserve, 'reserved_gen', gen)
  end
end
